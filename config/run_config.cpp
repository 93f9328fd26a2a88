#include "config/run_config.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "config/thread_placement.hpp"
#include "data/fashion_mnist.hpp"
#include "data/sampler.hpp"
#include "model/float_env.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

std::string to_string(train_mode m) {
  switch (m) {
    case train_mode::sequential: return "sequential";
    case train_mode::sync: return "sync";
    case train_mode::async: return "async";
    case train_mode::backup: return "backup";
    case train_mode::ssp: return "ssp";
  }
  return "?";
}

std::string to_string(aggregate_rule a) {
  return a == aggregate_rule::mean ? "mean" : "sum";
}

int run_config::total_workers() const {
  switch (parsed_mode) {
    case train_mode::sequential: return 1;
    case train_mode::backup: return workers + backup;
    default: return workers;
  }
}

int run_config::quorum() const {
  return parsed_mode == train_mode::sync || parsed_mode == train_mode::backup ? workers : 1;
}

bool run_config::applies_on_arrival() const {
  return parsed_mode == train_mode::async || parsed_mode == train_mode::ssp;
}

namespace {

bool parse_mode(const std::string& s, train_mode& out) {
  for (auto m : {train_mode::sequential, train_mode::sync, train_mode::async, train_mode::backup,
                 train_mode::ssp})
    if (s == to_string(m)) {
      out = m;
      return true;
    }
  return false;
}

/// Parses "K" or "uniform:A:B" (0 <= A <= B <= max_simulated_staleness) into [lo, hi].
std::string parse_simulated(const std::string& spec, int& lo, int& hi) {
  const auto bad = fmt::format("--simulate-staleness: expected K or uniform:A:B with 0 <= A <= "
                               "B <= {} (got '{}')",
                               max_simulated_staleness, spec);
  auto number = [](const std::string& s, int& out) {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    out = std::stoi(s);
    return out <= max_simulated_staleness;
  };
  if (number(spec, lo)) {
    hi = lo;
    return {};
  }
  const std::string prefix = "uniform:";
  if (spec.rfind(prefix, 0) != 0)
    return bad;
  auto rest = spec.substr(prefix.size());
  auto colon = rest.find(':');
  if (colon == std::string::npos || !number(rest.substr(0, colon), lo)
      || !number(rest.substr(colon + 1), hi) || lo > hi)
    return bad;
  return {};
}

std::string validate_staleness(run_config& cfg) {
  const bool on_arrival = cfg.applies_on_arrival();
  if (cfg.staleness_bound < -1)
    return fmt::format("--staleness-bound: must be -1 (no bound) or 0 or more (got {})",
                       cfg.staleness_bound);
  if (cfg.stale_lr && !on_arrival)
    return "--stale-lr: only async and ssp apply stale gradients (--mode " + cfg.mode + ")";
  cfg.simulated_min = cfg.simulated_max = -1;
  if (!cfg.simulate_staleness.empty()) {
    if (!on_arrival)
      return "--simulate-staleness: needs --mode async or ssp (got " + cfg.mode + ")";
    if (auto problem = parse_simulated(cfg.simulate_staleness, cfg.simulated_min,
                                       cfg.simulated_max);
        !problem.empty())
      return problem;
  }
  if (cfg.track_inclusion && cfg.parsed_mode == train_mode::sequential)
    return "--track-inclusion: sequential mode applies every gradient; use a parallel mode";
  return {};
}

} // namespace

std::string validate(run_config& cfg) {
  if (!parse_mode(cfg.mode, cfg.parsed_mode))
    return fmt::format(
      "--mode: unknown mode '{}' (expected sequential, sync, async, backup or ssp)", cfg.mode);
  auto kind = model::parse_kind(cfg.model);
  if (!kind)
    return "--model: " + kind.error();
  cfg.parsed_model = *kind;
  if (cfg.aggregate == "mean")
    cfg.parsed_aggregate = aggregate_rule::mean;
  else if (cfg.aggregate == "sum")
    cfg.parsed_aggregate = aggregate_rule::sum;
  else
    return fmt::format("--aggregate: unknown rule '{}' (expected mean or sum)", cfg.aggregate);
  if (cfg.workers < 1)
    return fmt::format("--workers: must be at least 1 (got {})", cfg.workers);
  if (cfg.workers > 1024)
    return fmt::format("--workers: at most 1024 (got {})", cfg.workers);
  if (cfg.backup < 0)
    return fmt::format("--backup: must be 0 or more (got {})", cfg.backup);
  // m + e is the team: the same bound (a larger e hung the run or overflowed the sum).
  if (cfg.parsed_mode == train_mode::backup && cfg.backup > 1024 - cfg.workers)
    return fmt::format("--backup: m + e at most 1024 workers (got {} + {})", cfg.workers,
                       cfg.backup);
  if (cfg.parsed_mode == train_mode::backup && cfg.backup < 1)
    return fmt::format("--backup: backup mode needs at least 1 backup worker (got {})",
                       cfg.backup);
  if (cfg.batch < 1)
    return fmt::format("--batch: must be at least 1 (got {})", cfg.batch);
  if (!(cfg.lr > 0) || !std::isfinite(cfg.lr))
    return fmt::format("--lr: must be a positive number (got {})", cfg.lr);
  if (!(cfg.epochs >= 0) || !std::isfinite(cfg.epochs))
    return fmt::format("--epochs: must be 0 or more (got {})", cfg.epochs);
  if (cfg.max_updates < 0)
    return fmt::format("--max-updates: must be 0 (no limit) or more (got {})", cfg.max_updates);
  if (cfg.epochs == 0 && cfg.max_updates == 0)
    return "--epochs and --max-updates are both 0: the run has no budget";
  if (cfg.hidden < 1 || cfg.hidden > max_hidden)
    return fmt::format("--hidden: must be 1 to {} (got {})", max_hidden, cfg.hidden);
  if (cfg.eval_every < 0)
    return fmt::format("--eval-every: must be 0 (four per epoch) or more (got {})",
                       cfg.eval_every);
  if (cfg.loss_subsample < 1)
    return fmt::format("--loss-subsample: must be at least 1 (got {})", cfg.loss_subsample);
  if (cfg.processes < 0 || cfg.processes > cfg.total_workers())
    return fmt::format("--processes: must be 0 (one per worker) to the {} workers (got {})",
                       cfg.total_workers(), cfg.processes);
  if (cfg.max_restarts < 0 || cfg.max_restarts > max_restarts_limit)
    return fmt::format("--max-restarts: must be 0 (none) to {} (got {})", max_restarts_limit,
                       cfg.max_restarts);
  if (cfg.placement != "detached" && cfg.placement != "shared")
    return fmt::format("--placement: unknown placement '{}' (expected detached or shared)",
                       cfg.placement);
  if (!(cfg.round_timeout >= 0) || !std::isfinite(cfg.round_timeout))
    return fmt::format("--round-timeout: must be 0 (no limit) or more seconds (got {})",
                       cfg.round_timeout);
  if (cfg.round_timeout_policy != "drop" && cfg.round_timeout_policy != "stop")
    return fmt::format("--round-timeout-policy: unknown policy '{}' (expected drop or stop)",
                       cfg.round_timeout_policy);
  if (cfg.quarantine_after < 1)
    return fmt::format("--quarantine-after: must be at least 1 (got {})", cfg.quarantine_after);
  if (!(cfg.divergence_loss > 0))
    return fmt::format("--divergence-loss: must be positive (got {})", cfg.divergence_loss);
  if (cfg.checkpoint_every < 0)
    return fmt::format("--checkpoint-every: must be 0 or more updates (got {})",
                       cfg.checkpoint_every);
  if (!(cfg.checkpoint_seconds >= 0) || !std::isfinite(cfg.checkpoint_seconds))
    return fmt::format("--checkpoint-seconds: must be 0 or more (got {})", cfg.checkpoint_seconds);
  if (!cfg.checkpoint.empty() && cfg.checkpoint_every == 0 && cfg.checkpoint_seconds == 0)
    cfg.checkpoint_every = 1000;
  if (cfg.parsed_mode == train_mode::sequential
      && (!cfg.checkpoint.empty() || !cfg.resume.empty()))
    return "--checkpoint/--resume: checkpoints are the parameter server's; sequential mode has "
           "none";
  if (cfg.request_timeout_ms < 1 || cfg.request_timeout_ms > max_timeout_ms)
    return fmt::format("--request-timeout-ms: must be 1 to {} (a week) (got {})", max_timeout_ms,
                       cfg.request_timeout_ms);
  // The network options are checked for every command: a value out of range is wrong
  // whether or not this command uses it.
  if (cfg.heartbeat_ms < 1 || cfg.heartbeat_ms > max_timeout_ms)
    return fmt::format("--heartbeat-ms: must be 1 to {} (got {})", max_timeout_ms,
                       cfg.heartbeat_ms);
  if (cfg.connection_timeout_ms > max_timeout_ms)
    return fmt::format("--connection-timeout-ms: at most {} (a week) (got {})", max_timeout_ms,
                       cfg.connection_timeout_ms);
  if (cfg.connection_timeout_ms <= cfg.heartbeat_ms)
    return fmt::format("--connection-timeout-ms: must be above --heartbeat-ms (got {} <= {})",
                       cfg.connection_timeout_ms, cfg.heartbeat_ms);
  if (cfg.port < 0 || cfg.port > 65535)
    return fmt::format("--port: must be 0..65535 (got {})", cfg.port);
  if (auto problem = validate_staleness(cfg); !problem.empty())
    return problem;
  if (cfg.dataset == "auto")
    cfg.synthetic = cfg.parsed_model == model::kind::least_squares;
  else if (cfg.dataset == "synthetic")
    cfg.synthetic = true;
  else if (cfg.dataset == "fashion-mnist")
    cfg.synthetic = false;
  else
    return fmt::format("--dataset: unknown dataset '{}' (expected fashion-mnist, synthetic or "
                       "auto)",
                       cfg.dataset);
  if (cfg.parsed_model == model::kind::least_squares && !cfg.synthetic)
    return "--model lsq: least squares needs a regression set: use --dataset synthetic";
  return {};
}

namespace {

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// Why `path` (given to `option`) cannot be written as a file, or empty.
std::string unwritable_file(const std::string& option, const std::string& path) {
  if (is_directory(path))
    return fmt::format("{}: '{}' is a directory (give a file name)", option, path);
  // An existing file that cannot be written was found only after training.
  if (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK) != 0)
    return fmt::format("{}: cannot write '{}': {}", option, path, std::strerror(errno));
  auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (!is_directory(dir))
    return fmt::format(std::filesystem::exists(dir) ? "{}: '{}' is not a directory"
                                                    : "{}: directory '{}' does not exist",
                       option, dir);
  // Permission bits do not tell (root passes them, /proc and read-only mounts refuse
  // anyway): create and remove a file there, as the writer will.
  const auto probe = fmt::format("{}/.psgd-write-test-{}", dir, ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return fmt::format("{}: cannot write in '{}': {}", option, dir, std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

} // namespace

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec) && !ec)
    return true;
  std::error_code ex, ey;
  const auto x = std::filesystem::weakly_canonical(a, ex);
  const auto y = std::filesystem::weakly_canonical(b, ey);
  return ex || ey ? a == b : x == y;
}

std::string validate_files(const run_config& cfg) {
  if (!cfg.synthetic)
    if (auto problem = data::data_directory_problem(cfg.data); !problem.empty())
      return "--data: " + problem;
  const std::pair<const char*, std::string> outputs[] = {
    {"--out", cfg.out},
    {"--save", cfg.save},
    {"--checkpoint", cfg.checkpoint},
    {"--checkpoint (its FILE.prev)", cfg.checkpoint.empty() ? "" : cfg.checkpoint + ".prev"}};
  for (size_t i = 1; i < 3; ++i)
    if (outputs[i].second == stdout_path)
      return fmt::format("{}: '-' (standard output) is for --out's JSON lines; give a file "
                         "name (./- for a file named '-')",
                         outputs[i].first);
  auto is_file = [](const std::string& path) { return !path.empty() && path != stdout_path; };
  for (size_t i = 0; i < 3; ++i) // the files themselves (FILE.prev is the checkpoint's)
    if (const auto& [option, path] = outputs[i]; is_file(path))
      if (auto problem = unwritable_file(option, path); !problem.empty())
        return problem;
  // Two outputs in one file: the last writer won, and the other's records were lost.
  for (size_t i = 0; i < std::size(outputs); ++i)
    for (size_t j = i + 1; j < std::size(outputs); ++j)
      if (is_file(outputs[i].second) && same_file(outputs[i].second, outputs[j].second))
        return fmt::format("{} and {} name the same file '{}': give each its own",
                           outputs[i].first, outputs[j].first, outputs[i].second);
  if (!cfg.checkpoint.empty() && is_directory(cfg.checkpoint + ".prev"))
    return fmt::format("--checkpoint: '{}.prev' is a directory (a checkpoint keeps the previous "
                       "one there)",
                       cfg.checkpoint);
  return {};
}

std::string validate_against_data(const run_config& cfg, int64_t train_rows) {
  const int workers = cfg.parsed_mode == train_mode::sequential ? 1 : cfg.total_workers();
  if (data::shard_sampler::steps_per_epoch(train_rows, workers, cfg.batch) == 0)
    return fmt::format("--batch: {} is larger than a worker's shard ({} training examples / "
                       "{} worker{} = {})",
                       cfg.batch, train_rows, workers, workers == 1 ? "" : "s",
                       train_rows / workers);
  // The budget is checked after whole updates: one larger than it ran a whole update anyway
  // (--epochs 0.1 with m=2 and b=30000 trained a full epoch).
  const double update_samples = double(cfg.quorum()) * cfg.batch;
  if (cfg.epochs > 0 && cfg.epochs * double(train_rows) < update_samples)
    return fmt::format("--epochs {} is {:.0f} samples, less than one update ({} x {} = {:.0f})",
                       cfg.epochs, std::ceil(cfg.epochs * double(train_rows)), cfg.quorum(),
                       cfg.batch, update_samples);
  return {};
}

namespace {

/// Every thread the actor system starts (scheduler, multiplexer, detached actors) computes
/// with denormals flushed (see model/float_env.hpp).
class flush_denormals_hook final : public caf::thread_hook {
public:
  void init(caf::actor_system&) override {}
  void thread_started() override { model::flush_denormals(); }
  void thread_terminates() override {}
};

} // namespace

psgd_config::psgd_config() {
  register_vocabulary(*this);
  add_thread_hook<flush_denormals_hook>();
  add_thread_hook<placement_hook>();
  opt_group{custom_options_, "global"}
    .add(run.mode, "mode", "sequential|sync|async|backup|ssp (default sync)")
    .add(run.workers, "workers", "m: workers whose gradients make one update (default 2)")
    .add(run.backup, "backup", "e: extra workers in backup mode (default 1)")
    .add(run.batch, "batch", "b: examples per worker minibatch (default 32)")
    .add(run.lr, "lr", "learning rate (default 0.1)")
    .add(run.epochs, "epochs", "budget in passes over the training set (default 3)")
    .add(run.max_updates, "max-updates", "budget in server updates; 0 = no limit (default 0)")
    .add(run.model, "model", "softmax|mlp|lsq (default softmax)")
    .add(run.hidden, "hidden", "hidden units of the MLP (default 128)")
    .add(run.aggregate, "aggregate", "mean|sum of a round's gradients (default mean)")
    .add(run.seed, "seed", "root of all randomness (default 1)")
    .add(run.staleness_bound, "staleness-bound",
         "ssp: a worker more than s clocks ahead of the slowest waits; -1 = no bound (default 3)")
    .add(run.stale_lr, "stale-lr",
         "async/ssp: step lr / max(1, staleness) (Zhang et al. 2016) (default off)")
    .add(run.simulate_staleness, "simulate-staleness",
         "async/ssp: K or uniform:A:B: workers compute on the parameters of K versions ago "
         "(exact with --workers 1) (default off)")
    .add(run.track_inclusion, "track-inclusion",
         "count per example and class how often its gradient was received and applied "
         "(default off)")
    .add(run.data, "data", "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)")
    .add(run.dataset, "dataset", "fashion-mnist|synthetic|auto (default auto: lsq -> synthetic)")
    .add(run.loss_subsample, "loss-subsample",
         "training examples the train loss is measured on (default 10000)")
    .add(run.eval_every, "eval-every", "updates between evaluations; 0 = four per epoch (default 0)")
    .add(run.out, "out", "write JSON lines (evaluations, summary) to this file; - for stdout (default none)")
    .add(run.save, "save", "write the final parameters to this file (default none)")
    .add(run.load, "load", "parameters file to evaluate (psgd eval)")
    .add(run.quiet, "quiet", "no progress lines on stderr; events (faults, lost workers) still show (default off)")
    .add(run.scenario, "scenario",
         "JSON file of stragglers and faults to inject (config/scenarios/; default none)")
    .add(run.round_timeout, "round-timeout",
         "seconds a sync/backup round may wait for its workers; 0 = no limit (default 60)")
    .add(run.round_timeout_policy, "round-timeout-policy",
         "drop (the late workers leave the quorum until they push) | stop (default drop)")
    .add(run.quarantine_after, "quarantine-after",
         "bad gradients in a row that quarantine a worker (default 3)")
    .add(run.divergence_loss, "divergence-loss",
         "a minibatch loss above this, or NaN, stops the run (default 10000)")
    .add(run.checkpoint, "checkpoint",
         "the server checkpoints here (and keeps the previous one as FILE.prev) (default none)")
    .add(run.checkpoint_every, "checkpoint-every",
         "updates between checkpoints; 0 = 1000 unless --checkpoint-seconds (default 0)")
    .add(run.checkpoint_seconds, "checkpoint-seconds",
         "seconds between checkpoints; 0 = by updates only (default 0)")
    .add(run.resume, "resume", "continue the run saved in this checkpoint (default none)")
    .add(run.port, "port", "serve: TCP port; 0 = the OS picks one, printed (default 0)")
    .add(run.bind, "bind", "serve: listen address (default 127.0.0.1)")
    .add(run.insecure, "insecure",
         "serve: allow listening beyond loopback without TLS (default off)")
    .add(run.connect, "connect", "work: HOST:PORT of a psgd serve")
    .add(run.tls_cert, "tls-cert",
         "serve/work: this node's certificate (PEM); with --tls-key and --tls-ca: mutual TLS")
    .add(run.tls_key, "tls-key", "serve/work: the certificate's private key (PEM)")
    .add(run.tls_passphrase_file, "tls-passphrase-file",
         "serve/work: a file whose first line is the passphrase of an encrypted --tls-key "
         "(default none: the key is not encrypted)")
    .add(run.tls_ca, "tls-ca", "serve/work: the CA every node's certificate must come from")
    .add(run.heartbeat_ms, "heartbeat-ms", "serve/work: heartbeat interval, ms (default 200)")
    .add(run.connection_timeout_ms, "connection-timeout-ms",
         "serve/work: a silent peer is dropped after this many ms (default 1000)")
    .add(run.processes, "processes",
         "launch: psgd work processes, the workers dealt out evenly; 0 = one per worker, at "
         "most 16 (default 0)")
    .add(run.max_restarts, "max-restarts",
         "launch: start a work process that dies after training started again, up to this "
         "many times in the run; the new one takes over its workers (default 0)")
    .add(run.placement, "placement",
         "shared (workers on the scheduler) | detached (a thread per worker) (default shared)")
    .add(run.request_timeout_ms, "request-timeout-ms",
         "timeout of every request between actors, ms (default 60000)");
  // Compute-bound actors: one scheduler thread per core (CAF's default starts 4 even on 2).
  set("scheduler.max-threads", usable_cpus());
  // A push is answered within microseconds, and a closing sync round makes both workers
  // runnable on the server's thread: the other thread must steal one at once. With CAF's
  // defaults an idle thread soon sleeps 50 us, then 10 ms, between steal attempts, and the
  // workers ended up taking turns on one thread (async m=2 at 0.76x sequential). Spin for
  // 10^7 attempts (a fraction of a second: longer than an evaluation pause, after which the
  // workers must find both threads awake) before backing off, and sleep 5 us, not 50, after.
  set("work-stealing.aggressive-poll-attempts", 10000000);
  set("work-stealing.moderate-sleep-duration", caf::timespan{std::chrono::microseconds{5}});
  // While spinning, look at the other thread's queue every 300th poll (CAF: every 10th): a
  // worker's push puts the server on the worker's own thread, which runs it a microsecond
  // later; an idle thread that steals it first moves the server, and then the worker, to
  // the other core (and its caches). Medians of 5, softmax b=32: sync m=2 1.49M -> 1.58M
  // samples/s, async unchanged (1.78M -> 1.76-1.81M); 1000 and more delay the steals that
  // are needed (a closed sync round wakes both workers on one thread): sync 1.33M at 3000.
  set("work-stealing.aggressive-steal-interval", 300);
  // One message per resume: when two pushes meet at the server it yields after the first,
  // so the second worker's thread picks the server up (and then its own worker) instead of
  // both workers being queued behind the server's thread and swapping cores.
  set("scheduler.max-throughput", 1);
}

outcome<std::string> read_passphrase(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return outcome<std::string>::failure(
      fmt::format("--tls-passphrase-file {}: cannot open: {}", path, std::strerror(errno)));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r')
    line.pop_back();
  if (line.empty())
    return outcome<std::string>::failure(
      fmt::format("--tls-passphrase-file {}: its first line (the passphrase) is empty", path));
  return line;
}

void psgd_config::enable_network(int local_workers) {
  load<caf::io::middleman>();
  if (run.tls()) {
    load<caf::openssl::manager>();
    set("openssl.certificate", run.tls_cert);
    set("openssl.key", run.tls_key);
    if (!run.tls_passphrase_file.empty()) // checked by validate_network() before
      if (auto passphrase = read_passphrase(run.tls_passphrase_file))
        set("openssl.passphrase", *passphrase);
    set("openssl.cafile", run.tls_ca);
  }
  set("scheduler.policy", caf::atom("sharing"));
  // A thread per core, not per worker: the workers' delays are timers, not sleeps, and 16
  // workers on 16 threads of 2 cores lost time to the kernel's switching (launch m=256 in 16
  // processes: 253k -> 400k samples/s; m=16 in 2 processes: 560k -> 700k).
  set("scheduler.max-threads",
      std::max(1, std::min(local_workers, static_cast<int>(usable_cpus()))));
  set("middleman.heartbeat-interval",
      caf::timespan{std::chrono::milliseconds{run.heartbeat_ms}});
  set("middleman.connection-timeout",
      caf::timespan{std::chrono::milliseconds{run.connection_timeout_ms}});
  set("middleman.workers", 0);
}

namespace {

/// Loads the TLS files as OpenSSL will, so that a bad path or file is refused here, before
/// CAF's openssl manager (which hangs or aborts on them) starts.
/// Whether --tls-cert comes from --tls-ca (and is valid now): every peer checks it against
/// the same CA, so a certificate from another CA fails every handshake, after the processes
/// have started (launch's work processes then all died with disconnect_during_handshake).
std::string check_issuer(const run_config& cfg) {
  FILE* c = std::fopen(cfg.tls_cert.c_str(), "r");
  if (c == nullptr)
    return fmt::format("--tls-cert {}: cannot open: {}", cfg.tls_cert, std::strerror(errno));
  X509* cert = PEM_read_X509(c, nullptr, nullptr, nullptr);
  std::fclose(c);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  std::string problem;
  if (cert == nullptr || store == nullptr || ctx == nullptr)
    problem = fmt::format("--tls-cert {}: cannot be checked", cfg.tls_cert);
  else if (X509_STORE_load_locations(store, cfg.tls_ca.c_str(), nullptr) != 1)
    problem = fmt::format("--tls-ca {}: cannot be loaded as a CA file", cfg.tls_ca);
  else if (X509_STORE_CTX_init(ctx, store, cert, nullptr) != 1 || X509_verify_cert(ctx) != 1)
    problem = fmt::format("--tls-cert {}: not accepted by --tls-ca {} ({})", cfg.tls_cert,
                          cfg.tls_ca,
                          X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(cert);
  return problem;
}

std::string check_tls_files(const run_config& cfg) {
  if (!cfg.tls_passphrase_file.empty() && cfg.tls_key.empty())
    return "--tls-passphrase-file opens an encrypted --tls-key: give the key too";
  if (cfg.tls_cert.empty() || cfg.tls_key.empty() || cfg.tls_ca.empty())
    return "--tls-cert, --tls-key and --tls-ca go together: without all three TLS would "
           "authenticate nobody (anonymous TLS is refused)";
  auto open = [](const std::string& path) { return std::fopen(path.c_str(), "r"); };
  auto read_cert = [&](const std::string& path, const char* option) -> std::string {
    FILE* f = open(path);
    if (f == nullptr)
      return fmt::format("{} {}: cannot open: {}", option, path, std::strerror(errno));
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (cert == nullptr)
      return fmt::format("{} {}: not a PEM certificate", option, path);
    X509_free(cert);
    return {};
  };
  if (auto p = read_cert(cfg.tls_cert, "--tls-cert"); !p.empty())
    return p;
  if (auto p = read_cert(cfg.tls_ca, "--tls-ca"); !p.empty())
    return p;
  std::string passphrase;
  if (!cfg.tls_passphrase_file.empty()) {
    auto read = read_passphrase(cfg.tls_passphrase_file);
    if (!read)
      return read.error();
    passphrase = std::move(*read);
  }
  FILE* f = open(cfg.tls_key);
  if (f == nullptr)
    return fmt::format("--tls-key {}: cannot open: {}", cfg.tls_key, std::strerror(errno));
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, passphrase.data());
  std::fclose(f);
  if (key == nullptr)
    return cfg.tls_passphrase_file.empty()
             ? fmt::format("--tls-key {}: not an unencrypted PEM private key (an encrypted "
                           "one needs --tls-passphrase-file)",
                           cfg.tls_key)
             : fmt::format("--tls-key {}: not a PEM private key that the passphrase in "
                           "--tls-passphrase-file {} opens",
                           cfg.tls_key, cfg.tls_passphrase_file);
  FILE* c = open(cfg.tls_cert);
  X509* cert = PEM_read_X509(c, nullptr, nullptr, nullptr);
  std::fclose(c);
  const bool match = X509_check_private_key(cert, key) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!match)
    return fmt::format("--tls-key {}: does not belong to --tls-cert {}", cfg.tls_key,
                       cfg.tls_cert);
  return check_issuer(cfg);
}

} // namespace

std::string validate_network(const run_config& cfg, bool serve) {
  if (cfg.tls())
    if (auto problem = check_tls_files(cfg); !problem.empty())
      return problem;
  if (serve) {
    // Not an address at all (999.1.1.1): said before the warning about leaving loopback.
    addrinfo hints{};
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(cfg.bind.c_str(), nullptr, &hints, &found); rc != 0)
      return fmt::format("--bind: '{}' is not an address or a host name here ({})", cfg.bind,
                         ::gai_strerror(rc));
    ::freeaddrinfo(found);
    const bool loopback = cfg.bind == "localhost" || cfg.bind == "::1"
                          || cfg.bind.rfind("127.", 0) == 0;
    if (!loopback && !cfg.insecure && !cfg.tls())
      return fmt::format("--bind {}: the plain middleman authenticates nobody; to listen "
                         "beyond loopback use TLS (--tls-cert, --tls-key, --tls-ca) or pass "
                         "--insecure",
                         cfg.bind);
    if (!loopback && !cfg.tls())
      std::cerr << "psgd serve: WARNING: listening on " << cfg.bind
                << " without TLS: anyone who reaches the port can join or disrupt the run"
                << std::endl;
    if (cfg.parsed_mode == train_mode::sequential)
      return "--mode sequential has no workers to serve";
    return {};
  }
  auto colon = cfg.connect.rfind(':');
  if (cfg.connect.empty() || colon == std::string::npos || colon == 0
      || colon + 1 == cfg.connect.size()
      || cfg.connect.find_first_not_of("0123456789", colon + 1) != std::string::npos
      || std::stol(cfg.connect.substr(colon + 1)) > 65535)
    return fmt::format("--connect: expected HOST:PORT (got '{}')", cfg.connect);
  return {};
}

std::string psgd_config::check_caf_options() const {
  const auto threads = caf::get_or(*this, "scheduler.max-threads", size_t{1});
  if (threads < 1 || threads > 256)
    return fmt::format("--scheduler.max-threads: must be 1 to 256 (got {})", threads);
  return {};
}

std::string psgd_config::fit_scheduler_to(const run_config& run) {
  const auto threads = caf::get_or(*this, "scheduler.max-threads", usable_cpus());
  if (run.parsed_mode == train_mode::sequential) {
    // The loop runs on the calling thread: no scheduler thread may spin beside it (two
    // spinning threads made a second sequential process on the other core run at half speed).
    set("scheduler.max-threads", 1);
    set("scheduler.policy", caf::atom("sharing"));
    return "sharing";
  }
  const bool oversubscribed = static_cast<size_t>(run.total_workers()) > threads;
  const std::string policy = oversubscribed || !run.scenario.empty() ? "sharing" : "stealing";
  set("scheduler.policy", caf::atom_from_string(policy));
  return policy;
}

std::vector<std::string> join_option_values(const caf::config_option_set& options,
                                            std::vector<std::string> args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0 && a.find('=') == std::string::npos
        && i + 1 < args.size()) {
      auto name = a.substr(2);
      auto opt = std::find_if(options.begin(), options.end(), [&](const caf::config_option& o) {
        return o.long_name() == name;
      });
      if (opt != options.end() && !opt->is_flag()) {
        out.push_back(a + "=" + args[++i]);
        continue;
      }
    }
    out.push_back(a);
  }
  return out;
}

} // namespace psgd
