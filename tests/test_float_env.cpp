// The floating-point environment: denormals flushed, on psgd's own and CAF's threads.
#include <catch2/catch.hpp>

#include <limits>
#include <thread>

#include <caf/all.hpp>

#include "config/run_config.hpp"
#include "model/float_env.hpp"

using namespace psgd;

namespace {

/// 1e-30 * 1e-10 underflows into a denormal; flushed, it is 0.
float underflow() {
  volatile float a = 1e-30f;
  volatile float b = 1e-10f;
  return a * b;
}

} // namespace

TEST_CASE("flushing denormals makes tiny results and operands zero, and is undone",
          "[float_env]") {
  std::thread{[] {
    REQUIRE_FALSE(model::denormals_flushed());
    CHECK(underflow() > 0.0f);
    volatile float denormal = underflow(); // made before the flush
    REQUIRE(denormal > 0.0f);
    {
      model::scoped_flush_denormals flushed;
      CHECK(model::denormals_flushed());
      CHECK(underflow() == 0.0f);
      volatile float one = 1.0f;
      CHECK(denormal * one == 0.0f); // a denormal operand counts as zero
    }
    CHECK_FALSE(model::denormals_flushed()); // restored
    CHECK(underflow() > 0.0f);
    model::flush_denormals();
    CHECK(model::denormals_flushed());
  }}.join();
  volatile float normal = 1e-30f;
  CHECK(normal * 2.0f == 2e-30f); // normal floats are untouched
}

TEST_CASE("every thread of psgd's actor system flushes denormals", "[float_env]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto probe = [](caf::event_based_actor*) -> caf::behavior {
    return {[](int) { return model::denormals_flushed(); }};
  };
  for (auto* name : {"scheduled", "detached"}) {
    INFO(name);
    auto a = std::string{name} == "detached" ? sys.spawn<caf::detached>(probe)
                                             : sys.spawn(probe);
    bool flushed = false;
    self->request(a, std::chrono::seconds(10), 1)
      .receive([&](bool x) { flushed = x; }, [&](caf::error& err) { FAIL(sys.render(err)); });
    CHECK(flushed);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }
}
