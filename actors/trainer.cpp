#include "actors/trainer.hpp"

#include <algorithm>
#include <random>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actors/driver.hpp"
#include "actors/sequential.hpp"
#include "actors/update_policy.hpp"
#include "data/fashion_mnist.hpp"
#include "data/synthetic.hpp"

namespace psgd {

namespace {

/// The synthetic problem for a config: least squares for lsq, separable blobs otherwise.
data::split synthetic_split(const run_config& cfg) {
  constexpr int64_t train_rows = 8192;
  constexpr int64_t test_rows = 2048;
  constexpr int dim = 32;
  if (cfg.parsed_model == model::kind::least_squares)
    return data::make_least_squares(train_rows, test_rows, dim, 0.1, cfg.seed).data;
  return data::make_separable(train_rows, test_rows, dim, 10, cfg.seed);
}

} // namespace

outcome<std::shared_ptr<const data::split>> load_data(const run_config& cfg) {
  using result = outcome<std::shared_ptr<const data::split>>;
  if (cfg.synthetic)
    return result{std::make_shared<const data::split>(synthetic_split(cfg))};
  auto loaded = data::load_fashion_mnist(cfg.data);
  if (!loaded)
    return result::failure(loaded.error());
  return result{std::make_shared<const data::split>(std::move(*loaded))};
}

namespace {

/// 16 hex digits from the OS's entropy: two runs never share one in practice.
std::string new_run_id() {
  std::random_device entropy;
  const uint64_t id = (uint64_t{entropy()} << 32) ^ entropy();
  return fmt::format("{:016x}", id);
}

} // namespace

outcome<training_job> prepare_job(const run_config& cfg) {
  auto data = load_data(cfg);
  if (!data)
    return outcome<training_job>::failure(data.error());
  return prepare_job(cfg, std::move(*data));
}

outcome<scenario> load_scenario_for(const run_config& cfg) {
  using result = outcome<scenario>;
  if (cfg.parsed_mode == train_mode::sequential)
    return result::failure("--scenario: sequential mode has no workers to inject faults into");
  auto loaded = load_scenario(cfg.scenario, cfg.total_workers());
  if (!loaded)
    return result::failure("--scenario: " + loaded.error());
  // Across processes first: there a --checkpoint would not make a server_crash possible.
  if (loaded->server_crash() && cfg.networked)
    return result::failure("--scenario " + cfg.scenario
                           + ": a 'server_crash' event restarts the server inside its process; "
                             "across processes kill the serve process and restart it with "
                             "--resume instead");
  if (loaded->server_crash() && cfg.checkpoint.empty())
    return result::failure("--scenario " + cfg.scenario
                           + ": it crashes the server, which restarts from its checkpoint: "
                             "give --checkpoint FILE");
  return loaded;
}

namespace {

/// The scenario's example_cost events against the data: a cost is per class, so the data
/// must have classes, and no more costs than it has. (Before, a regression set charged
/// class 0's cost for every example, and an eleventh cost was never charged.)
std::string example_cost_problem(const scenario& s, const data::dataset& train) {
  for (size_t i = 0; i < s.events.size(); ++i) {
    const auto& e = s.events[i];
    if (e.kind != fault_kind::example_cost)
      continue;
    if (!train.is_classification())
      return fmt::format("events[{}]: example_cost charges per class, and the data have none "
                         "(a regression set)",
                         i);
    if (e.per_class_ms.size() > static_cast<size_t>(train.classes))
      return fmt::format("events[{}].per_class_ms: {} costs for the {} classes of the data", i,
                         e.per_class_ms.size(), train.classes);
  }
  return {};
}

} // namespace

outcome<training_job> prepare_job(const run_config& cfg,
                                  std::shared_ptr<const data::split> data) {
  using result = outcome<training_job>;
  if (auto problem = validate_against_data(cfg, data->train.rows); !problem.empty())
    return result::failure(problem);
  model::model_spec spec;
  spec.type = cfg.parsed_model;
  spec.input_dim = data->train.dim;
  spec.classes = data->train.classes;
  spec.hidden = cfg.hidden;
  if (cfg.parsed_model != model::kind::least_squares && !data->train.is_classification())
    return result::failure("--model " + cfg.model + " needs a classification set");
  std::optional<scenario> faults;
  if (!cfg.scenario.empty()) {
    auto loaded = load_scenario_for(cfg);
    if (!loaded)
      return result::failure(loaded.error());
    if (auto problem = example_cost_problem(*loaded, data->train); !problem.empty())
      return result::failure("--scenario " + cfg.scenario + ": " + problem);
    faults = std::move(*loaded);
  }
  auto made = model::make_model(spec);
  if (!made)
    return result::failure("--model: " + made.error());
  training_job job;
  job.cfg = cfg;
  job.data = std::move(data);
  job.model = std::shared_ptr<const model::model>(std::move(*made));
  job.faults = std::move(faults);
  job.initial.resize(job.model->num_params());
  job.model->init(cfg.seed, job.initial.data());
  if (!cfg.resume.empty()) {
    auto loaded = read_checkpoint(cfg.resume);
    if (!loaded)
      return result::failure("--resume: " + loaded.error());
    auto expected = run_fingerprint(cfg, job.model->num_params());
    auto found = loaded->data.state.value("fingerprint", nlohmann::json::object());
    if (found != expected) {
      // Name what differs, not two objects to compare by eye.
      std::vector<std::string> differences;
      for (const auto& [key, here] : expected.items())
        if (!found.contains(key) || found[key] != here)
          differences.push_back(fmt::format(
            "{} {} there, {} here", key, found.contains(key) ? found[key].dump() : "none",
            here.dump()));
      return result::failure(fmt::format("--resume {}: the checkpoint is of another run ({})",
                                         loaded->file, fmt::join(differences, "; ")));
    }
    if (loaded->data.params.size() != job.initial.size())
      return result::failure("--resume " + loaded->file + ": wrong parameter count");
    if (!loaded->note.empty())
      job.resume_notes.push_back(loaded->note);
    // A run already past this budget ends at once (a serve restarted after its last
    // checkpoint finishes): said, so the stored figures do not pass for new training.
    const auto budget = server_settings::from(cfg, job.data->train.rows);
    const auto version = loaded->data.version;
    const auto samples = loaded->data.state.value("samples", int64_t{0});
    if ((budget.max_updates > 0 && version >= budget.max_updates)
        || (budget.sample_budget > 0 && samples >= budget.sample_budget))
      job.resume_notes.push_back(fmt::format(
        "--resume {}: the run there is at update {} ({:.2f} epochs), which spends this run's "
        "budget (--epochs {}, --max-updates {}): nothing to train (a larger budget goes on)",
        loaded->file, version, double(samples) / double(job.data->train.rows), cfg.epochs,
        cfg.max_updates));
    job.run_id = loaded->data.state.value("run_id", std::string{});
    job.resume = std::make_shared<const checkpoint>(std::move(loaded->data));
  }
  if (job.run_id.empty()) // a fresh run (or a checkpoint from before run ids)
    job.run_id = new_run_id();
  return job;
}

caf::expected<run_summary> run_training(caf::actor_system& sys, const training_job& job) {
  if (job.cfg.parsed_mode == train_mode::sequential)
    return run_sequential(job);
  auto shared_job = std::make_shared<const training_job>(job);
  // Detached: an evaluation (20-200 ms) must not hold one of the scheduler threads the
  // workers compute on (a worker queued behind it starved for hundreds of updates).
  // Serving, no worker computes in this process (the server and the facade run on the
  // multiplexer thread) and the driver is scheduled: a work process that disconnects after
  // the driver ended leaves references to it in CAF 0.17's middleman, and ~actor_system
  // waits until a detached actor's object is destroyed, so the serve process sat out its
  // shutdown deadline (about one diverged launch m=256 in four).
  auto d = job.serve ? sys.spawn(driver, shared_job)
                     : sys.spawn<caf::detached>(driver, shared_job);
  caf::expected<run_summary> result{caf::error{}};
  caf::scoped_actor self{sys};
  // The driver answers exactly once, on success or failure (see its contract). CAF 0.17 has
  // no broken-promise error, so we also watch the driver itself: if it ever died without
  // answering, its down message ends the wait instead of a hang.
  self->monitor(d);
  self->send(d, run_atom::value);
  bool done = false;
  bool interrupt_sent = false;
  self->receive_while([&] { return !done; })(
    [&](run_summary& r) {
      result = std::move(r);
      done = true;
    },
    [&](caf::error& err) {
      result = std::move(err);
      done = true;
    },
    [&](caf::down_msg& msg) {
      if (msg.source == d.address()) {
        result = make_error(error_code::peer_lost,
                            "the driver died: " + sys.render(msg.reason));
        done = true;
      }
    },
    caf::after(std::chrono::milliseconds{100}) >> [&] {
      if (job.interrupt != nullptr && *job.interrupt && !interrupt_sent) {
        self->send(d, done_atom::value);
        interrupt_sent = true;
      }
    });
  return result;
}

} // namespace psgd
