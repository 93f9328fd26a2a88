// psgd launch: a local cluster of processes on loopback: one `psgd serve` and the
// `psgd work` processes, each with its share of the workers, with the given training options.
//
// Contract: launch() starts the server (port chosen by the OS), reads its port, starts the
// worker processes, forwards their stderr (the work processes' through one pipe, where a line
// the same as an earlier one is counted and left out), and returns the server's
// exit code once it has exited. It never leaves a process behind: every child dies with the
// launcher (PR_SET_PDEATHSIG). The children have a process group of their own: the first
// SIGINT/SIGTERM to the launcher goes on to the server once it listens (it stops the
// run with its results so far, the workers stop as after the budget, and launch returns the
// server's code); before that, at a second signal, or 30 s after the first, every child is
// stopped and the launcher exits 130. Once the server has exited the workers still running
// get SIGTERM, then SIGKILL. A worker process that fails is reported; the server decides how training goes on.
// One that exits before training started, other than with exit 2 (a refusal, which would
// repeat), is started again once, so that the run starts with all its workers (the server
// gives a dead process's ids back); if every work process has exited before training
// started, the server is stopped and launch fails. One that dies after training started
// (killed by a signal, or exits with 128 or more: a crash, not its own error) is started again
// while `max_restarts` allows, up to that many times in the run: the server gives its worker
// ids free, and the new process takes them over. Without, it stays a lost worker.
// Not thread-safe: one launch per process.
#pragma once

#include <string>
#include <vector>

namespace psgd {

/// `options`: the training options as given on the command line (passed to psgd serve);
/// `worker_options`: those that the workers need too (data directory, timeouts);
/// `workers_per_process`: one `psgd work` process per entry, running that many workers;
/// `stdout_is_results`: the server writes its JSON lines to stdout (--out -), so the work
/// processes' lines ("worker N: finished") go to stderr instead.
int launch(const std::string& self_exe, const std::vector<std::string>& options,
           const std::vector<std::string>& worker_options,
           const std::vector<int>& workers_per_process, bool stdout_is_results,
           int max_restarts);

/// `workers` dealt out evenly over `processes` (the first ones get one more where it does
/// not divide): {5, 2} -> {3, 2}. Requires 1 <= processes <= workers.
std::vector<int> deal_workers(int workers, int processes);

} // namespace psgd
