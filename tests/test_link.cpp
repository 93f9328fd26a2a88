// The link actor (network faults) against a recording upstream: transparent without an
// effect, a delay holds messages, a drop keeps the gradient from the upstream and answers
// lost_in_network after detect_ms.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>

#include <caf/all.hpp>

#include "actors/link.hpp"
#include "config/run_config.hpp"

using namespace psgd;

namespace {

constexpr auto wait_limit = std::chrono::seconds(10);

/// What the fake upstream saw.
struct seen {
  int joins = 0;
  int pushes = 0;
  int pulls = 0;
  worker_report report{-1, -1, -1, -1, -1};
  caf::actor_addr last_sender;  ///< of the last join, push or pull
};

/// An upstream that answers every join, push and pull with a snapshot of a growing version,
/// and records what it saw (a test-owned struct; the test reads it only after a reply).
upstream_actor::behavior_type recording_upstream(upstream_actor::pointer self, seen* log) {
  auto version = std::make_shared<uint64_t>(0);
  auto answer = [=] {
    log->last_sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
    return snapshot{++*version, float_buffer{std::vector<float>{1.0f}}};
  };
  return {
    [=](join_atom, int32_t) {
      ++log->joins;
      return answer();
    },
    [=](push_atom, const gradient&) {
      ++log->pushes;
      return answer();
    },
    [=](pull_atom, int32_t) {
      ++log->pulls;
      return answer();
    },
    [=](report_atom, const worker_report& r) { log->report = r; },
  };
}

gradient some_gradient() {
  gradient g;
  g.worker = 3;
  g.batch_size = 1;
  g.values = float_buffer{std::vector<float>{0.5f}};
  return g;
}

fault_effect drop_all(int32_t event, double detect_ms) {
  fault_effect e;
  e.event = event;
  e.kind = fault_effect::net_drop;
  e.probability = 1;
  e.duration_ms = detect_ms;
  return e;
}

fault_effect constant_delay(int32_t event, double ms) {
  fault_effect e;
  e.event = event;
  e.kind = fault_effect::net_delay;
  e.dist = 0; // constant
  e.a = ms;
  return e;
}

struct fixture {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor worker{sys};
  seen log;
  upstream_actor upstream = sys.spawn(recording_upstream, &log);
  link_actor path = sys.spawn(network_link, int32_t{3}, upstream);

  struct answer {
    std::chrono::duration<double, std::milli> took;
    bool lost = false;  ///< the link answered lost_in_network
  };

  /// Sends a push through the link and waits for the answer (a snapshot or a loss).
  answer push() {
    answer a;
    auto start = std::chrono::steady_clock::now();
    bool answered = false;
    worker->request(path, wait_limit, push_atom::value, some_gradient())
      .receive([&](snapshot&) { answered = true; },
               [&](caf::error& err) {
                 answered = a.lost = err == make_error(error_code::lost_in_network);
                 if (!a.lost)
                   FAIL("the push failed: " << sys.render(err));
               });
    REQUIRE(answered);
    a.took = std::chrono::steady_clock::now() - start;
    return a;
  }

  ~fixture() {
    worker->send_exit(path, caf::exit_reason::user_shutdown);
    worker->send_exit(upstream, caf::exit_reason::user_shutdown);
  }
};

} // namespace

TEST_CASE("a link without effects passes messages on, and the worker stays the sender",
          "[link]") {
  fixture f;
  f.worker->request(f.path, wait_limit, join_atom::value, int32_t{3})
    .receive([](snapshot& s) { CHECK(s.version == 1); },
             [&](caf::error& err) { FAIL(f.sys.render(err)); });
  CHECK(f.log.joins == 1);
  CHECK(f.log.last_sender == f.worker->address()); // the server monitors the worker
  f.push();
  CHECK(f.log.pushes == 1);
  CHECK(f.log.pulls == 0);
}

TEST_CASE("net_drop keeps the gradient from the upstream and reports the loss after "
          "detect_ms",
          "[link]") {
  fixture f;
  f.worker->send(f.path, fault_atom::value, drop_all(0, 30));
  for (int i = 0; i < 3; ++i) {
    auto a = f.push();
    CHECK(a.lost);
    CHECK(a.took.count() >= 30); // the loss is noticed only after detect_ms
  }
  CHECK(f.log.pushes == 0);
  // A pull goes through: the worker goes on with the current parameters.
  f.worker->request(f.path, wait_limit, pull_atom::value, int32_t{3})
    .receive([](snapshot&) {}, [&](caf::error& err) { FAIL(f.sys.render(err)); });
  CHECK(f.log.pulls == 1);
  CHECK(f.log.last_sender == f.worker->address());
  // Healed: gradients get through again.
  f.worker->send(f.path, heal_atom::value, int32_t{0});
  CHECK_FALSE(f.push().lost);
  CHECK(f.log.pushes == 1);
  // Reports pass through unchanged.
  f.worker->send(f.path, report_atom::value, worker_report{3, 4, 3, 0.25, 0.5});
  f.worker->send(f.path, join_atom::value, int32_t{3}); // a message after the report
  f.worker->receive([](snapshot&) {}, caf::after(wait_limit) >> [] { FAIL("no answer"); });
  CHECK(f.log.report.worker == 3);
  CHECK(f.log.report.computed == 4);
  CHECK(f.log.report.lost_in_network == 3);
  CHECK(f.log.report.compute_seconds == 0.25);
  CHECK(f.log.report.wait_seconds == 0.5);
}

TEST_CASE("net_drop loses about its probability of the gradients, the same ones for the "
          "same seed",
          "[link]") {
  auto losses = [](uint64_t seed) {
    fixture f;
    auto e = drop_all(0, 0);
    e.probability = 0.25;
    e.seed = seed;
    f.worker->send(f.path, fault_atom::value, e);
    std::vector<int> pattern;
    for (int i = 0; i < 400; ++i)
      pattern.push_back(f.push().lost ? 1 : 0);
    CHECK(f.log.pushes == static_cast<int>(std::count(pattern.begin(), pattern.end(), 0)));
    return pattern;
  };
  auto a = losses(7);
  const int lost = static_cast<int>(std::count(a.begin(), a.end(), 1));
  CHECK(lost > 60);  // binomial(400, 0.25): mean 100, sd 8.7
  CHECK(lost < 140);
  CHECK(losses(7) == a);
  CHECK(losses(8) != a);
}

TEST_CASE("net_delay holds each message for its draw; effects add up", "[link]") {
  fixture f;
  f.worker->send(f.path, fault_atom::value, constant_delay(0, 20));
  CHECK(f.push().took.count() >= 20);
  f.worker->send(f.path, fault_atom::value, constant_delay(1, 30));
  CHECK(f.push().took.count() >= 50);
  f.worker->send(f.path, heal_atom::value, int32_t{0});
  f.worker->send(f.path, heal_atom::value, int32_t{1});
  CHECK(f.log.pushes == 2);
}

TEST_CASE("rejoin points the link at another upstream", "[link]") {
  fixture f;
  seen other_log;
  upstream_actor other = f.sys.spawn(recording_upstream, &other_log);
  f.worker->send(f.path, rejoin_atom::value, other);
  f.push();
  CHECK(f.log.pushes == 0);
  CHECK(other_log.pushes == 1);
  f.worker->send_exit(other, caf::exit_reason::user_shutdown);
}
