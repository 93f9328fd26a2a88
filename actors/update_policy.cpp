#include "actors/update_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace psgd {

server_settings server_settings::from(const run_config& cfg, int64_t train_rows,
                                      int64_t num_params) {
  server_settings s;
  s.mode = cfg.parsed_mode;
  s.quorum = cfg.quorum();
  s.expected_workers = cfg.total_workers();
  s.lr = cfg.lr;
  s.aggregate = cfg.parsed_aggregate;
  s.max_updates = static_cast<uint64_t>(cfg.max_updates);
  s.sample_budget = static_cast<int64_t>(std::ceil(cfg.epochs * double(train_rows)));
  s.request_timeout = std::chrono::milliseconds{cfg.request_timeout_ms};
  s.quarantine_after = cfg.quarantine_after;
  s.divergence_loss = cfg.divergence_loss;
  s.round_timeout = std::chrono::duration<double>(cfg.round_timeout);
  s.stop_on_round_timeout = cfg.round_timeout_policy == "stop";
  s.checkpoint_path = cfg.checkpoint;
  s.checkpoint_every = static_cast<uint64_t>(cfg.checkpoint_every);
  s.checkpoint_seconds = cfg.checkpoint_seconds;
  s.fingerprint = run_fingerprint(cfg, num_params);
  s.staleness_bound = cfg.parsed_mode == train_mode::ssp ? cfg.staleness_bound : -1;
  s.stale_lr = cfg.stale_lr;
  s.simulated_min = cfg.simulated_min;
  s.simulated_max = cfg.simulated_max;
  s.seed = cfg.seed;
  s.train_rows = train_rows;
  s.track_inclusion = cfg.track_inclusion;
  return s;
}

nlohmann::json run_fingerprint(const run_config& cfg, int64_t num_params) {
  return {{"mode", cfg.mode},         {"model", cfg.model},
          {"hidden", cfg.parsed_model == model::kind::mlp ? cfg.hidden : 0},
          {"num_params", num_params}, {"workers", cfg.workers},
          {"backup", cfg.parsed_mode == train_mode::backup ? cfg.backup : 0},
          {"batch", cfg.batch},       {"seed", cfg.seed},
          {"dataset", cfg.synthetic ? "synthetic" : "fashion-mnist"}};
}

server_core::server_core(server_settings settings, std::vector<float> initial)
  : settings_(settings), pool_(initial.size()),
    draws_(data::mix_seed(settings.seed, 0x57a1e)),
    clock_(settings.clock ? settings.clock : std::make_shared<training_clock>()) {
  current_.version = 0;
  current_.params = float_buffer{std::move(initial)};
  if (settings_.simulated_max > 0)
    history_.push_back(current_);
  if (settings_.track_inclusion) {
    example_received_.assign(static_cast<size_t>(settings_.train_rows), 0);
    example_applied_.assign(static_cast<size_t>(settings_.train_rows), 0);
  }
}

const snapshot& server_core::snapshot_for(int32_t) {
  if (history_.empty())
    return current_;
  int k = settings_.simulated_min;
  if (settings_.simulated_max > settings_.simulated_min)
    k += static_cast<int>(draws_.uniform() * (settings_.simulated_max - settings_.simulated_min + 1));
  k = std::min(k, settings_.simulated_max);
  // history_ holds the last versions, newest last; early on fewer than K exist.
  const size_t back = std::min(static_cast<size_t>(k), history_.size() - 1);
  return history_[history_.size() - 1 - back];
}

bool server_core::finished() const {
  return stopped_early_ || (settings_.max_updates > 0 && current_.version >= settings_.max_updates)
         || (settings_.sample_budget > 0 && samples_ >= settings_.sample_budget);
}

bool server_core::join(int32_t worker) {
  const bool started = clock_running_;
  if (auto* m = find(worker); m != nullptr && m->awaiting_rejoin && !m->stats.lost) {
    // A restored member is back.
    m->awaiting_rejoin = false;
    ++live_;
    return true;
  }
  if (auto* m = find(worker); m != nullptr && started && lost(worker)) {
    // A lost member is back (its connection dropped, its process reconnected). ssp: at
    // least at the slowest clock, or the others, now far ahead, would wait for it.
    if (settings_.mode == train_mode::ssp && live_ > 0) // the others' slowest, not its own
      m->clock_offset += std::max<int64_t>(0, slowest_clock() - m->clock());
    m->stats.lost = false;
    ++m->stats.rejoins;
    ++live_;
    return true;
  }
  if (worker < 0 || members_.count(worker) > 0
      || (!started && worker >= settings_.expected_workers))
    return false;
  // ssp: a late joiner starts at the slowest clock, or it would hold everyone back.
  const int64_t slowest = started && live_ > 0 ? slowest_clock() : 0;
  auto& m = members_[worker];
  m.stats.worker = worker;
  m.stats.joined_late = started;
  m.clock_offset = slowest;
  ++joined_;
  ++live_;
  return true;
}

server_core::member* server_core::find(int32_t worker) {
  auto i = members_.find(worker);
  return i == members_.end() ? nullptr : &i->second;
}

int server_core::round_target() const {
  // Sync waits for every live worker; backup for the first m of them.
  int target = settings_.mode == train_mode::sync ? live_ : std::min(settings_.quorum, live_);
  return std::max(target, 1);
}

bool server_core::round_complete() const {
  return !round_members_.empty() && static_cast<int>(round_members_.size()) >= round_target();
}

void training_clock::start(double seconds_before) {
  if (running_) {
    resume();
    return;
  }
  before_ = seconds_before;
  started_ = clock::now();
  running_ = true;
}

void training_clock::pause() {
  if (!running_ || paused_)
    return;
  pause_started_ = clock::now();
  paused_ = true;
}

void training_clock::resume() {
  if (!paused_)
    return;
  paused_total_ += clock::now() - pause_started_;
  paused_ = false;
}

double training_clock::seconds() const {
  if (!running_)
    return before_;
  const auto end = paused_ ? pause_started_ : clock::now();
  return before_ + std::chrono::duration<double>(end - started_ - paused_total_).count();
}

void server_core::start_clock() {
  clock_->start(seconds_before_);
  clock_running_ = true;
}

void server_core::pause_clock() {
  clock_->pause();
}

void server_core::resume_clock() {
  clock_->resume();
}

namespace {

/// 1 if v is NaN or Inf (its exponent bits are all ones), else 0. An integer OR over this
/// test vectorises (a float sum cannot be reordered without -ffast-math: it ran as a scalar
/// chain, 3.7 us per softmax gradient against 0.23).
inline uint32_t is_non_finite(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
}

/// True if every value is finite.
bool all_finite(const float* v, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i)
    bad |= is_non_finite(v[i]);
  return bad == 0;
}

} // namespace

bool server_core::reject(member& m, reject_reason why) {
  last_rejection_ = why;
  ++m.stats.rejected[size_t(why)];
  if (why != reject_reason::quarantined && ++m.bad_in_a_row >= settings_.quarantine_after) {
    m.stats.quarantined = true;
    quarantined_now_ = true;
  }
  return false;
}

bool server_core::admit(member& m, const gradient& g, bool check_values) {
  if (m.stats.quarantined)
    return reject(m, reject_reason::quarantined);
  if (g.values.size() != current_.params.size())
    return reject(m, reject_reason::wrong_length);
  if (check_values && !all_finite(g.values.data(), g.values.size()))
    return reject(m, reject_reason::non_finite);
  if (m.has_read && g.version_read == m.last_read && settings_.simulated_max < 0)
    return reject(m, reject_reason::duplicate);
  return true;
}

void server_core::accept(member& m, const gradient& g) {
  m.bad_in_a_row = 0;
  m.has_read = true;
  m.last_read = g.version_read;
  m.epoch = g.epoch;
  m.step = g.step;
}

server_core::verdict server_core::push(gradient g) {
  quarantined_now_ = false;
  auto* m = find(g.worker);
  if (m == nullptr) {
    ++rejected_unknown_;
    return verdict::unknown;
  }
  auto& w = m->stats;
  w.computed = std::max(w.computed, static_cast<int64_t>(g.seq));
  ++w.pushed;
  if (finished()) {
    ++w.after_stop;
    return verdict::after_stop;
  }
  const bool was_in_quorum = m->in_quorum();
  const bool on_arrival = settings_.mode == train_mode::async
                          || settings_.mode == train_mode::sequential
                          || settings_.mode == train_mode::ssp;
  // A gradient applied at once by a member in good standing has its NaN/Inf check in the
  // update's own pass over it, not in one pass more (a tenth of an MLP update's server time).
  const bool in_standing = !m->suspended && !m->awaiting_rejoin;
  const bool fused_check = on_arrival && in_standing && g.version_read <= current_.version;
  // So has the gradient that closes a round (sync, backup): that check is on the round's
  // critical path, where the others were checked while the round waited.
  const bool closes = !on_arrival && in_standing && g.version_read == current_.version
                      && static_cast<int>(round_members_.size()) + 1 >= round_target();
  auto refuse = [&] {
    if (quarantined_now_ && was_in_quorum)
      leave_quorum(*m); // a round it held up may close: the actor answers it
    return verdict::rejected;
  };
  if (!admit(*m, g, !fused_check && !closes))
    return refuse();
  if (closes) {
    if (close_round_with(*m, g))
      return verdict::round_closed;
    reject(*m, reject_reason::non_finite);
    return refuse();
  }
  if (!fused_check)
    accept(*m, g);
  if (m->suspended || m->awaiting_rejoin) {
    // Back from a round timeout (or a restore): it rejoins the quorum.
    m->suspended = false;
    m->awaiting_rejoin = false;
    ++live_;
  }
  if (g.version_read > current_.version) {
    // Computed on a version this server never had: it was restored from an older
    // checkpoint after a crash. Late by definition.
    ++w.dropped;
    ++dropped_;
    return verdict::dropped_late;
  }
  if (on_arrival) {
    const uint64_t staleness = current_.version - g.version_read;
    const float scale =
      settings_.stale_lr ? 1.0f / static_cast<float>(std::max<uint64_t>(1, staleness)) : 1.0f;
    const float* values = g.values.data();
    auto next = step_params(&values, 1, scale, std::move(g.values), fused_check);
    if (!next) {
      reject(*m, reject_reason::non_finite);
      return refuse();
    }
    if (fused_check)
      accept(*m, g);
    if (settings_.track_inclusion) {
      count_examples(g, example_received_);
      count_examples(g, example_applied_);
    }
    record_applied(w, staleness);
    commit(std::move(next), g.batch_size, g.loss);
    return settings_.mode == train_mode::ssp ? ssp_verdict(*m) : verdict::applied;
  }
  if (settings_.track_inclusion)
    count_examples(g, example_received_);
  if (g.version_read != current_.version) {
    ++w.dropped;
    ++dropped_;
    return verdict::dropped_late;
  }
  add_to_round(g);
  record_applied(w, 0);
  if (settings_.track_inclusion)
    count_examples(g, example_applied_);
  if (!round_complete())
    return verdict::waiting;
  close_round();
  return verdict::round_closed;
}

int64_t server_core::slowest_clock() const {
  int64_t slowest = std::numeric_limits<int64_t>::max();
  for (const auto& [id, m] : members_)
    if (m.in_quorum())
      slowest = std::min(slowest, m.clock());
  return slowest;
}

bool server_core::within_bound(const member& m, int64_t slowest) const {
  return settings_.staleness_bound < 0 || m.clock() - slowest <= settings_.staleness_bound;
}

bool server_core::release_held() {
  last_round_.clear();
  const int64_t slowest = slowest_clock(); // once per push, not once per held member
  for (auto& [id, m] : members_)
    if (m.held && (!m.in_quorum() || within_bound(m, slowest))) {
      m.held = false;
      last_round_.push_back(id);
    }
  return !last_round_.empty();
}

server_core::verdict server_core::ssp_verdict(member& m) {
  // The pusher's clock advanced: it may have been the slowest, and let others go.
  const bool released = release_held();
  if (!within_bound(m, slowest_clock())) {
    m.held = true;
    return released ? verdict::round_closed : verdict::waiting;
  }
  if (!released)
    return verdict::applied;
  last_round_.push_back(m.stats.worker);
  return verdict::round_closed;
}

void server_core::count_examples(const gradient& g, std::vector<int32_t>& counts) {
  for (auto i : g.examples)
    if (i >= 0 && static_cast<size_t>(i) < counts.size())
      ++counts[static_cast<size_t>(i)];
}

bool server_core::leave_quorum(member& m) {
  --live_;
  if (settings_.mode == train_mode::ssp)
    return !finished() && release_held(); // the slowest may have left
  // The round may have been waiting only for this worker.
  if (settings_.mode == train_mode::async || finished() || !round_complete())
    return false;
  close_round();
  return true;
}

bool server_core::lose(int32_t worker) {
  auto* m = find(worker);
  if (m == nullptr || m->stats.lost)
    return false;
  const bool was_in_quorum = m->in_quorum();
  m->stats.lost = true;
  // Its gradient in the open round (if any) still counts: it was computed on this version.
  return was_in_quorum && leave_quorum(*m);
}

bool server_core::forget(int32_t worker) {
  auto* m = find(worker);
  if (m == nullptr || clock_running_ || restored_)
    return false;
  if (m->in_quorum())
    --live_;
  members_.erase(worker);
  --joined_;
  return true;
}

bool server_core::lost(int32_t worker) const {
  auto i = members_.find(worker);
  return i != members_.end() && i->second.stats.lost && !i->second.stats.quarantined;
}

std::vector<int64_t> server_core::lost_positions(const std::vector<int32_t>& workers) const {
  std::vector<int64_t> flat;
  for (auto id : workers)
    if (lost(id)) {
      const auto& m = members_.at(id);
      flat.insert(flat.end(), {id, m.epoch, m.step, m.stats.computed});
    }
  return flat;
}

bool server_core::suspend(const std::vector<int32_t>& workers) {
  bool closed = false;
  for (auto id : workers) {
    auto* m = find(id);
    if (m == nullptr || !m->in_quorum())
      continue;
    m->suspended = true;
    closed = leave_quorum(*m) || closed;
  }
  return closed;
}

std::vector<int32_t> server_core::waiting_for() const {
  std::vector<int32_t> ids;
  if (round_members_.empty())
    return ids;
  for (const auto& [id, m] : members_)
    if (m.in_quorum()
        && std::find(round_members_.begin(), round_members_.end(), id) == round_members_.end())
      ids.push_back(id);
  return ids;
}

void server_core::report(const worker_report& r) {
  if (auto* m = find(r.worker)) {
    auto& w = m->stats;
    w.computed = std::max(w.computed, r.computed);
    w.lost_in_network = std::max(w.lost_in_network, r.lost_in_network);
    // Each worker actor reports once, as it stops; another one under the same id (a work
    // process that took over a lost one's id) adds its own time.
    w.compute_seconds = std::max(w.compute_seconds, 0.0) + r.compute_seconds;
    w.wait_seconds = std::max(w.wait_seconds, 0.0) + r.wait_seconds;
  }
}

void server_core::paused_for(int32_t worker, double seconds) {
  if (auto* m = find(worker))
    m->paused_seconds += seconds;
}

std::chrono::duration<double> server_core::round_age() const {
  if (round_members_.empty())
    return std::chrono::duration<double>{0};
  return std::chrono::steady_clock::now() - round_opened_;
}

void server_core::add_to_round(gradient& g) {
  count_in_round(g);
  round_data_.push_back(g.values.data());
  round_gradients_.push_back(std::move(g.values));
}

void server_core::count_in_round(const gradient& g) {
  if (round_members_.empty())
    round_opened_ = std::chrono::steady_clock::now();
  round_members_.push_back(g.worker);
  round_samples_ += g.batch_size;
  round_loss_ += g.loss;
}

float server_core::round_scale(size_t gradients) const {
  return settings_.aggregate == aggregate_rule::mean ? 1.0f / static_cast<float>(gradients)
                                                     : 1.0f;
}

void server_core::close_round() {
  // The first gradient is the one most likely alone by now (its message is long gone).
  finish_round(step_params(round_data_.data(), round_data_.size(),
                           round_scale(round_data_.size()),
                           std::move(round_gradients_.front()), false));
}

bool server_core::close_round_with(member& m, gradient& g) {
  // g's buffer, just written on this core, takes the update. A rejected g's values are not
  // needed again, and the round's other gradients stay intact: the round stays open.
  round_data_.push_back(g.values.data());
  auto next = step_params(round_data_.data(), round_data_.size(),
                          round_scale(round_data_.size()), std::move(g.values), true);
  if (!next) {
    round_data_.pop_back();
    return false;
  }
  accept(m, g);
  if (settings_.track_inclusion) {
    count_examples(g, example_received_);
    count_examples(g, example_applied_);
  }
  count_in_round(g);
  record_applied(m.stats, 0);
  finish_round(std::move(next));
  return true;
}

void server_core::finish_round(std::shared_ptr<std::vector<float>> next) {
  // The round's other gradients go back to the buffer pool before the old parameters do:
  // the pool hands out its last buffer first, and the closing worker, next to acquire one
  // on this core, then gets the old parameters (last written on this core) rather than a
  // gradient buffer that another worker wrote on its core (sync m=2 softmax +1.5%).
  round_gradients_.clear();
  commit(std::move(next), round_samples_, round_loss_ / static_cast<float>(round_members_.size()));
  round_data_.clear();
  round_samples_ = 0;
  round_loss_ = 0;
  last_round_.swap(round_members_);
  round_members_.clear();
}

namespace {

/// `spent`'s buffer, writable, if `spent` holds its last reference (no other shared_ptr to
/// it exists, so no other thread can reach it); else null.
std::shared_ptr<std::vector<float>> take_if_alone(float_buffer& spent, size_t length) {
  if (!spent.ptr || spent.ptr.use_count() != 1 || spent.size() != length)
    return nullptr;
  return std::const_pointer_cast<std::vector<float>>(std::move(spent.ptr));
}

} // namespace

std::shared_ptr<std::vector<float>> server_core::step_params(const float* const* grads, size_t k,
                                                             float scale, float_buffer reuse,
                                                             bool check_finite) {
  auto next = take_if_alone(reuse, current_.params.size());
  if (!next)
    next = pool_.acquire();
  const float* x = current_.params.data();
  float* y = next->data();
  const float step = static_cast<float>(settings_.lr) * scale;
  const size_t n = next->size();
  if (k == 1) {
    const float* g = grads[0];
    // y may be g itself (reuse): g[i] is read before y[i] is written. The test costs nothing
    // in this memory-bound pass, so it always runs; only check_finite acts on it.
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      bad |= is_non_finite(g[i]);
      y[i] = x[i] - step * g[i];
    }
    if (check_finite && bad != 0)
      return nullptr;
  } else if (k == 2) {
    // Sync m=2, the common round: one pass, no block copy. The same sum, then the same step,
    // as the blocks below (bit for bit). The closing round's update is on the critical path:
    // sync m=2 softmax 1.735M -> 1.771M samples/s (medians of 7 interleaved runs).
    const float* g0 = grads[0];
    const float* g1 = grads[1];
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      bad |= is_non_finite(g1[i]);
      y[i] = x[i] - step * (g0[i] + g1[i]);
    }
    if (check_finite && bad != 0)
      return nullptr;
  } else {
    // Blocks that stay in L1: sum the k gradients into the block, then step. (y may be
    // grads[0]: each block of it is copied out before it is written.)
    constexpr size_t block = 1024;
    float sum[block];
    uint32_t bad = 0;
    for (size_t lo = 0; lo < n; lo += block) {
      const size_t len = std::min(block, n - lo);
      std::copy(grads[0] + lo, grads[0] + lo + len, sum);
      for (size_t j = 1; j < k; ++j) {
        const float* g = grads[j] + lo;
        for (size_t i = 0; i < len; ++i)
          sum[i] += g[i];
      }
      if (check_finite)
        for (size_t i = 0; i < len; ++i)
          bad |= is_non_finite(grads[k - 1][lo + i]);
      for (size_t i = 0; i < len; ++i)
        y[lo + i] = x[lo + i] - step * sum[i];
    }
    if (bad != 0)
      return nullptr;
  }
  return next;
}

void server_core::commit(std::shared_ptr<std::vector<float>> next, int64_t samples,
                         float loss) {
  current_.params = float_buffer{std::move(next)};
  ++current_.version;
  if (settings_.simulated_max > 0) {
    history_.push_back(current_);
    while (history_.size() > static_cast<size_t>(settings_.simulated_max) + 1)
      history_.pop_front();
  }
  samples_ += samples;
  last_loss_ = loss;
  if (!std::isfinite(loss) || loss > settings_.divergence_loss)
    diverged_ = true;
  recent_loss_ = have_loss_ ? 0.98f * recent_loss_ + 0.02f * loss : loss;
  have_loss_ = true;
}

std::string server_core::divergence_reason() const {
  auto reason = fmt::format("minibatch loss {} at update {} (--divergence-loss {})", last_loss_,
                            current_.version, settings_.divergence_loss);
  const double mean = mean_of_histogram(staleness_histogram_);
  const bool full_step = settings_.mode == train_mode::async
                         || settings_.mode == train_mode::ssp;
  if (full_step && !settings_.stale_lr && mean >= 2)
    reason += fmt::format("; the mean staleness was {:.1f}: a smaller --lr, or --stale-lr "
                          "(step lr / staleness), damps stale gradients", mean);
  return reason;
}

void server_core::record_applied(worker_stats& w, uint64_t staleness) {
  ++w.applied;
  ++applied_;
  w.staleness_sum += staleness;
  w.staleness_max = std::max(w.staleness_max, staleness);
  if (w.staleness_histogram.size() <= staleness)
    w.staleness_histogram.resize(staleness + 1, 0);
  ++w.staleness_histogram[staleness];
  if (staleness_histogram_.size() <= staleness)
    staleness_histogram_.resize(staleness + 1, 0);
  ++staleness_histogram_[staleness];
}

server_stats server_core::stats() const {
  server_stats s;
  s.version = current_.version;
  s.samples = samples_;
  s.gradients_applied = applied_;
  s.gradients_dropped = dropped_;
  s.recent_loss = recent_loss_;
  // A restored server before its workers rejoin: its predecessor's clock (in-process) or
  // the checkpoint's seconds (a fresh process).
  s.seconds = clock_->running() ? clock_->seconds() : seconds_before_;
  s.rejected_unknown = rejected_unknown_;
  s.staleness_histogram = staleness_histogram_;
  s.example_received = example_received_;
  s.example_applied = example_applied_;
  for (const auto& [id, m] : members_) {
    auto w = m.stats;
    w.lost_in_flight = w.computed - w.applied - w.dropped - w.after_stop - w.rejected_total()
                       - w.lost_in_network;
    if (w.wait_seconds >= 0)
      w.wait_seconds = std::max(0.0, w.wait_seconds - m.paused_seconds);
    s.workers.push_back(w);
  }
  return s;
}

} // namespace psgd

// -- checkpoints ------------------------------------------------------------------------------

namespace psgd {

namespace {

nlohmann::json member_json(const worker_stats& w, int64_t epoch, int64_t step, bool has_read,
                           uint64_t last_read) {
  return {{"worker", w.worker},         {"computed", w.computed},
          {"pushed", w.pushed},         {"applied", w.applied},
          {"dropped", w.dropped},       {"after_stop", w.after_stop},
          {"rejected", w.rejected},     {"staleness_sum", w.staleness_sum},
          {"staleness_max", w.staleness_max}, {"staleness_histogram", w.staleness_histogram},
          {"lost", w.lost},
          {"quarantined", w.quarantined}, {"joined_late", w.joined_late},
          {"rejoins", w.rejoins},
          {"epoch", epoch},             {"step", step},
          {"has_read", has_read},       {"last_read", last_read}};
}

} // namespace

checkpoint server_core::to_checkpoint(const nlohmann::json& fingerprint) const {
  checkpoint c;
  c.version = current_.version;
  c.params = current_.params.values();
  nlohmann::json members = nlohmann::json::array();
  for (const auto& [id, m] : members_)
    members.push_back(member_json(m.stats, m.epoch, m.step, m.has_read, m.last_read));
  c.state = {{"fingerprint", fingerprint},
             {"run_id", settings_.run_id},
             {"samples", samples_},
             {"applied", applied_},
             {"dropped", dropped_},
             {"rejected_unknown", rejected_unknown_},
             {"recent_loss", recent_loss_},
             {"seconds", stats().seconds},
             {"staleness_histogram", staleness_histogram_},
             {"members", members}};
  return c;
}

server_core::server_core(server_settings settings, const checkpoint& saved,
                         const std::vector<int32_t>& rejoining)
  : server_core(settings, saved.params) {
  restored_ = true;
  const auto& st = saved.state;
  current_.version = saved.version;
  history_.clear();
  if (settings_.simulated_max > 0)
    history_.push_back(current_);
  samples_ = st.value("samples", int64_t{0});
  applied_ = st.value("applied", int64_t{0});
  dropped_ = st.value("dropped", int64_t{0});
  rejected_unknown_ = st.value("rejected_unknown", int64_t{0});
  recent_loss_ = st.value("recent_loss", 0.0f);
  have_loss_ = true;
  seconds_before_ = st.value("seconds", 0.0);
  staleness_histogram_ = st.value("staleness_histogram", std::vector<int64_t>{});
  for (const auto& j : st.value("members", nlohmann::json::array())) {
    member m;
    auto& w = m.stats;
    w.worker = j.value("worker", 0);
    w.computed = j.value("computed", int64_t{0});
    w.pushed = j.value("pushed", int64_t{0});
    w.applied = j.value("applied", int64_t{0});
    w.dropped = j.value("dropped", int64_t{0});
    w.after_stop = j.value("after_stop", int64_t{0});
    w.rejected = j.value("rejected", w.rejected);
    w.rejected.resize(size_t(reject_reason::count_), 0);
    w.staleness_sum = j.value("staleness_sum", uint64_t{0});
    w.staleness_max = j.value("staleness_max", uint64_t{0});
    w.staleness_histogram = j.value("staleness_histogram", std::vector<int64_t>{});
    w.lost = j.value("lost", false);
    w.quarantined = j.value("quarantined", false);
    w.joined_late = j.value("joined_late", false);
    w.rejoins = j.value("rejoins", 0);
    m.epoch = j.value("epoch", int64_t{0});
    m.step = j.value("step", int64_t{0});
    m.has_read = j.value("has_read", false);
    m.last_read = j.value("last_read", uint64_t{0});
    const bool expected =
      std::find(rejoining.begin(), rejoining.end(), w.worker) != rejoining.end();
    m.awaiting_rejoin = expected && !w.lost;
    w.lost = w.lost || !expected;
    members_[w.worker] = std::move(m);
    ++joined_;
  }
}

bool server_core::ready() const {
  if (!restored_)
    return all_joined();
  for (const auto& [id, m] : members_)
    if (m.awaiting_rejoin && !m.stats.lost)
      return false;
  return true;
}

std::vector<int32_t> server_core::abandon_rejoins() {
  std::vector<int32_t> ids;
  for (auto& [id, m] : members_)
    if (m.awaiting_rejoin && !m.stats.lost) {
      m.awaiting_rejoin = false;
      m.stats.lost = true;
      ids.push_back(id);
    }
  return ids;
}

} // namespace psgd
