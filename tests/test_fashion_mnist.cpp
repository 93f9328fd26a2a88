#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/mman.h>

#include "data/dataset.hpp"
#include "data/fashion_mnist.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;
using psgd::testing::temp_dir;

TEST_CASE("the real Fashion-MNIST loads with 60,000 + 10,000 images in [0, 1]", "[data]") {
  auto split = testing::fashion_mnist();
  CHECK(split->train.rows == 60000);
  CHECK(split->test.rows == 10000);
  CHECK(split->train.dim == 784);
  CHECK(split->train.classes == 10);
  // Held as the files' bytes, a quarter of the floats they stand for.
  CHECK(split->train.features.empty());
  REQUIRE(split->train.pixels.size() == size_t(60000) * 784);
  REQUIRE(split->test.pixels.size() == size_t(10000) * 784);
  auto [lo, hi] = std::minmax_element(split->train.pixels.begin(), split->train.pixels.end());
  CHECK(data::pixel_value(*lo) == 0.0f);
  CHECK(data::pixel_value(*hi) == 1.0f);
  std::vector<int> counts(10, 0);
  for (auto y : split->train.labels)
    ++counts.at(y);
  for (int c : counts)
    CHECK(c == 6000); // Fashion-MNIST is balanced
}

namespace {

/// The kB of transparent huge pages in the mappings that overlap [p, p + bytes), from
/// /proc/self/smaps (the hint splits a mapping at its 2 MiB boundaries).
long huge_kb_in(const void* p, size_t bytes) {
  std::ifstream smaps{"/proc/self/smaps"};
  const auto begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  std::string line;
  bool overlaps = false;
  long kb = 0;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head{line};
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      overlaps = lo < end && begin < hi;
      continue;
    }
    if (overlaps && line.rfind("AnonHugePages:", 0) == 0)
      kb += std::stol(line.substr(14));
  }
  return kb;
}

/// Whether the kernel gives this process transparent huge pages when it asks for them now:
/// a control region of 8 MiB, asked for and written the way the loader does. No (THP off,
/// or no free huge pages at the moment) makes the test below check nothing.
bool huge_pages_granted() {
  constexpr size_t bytes = size_t{8} << 20;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return false;
  const auto huge = uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + huge - 1) & ~(huge - 1);
  const bool asked = madvise(reinterpret_cast<void*>(begin), 2 * huge, MADV_HUGEPAGE) == 0;
  std::memset(p, 1, bytes);
  const bool granted = asked && huge_kb_in(p, bytes) > 0;
  munmap(p, bytes);
  return granted;
}

} // namespace

TEST_CASE("the training pixels ask for huge pages, where the kernel offers them", "[data]") {
  // A minibatch reads 32 rows at random from 47 MB: with 4 KiB pages nearly every row misses
  // the TLB. The loader asks for 2 MiB pages before it writes the pixels.
  auto split = testing::fashion_mnist();
  if (!huge_pages_granted()) {
    WARN("this machine gives no transparent huge pages now: nothing to check");
    return;
  }
  const auto& pixels = split->train.pixels;
  const long kb = huge_kb_in(pixels.data(), pixels.size());
  INFO("AnonHugePages of the pixels' mappings: " << kb << " kB");
  // Most of the 45,938 kB: all but the partial 2 MiB pages at either end (at least one,
  // should free huge pages have run short while the set was loaded).
  CHECK(kb >= 2048);
}

TEST_CASE("a small valid IDX pair loads", "[data]") {
  temp_dir dir;
  testing::write_gz(dir.file("im.gz"), testing::idx_images(5, 28, 255));
  testing::write_gz(dir.file("lb.gz"), testing::idx_labels(5, 7));
  auto d = data::load_idx_pair(dir.file("im.gz"), dir.file("lb.gz"));
  REQUIRE(d);
  CHECK(d->rows == 5);
  CHECK(d->pixels[0] == 255);
  std::vector<float> row(28 * 28);
  d->copy_rows(0, 1, row.data());
  CHECK(row[0] == 1.0f);
  CHECK(d->labels[4] == 7);
}

TEST_CASE("IDX errors name the file and the problem", "[data]") {
  temp_dir dir;
  auto images = dir.file("im.gz");
  auto labels = dir.file("lb.gz");
  testing::write_gz(labels, testing::idx_labels(5));

  SECTION("missing file") {
    auto d = data::load_idx_pair(dir.file("nope.gz"), labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("nope.gz") && Catch::Contains("cannot open"));
  }
  SECTION("wrong magic") {
    auto bytes = testing::idx_images(5, 28);
    bytes[3] = 0x01;
    testing::write_gz(images, bytes);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("magic"));
  }
  SECTION("wrong image size") {
    testing::write_gz(images, testing::idx_images(5, 27));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("27x27"));
  }
  SECTION("fewer pixels than the header says") {
    auto bytes = testing::idx_images(5, 28);
    bytes.resize(bytes.size() - 100);
    testing::write_gz(images, bytes);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("truncated"));
  }
  SECTION("image and label counts differ") {
    testing::write_gz(images, testing::idx_images(6, 28));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("5 labels for 6 images"));
  }
  SECTION("label out of range") {
    testing::write_gz(images, testing::idx_images(5, 28));
    testing::write_gz(labels, testing::idx_labels(5, 10));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("out of range"));
  }
  SECTION("a gzip stream cut short") {
    testing::write_gz(images, testing::idx_images(50, 28, 7));
    testing::write_gz(labels, testing::idx_labels(50));
    std::ifstream in{images, std::ios::binary};
    std::string gz{std::istreambuf_iterator<char>(in), {}};
    std::ofstream out{images, std::ios::binary | std::ios::trunc};
    out << gz.substr(0, gz.size() / 2);
    out.close();
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("truncated or corrupt"));
  }
  SECTION("more pixels than the header says") {
    auto bytes = testing::idx_images(5, 28);
    bytes.resize(bytes.size() + 100, 1);
    testing::write_gz(images, bytes);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("oversized")
                            && Catch::Contains("4020 bytes of pixels (expected 3920)"));
  }
  SECTION("a damaged byte in the middle of the compressed data") {
    auto bytes = testing::idx_images(5, 28);
    uint32_t state = 12345; // pixels that do not compress away, so the stream has a middle
    for (size_t i = 16; i < bytes.size(); ++i)
      bytes[i] = static_cast<unsigned char>((state = state * 1103515245u + 12345u) >> 24);
    testing::write_gz(images, bytes);
    REQUIRE(data::load_idx_pair(images, labels));
    std::fstream f{images, std::ios::binary | std::ios::in | std::ios::out};
    f.seekp(std::streamoff(std::filesystem::file_size(images) / 2));
    f.put('\xff');
    f.close();
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("corrupt"));
  }
  SECTION("counts that claim 4 billion images are not allocated") {
    auto bytes = testing::idx_images(5, 28);
    auto lb = testing::idx_labels(5);
    for (int i = 4; i < 8; ++i)
      bytes[size_t(i)] = lb[size_t(i)] = 0xff;
    testing::write_gz(images, bytes);
    testing::write_gz(labels, lb);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("lb.gz") && Catch::Contains("truncated")
                            && Catch::Contains("4294967295 labels"));
  }
  SECTION("an uncompressed IDX file reads as is, and is checked as strictly") {
    auto bytes = testing::idx_images(5, 28, 255);
    std::ofstream{images, std::ios::binary}.write(reinterpret_cast<const char*>(bytes.data()),
                                                  std::streamsize(bytes.size()));
    REQUIRE(data::load_idx_pair(images, labels));
    std::filesystem::resize_file(images, bytes.size() - 10);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("truncated")
                            && Catch::Contains("3910 bytes of pixels (expected 3920)"));
  }
  SECTION("a directory where a file should be") {
    std::filesystem::create_directory(images);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("cannot read"));
  }
}

TEST_CASE("a truncated real Fashion-MNIST file is called truncated, not its trailer's size",
          "[data]") {
  // The user's case: train-images cut to 100 kB. The last 4 bytes of a truncated gzip file
  // are arbitrary compressed data, and were quoted as "4274266693 bytes of pixels", and
  // launch's memory check took them for a 48 GiB data set.
  temp_dir dir;
  testing::copy_fashion_mnist(dir.path());
  const auto victim = dir.file("train-images-idx3-ubyte.gz");
  std::filesystem::resize_file(victim, 100000);
  auto d = data::load_fashion_mnist(dir.path());
  REQUIRE_FALSE(d);
  CHECK_THAT(d.error(), Catch::StartsWith(victim + ": truncated or corrupt gzip file"));
  CHECK_THAT(d.error(), !Catch::Contains("4274266693"));
  auto footprint = data::fashion_mnist_footprint(dir.path());
  REQUIRE_FALSE(footprint);
  CHECK(footprint.error() == d.error()); // launch's check says what the loader would
}

TEST_CASE("fashion_mnist_footprint names the file whose header it refuses", "[data]") {
  temp_dir dir;
  testing::copy_fashion_mnist(dir.path());
  SECTION("labels that do not match the images") {
    testing::write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), testing::idx_labels(9999));
    auto f = data::fashion_mnist_footprint(dir.path());
    REQUIRE_FALSE(f);
    CHECK_THAT(f.error(), Catch::Contains("t10k-labels-idx1-ubyte.gz")
                            && Catch::Contains("9999 labels for 10000 images"));
  }
  SECTION("a missing file") {
    std::filesystem::remove(dir.file("t10k-images-idx3-ubyte.gz"));
    auto f = data::fashion_mnist_footprint(dir.path());
    REQUIRE_FALSE(f);
    CHECK_THAT(f.error(), Catch::Contains("t10k-images-idx3-ubyte.gz: cannot open"));
  }
  SECTION("a gzip trailer that disagrees with a complete-looking file") {
    const auto labels = dir.file("train-labels-idx1-ubyte.gz");
    std::fstream f{labels, std::ios::binary | std::ios::in | std::ios::out};
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
    f.close();
    auto fp = data::fashion_mnist_footprint(dir.path());
    REQUIRE_FALSE(fp);
    CHECK_THAT(fp.error(), Catch::StartsWith(labels + ": truncated or corrupt"));
    auto d = data::load_fashion_mnist(dir.path());
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::StartsWith(labels + ": truncated or corrupt"));
  }
}

TEST_CASE("a data directory that is a file is called not a directory", "[data]") {
  temp_dir dir;
  const auto file = dir.file("notadir");
  std::ofstream{file} << "not a directory\n";
  CHECK(data::data_directory_problem(dir.path()).empty());
  CHECK_THAT(data::data_directory_problem(file),
             Catch::Contains("'" + file + "'") && Catch::Contains("is not a directory"));
  CHECK_THAT(data::data_directory_problem(dir.file("none")),
             Catch::Contains("none") && Catch::Contains("does not exist"));
  auto d = data::load_fashion_mnist(file);
  REQUIRE_FALSE(d);
  CHECK_THAT(d.error(), Catch::Contains("is not a directory"));
  auto f = data::fashion_mnist_footprint(file);
  REQUIRE_FALSE(f);
  CHECK_THAT(f.error(), Catch::Contains("is not a directory"));
}

TEST_CASE("load_fashion_mnist names a missing directory, and a missing file", "[data]") {
  auto d = data::load_fashion_mnist("/nonexistent-psgd-dir");
  REQUIRE_FALSE(d);
  CHECK_THAT(d.error(), Catch::Contains("'/nonexistent-psgd-dir' does not exist"));
  temp_dir dir;
  auto e = data::load_fashion_mnist(dir.path());
  REQUIRE_FALSE(e);
  CHECK_THAT(e.error(), Catch::Contains(dir.file("train-images-idx3-ubyte.gz"))
                          && Catch::Contains("cannot open"));
}

TEST_CASE("fashion_mnist_footprint is what the loaded sets hold, from the headers alone",
          "[data]") {
  auto split = testing::fashion_mnist();
  const auto held = [](const data::dataset& d) {
    return d.pixels.size() + d.labels.size() * sizeof(int32_t);
  };
  auto footprint = data::fashion_mnist_footprint(PSGD_DATA_DIR);
  REQUIRE(footprint);
  CHECK(*footprint == held(split->train) + held(split->test));
  auto missing = data::fashion_mnist_footprint("/nonexistent-psgd-dir");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error(), Catch::Contains("'/nonexistent-psgd-dir' does not exist"));
}

TEST_CASE("the real training set with one pixel changed has another fingerprint", "[data]") {
  // The user's case: pixel 984 of train-images changed, and the copy was accepted as the
  // server's data. Also the first and the last pixel, and one in a middle row.
  auto split = testing::fashion_mnist();
  const auto base = data::fingerprint(split->train);
  data::dataset changed = split->train;
  const size_t n = changed.pixels.size();
  for (size_t i : {size_t{984}, size_t{0}, n - 1, size_t(30000) * 784 + 400}) {
    const uint8_t was = changed.pixels[i];
    changed.pixels[i] = was < 128 ? was + 1 : was - 1;
    INFO("pixel " << i);
    CHECK(data::fingerprint(changed) != base);
    changed.pixels[i] = was;
  }
  CHECK(data::fingerprint(changed) == base);
}
