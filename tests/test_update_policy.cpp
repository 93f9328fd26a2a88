// The server's update rules, one gradient at a time (no actors).
#include <catch2/catch.hpp>

#include <chrono>
#include <limits>
#include <memory>
#include <thread>

#include "actors/update_policy.hpp"

using namespace psgd;
using verdict = server_core::verdict;

namespace {

server_settings settings_for(train_mode mode, int quorum, int workers, double lr = 1.0,
                             aggregate_rule agg = aggregate_rule::mean) {
  server_settings s;
  s.mode = mode;
  s.quorum = quorum;
  s.expected_workers = workers;
  s.lr = lr;
  s.aggregate = agg;
  return s;
}

gradient grad(int32_t worker, uint64_t read, std::vector<float> values, int32_t batch = 4) {
  gradient g;
  g.worker = worker;
  g.version_read = read;
  g.batch_size = batch;
  g.seq = read + 1;
  g.values = float_buffer{std::move(values)};
  return g;
}

server_core joined(server_settings s, std::vector<float> x0) {
  server_core core{s, std::move(x0)};
  for (int i = 0; i < s.expected_workers; ++i)
    REQUIRE(core.join(i));
  return core;
}

} // namespace

TEST_CASE("sync: the round closes with every worker's gradient and applies the mean",
          "[policy]") {
  auto core = joined(settings_for(train_mode::sync, 3, 3, 0.5), {1, 1});
  CHECK(core.push(grad(0, 0, {1, 0})) == verdict::waiting);
  CHECK(core.push(grad(1, 0, {2, 0})) == verdict::waiting);
  CHECK(core.current().version == 0);
  CHECK(core.push(grad(2, 0, {3, 6})) == verdict::round_closed);
  CHECK(core.current().version == 1);
  // x - lr * mean = 1 - 0.5 * (2, 2)
  CHECK(core.current().params.values()[0] == Approx(0).margin(1e-6));
  CHECK(core.current().params.values()[1] == Approx(0).margin(1e-6));
  CHECK(core.last_round() == std::vector<int32_t>{0, 1, 2});
  auto s = core.stats();
  CHECK(s.gradients_applied == 3);
  CHECK(s.samples == 12);
  CHECK(s.staleness_histogram == std::vector<int64_t>{3});
}

TEST_CASE("a worker's report sets its own counts and adds its seconds; none reported is "
          "negative",
          "[policy]") {
  auto core = joined(settings_for(train_mode::async, 2, 2), {1, 1});
  CHECK(core.stats().workers[0].compute_seconds < 0);
  CHECK(core.stats().workers[0].wait_seconds < 0);
  core.report(worker_report{0, 7, 2, 0.25, 0.5});
  // Another worker actor under the same id (a work process that took over a lost one's id):
  // its count includes its predecessor's, its seconds are its own.
  core.report(worker_report{0, 9, 2, 0.125, 0.25});
  auto w = core.stats().workers;
  CHECK(w[0].computed == 9);
  CHECK(w[0].lost_in_network == 2);
  CHECK(w[0].compute_seconds == 0.375);
  CHECK(w[0].wait_seconds == 0.75);
  CHECK(w[1].compute_seconds < 0);
  core.report(worker_report{5, 1, 0, 1.0, 1.0}); // not a member: ignored
  CHECK(core.stats().workers.size() == 2);
  // Time held by evaluation pauses is not waiting for the run: off the reported wait.
  core.paused_for(0, 0.5);
  CHECK(core.stats().workers[0].wait_seconds == 0.25);
  core.paused_for(0, 1.0); // never below zero
  CHECK(core.stats().workers[0].wait_seconds == 0);
  core.paused_for(1, 1.0); // no report yet: stays unknown
  CHECK(core.stats().workers[1].wait_seconds < 0);
}

TEST_CASE("sum aggregate applies the sum (the lecture's Algorithm 1)", "[policy]") {
  auto core = joined(settings_for(train_mode::sync, 2, 2, 0.5, aggregate_rule::sum), {1, 1});
  core.push(grad(0, 0, {1, 0}));
  core.push(grad(1, 0, {1, 2}));
  CHECK(core.current().params.values() == std::vector<float>{0, 0});
}

TEST_CASE("snapshots handed out are never modified", "[policy]") {
  auto core = joined(settings_for(train_mode::async, 1, 1), {5});
  auto before = core.current();
  core.push(grad(0, 0, {1}));
  CHECK(before.params.values() == std::vector<float>{5});
  CHECK(core.current().params.values() == std::vector<float>{4});
}

TEST_CASE("an update lands in the spent gradient's buffer only when nobody else holds it",
          "[policy]") {
  for (auto mode : {train_mode::async, train_mode::sync}) {
    auto core = joined(settings_for(mode, 1, 1), {5, 5});
    // The only reference: the new parameters are written over the gradient.
    auto alone = grad(0, 0, {1, 2});
    const float* alone_data = alone.values.data();
    core.push(std::move(alone));
    CHECK(core.current().params.data() == alone_data);
    CHECK(core.current().params.values() == std::vector<float>{4, 3});
    // Someone else still holds it (a copy of the message, a test): it stays as it was.
    auto kept = grad(0, 1, {1, 1});
    core.push(kept);
    CHECK(kept.values.values() == std::vector<float>{1, 1});
    CHECK(core.current().params.data() != kept.values.data());
    CHECK(core.current().params.values() == std::vector<float>{3, 2});
  }
}

TEST_CASE("a NaN gradient written over in place is still rejected with nothing applied",
          "[policy]") {
  auto core = joined(settings_for(train_mode::async, 1, 1), {1, 2});
  const auto before = core.current();
  auto bad = grad(0, 0, {0, std::numeric_limits<float>::quiet_NaN()});
  CHECK(core.push(std::move(bad)) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::non_finite);
  CHECK(core.current().version == 0);
  CHECK(core.current().params.data() == before.params.data());
  CHECK(core.current().params.values() == std::vector<float>{1, 2});
  // Its read version was not taken: a good gradient on version 0 is no duplicate.
  CHECK(core.push(grad(0, 0, {1, 1})) == verdict::applied);
  CHECK(core.current().params.values() == std::vector<float>{0, 1});
}

TEST_CASE("backup: first m gradients of the round apply, late ones are dropped", "[policy]") {
  auto core = joined(settings_for(train_mode::backup, 2, 3), {0});
  CHECK(core.push(grad(2, 0, {1})) == verdict::waiting);
  CHECK(core.push(grad(0, 0, {3})) == verdict::round_closed);
  CHECK(core.last_round() == std::vector<int32_t>{2, 0});
  CHECK(core.current().params.values() == std::vector<float>{-2});
  // Worker 1 computed on version 0: late.
  CHECK(core.push(grad(1, 0, {100})) == verdict::dropped_late);
  CHECK(core.current().version == 1);
  auto s = core.stats();
  CHECK(s.gradients_applied == 2);
  CHECK(s.gradients_dropped == 1);
  CHECK(s.workers[1].dropped == 1);
  CHECK(s.workers[1].applied == 0);
}

TEST_CASE("async: staleness = version at apply - version read", "[policy]") {
  auto core = joined(settings_for(train_mode::async, 1, 2), {0});
  CHECK(core.push(grad(0, 0, {1})) == verdict::applied); // staleness 0
  CHECK(core.push(grad(0, 1, {1})) == verdict::applied); // 0
  CHECK(core.push(grad(0, 2, {1})) == verdict::applied); // 0
  CHECK(core.push(grad(1, 0, {1})) == verdict::applied); // 3
  CHECK(core.current().version == 4);
  auto s = core.stats();
  CHECK(s.staleness_histogram == std::vector<int64_t>{3, 0, 0, 1});
  CHECK(s.workers[1].staleness_max == 3);
  CHECK(s.workers[1].staleness_sum == 3);
}

TEST_CASE("a lost worker leaves the quorum and closes a round waiting for it", "[policy]") {
  SECTION("sync") {
    auto core = joined(settings_for(train_mode::sync, 3, 3), {0});
    core.push(grad(0, 0, {1}));
    core.push(grad(1, 0, {2}));
    CHECK(core.lose(2));
    CHECK(core.current().version == 1);
    CHECK(core.live_workers() == 2);
    // The next round needs only the two live workers.
    CHECK(core.push(grad(0, 1, {1})) == verdict::waiting);
    CHECK(core.push(grad(1, 1, {1})) == verdict::round_closed);
    CHECK(core.stats().workers[2].lost);
  }
  SECTION("backup with fewer than m live workers closes with all live workers") {
    auto core = joined(settings_for(train_mode::backup, 2, 3), {0});
    core.lose(1);
    core.lose(2);
    CHECK(core.push(grad(0, 0, {1})) == verdict::round_closed);
  }
  SECTION("a gradient a worker sent before it died is still used (no work lost)") {
    auto core = joined(settings_for(train_mode::async, 1, 2), {0});
    core.lose(1);
    CHECK(core.push(grad(1, 0, {1})) == verdict::applied);
    CHECK(core.stats().workers[1].lost);
  }
}

TEST_CASE("wrong length and unknown workers are rejected and ids are admitted once", "[policy]") {
  server_core core{settings_for(train_mode::async, 1, 2), {0, 0}};
  CHECK(core.join(0));
  CHECK_FALSE(core.join(0));
  CHECK_FALSE(core.join(2));
  CHECK_FALSE(core.join(-1));
  CHECK_FALSE(core.all_joined());
  CHECK(core.join(1));
  CHECK(core.all_joined());
  CHECK(core.push(grad(0, 0, {1})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::wrong_length);
  CHECK(core.push(grad(5, 0, {1, 1})) == verdict::unknown);
  CHECK(core.current().version == 0);
  CHECK(core.stats().rejected_unknown == 1);
}

TEST_CASE("the budget ends the run: later gradients are not applied", "[policy]") {
  auto s = settings_for(train_mode::async, 1, 1);
  s.max_updates = 2;
  auto core = joined(s, {0});
  core.push(grad(0, 0, {1}));
  CHECK_FALSE(core.finished());
  core.push(grad(0, 1, {1}));
  CHECK(core.finished());
  CHECK(core.push(grad(0, 2, {1})) == verdict::after_stop);
  CHECK(core.current().version == 2);
  CHECK(core.stats().workers[0].after_stop == 1);

  auto by_samples = settings_for(train_mode::async, 1, 1);
  by_samples.sample_budget = 10;
  auto core2 = joined(by_samples, {0});
  core2.push(grad(0, 0, {1}, 4));
  core2.push(grad(0, 1, {1}, 4));
  CHECK_FALSE(core2.finished());
  core2.push(grad(0, 2, {1}, 4));
  CHECK(core2.finished());
}

TEST_CASE("each admission rule rejects what it should and leaves the parameters alone",
          "[policy]") {
  auto core = joined(settings_for(train_mode::async, 1, 2), {1, 2});
  auto before = core.current();
  auto nan = std::numeric_limits<float>::quiet_NaN();
  auto inf = std::numeric_limits<float>::infinity();
  CHECK(core.push(grad(0, 0, {1})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::wrong_length);
  CHECK(core.push(grad(0, 0, {nan, 0})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::non_finite);
  CHECK(core.push(grad(1, 0, {0, -inf})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::non_finite);
  CHECK(core.push(grad(7, 0, {0, 0})) == verdict::unknown);
  // Nothing was applied: the same buffer, the same values.
  CHECK(core.current().version == 0);
  CHECK(core.current().params.data() == before.params.data());
  CHECK(core.current().params.values() == std::vector<float>{1, 2});
  // A good gradient, then the same read version again: a duplicate.
  CHECK(core.push(grad(1, 0, {1, 1})) == verdict::applied);
  auto after_good = core.current().params.values();
  CHECK(core.push(grad(1, 0, {1, 1})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::duplicate);
  CHECK(core.current().params.values() == after_good);
  auto s = core.stats();
  CHECK(s.workers[0].rejected[size_t(reject_reason::wrong_length)] == 1);
  CHECK(s.workers[0].rejected[size_t(reject_reason::non_finite)] == 1);
  CHECK(s.workers[1].rejected[size_t(reject_reason::non_finite)] == 1);
  CHECK(s.workers[1].rejected[size_t(reject_reason::duplicate)] == 1);
  CHECK(s.rejected_unknown == 1);
  // No loss: every gradient received is accounted for. (computed is the workers' own
  // count; grad() here does not keep one, so lost_in_flight is not meaningful.)
  for (const auto& w : s.workers)
    CHECK(w.pushed == w.applied + w.dropped + w.after_stop + w.rejected_total());
}

TEST_CASE("K bad gradients in a row quarantine a worker and it leaves the quorum",
          "[policy]") {
  auto s = settings_for(train_mode::sync, 2, 2);
  s.quarantine_after = 3;
  auto core = joined(s, {0});
  auto nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(core.push(grad(0, 0, {1})) == verdict::waiting); // worker 0 waits for worker 1
  CHECK(core.push(grad(1, 0, {nan})) == verdict::rejected);
  CHECK_FALSE(core.quarantined_now());
  CHECK(core.push(grad(1, 0, {nan})) == verdict::rejected);
  CHECK(core.push(grad(1, 0, {nan})) == verdict::rejected);
  CHECK(core.quarantined_now());
  // Leaving the quorum closed the round worker 0 was waiting in, with its gradient intact:
  // each NaN was caught in the closing pass, which writes into the closing gradient only.
  CHECK(core.current().version == 1);
  CHECK(core.last_round() == std::vector<int32_t>{0});
  CHECK(core.current().params.values() == std::vector<float>{-1});
  CHECK(core.push(grad(1, 1, {1})) == verdict::rejected);
  CHECK(core.last_rejection() == reject_reason::quarantined);
  // Worker 0 now makes rounds on its own.
  CHECK(core.push(grad(0, 1, {1})) == verdict::round_closed);
  auto st = core.stats();
  CHECK(st.workers[1].quarantined);
  CHECK(st.workers[1].rejected_total() == 4);
  for (const auto& w : st.workers)
    CHECK(w.pushed == w.applied + w.dropped + w.after_stop + w.rejected_total());
}

TEST_CASE("a NaN in a round's closing gradient is caught in the closing pass; the round "
          "stays open", "[policy]") {
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  const auto inf = std::numeric_limits<float>::infinity();
  for (int workers : {1, 2, 3}) { // the closing pass for one, two and more gradients
    CAPTURE(workers);
    auto core = joined(settings_for(train_mode::sync, workers, workers, 0.5), {1, 1});
    for (int w = 0; w + 1 < workers; ++w)
      REQUIRE(core.push(grad(w, 0, {2, 4})) == verdict::waiting);
    const int last = workers - 1;
    CHECK(core.push(grad(last, 0, {0, nan})) == verdict::rejected);
    CHECK(core.last_rejection() == reject_reason::non_finite);
    CHECK(core.push(grad(last, 0, {inf, 0})) == verdict::rejected);
    CHECK(core.current().version == 0);
    CHECK(core.current().params.values() == std::vector<float>{1, 1});
    CHECK(core.push(grad(last, 0, {2, 4})) == verdict::round_closed);
    // 1 - 0.5 * mean(2, 4): the earlier gradients were not written over by the failed tries.
    CHECK(core.current().params.values()[0] == Approx(0).margin(1e-6));
    CHECK(core.current().params.values()[1] == Approx(-1).margin(1e-6));
    auto s = core.stats();
    CHECK(s.workers[size_t(last)].rejected[size_t(reject_reason::non_finite)] == 2);
    CHECK(s.gradients_applied == workers);
    for (const auto& w : s.workers)
      CHECK(w.pushed == w.applied + w.dropped + w.after_stop + w.rejected_total());
  }
  // Backup m=1 e=1: the first gradient closes the round, so its check is the closing pass's.
  auto backup = joined(settings_for(train_mode::backup, 1, 2, 0.5), {1, 1});
  CHECK(backup.push(grad(1, 0, {nan, 0})) == verdict::rejected);
  CHECK(backup.push(grad(0, 0, {2, 4})) == verdict::round_closed);
  CHECK(backup.current().params.values() == std::vector<float>{0, -1});
  CHECK(backup.push(grad(1, 0, {2, 4})) == verdict::dropped_late);
}

TEST_CASE("a good gradient resets the count of bad ones in a row", "[policy]") {
  auto s = settings_for(train_mode::async, 1, 1);
  s.quarantine_after = 2;
  auto core = joined(s, {0});
  auto nan = std::numeric_limits<float>::quiet_NaN();
  core.push(grad(0, 0, {nan}));
  core.push(grad(0, 0, {1}));
  core.push(grad(0, 1, {nan}));
  CHECK_FALSE(core.stats().workers[0].quarantined);
  core.push(grad(0, 1, {nan}));
  CHECK(core.stats().workers[0].quarantined);
}

TEST_CASE("a suspended worker is out of the quorum until it pushes again", "[policy]") {
  auto core = joined(settings_for(train_mode::sync, 2, 2), {0});
  CHECK(core.push(grad(0, 0, {1})) == verdict::waiting);
  CHECK(core.waiting_for() == std::vector<int32_t>{1});
  CHECK(core.suspend({1}));
  CHECK(core.current().version == 1);
  CHECK(core.push(grad(0, 1, {1})) == verdict::round_closed); // alone now
  // Worker 1 comes back with a gradient on version 0: late, but it rejoins.
  CHECK(core.push(grad(1, 0, {1})) == verdict::dropped_late);
  CHECK(core.push(grad(0, 2, {1})) == verdict::waiting); // the round waits for both again
}

TEST_CASE("a NaN loss or one above the threshold marks divergence", "[policy]") {
  auto s = settings_for(train_mode::async, 1, 1);
  s.divergence_loss = 50;
  auto core = joined(s, {0});
  auto g = grad(0, 0, {1});
  g.loss = 10;
  core.push(g);
  CHECK_FALSE(core.diverged());
  g = grad(0, 1, {1});
  g.loss = 51;
  core.push(g);
  CHECK(core.diverged());
}

TEST_CASE("a divergence says what damps stale gradients when they were applied at full "
          "step", "[policy]") {
  // Worker 0 pushes on versions 0..4 (staleness 0), then worker 1 on versions 0..stale-1,
  // each 5 updates old; its last gradient's loss is past the threshold.
  auto diverge = [](server_settings s, int stale) {
    s.divergence_loss = 50;
    auto core = joined(s, {0});
    for (uint64_t v = 0; v < 5; ++v)
      core.push(grad(0, v, {1}));
    for (int k = 0; k < stale; ++k) {
      auto g = grad(1, uint64_t(k), {1});
      g.loss = k + 1 == stale ? 51 : 1;
      core.push(g);
    }
    REQUIRE(core.diverged());
    return core.divergence_reason();
  };
  auto s = settings_for(train_mode::async, 1, 2);
  auto hinted = diverge(s, 4); // mean staleness 4 x 5 / 9 = 2.2
  INFO(hinted);
  CHECK_THAT(hinted, Catch::StartsWith("minibatch loss 51 at update 9 (--divergence-loss 50)"));
  CHECK_THAT(hinted, Catch::Contains("mean staleness was 2.2") && Catch::Contains("--stale-lr"));
  CHECK_THAT(diverge(s, 3), !Catch::Contains("staleness")); // mean 3 x 5 / 8 = 1.9
  s.stale_lr = true;
  CHECK_THAT(diverge(s, 4), !Catch::Contains("staleness")); // already damped
}

TEST_CASE("a worker may join after training started, with a new id only", "[policy]") {
  auto core = joined(settings_for(train_mode::sync, 2, 2), {0});
  CHECK_FALSE(core.join(2)); // before start: only the expected ids
  core.start_clock();
  CHECK(core.join(2));
  CHECK_FALSE(core.join(2));
  CHECK_FALSE(core.join(1));
  CHECK(core.live_workers() == 3);
  CHECK(core.stats().workers[2].joined_late);
}

TEST_CASE("a lost worker may come back once training started; a quarantined one may not",
          "[policy]") {
  auto core = joined(settings_for(train_mode::sync, 2, 2), {0});
  core.start_clock();
  CHECK(core.lose(1) == false); // no round was open
  CHECK(core.live_workers() == 1);
  CHECK(core.push(grad(0, 0, {1})) == verdict::round_closed); // alone
  CHECK(core.join(1));  // its connection dropped and its process reconnected
  CHECK_FALSE(core.join(1)); // a live member's id stays taken
  CHECK(core.live_workers() == 2);
  CHECK(core.push(grad(0, 1, {1})) == verdict::waiting); // the round waits for it again
  CHECK(core.push(grad(1, 1, {1})) == verdict::round_closed);
  auto w = core.stats().workers[1];
  CHECK_FALSE(w.lost);
  CHECK(w.rejoins == 1);
  CHECK_FALSE(w.joined_late);

  auto s = settings_for(train_mode::sync, 2, 2);
  s.quarantine_after = 1;
  auto strict = joined(s, {0});
  strict.start_clock();
  CHECK(strict.push(grad(1, 0, {std::numeric_limits<float>::quiet_NaN()})) == verdict::rejected);
  REQUIRE(strict.quarantined_now());
  strict.lose(1);
  CHECK_FALSE(strict.join(1));
}

TEST_CASE("a worker that leaves before training started is forgotten: its id is free again",
          "[policy]") {
  server_core core{settings_for(train_mode::sync, 2, 2), {0}};
  REQUIRE(core.join(0));
  core.lose(0);
  CHECK(core.forget(0));
  CHECK_FALSE(core.knows(0));
  CHECK(core.live_workers() == 0);
  REQUIRE(core.join(1));
  CHECK_FALSE(core.all_joined()); // the barrier waits for a replacement
  CHECK(core.forget(1));          // a live member too (the facade saw its actor die first)
  CHECK(core.live_workers() == 0);
  REQUIRE(core.join(0));
  REQUIRE(core.join(1));
  CHECK(core.all_joined());
  core.start_clock();
  CHECK_FALSE(core.forget(0)); // training runs: it stays a member (lost if it dies)
  CHECK(core.knows(0));
}

TEST_CASE("ssp: a worker back after it was lost starts at the slowest clock of the others",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::ssp, 1, 2);
  s.staleness_bound = 1;
  auto core = joined(s, {0});
  core.start_clock();
  core.lose(1);
  for (uint64_t v = 0; v < 5; ++v) // alone, worker 0 is never held
    CHECK(core.push(grad(0, v, {1})) == verdict::applied);
  REQUIRE(core.join(1));
  // Its clock is 5, not 0: worker 0 (clock 5) is within the bound and goes on.
  CHECK(core.push(grad(0, 5, {1})) == verdict::applied);
}

TEST_CASE("ssp: a worker more than s clocks ahead of the slowest waits; the slowest lets it "
          "go",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::ssp, 1, 2);
  s.staleness_bound = 2;
  auto core = joined(s, {0});
  // Worker 0 runs ahead while worker 1 computes: clocks 1 and 2 are within s=2 of 0.
  CHECK(core.push(grad(0, 0, {1})) == verdict::applied);
  CHECK(core.push(grad(0, 1, {1})) == verdict::applied);
  CHECK(core.push(grad(0, 2, {1})) == verdict::waiting); // clock 3 > 0 + 2: held
  CHECK(core.current().version == 3);                    // but applied, as in async
  // Worker 1's first gradient (staleness 3) makes the slowest clock 1: worker 0 may go on.
  CHECK(core.push(grad(1, 0, {1})) == verdict::round_closed);
  CHECK(core.last_round() == std::vector<int32_t>{0, 1});
  auto st = core.stats();
  CHECK(st.workers[1].staleness_histogram == std::vector<int64_t>{0, 0, 0, 1});
  CHECK(st.workers[0].staleness_histogram == std::vector<int64_t>{3});
}

TEST_CASE("ssp: s = 0 is lockstep, no bound never waits", "[policy][staleness]") {
  auto lockstep = settings_for(train_mode::ssp, 1, 2);
  lockstep.staleness_bound = 0;
  auto core = joined(lockstep, {0});
  CHECK(core.push(grad(0, 0, {1})) == verdict::waiting);
  CHECK(core.push(grad(1, 0, {1})) == verdict::round_closed);
  CHECK(core.last_round() == std::vector<int32_t>{0, 1});
  auto unbounded = settings_for(train_mode::ssp, 1, 2);
  unbounded.staleness_bound = -1;
  auto free = joined(unbounded, {0});
  for (uint64_t v = 0; v < 50; ++v)
    CHECK(free.push(grad(0, v, {1})) == verdict::applied);
}

TEST_CASE("ssp: a held worker goes on when the slowest leaves the quorum", "[policy][staleness]") {
  auto s = settings_for(train_mode::ssp, 1, 2);
  s.staleness_bound = 0;
  auto core = joined(s, {0});
  CHECK(core.push(grad(0, 0, {1})) == verdict::waiting);
  CHECK(core.lose(1));
  CHECK(core.last_round() == std::vector<int32_t>{0});
}

TEST_CASE("stale-lr divides the step by the staleness; staleness <= 1 is plain async",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::async, 1, 2, 0.5);
  s.stale_lr = true;
  auto core = joined(s, {0});
  core.push(grad(0, 0, {1}));                                  // staleness 0: step 0.5
  CHECK(core.current().params.values()[0] == Approx(-0.5));
  core.push(grad(1, 0, {1}));                                  // staleness 1: step 0.5
  CHECK(core.current().params.values()[0] == Approx(-1.0));
  core.push(grad(0, 0 + 1, {1}));                              // read 1 at 2: staleness 1
  CHECK(core.current().params.values()[0] == Approx(-1.5));
  core.push(grad(1, 0 + 1 + 0, {4}));                          // read 1 at 3: staleness 2
  CHECK(core.current().params.values()[0] == Approx(-1.5 - 0.5 * 4 / 2));
}

TEST_CASE("simulated staleness answers with the parameters of K versions ago",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::async, 1, 1);
  s.simulated_min = s.simulated_max = 3;
  auto core = joined(s, {0});
  // One worker: it reads what snapshot_for answers, so after K updates every gradient has
  // staleness exactly K.
  for (int i = 0; i < 20; ++i) {
    const auto read = core.snapshot_for(0).version;
    CHECK(read == (core.current().version >= 3 ? core.current().version - 3 : 0));
    CHECK(core.push(grad(0, read, {1})) == verdict::applied);
  }
  auto st = core.stats();
  // staleness 0 (reads 0 at 0), then 1, 2, 3 ... : the first three, then K every time
  CHECK(st.staleness_histogram == std::vector<int64_t>{1, 1, 1, 17});
}

TEST_CASE("simulated staleness drawn from a range stays in it and repeats with the seed",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::async, 1, 1);
  s.simulated_min = 2;
  s.simulated_max = 6;
  auto run = [&] {
    auto core = joined(s, {0});
    std::vector<uint64_t> reads;
    for (int i = 0; i < 200; ++i) {
      const auto read = core.snapshot_for(0).version;
      reads.push_back(read);
      core.push(grad(0, read, {1}));
    }
    return std::make_pair(reads, core.stats().staleness_histogram);
  };
  auto [reads, histogram] = run();
  CHECK(run().first == reads);
  REQUIRE(histogram.size() == 7);
  int64_t inside = 0;
  for (size_t k = 2; k <= 6; ++k) {
    CHECK(histogram[k] > 20); // every value drawn (200 draws over 5 values)
    inside += histogram[k];
  }
  CHECK(inside >= 200 - 6); // all but the first few
}

TEST_CASE("inclusion counts the examples of received and applied gradients",
          "[policy][staleness]") {
  auto s = settings_for(train_mode::backup, 1, 2);
  s.track_inclusion = true;
  s.train_rows = 5;
  auto core = joined(s, {0});
  auto g0 = grad(0, 0, {1});
  g0.examples = {0, 1};
  auto g1 = grad(1, 0, {1});
  g1.examples = {1, 4};
  CHECK(core.push(g0) == verdict::round_closed);
  CHECK(core.push(g1) == verdict::dropped_late);
  auto st = core.stats();
  CHECK(st.example_received == std::vector<int32_t>{1, 2, 0, 0, 1});
  CHECK(st.example_applied == std::vector<int32_t>{1, 1, 0, 0, 0});
}

TEST_CASE("the training clock pauses for evaluations and goes on across a restart",
          "[policy]") {
  using namespace std::chrono_literals;
  training_clock clock;
  CHECK(clock.seconds() == 0);
  clock.start(5.0); // a resumed run's seconds
  std::this_thread::sleep_for(20ms);
  const double running = clock.seconds();
  CHECK(running >= 5.02);
  clock.pause();
  const double paused = clock.seconds();
  std::this_thread::sleep_for(20ms);
  CHECK(clock.seconds() == paused); // an evaluation is not training time
  // A restarted server starts the clock again: it goes on, from where it was, not from the
  // checkpoint's seconds (the redone updates and the recovery are training time).
  clock.start(1.0);
  std::this_thread::sleep_for(20ms);
  CHECK(clock.seconds() >= paused + 0.02);
  CHECK(clock.seconds() > running);
  // Two servers, the second restored: it reads the shared clock, not the checkpoint's 0.
  auto shared = std::make_shared<training_clock>();
  auto s = settings_for(train_mode::async, 1, 1);
  s.clock = shared;
  server_core first{s, std::vector<float>(4, 0.0f)};
  REQUIRE(first.join(0));
  first.start_clock();
  std::this_thread::sleep_for(20ms);
  checkpoint saved;
  saved.params = std::vector<float>(4, 0.0f);
  saved.state = nlohmann::json::object();
  server_core second{s, saved, {0}};
  CHECK(second.stats().seconds >= 0.02);
}
