// psgd launch: a local cluster of processes on loopback: one `psgd serve` and one
// `psgd work --workers 1` per worker, with the given training options.
//
// Contract: launch() starts the server (port chosen by the OS), reads its port, starts the
// worker processes, forwards their output (worker lines prefixed), and returns the server's
// exit code once it has exited. It never leaves a process behind: every child dies with the
// launcher (PR_SET_PDEATHSIG), on SIGINT/SIGTERM the children are stopped and the launcher
// exits 130, and once the server has exited the workers still running get SIGTERM, then
// SIGKILL. A worker process that fails is reported; training goes on without it.
// Not thread-safe: one launch per process.
#pragma once

#include <string>
#include <vector>

namespace psgd {

/// `options`: the training options as given on the command line (passed to psgd serve);
/// `worker_options`: those that the workers need too (data directory, timeouts).
int launch(const std::string& self_exe, const std::vector<std::string>& options,
           const std::vector<std::string>& worker_options, int worker_processes);

} // namespace psgd
