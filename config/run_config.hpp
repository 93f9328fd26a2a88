// run_config: every option of a psgd run, its default, its validation, and the CAF config
// that reads it from the command line and from a config file.
//
// Contract:
// - run_config is a plain value. Every field states its default; the CLI option of the same
//   name (`--batch`, ...) and the config-file key of the same name set it.
// - validate() checks every field before any training starts and returns the first problem
//   as one line naming the option and the value (empty string = valid). It also derives the
//   parsed enums (mode, model kind, aggregate), so call it before reading them.
// - psgd_config is the CAF actor_system_config of the psgd executable: it registers the
//   message vocabulary and the options, and sizes the scheduler for compute-bound actors.
// Not thread-safe: build and validate on one thread, then share read-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>

#include "data/outcome.hpp"
#include "model/model.hpp"

namespace psgd {

enum class train_mode { sequential, sync, async, backup, ssp };
enum class aggregate_rule { mean, sum };

std::string to_string(train_mode m);
std::string to_string(aggregate_rule a);

struct run_config {
  // -- what to train -------------------------------------------------------------------------
  std::string mode = "sync";       ///< sequential | sync | async | backup | ssp
  int workers = 2;                 ///< m: gradients per update in sync and backup; workers in async
  int backup = 1;                  ///< e: extra workers in backup mode (ignored otherwise)
  int batch = 32;                  ///< b: examples per worker minibatch
  double lr = 0.1;                 ///< learning rate
  double epochs = 3;               ///< budget in passes over the training set (samples applied)
  int64_t max_updates = 0;         ///< budget in server updates; 0 = no limit
  std::string model = "softmax";   ///< softmax | mlp | lsq
  int hidden = 128;                ///< hidden units of the MLP
  std::string aggregate = "mean";  ///< mean | sum of the m gradients of a round
  uint64_t seed = 1;               ///< the root of all randomness
  // -- staleness (async, ssp) ------------------------------------------------------------------
  int64_t staleness_bound = 3;     ///< ssp: a worker more than s clocks ahead waits; -1 = no bound
  bool stale_lr = false;           ///< step lr / max(1, staleness) (Zhang et al. 2016)
  std::string simulate_staleness;  ///< "K" or "uniform:A:B": compute on the parameters of K
                                   ///< versions ago; empty = off
  bool track_inclusion = false;    ///< count, per example, gradients received and applied
  // -- data ----------------------------------------------------------------------------------
  std::string data = "/usr/share/datasets/fashion-mnist";  ///< Fashion-MNIST directory
  std::string dataset = "auto";    ///< fashion-mnist | synthetic | auto (lsq: synthetic)
  int64_t loss_subsample = 10000;  ///< training examples in the fixed loss subsample
  // -- evaluation and output -------------------------------------------------------------------
  int64_t eval_every = 0;          ///< updates between evaluations; 0 = four per epoch
  std::string out;                 ///< JSON-lines results file ("-": stdout); empty = none
  std::string save;                ///< final parameters file; empty = none
  std::string load;                ///< parameters file to evaluate (psgd eval)
  bool quiet = false;              ///< no progress lines on stderr
  // -- faults ----------------------------------------------------------------------------------
  std::string scenario;            ///< stragglers and faults to inject (JSON); empty = none
  double round_timeout = 60;       ///< seconds a sync/backup round may wait; 0 = no limit
  std::string round_timeout_policy = "drop";  ///< drop the late workers | stop the run
  int quarantine_after = 3;        ///< bad gradients in a row that quarantine a worker
  double divergence_loss = 1e4;    ///< minibatch loss above this (or NaN) stops the run
  std::string checkpoint;          ///< checkpoint file (and FILE.prev); empty = none
  int64_t checkpoint_every = 0;    ///< updates between checkpoints; 0 = 1000 if no seconds
  double checkpoint_seconds = 0;   ///< seconds between checkpoints; 0 = by updates only
  std::string resume;              ///< continue the run saved in this checkpoint
  // -- network (psgd serve / psgd work) ---------------------------------------------------------
  int port = 0;                      ///< serve: TCP port; 0 = the OS picks (printed)
  std::string bind = "127.0.0.1";    ///< serve: listen address
  bool insecure = false;             ///< serve: allow a non-loopback bind without TLS
  std::string connect;               ///< work: HOST:PORT of a psgd serve
  std::string tls_cert;              ///< this node's certificate (PEM); TLS needs all three
  std::string tls_key;               ///< its private key (PEM)
  std::string tls_passphrase_file;   ///< first line: the passphrase of an encrypted tls_key;
                                     ///< empty = the key is not encrypted
  std::string tls_ca;                ///< the CA that signs every node's certificate (PEM)
  int64_t heartbeat_ms = 200;        ///< middleman heartbeat interval
  int64_t connection_timeout_ms = 1000;  ///< a silent peer is dropped after this
  int processes = 0;                 ///< launch: psgd work processes, the workers dealt out
                                     ///< evenly; 0 = one per worker, at most 16
  int max_restarts = 0;              ///< launch: work processes that die after training
                                     ///< started are started again, this many in all
  // -- runtime -------------------------------------------------------------------------------
  std::string placement = "shared";  ///< workers on the scheduler (shared) or own threads (detached)
  int64_t request_timeout_ms = 60000;  ///< timeout of every request between actors

  // -- derived by validate() -------------------------------------------------------------------
  train_mode parsed_mode = train_mode::sync;
  model::kind parsed_model = model::kind::softmax;
  aggregate_rule parsed_aggregate = aggregate_rule::mean;
  bool synthetic = false;
  bool networked = false;          ///< set by psgd serve: the workers are other processes
  int simulated_min = -1;          ///< --simulate-staleness as a range [min, max]; -1 = off
  int simulated_max = -1;

  bool tls() const {
    return !tls_cert.empty() || !tls_key.empty() || !tls_ca.empty()
           || !tls_passphrase_file.empty();
  }

  /// Workers that run: m, or m + e in backup mode, 1 in sequential mode.
  int total_workers() const;
  /// Gradients per update: m in sync and backup, 1 in async, ssp and sequential.
  int quorum() const;
  /// Every gradient is applied on arrival (async, ssp): staleness > 0 is possible.
  bool applies_on_arrival() const;
};

/// The largest --simulate-staleness K (the server keeps that many old snapshots).
inline constexpr int max_simulated_staleness = 1024;
/// The largest --hidden: 784 x 16384 weights are 51 MB per parameter buffer, and a run holds
/// about ten buffers (beyond that the allocation, not the run, would fail).
inline constexpr int max_hidden = 16384;
/// The most --max-restarts: a work process that dies more often than that is not a fault the
/// run can study, it is a crash loop.
inline constexpr int max_restarts_limit = 1000;
/// The longest timeout or interval in ms (a week): far longer ones overflowed the clock
/// arithmetic (every request then timed out at once).
inline constexpr int64_t max_timeout_ms = 7LL * 24 * 3600 * 1000;
/// `--out -` writes the JSON lines to standard output (the human-readable result line then
/// goes to stderr); the binary outputs (--save, --checkpoint) take file names only.
inline constexpr const char* stdout_path = "-";

/// Whether two paths name one file: the same path once made absolute and normal (symbolic
/// links resolved where they exist), or the same inode (also for files not yet written).
bool same_file(const std::string& a, const std::string& b);

/// Checks the options that do not depend on the data; fills the parsed fields.
std::string validate(run_config& cfg);

/// Checks the network options of psgd serve (`serve`) or psgd work (!`serve`).
std::string validate_network(const run_config& cfg, bool serve);

/// The first line of `path` (--tls-passphrase-file), without its line end; an error naming
/// the file if it cannot be read or that line is empty.
outcome<std::string> read_passphrase(const std::string& path);

/// Checks the paths before anything runs, so that a bad one costs no training: the data
/// directory (unless the run uses synthetic data), and that --out, --save and --checkpoint
/// name files that can be written (not a directory; the directory they are in exists and is
/// writable; for --checkpoint, FILE.prev is not a directory either: a checkpoint keeps the
/// previous one there). After validate().
std::string validate_files(const run_config& cfg);

/// Checks the options against the training set size (batch vs shard); after validate().
std::string validate_against_data(const run_config& cfg, int64_t train_rows);

/// The CAF config of the psgd executable.
class psgd_config : public caf::actor_system_config {
public:
  psgd_config();
  run_config run;
  /// The psgd options (for join_option_values).
  const caf::config_option_set& options() const { return custom_options_; }

  /// Loads CAF's middleman for psgd serve/work, with heartbeats on (CAF's default is off, so
  /// a frozen peer would never be noticed) and no extra middleman threads. Processes share
  /// the cores here, so the scheduler does not spin: CAF's FIFO "sharing" policy with one
  /// thread per local worker, at most one per usable CPU (at least one). Call after parse,
  /// before the actor system exists.
  void enable_network(int local_workers);

  /// Chooses CAF's scheduling policy for a run; call after validate(), before the actor
  /// system exists. Work stealing (fastest) when every worker has a scheduler thread of its
  /// own. When workers outnumber the threads (backup m+e, async with m > cores), or a
  /// scenario injects faults, CAF's FIFO "sharing" policy instead: work stealing runs the
  /// actors a thread wakes itself first (LIFO) and a worker woken by a timer (a scripted
  /// straggler) waits behind the others for as long as they keep their threads busy, so
  /// the fastest workers would look faster than they are. Sequential SGD runs on the calling
  /// thread: one sleeping "sharing" thread, none spinning. Returns the policy.
  std::string fit_scheduler_to(const run_config& run);
  /// Checks the CAF options psgd relies on (--scheduler.max-threads 1..256: 0 hung the run);
  /// empty if fine.
  std::string check_caf_options() const;
};

/// `--name value` -> `--name=value` for options that take a value (CAF 0.17 accepts only the
/// `=` form for long options). Flags, `--name=value` and unknown names pass unchanged.
std::vector<std::string> join_option_values(const caf::config_option_set& options,
                                            std::vector<std::string> args);

} // namespace psgd
