// Every message type round-trips through CAF's binary serializer unchanged, alone and inside
// a caf::message (which needs the type registered under the same name on both sides).
#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "config/run_config.hpp"
#include "messages/vocabulary.hpp"

using namespace psgd;

namespace {

template <class T>
T round_trip(caf::actor_system& sys, T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(x));
  T y;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(y));
  return y;
}

caf::message message_round_trip(caf::actor_system& sys, caf::message x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(x));
  caf::message y;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(y));
  return y;
}

bool same(const worker_stats& a, const worker_stats& b) {
  return a.worker == b.worker && a.computed == b.computed && a.pushed == b.pushed
         && a.applied == b.applied && a.dropped == b.dropped && a.after_stop == b.after_stop
         && a.rejected == b.rejected && a.lost_in_flight == b.lost_in_flight
         && a.staleness_sum == b.staleness_sum && a.staleness_max == b.staleness_max
         && a.lost == b.lost && a.quarantined == b.quarantined
         && a.joined_late == b.joined_late && a.rejoins == b.rejoins
         && a.compute_seconds == b.compute_seconds && a.wait_seconds == b.wait_seconds;
}

worker_stats sample_worker(int32_t id, bool lost) {
  worker_stats w;
  w.worker = id;
  w.computed = 12 + id;
  w.pushed = 10 + id;
  w.applied = 8;
  w.dropped = 1;
  w.after_stop = 1;
  w.rejected = {0, 1, 0, 2};
  w.lost_in_flight = 1;
  w.staleness_sum = 12;
  w.staleness_max = 3;
  w.lost = lost;
  w.quarantined = !lost;
  w.joined_late = lost;
  w.compute_seconds = 0.5 + id;
  w.wait_seconds = 0.25;
  w.rejoins = lost ? 2 : 0;
  return w;
}

bool same(const server_stats& a, const server_stats& b) {
  if (a.workers.size() != b.workers.size())
    return false;
  for (size_t i = 0; i < a.workers.size(); ++i)
    if (!same(a.workers[i], b.workers[i]))
      return false;
  return a.version == b.version && a.samples == b.samples
         && a.gradients_applied == b.gradients_applied
         && a.gradients_dropped == b.gradients_dropped && a.seconds == b.seconds
         && a.recent_loss == b.recent_loss && a.rejected_unknown == b.rejected_unknown
         && a.staleness_histogram == b.staleness_histogram;
}

bool same(const eval_point& a, const eval_point& b) {
  return a.seconds == b.seconds && a.updates == b.updates && a.samples == b.samples
         && a.train_loss == b.train_loss && a.test_loss == b.test_loss
         && a.test_accuracy == b.test_accuracy;
}

server_stats sample_stats() {
  server_stats s;
  s.version = 77;
  s.samples = 4096;
  s.gradients_applied = 150;
  s.gradients_dropped = 4;
  s.seconds = 1.25;
  s.recent_loss = 0.5f;
  s.staleness_histogram = {3, 0, 9};
  s.rejected_unknown = 5;
  s.workers = {sample_worker(0, false), sample_worker(1, true)};
  return s;
}

} // namespace

TEST_CASE("every message type round-trips through the binary serializer", "[messages]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};

  float_buffer buf{std::vector<float>{1.5f, -2.0f, 3.25e-8f, 0.0f}};
  CHECK(round_trip(sys, buf) == buf);
  CHECK(round_trip(sys, float_buffer{}).empty());

  snapshot snap{42, buf};
  auto snap2 = round_trip(sys, snap);
  CHECK(snap2.version == 42);
  CHECK(snap2.params == buf);

  gradient g{3, 17, 32, 0.75f, 99, 2, 41, buf, {}};
  auto g2 = round_trip(sys, g);
  CHECK(g2.worker == 3);
  CHECK(g2.version_read == 17);
  CHECK(g2.batch_size == 32);
  CHECK(g2.loss == 0.75f);
  CHECK(g2.seq == 99);
  CHECK(g2.epoch == 2);
  CHECK(g2.step == 41);
  CHECK(g2.values == buf);

  auto w = sample_worker(5, true);
  CHECK(same(round_trip(sys, w), w));
  auto s = sample_stats();
  CHECK(same(round_trip(sys, s), s));
  eval_point p{1.5, 10, 320, 0.4, 0.45, 0.83};
  CHECK(same(round_trip(sys, p), p));

  run_summary r;
  r.evaluations = {p, p};
  r.final_stats = s;
  r.final_params = snap;
  r.events = {"worker 1 lost"};
  auto r2 = round_trip(sys, r);
  REQUIRE(r2.evaluations.size() == 2);
  CHECK(same(r2.evaluations[1], p));
  CHECK(same(r2.final_stats, s));
  CHECK(r2.final_params.params == buf);
  CHECK(r2.events == r.events);
}

TEST_CASE("a float_buffer travels as one blob: 4 bytes per float plus a length", "[messages]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  float_buffer big{std::vector<float>(7850, 0.5f)};
  std::vector<char> bytes;
  caf::binary_serializer sink{sys, bytes};
  REQUIRE_FALSE(sink(big));
  CHECK(bytes.size() >= 7850 * 4);
  CHECK(bytes.size() <= 7850 * 4 + 10);
  CHECK(round_trip(sys, big) == big);
}

TEST_CASE("received float_buffers reuse pooled memory and refuse impossible lengths",
          "[messages]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  std::vector<float> values(7850);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = float(i) * 0.25f;
  const float_buffer sent{values};
  const float* first = nullptr;
  {
    auto got = round_trip(sys, sent);
    CHECK(got == sent);
    first = got.data();
  }
  // The first one went back to the pool: the next message of this length lands in it, and
  // its old contents are all overwritten.
  auto again = round_trip(sys, float_buffer{std::vector<float>(7850, -1.0f)});
  CHECK(again.data() == first);
  CHECK(again == float_buffer{std::vector<float>(7850, -1.0f)});
  // A length the bytes cannot hold (a hostile or broken peer) is an error, not a 4 GiB
  // allocation.
  std::vector<char> bytes;
  caf::binary_serializer sink{sys, bytes};
  REQUIRE_FALSE(sink(float_buffer{std::vector<float>(2000, 1.0f)}));
  bytes[0] = bytes[1] = bytes[2] = bytes[3] = char(0xff); // the varint length: ~2^28 floats
  float_buffer y;
  caf::binary_deserializer source{sys, bytes};
  auto err = source(y);
  CHECK(err == caf::sec::end_of_stream);
  CHECK_THAT(sys.render(err), Catch::Contains("length longer than the message"));
  CHECK(y.empty());
}

TEST_CASE("protocol messages round-trip inside caf::message (types registered)", "[messages]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  float_buffer buf{std::vector<float>{1, 2, 3}};
  auto push = message_round_trip(
    sys, caf::make_message(push_atom::value, gradient{1, 2, 8, 0.1f, 1, 0, 1, buf, {}}));
  REQUIRE(push.match_elements<push_atom, gradient>());
  CHECK(push.get_as<gradient>(1).values == buf);
  auto progress = message_round_trip(
    sys, caf::make_message(progress_atom::value, snapshot{4, buf}, sample_stats()));
  REQUIRE(progress.match_elements<progress_atom, snapshot, server_stats>());
  CHECK(same(progress.get_as<server_stats>(2), sample_stats()));
  auto report = message_round_trip(
    sys, caf::make_message(report_atom::value, worker_report{3, 40, 2, 1.5, 0.25}));
  REQUIRE(report.match_elements<report_atom, worker_report>());
  const auto& rep = report.get_as<worker_report>(1);
  CHECK(rep.worker == 3);
  CHECK(rep.computed == 40);
  CHECK(rep.lost_in_network == 2);
  CHECK(rep.compute_seconds == 1.5);
  CHECK(rep.wait_seconds == 0.25);
  auto join = message_round_trip(sys, caf::make_message(join_atom::value, int32_t{7}));
  REQUIRE(join.match_elements<join_atom, int32_t>());
  CHECK(join.get_as<int32_t>(1) == 7);
  run_summary r;
  r.events = {"x"};
  auto summary = message_round_trip(sys, caf::make_message(r));
  REQUIRE(summary.match_elements<run_summary>());
  CHECK(summary.get_as<run_summary>(0).events == r.events);
}

TEST_CASE("psgd errors render with their context", "[messages]") {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  auto err = make_error(error_code::peer_lost, "worker 3");
  CHECK(sys.render(err) == "peer_lost: worker 3");
  CHECK(err == make_error(error_code::peer_lost));
  CHECK(make_error(error_code::training_finished) != make_error(error_code::peer_lost));
}
