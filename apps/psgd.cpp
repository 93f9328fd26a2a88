// psgd: the command-line tool. Thin: parse, check, spawn, wait, report, exit code.
//
//   psgd train [options]              train (sequential, sync, async or backup SGD)
//   psgd serve --port P [options]     train with workers that connect over the network
//   psgd work --connect HOST:P        run workers for a psgd serve
//   psgd launch [options]             a local cluster: serve + work processes on loopback
//   psgd eval --load FILE [--data D]  test accuracy of saved parameters
//   psgd sweep [options]              simulated-staleness sweep (accuracy vs K)
//   psgd report FILE... [--out DIR]   comparison table of the summaries in --out files; with
//                                     --out an HTML report with gnuplot plots in DIR
//
// Exit codes: 0 success; 2 a usage or input error (one line on stderr naming the problem,
// before any training starts); 1 a run that failed (e.g. the server died).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/remote.hpp"
#include "apps/launcher.hpp"
#include "actors/report.hpp"
#include "actors/results.hpp"
#include "actors/sweep.hpp"
#include "actors/trainer.hpp"
#include "config/build_info.hpp"
#include "config/commands.hpp"
#include "config/run_config.hpp"
#include "data/fashion_mnist.hpp"
#include "data/outcome.hpp"
#include "model/params_file.hpp"

namespace {

using namespace psgd;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

const char* usage_text =
  "usage: psgd train [options]               train a model (see psgd train --help)\n"
  "       psgd serve --port P [options]      train with workers that connect over TCP\n"
  "       psgd work --connect HOST:P [--workers k]  run k workers for a psgd serve\n"
  "       psgd launch [options]              serve + work processes, on loopback\n"
  "       psgd eval --load FILE [--data DIR] test accuracy of saved parameters\n"
  "       psgd sweep [--models softmax,mlp] [--staleness 0,1,2,4,8,16,32] [--seeds 3] [options]\n"
  "                                          simulated-staleness sweep (async, one worker)\n"
  "       psgd report FILE... [--out DIR]    comparison table of train/launch --out files;\n"
  "                                          --out DIR: HTML report with plots (gnuplot), of\n"
  "                                          sweep --out files too\n"
  "       psgd --version                     version, commit and libraries of this build\n"
  "\n"
  "examples:\n"
  "  psgd train --mode async --workers 2 --model softmax --epochs 3 --batch 32 --lr 0.1\n"
  "  psgd train --mode backup --workers 2 --backup 1 --out backup.jsonl --save backup.params\n"
  "  psgd train --mode sequential --model mlp --hidden 128 --epochs 1\n"
  "  psgd eval --load backup.params\n"
  "  psgd serve --port 7000 --mode async --workers 2 &  psgd work --connect 127.0.0.1:7000 --workers 2\n";

int usage_error(const std::string& what) {
  // One write per line: the processes of psgd launch share one stderr.
  std::cerr << fmt::format("psgd: {}\n", what);
  return exit_usage;
}

/// CAF's parser errors, as one line a user can act on.
std::string explain_parse_error(psgd_config& cfg, const caf::error& err) {
  auto text = cfg.render(err);
  std::smatch m;
  std::string arg;
  if (std::regex_search(text, m, std::regex{R"re("argument" = "([^"]*)")re"}))
    arg = m[1];
  if (text.find("not_an_option") != std::string::npos)
    return fmt::format("unknown option '{}' (see psgd train --help)", arg);
  if (text.find("missing_argument") != std::string::npos)
    return fmt::format("option '{}' needs a value", arg);
  if (text.find("cannot_open_file") != std::string::npos)
    return "cannot open the config file: " + text;
  if (!arg.empty())
    return fmt::format("invalid value in '{}'", arg);
  return "cannot parse the options: " + text;
}

/// A config file's parser error as "line L, column C: what" (CAF renders it as
/// parser_error(unexpected_character, ({"column" = 6, "line" = 1}))).
std::string describe_parser_error(const std::string& rendered) {
  auto number_after = [&](const std::string& key) -> std::string {
    auto at = rendered.find("\"" + key + "\" = ");
    if (at == std::string::npos)
      return {};
    at += key.size() + 5;
    auto end = rendered.find_first_not_of("0123456789", at);
    return rendered.substr(at, end - at);
  };
  auto open = rendered.find("parser_error(");
  if (open == std::string::npos)
    return rendered;
  open += 13;
  auto what = rendered.substr(open, rendered.find_first_of(",)", open) - open);
  std::replace(what.begin(), what.end(), '_', ' ');
  return fmt::format("line {}, column {}: {} (text values need quotes, e.g. mode=\"async\"; CAF "
                     "options go in their section, e.g. [scheduler] max-threads=2)",
                     number_after("line"), number_after("column"), what);
}

/// What a CAF option type name means in a config file.
std::string type_in_words(caf::string_view type) {
  const std::string t(type.begin(), type.end());
  if (t.rfind("real", 0) == 0)
    return "a real number (write 1.0, not 1)";
  if (t == "int32")
    return "an integer from -2147483648 to 2147483647";
  if (t.rfind("uint", 0) == 0)
    return "an integer of 0 or more";
  if (t.rfind("int", 0) == 0)
    return "an integer";
  // CAF's INI syntax: "text" is a string, 'name' an atom (CAF's own settings).
  if (t == "string")
    return "a text in double quotes";
  if (t == "atom")
    return "a name in single quotes, e.g. 'sharing'";
  if (t == "boolean")
    return "true or false";
  return t;
}

/// CAF 0.17 skips a config-file value it cannot use (an unknown key or section, a value of
/// another type: lr=1 is an integer, not a real number) and the run goes on with the default:
/// refuse them instead, naming the key.
std::string check_config_file(psgd_config& cfg, const std::string& path) {
  auto parsed = caf::actor_system_config::parse_config_file(path.c_str());
  if (!parsed) {
    if (parsed.error().category() == caf::atom("system"))
      return fmt::format("config file {}: cannot open it", path);
    return fmt::format("config file {}: {}", path,
                       describe_parser_error(cfg.render(parsed.error())));
  }
  auto find = [&](caf::string_view category, caf::string_view name) -> const caf::config_option* {
    for (const auto& opt : cfg.options())
      if (opt.category() == category && opt.long_name() == name)
        return &opt;
    return nullptr;
  };
  auto check = [&](caf::string_view category, const std::string& key,
                   const caf::config_value& value) -> std::string {
    const auto label = category == "global" ? key : std::string(category.begin(), category.end()) + "." + key;
    const auto* opt = find(category, key);
    if (opt == nullptr)
      return fmt::format("config file {}: unknown key '{}'", path, label);
    if (opt->check(value))
      return fmt::format("config file {}: {}: expected {} (got {})", path, label,
                         type_in_words(opt->type_name()), caf::to_string(value));
    return {};
  };
  auto known_section = [&](const std::string& name) {
    for (const auto& opt : cfg.options())
      if (opt.category() == name)
        return true;
    return false;
  };
  for (const auto& [key, value] : *parsed) {
    const auto* section = caf::get_if<caf::settings>(&value);
    if (section == nullptr) {
      if (auto problem = check("global", key, value); !problem.empty())
        return problem;
      continue;
    }
    if (!known_section(key))
      return fmt::format("config file {}: unknown section [{}]", path, key);
    for (const auto& [k, v] : *section)
      if (auto problem = check(key, k, v); !problem.empty())
        return problem;
  }
  return {};
}

/// The config file this command reads: --config-file's, else CAF's default
/// (caf-application.ini in the working directory) if it exists; empty if none.
std::string config_file_of(const psgd_config& cfg, const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a.rfind("--config-file=", 0) == 0)
      return a.substr(14);
  const auto& fallback = cfg.config_file_path;
  return std::ifstream{fallback}.good() ? fallback : std::string{};
}

/// The first line of `psgd COMMAND --help`.
std::string usage_of(const std::string& command) {
  if (command == "work")
    return "usage: psgd work --connect HOST:PORT [--workers k] [options]\n"
           "  runs k workers for the psgd serve at HOST:PORT; the run (mode, model, lr, ...) is "
           "the server's\n"
           "  waits up to --request-timeout-ms for a server not listening yet, and reconnects as "
           "long to a\n"
           "  lost one (or its psgd serve --resume); Ctrl-C makes the workers leave the run\n";
  if (command == "eval")
    return "usage: psgd eval --load FILE [--data DIR]\n"
           "  test accuracy and loss of saved parameters on the Fashion-MNIST test set\n";
  if (command == "sweep")
    return "usage: psgd sweep [--models softmax,mlp] [--staleness 0,1,2,4,8,16,32] [--seeds 3] "
           "[options]\n"
           "  async SGD with one worker whose gradients are exactly K updates stale, for each\n"
           "  model, K and seed; a table of the final test accuracies\n"
           "  --models=<list>    : models to train (default softmax,mlp)\n"
           "  --staleness=<list> : the values of K (default 0,1,2,4,8,16,32)\n"
           "  --seeds=<int>      : seeds per point, from --seed on (default 3)\n";
  if (command == "serve")
    return "usage: psgd serve --port P [options]\n"
           "  the parameter server of a run whose workers connect over TCP (psgd work)\n";
  if (command == "launch")
    return "usage: psgd launch [options]\n"
           "  psgd serve and its psgd work processes on this machine, over loopback; a work "
           "process that\n"
           "  dies before training started is started again once, one that dies later is a "
           "lost worker\n"
           "  (with --max-restarts N started again too, up to N times in the run: the new one "
           "takes over\n"
           "  its workers and goes on where they left off)\n";
  return "usage: psgd train [options]\n  trains a model in this process\n";
}

/// CAF 0.17 reads an unsigned value beyond INT64_MAX as 0 without a word: --seed
/// 18446744073709551615 ran with seed 0. Refused instead.
std::string seed_beyond_int64(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a.rfind("--seed=", 0) != 0)
      continue;
    const auto given = a.substr(7);
    if (given.empty() || given.find_first_not_of("0123456789") != std::string::npos)
      continue; // CAF names it
    const auto text = given.substr(std::min(given.find_first_not_of('0'), given.size() - 1));
    const auto limit = std::to_string(std::numeric_limits<int64_t>::max());
    if (text.size() > limit.size() || (text.size() == limit.size() && text > limit))
      return fmt::format("--seed: at most {} (got {})", limit, given);
  }
  return {};
}

/// Parses the options after the subcommand. Returns -1 to go on, else the exit code.
int parse_options(psgd_config& cfg, int argc, char** argv, const char* command) {
  std::vector<std::string> args(argv + 2, argv + argc);
  args = join_option_values(cfg.options(), std::move(args));
  for (const auto& a : args)
    if (a == "--help" || a == "-h" || a == "-?") {
      std::cout << command_help(command, usage_of(command), cfg.options());
      return 0;
    }
  if (auto problem = foreign_option(command, cfg.options(), args); !problem.empty())
    return usage_error(problem);
  if (auto problem = seed_beyond_int64(args); !problem.empty())
    return usage_error(problem);
  if (auto path = config_file_of(cfg, args); !path.empty())
    if (auto problem = check_config_file(cfg, path); !problem.empty())
      return usage_error(problem);
  if (auto err = cfg.parse(std::move(args)))
    return usage_error(explain_parse_error(cfg, err));
  if (cfg.cli_helptext_printed) // --long-help, --dump-config
    return 0;
  if (auto problem = cfg.check_caf_options(); !problem.empty())
    return usage_error(problem);
  if (!cfg.remainder.empty())
    return usage_error(fmt::format("unexpected argument '{}'", cfg.remainder.front()));
  return -1;
}

std::string final_line(const run_config& cfg, const run_summary& r, int64_t train_rows) {
  auto s = summary_json(cfg, r, train_rows);
  // Least squares has no accuracy: its test loss says how far it is from the optimum.
  const bool regression = cfg.parsed_model == model::kind::least_squares;
  // The aggregate of a round's gradients: sync and backup have rounds.
  const bool rounds = cfg.parsed_mode == train_mode::sync || cfg.parsed_mode == train_mode::backup;
  // The timing figures come before the results, which a rerun reproduces bit for bit.
  const auto computing =
    cfg.parsed_mode != train_mode::sequential && s["compute_share"].is_number()
      ? fmt::format(" (workers computing {:.0f}% of their time)",
                    100 * s["compute_share"].get<double>())
      : std::string{};
  auto line = fmt::format("{} {} m={} e={} b={} lr={}{}: {} updates, {:.2f} epochs "
                          "in {:.2f} s, {:.0f} samples/s{}, {} {:.4f}, train loss {:.4f}",
                          cfg.mode, cfg.model, s["m"].get<int>(), s["e"].get<int>(), cfg.batch,
                          cfg.lr, rounds ? " aggregate=" + cfg.aggregate : std::string{},
                          s["updates"].get<uint64_t>(),
                          s["epochs_done"].get<double>(), s["train_seconds"].get<double>(),
                          s["samples_per_s"].get<double>(), computing,
                          regression ? "test loss" : "test accuracy",
                          s[regression ? "final_test_loss" : "final_test_accuracy"].get<double>(),
                          s["final_train_loss"].get<double>());
  if (cfg.applies_on_arrival())
    line += fmt::format(", staleness mean {:.2f} max {}", s["staleness_mean"].get<double>(),
                        s["staleness_max"].get<size_t>());
  if (cfg.parsed_mode == train_mode::backup)
    line += fmt::format(", dropped {}", s["gradients_dropped"].get<int64_t>());
  if (r.interrupted)
    line += " (interrupted)";
  return line;
}

/// The first SIGINT or SIGTERM of a training run stops it with its results so far; the
/// handler then gives way to the default one, so a second signal ends the process at once.
std::atomic<bool> interrupt_requested{false};
volatile sig_atomic_t interrupt_signal = 0;

void on_interrupt(int signo) {
  interrupt_signal = signo;
  interrupt_requested.store(true);
}

void stop_training_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/// Bounds the actor system's shutdown. CAF 0.17 closes a connection only once its pending
/// output is written, and a peer whose link was cut never takes it: ~actor_system then waits
/// in middleman::stop() until TCP itself gives up, minutes later (seen when a cut came while
/// a 407 KB reply was in flight). It also waits for every detached actor's object to be
/// destroyed, which a reference left in CAF holds off (psgd serve's driver was one, see
/// run_training). Armed once the run's results are out; if the shutdown takes longer than
/// `grace`, the process says so and exits with the run's code.
class shutdown_deadline {
public:
  explicit shutdown_deadline(std::chrono::milliseconds grace) : grace_(grace) {}
  shutdown_deadline(const shutdown_deadline&) = delete;
  shutdown_deadline& operator=(const shutdown_deadline&) = delete;
  ~shutdown_deadline() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      done_ = true;
    }
    cv_.notify_one();
    if (watch_.joinable())
      watch_.join();
  }

  /// Starts the countdown; returns `rc`, the code the process exits with if it runs out.
  int arm(int rc) {
    watch_ = std::thread{[this, rc] {
      std::unique_lock<std::mutex> lock{mtx_};
      if (cv_.wait_for(lock, grace_, [this] { return done_; }))
        return;
      std::cout.flush();
      std::cerr << fmt::format("psgd: the actor system did not shut down within {} ms (CAF "
                               "0.17 waits on output to a peer that is gone, or on an actor "
                               "still referenced); exiting\n",
                               grace_.count());
      std::cerr.flush();
      std::_Exit(rc);
    }};
    return rc;
  }

private:
  std::chrono::milliseconds grace_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watch_;
};

/// Where the human-readable results go: stdout, unless --out - gave it to the JSON lines
/// (then a pipe into jq reads only JSON).
std::ostream& human_output(const run_config& run) {
  return run.out == stdout_path ? std::cerr : std::cout;
}

/// Runs the prepared job on `sys` and prints (and writes) its results; the exit code. `out`
/// (--out, open if given) gets each evaluation as it is made, and the summary at the end.
int train_and_report(caf::actor_system& sys, const run_config& run, training_job& job,
                     results_file& out) {
  job.on_evaluation = [&out](const eval_point& p) { out.add(p); };
  auto result = run_training(sys, job);
  if (!result) {
    // The facade died with the server's reason; the middleman tells each work process so
    // (they stop instead of waiting for a restart) unless the actor system's shutdown comes
    // first, which it did in about half of the runs. A moment is enough (20 ms was).
    if (job.serve)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    // Refused before any training (psgd serve cannot listen there): bad input.
    const bool refused = result.error() == make_error(error_code::refused);
    std::cerr << fmt::format("psgd: {}{}\n", refused ? "" : "training failed: ",
                             sys.render(result.error()));
    out.fail(sys.render(result.error()), job.run_id);
    return refused ? exit_usage : exit_failure;
  }
  const auto rows = job.data->train.rows;
  // An interrupted run's results are written like any other's; its exit code says that it
  // did not spend its budget (128 + the signal, as the shell reports a process it killed).
  const int rc = result->interrupted ? 128 + interrupt_signal : 0;
  human_output(run) << final_line(run, *result, rows) << std::endl;
  if (auto problem = out.finish(run, *result, rows); !problem.empty()) {
    std::cerr << fmt::format("psgd: {}\n", problem);
    return exit_failure;
  }
  if (!run.save.empty()) {
    model::saved_params p{job.model->spec(), result->final_params.version,
                          result->final_params.params.values()};
    if (auto problem = model::save_params(run.save, p); !problem.empty()) {
      std::cerr << fmt::format("psgd: {}\n", problem);
      return exit_failure;
    }
  }
  return rc;
}

/// How long a process may take to shut down its actor system once its results are out.
std::chrono::milliseconds shutdown_grace(const run_config& run) {
  return std::chrono::milliseconds{2000 + run.connection_timeout_ms};
}

/// The options this command was given, on its command line and in its config file.
given_options given_options_of(const psgd_config& cfg, int argc, char** argv) {
  given_options given;
  const auto args = join_option_values(cfg.options(), {argv + 2, argv + argc});
  for (const auto& a : args)
    if (auto name = option_name(a); !name.empty())
      given.command_line.insert(std::move(name));
  if (auto path = config_file_of(cfg, args); !path.empty())
    if (auto file = caf::actor_system_config::parse_config_file(path.c_str()))
      for (const auto& [key, value] : *file) {
        if (const auto* section = caf::get_if<caf::settings>(&value))
          for (const auto& entry : *section)
            given.config_file.insert(key == "global" ? entry.first : key + "." + entry.first);
        else
          given.config_file.insert(key);
      }
  return given;
}

/// validate(), then the options given (on the command line or in the config file) that the
/// run's mode ignores.
std::string validate_given(run_config& run, const given_options& given) {
  if (auto problem = validate(run); !problem.empty())
    return problem;
  if (auto problem = caf_key_psgd_sets(given); !problem.empty())
    return problem;
  return unused_by_mode(run, given);
}

int cmd_train(int argc, char** argv, bool serve = false) {
  psgd_config cfg;
  if (int rc = parse_options(cfg, argc, argv, serve ? "serve" : "train"); rc >= 0)
    return rc;
  auto& run = cfg.run;
  const auto given = given_options_of(cfg, argc, argv);
  if (auto problem = validate_given(run, given); !problem.empty())
    return usage_error(problem);
  if (serve) {
    if (auto problem = validate_network(run, true); !problem.empty())
      return usage_error(problem);
    cfg.enable_network(0); // the workers run elsewhere
    run.networked = true;
  }
  if (auto problem = validate_files(run); !problem.empty())
    return usage_error(problem);
  auto job = prepare_job(run);
  if (!job)
    return usage_error(job.error());
  if (serve)
    job->serve = serve_options{run.bind, static_cast<uint16_t>(run.port)};
  if (!serve && given.command_line.count("scheduler.policy") == 0
      && given.config_file.count("scheduler.policy") == 0)
    cfg.fit_scheduler_to(run);
  results_file out;
  if (!run.out.empty())
    if (auto problem = out.open(run.out); !problem.empty())
      return usage_error(problem);
  shutdown_deadline deadline{shutdown_grace(run)}; // outlives sys
  caf::actor_system sys{cfg};
  job->interrupt = &interrupt_requested;
  stop_training_on_signals();
  return deadline.arm(train_and_report(sys, run, *job, out));
}

int cmd_work(int argc, char** argv) {
  psgd_config cfg;
  if (int rc = parse_options(cfg, argc, argv, "work"); rc >= 0)
    return rc;
  auto& run = cfg.run;
  if (auto problem = validate(run); !problem.empty())
    return usage_error(problem);
  if (auto problem = caf_key_psgd_sets(given_options_of(cfg, argc, argv)); !problem.empty())
    return usage_error(problem);
  if (auto problem = validate_network(run, false); !problem.empty())
    return usage_error(problem);
  // No validate_files: the server's run says whether there are data files to read (a
  // synthetic run has none), and work writes no files; a missing data set is refused once
  // the run is known.
  cfg.enable_network(run.workers);
  shutdown_deadline deadline{shutdown_grace(run)}; // outlives sys
  caf::actor_system sys{cfg};
  stop_training_on_signals();
  auto outcome = work_remotely(sys, run, &interrupt_requested);
  if (!outcome) {
    std::cerr << fmt::format("psgd work: {}\n", sys.render(outcome.error()));
    const auto& err = outcome.error();
    return deadline.arm(err == make_error(error_code::refused)       ? exit_usage
                        : err == make_error(error_code::interrupted) ? 128 + interrupt_signal
                                                                     : exit_failure);
  }
  for (const auto& line : outcome->lines)
    std::cout << line << '\n';
  if (outcome->interrupted)
    return deadline.arm(128 + interrupt_signal);
  return deadline.arm(outcome->finished == outcome->workers ? 0 : exit_failure);
}

/// The memory this machine can still give processes (MemAvailable), or 0 if unknown.
uint64_t available_memory_bytes() {
  std::ifstream meminfo{"/proc/meminfo"};
  std::string key;
  uint64_t kib = 0;
  while (meminfo >> key >> kib)
    if (key == "MemAvailable:")
      return kib * 1024;
    else
      meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  return 0;
}

/// How many workers each psgd work process of launch runs: --processes, or one process per
/// worker up to `default_max_processes`. Every process holds its own copy of the data, so a
/// plan whose copies do not fit in the available memory is refused (instead of an OOM kill
/// in the middle of the run). So is a data set whose size cannot be known (a missing file,
/// or one truncated or corrupt: its gzip trailer disagrees with its IDX header), with the
/// loader's message naming the file, before any process is started.
outcome<std::vector<int>> plan_work_processes(const run_config& run) {
  // Beyond the cores, more processes on one machine add copies of the data, not speed.
  constexpr int default_max_processes = 16;
  constexpr uint64_t runtime_bytes = uint64_t{64} << 20; // CAF, the model, buffers
  const int workers = run.total_workers();
  const int processes = run.processes > 0 ? run.processes
                                          : std::min(workers, default_max_processes);
  uint64_t data_bytes = 0;
  if (!run.synthetic) {
    auto footprint = data::fashion_mnist_footprint(run.data);
    if (!footprint)
      return outcome<std::vector<int>>::failure(footprint.error());
    data_bytes = *footprint;
  }
  const uint64_t needed = static_cast<uint64_t>(processes + 1) * (data_bytes + runtime_bytes);
  const uint64_t available = available_memory_bytes();
  if (available > 0 && needed > available)
    return outcome<std::vector<int>>::failure(fmt::format(
      "--processes: {} work processes and the server each hold the data: ~{:.1f} GiB, and "
      "this machine has {:.1f} GiB available; give fewer (each runs several workers)",
      processes, needed / double(1 << 30), available / double(1 << 30)));
  return deal_workers(workers, processes);
}

int cmd_launch(int argc, char** argv) {
  psgd_config cfg;
  if (int rc = parse_options(cfg, argc, argv, "launch"); rc >= 0)
    return rc;
  auto& run = cfg.run;
  if (auto problem = validate_given(run, given_options_of(cfg, argc, argv)); !problem.empty())
    return usage_error(problem);
  if (auto problem = validate_network(run, true); !problem.empty())
    return usage_error(problem);
  if (auto problem = validate_files(run); !problem.empty())
    return usage_error(problem);
  run.networked = true; // the scenario's faults must work across processes
  if (!run.scenario.empty())
    if (auto faults = load_scenario_for(run); !faults)
      return usage_error(faults.error());
  char exe[4096];
  auto n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return usage_error("launch: cannot find the psgd executable (/proc/self/exe)");
  exe[n] = '\0';
  // The server gets launch's options but --processes and --max-restarts, which are launch's
  // own (serve refuses them: it has no work processes).
  auto options = join_option_values(cfg.options(), {argv + 2, argv + argc});
  options.erase(std::remove_if(options.begin(), options.end(),
                               [](const std::string& a) {
                                 for (auto own : {"processes=", "max-restarts="})
                                   if (a.rfind(std::string{"--"} + own, 0) == 0
                                       || a.rfind(std::string{"--global."} + own, 0) == 0)
                                     return true;
                                 return false;
                               }),
                options.end());
  std::vector<std::string> worker_options{
    "--data=" + run.data, "--request-timeout-ms=" + std::to_string(run.request_timeout_ms),
    "--heartbeat-ms=" + std::to_string(run.heartbeat_ms),
    "--connection-timeout-ms=" + std::to_string(run.connection_timeout_ms)};
  if (run.tls())
    for (auto opt : {"--tls-cert=" + run.tls_cert, "--tls-key=" + run.tls_key,
                     "--tls-ca=" + run.tls_ca})
      worker_options.push_back(opt);
  if (!run.tls_passphrase_file.empty()) // the file's name, never the passphrase itself
    worker_options.push_back("--tls-passphrase-file=" + run.tls_passphrase_file);
  auto plan = plan_work_processes(run);
  if (!plan)
    return usage_error(plan.error());
  return launch(exe, options, worker_options, *plan, run.out == stdout_path, run.max_restarts);
}

int cmd_eval(int argc, char** argv) {
  psgd_config cfg;
  if (int rc = parse_options(cfg, argc, argv, "eval"); rc >= 0)
    return rc;
  const auto& run = cfg.run;
  if (run.load.empty())
    return usage_error("eval: --load FILE is required");
  auto saved = model::load_params(run.load);
  if (!saved)
    return usage_error(saved.error());
  if (saved->spec.type == model::kind::least_squares)
    return usage_error("eval: least-squares parameters are evaluated on synthetic data; "
                       "eval reads Fashion-MNIST");
  if (auto problem = validate_files(run); !problem.empty())
    return usage_error(problem);
  auto test = data::load_idx_pair(run.data + "/t10k-images-idx3-ubyte.gz",
                                  run.data + "/t10k-labels-idx1-ubyte.gz");
  if (!test)
    return usage_error(test.error());
  if (test->dim != saved->spec.input_dim || test->classes != saved->spec.classes)
    return usage_error(fmt::format("{}: model expects {} inputs and {} classes, the data has "
                                   "{} and {}",
                                   run.load, saved->spec.input_dim, saved->spec.classes,
                                   test->dim, test->classes));
  auto m = model::make_model(saved->spec);
  if (!m)
    return usage_error(run.load + ": " + m.error());
  auto e = (*m)->evaluate(saved->params.data(), *test);
  std::cout << fmt::format("{} ({} parameters, version {}): test accuracy {:.4f}, test loss "
                           "{:.4f}",
                           run.load, saved->params.size(), saved->version, e.accuracy, e.loss)
            << std::endl;
  return 0;
}

/// Takes `--name VALUE` / `--name=VALUE` out of argv (for options of one command only).
std::optional<std::string> take_option(std::vector<char*>& args, const std::string& name) {
  for (size_t i = 2; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == name) {
      // Given last, without its value: an empty one, which the caller refuses by name.
      std::string value = i + 1 < args.size() ? args[i + 1] : std::string{};
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i),
                 args.begin() + static_cast<std::ptrdiff_t>(std::min(i + 2, args.size())));
      return value;
    }
    if (a.rfind(name + "=", 0) == 0) {
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return a.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

int cmd_sweep(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  sweep_plan plan;
  if (auto ks = take_option(args, "--staleness")) {
    auto parsed = parse_staleness_list(*ks);
    if (!parsed)
      return usage_error(parsed.error());
    plan.staleness = *parsed;
  }
  if (auto seeds = take_option(args, "--seeds")) {
    if (seeds->empty() || seeds->size() > 3
        || seeds->find_first_not_of("0123456789") != std::string::npos || std::stoi(*seeds) < 1)
      return usage_error(fmt::format("--seeds: expected 1..999 (got '{}')", *seeds));
    plan.seeds = std::stoi(*seeds);
  }
  if (auto models = take_option(args, "--models")) {
    plan.models.clear();
    std::stringstream in{*models};
    std::string m;
    while (std::getline(in, m, ','))
      if (m == "softmax" || m == "mlp")
        plan.models.push_back(m);
      else
        return usage_error(fmt::format("--models: expected softmax and/or mlp (got '{}')", m));
    if (plan.models.empty())
      return usage_error("--models: expected softmax and/or mlp (got nothing)");
  }
  psgd_config cfg;
  if (int rc = parse_options(cfg, static_cast<int>(args.size()), args.data(), "sweep"); rc >= 0)
    return rc;
  auto& run = cfg.run;
  // (The points' seeds --seed, --seed + 1, ... cannot wrap: --seed is at most INT64_MAX.)
  const auto given = given_options_of(cfg, static_cast<int>(args.size()), args.data());
  if (run.dataset == "synthetic" && given.command_line.count("data") > 0)
    return usage_error("--data does nothing with synthetic data (--dataset synthetic)");
  if (std::find(plan.models.begin(), plan.models.end(), "mlp") == plan.models.end()
      && given.command_line.count("hidden") > 0)
    return usage_error("--hidden does nothing in this sweep (only the MLP has hidden units, and "
                       "--models has no mlp)");
  run.mode = "async";
  run.workers = 1;
  run.simulate_staleness = "0";
  run.eval_every = std::max<int64_t>(run.eval_every, 100000000); // only the final evaluation
  const bool progress = !run.quiet; // the runs themselves are quiet: one line per point
  run.quiet = true;
  if (auto problem = validate(run); !problem.empty())
    return usage_error(problem);
  if (!run.scenario.empty()) // each point reads it again, but a failed point exits 1
    if (auto faults = load_scenario_for(run); !faults) {
      // A server crash needs a checkpoint to come back from, and a sweep keeps none.
      auto plain = load_scenario(run.scenario, run.total_workers());
      const bool crashes_server =
        plain && std::any_of(plain->events.begin(), plain->events.end(), [](const auto& e) {
          return e.kind == fault_kind::server_crash;
        });
      return usage_error(crashes_server
                           ? "--scenario " + run.scenario
                               + ": it crashes the server, and a sweep keeps no checkpoint to "
                                 "restart it from (use it with psgd train --checkpoint FILE)"
                           : faults.error());
    }
  if (auto problem = validate_files(run); !problem.empty())
    return usage_error(problem);
  auto data = load_data(run);
  if (!data)
    return usage_error(data.error());
  // Every point has one worker and the same batch and budget: checked once, as bad input.
  if (auto problem = validate_against_data(run, (*data)->train.rows); !problem.empty())
    return usage_error(problem);
  std::ofstream file;
  std::ostream* out = nullptr;
  if (!run.out.empty() && (out = open_output(run.out, file)) == nullptr)
    return usage_error(fmt::format("--out: cannot write {}", run.out));
  const size_t total = plan.models.size() * plan.staleness.size() * size_t(plan.seeds);
  size_t done = 0;
  stop_training_on_signals();
  auto points = run_sweep(run, plan, *data, [&](const sweep_point& p) {
    ++done;
    if (progress)
      std::cerr << fmt::format("[sweep {}/{}] {} K={} seed {}: {}", done, total, p.model,
                               p.staleness, p.seed,
                               p.diverged ? std::string{"diverged"}
                                          : fmt::format("test accuracy {:.4f}", p.test_accuracy))
                << std::endl;
    if (out)
      *out << sweep_json(run, p).dump() << '\n' << std::flush;
  }, &interrupt_requested);
  if (!points) {
    std::cerr << "psgd: sweep failed: " << points.error() << '\n';
    return exit_failure;
  }
  human_output(run) << sweep_table(*points);
  if (interrupt_requested) {
    std::cerr << fmt::format("psgd sweep: interrupted after {} of {} points; the table has the "
                             "finished ones (the point running was dropped)\n",
                             points->size(), total);
    return 128 + interrupt_signal;
  }
  return 0;
}

int cmd_report(int argc, char** argv) {
  std::vector<std::string> files;
  std::string out_dir;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "-?") {
      std::cout << "usage: psgd report FILE... [--out DIR]\n\n"
                   "  FILE      a results file of psgd train/serve/launch/sweep --out (JSON lines)\n"
                   "  --out DIR write DIR/index.html with plots (gnuplot); without it, print the\n"
                   "            comparison table of the runs' summaries\n";
      return 0;
    }
    if (arg == "--out" && i + 1 < argc)
      out_dir = argv[++i];
    else if (arg == "--out")
      return usage_error("report: --out needs a directory");
    else if (arg.rfind("--out=", 0) == 0)
      out_dir = arg.substr(6);
    else if (arg.rfind("-", 0) == 0)
      return usage_error(fmt::format("report: unknown option '{}' (expected --out DIR)", arg));
    else
      files.push_back(arg);
  }
  if (files.empty())
    return usage_error("report: name at least one results file (written by psgd train --out "
                       "FILE)");
  if (auto distinct = distinct_files(files); distinct.size() < files.size()) {
    std::cerr << fmt::format("psgd report: {} file(s) given more than once, read once\n",
                             files.size() - distinct.size());
    files = std::move(distinct);
  }
  std::vector<nlohmann::json> summaries;
  size_t sweep_points = 0;
  for (const auto& file : files) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec))
      return usage_error(fmt::format("report: {} is a directory (name the results files)", file));
    std::ifstream in{file};
    if (!in)
      return usage_error(fmt::format("report: cannot open {}", file));
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded())
        return usage_error(fmt::format("report: {}:{}: not JSON", file, lineno));
      if (j.is_object() && j.contains("type") && j["type"] == "sweep_point")
        ++sweep_points;
      if (j.is_object() && j.contains("type") && j["type"] == "failure")
        std::cerr << "psgd report: "
                  << failure_note(file, j.value("error", std::string{"no reason given"})) << '\n';
      if (!j.is_object() || !j.contains("type") || j["type"] != "summary")
        continue;
      if (auto problem = summary_problem(j); !problem.empty())
        return usage_error(fmt::format("report: {}:{}: {}", file, lineno, problem));
      summaries.push_back(std::move(j));
    }
  }
  if (summaries.empty() && out_dir.empty())
    return usage_error(sweep_points > 0 ? "report: a sweep's points have no table here: draw "
                                          "them with --out DIR"
                                        : "report: no summary records in the files given");
  if (!summaries.empty())
    std::cout << comparison_table(summaries);
  if (out_dir.empty())
    return 0;
  auto made = write_report_plots(files, out_dir);
  if (!made) {
    std::cerr << made.error() << '\n';
    // gnuplot's own failures are not the user's input
    return made.error().rfind("psgd report: gnuplot failed", 0) == 0 ? exit_failure
                                                                        : exit_usage;
  }
  for (const auto& why : made->omitted)
    std::cerr << "psgd report: left out " << why << '\n';
  std::cout << fmt::format("report: {} ({} plots)",
                           (std::filesystem::path{out_dir} / "index.html").lexically_normal().string(),
                           made->plots.size())
            << std::endl;
  return 0;
}

int run_command(int argc, char** argv) {
  std::string command = argv[1];
  if (command == "train")
    return cmd_train(argc, argv);
  if (command == "serve")
    return cmd_train(argc, argv, true);
  if (command == "work")
    return cmd_work(argc, argv);
  if (command == "launch")
    return cmd_launch(argc, argv);
  if (command == "eval")
    return cmd_eval(argc, argv);
  if (command == "report")
    return cmd_report(argc, argv);
  if (command == "sweep")
    return cmd_sweep(argc, argv);
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << usage_text;
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::cout << build_info() << '\n';
    return 0;
  }
  return usage_error(fmt::format("unknown command '{}' (psgd --help lists them)", command));
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << usage_text;
    return exit_usage;
  }
  // The options bound every size psgd allocates from; should memory still run out (a machine
  // with less than a run needs), say so in one line rather than abort with a core dump.
  try {
    return run_command(argc, argv);
  } catch (const std::bad_alloc&) {
    std::cerr << "psgd: out of memory (a smaller --hidden, --workers or --batch needs less)\n";
    return exit_failure;
  }
}
