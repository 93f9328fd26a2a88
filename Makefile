# psgd: the two commands of the README.
#   make demo   install missing Debian packages, build, run the Fashion-MNIST demo
#   make test   install missing Debian packages, build, run the test suite
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all deps build demo test bench clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt: | deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	@bench/throughput $(BUILD)

clean:
	rm -rf $(BUILD)
