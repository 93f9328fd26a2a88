#include "apps/launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "config/thread_placement.hpp"

namespace psgd {

namespace {

/// SIGINT/SIGTERM received so far. The first, once the server listens, goes on to it
/// (it stops the run with its results so far); a second stops every process at once.
volatile sig_atomic_t interrupts = 0;
volatile sig_atomic_t first_signal = SIGINT;

void on_signal(int signo) {
  if (interrupts == 0)
    first_signal = signo;
  interrupts = interrupts + 1;
}

/// How long the server may take to stop a run it was asked to stop before launch stops it.
constexpr std::chrono::seconds stop_grace{30};

/// Starts `argv` as a child that dies with us; `err_fd` (if >= 0) replaces its stderr (and
/// its stdout too if `both`), and `cpu` (if >= 0) is the one CPU it may run on. Returns the
/// pid, or -1.
pid_t start(const std::vector<std::string>& argv, int err_fd, int cpu = -1, bool both = false) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) // the launcher died before prctl took effect
    _exit(127);
  // A group of its own: a Ctrl-C at the terminal reaches the launcher alone, which passes it
  // to the server (a work process that died of it would be a lost worker).
  setpgid(0, 0);
  if (cpu >= 0)
    pin_current_thread(cpu); // inherited by exec and by every thread the child starts
  if (err_fd >= 0) {
    dup2(err_fd, STDERR_FILENO);
    if (both)
      dup2(err_fd, STDOUT_FILENO);
    close(err_fd);
  }
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::perror("psgd launch: exec");
  _exit(127);
}

/// Writes `text` to stderr in one system call: the server's forwarded lines, the workers
/// (which share our stderr) and our own messages then never split each other's lines.
void say(const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(2, text.data() + done, text.size() - done);
    if (n <= 0)
      return;
    done += static_cast<size_t>(n);
  }
}

/// The work processes whose workers joined (or rejoined) the server, by pid; written by the
/// forwarding thread, read by the launcher.
class joined_processes {
public:
  void add(pid_t pid) {
    std::lock_guard<std::mutex> lock{mutex_};
    pids_.insert(pid);
  }
  bool has(pid_t pid) const {
    std::lock_guard<std::mutex> lock{mutex_};
    return pids_.count(pid) > 0;
  }

private:
  mutable std::mutex mutex_;
  std::set<pid_t> pids_;
};

/// Forwards what a child writes to its stderr, whole lines at a time (a read from the pipe
/// may end inside a line); finish() writes what is left at the end. With `collapse`, a line
/// the same as one forwarded before is counted, not repeated: the work processes share one
/// pipe, and when the server stops the run each of them says so in the same words.
class line_forwarder {
public:
  explicit line_forwarder(bool collapse = false) : collapse_(collapse) {}

  /// Sets `*seen` once a forwarded line contains one of `texts`.
  void watch_for(std::vector<std::string> texts, std::atomic<bool>* seen) {
    watched_ = std::move(texts);
    seen_watched_ = seen;
  }

  /// Adds the pid of each work process whose line says its workers joined to `*joined`.
  void record_joined(joined_processes* joined) { joined_ = joined; }

  /// Adds N to `*opened` for each forwarded line "psgd serve: N new worker id(s) open..." (a
  /// scenario's join event: the ids wait for a new work process).
  void count_opened_ids(std::atomic<int>* opened) { opened_ = opened; }

  void feed(const char* data, size_t n) {
    carry_.append(data, n);
    auto end = carry_.rfind('\n');
    if (end == std::string::npos)
      return;
    for (const auto& text : watched_)
      if (auto at = carry_.find(text); at != std::string::npos && at < end)
        seen_watched_->store(true);
    if (joined_)
      for (size_t at = 0; (at = carry_.find("psgd work (pid ", at)) < end; ++at) {
        int pid = 0;
        const auto line_end = carry_.find('\n', at);
        const auto said = carry_.find("joined ", at);
        if (said < line_end && std::sscanf(carry_.c_str() + at, "psgd work (pid %d)", &pid) == 1)
          joined_->add(pid);
      }
    if (opened_)
      for (size_t at = 0; (at = carry_.find("psgd serve: ", at)) < end; ++at) {
        int count = 0, length = 0;
        if (std::sscanf(carry_.c_str() + at, "psgd serve: %d new worker id(s) open%n", &count,
                        &length) == 1
            && length > 0)
          opened_->fetch_add(count);
      }
    if (collapse_)
      forward_new_lines(end + 1);
    else
      say(carry_.substr(0, end + 1));
    carry_.erase(0, end + 1);
  }
  void finish() {
    if (!carry_.empty())
      feed("\n", 1);
    if (repeated_ > 0)
      say(fmt::format("psgd launch: {} more work process line(s) the same as one above, not "
                      "repeated\n", repeated_));
    repeated_ = 0;
  }

private:
  /// Forwards the lines in carry_[0, n) that were not forwarded before, in one write.
  void forward_new_lines(size_t n) {
    std::string out;
    for (size_t begin = 0; begin < n;) {
      auto end = carry_.find('\n', begin) + 1;
      auto line = carry_.substr(begin, end - begin);
      if (seen_.insert(line).second)
        out += line;
      else
        ++repeated_;
      begin = end;
    }
    if (!out.empty())
      say(out);
  }

  bool collapse_;
  std::vector<std::string> watched_;
  std::atomic<bool>* seen_watched_ = nullptr;
  std::atomic<int>* opened_ = nullptr;
  joined_processes* joined_ = nullptr;
  std::string carry_;
  std::set<std::string> seen_;
  int repeated_ = 0;
};

/// Forwards everything read from `fd` until all its writers closed it, then finishes.
void forward_all(int fd, line_forwarder& echo) {
  char chunk[4096];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      echo.feed(chunk, static_cast<size_t>(n));
  echo.finish();
  close(fd);
}

/// Reads the server's stderr until its "listening on HOST:PORT" line (at most 60 s, and
/// only while it runs), echoing what it reads. Returns the port, or 0; `*exited` is the
/// server's exit status if it ended first.
int read_port(int fd, pid_t server, line_forwarder& echo, std::optional<int>* exited) {
  std::string buffer;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && interrupts == 0) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      char chunk[4096];
      auto n = read(fd, chunk, sizeof chunk);
      if (n <= 0) {
        int status = 0;
        if (waitpid(server, &status, 0) == server)
          *exited = status;
        return 0;
      }
      echo.feed(chunk, static_cast<size_t>(n));
      buffer.append(chunk, static_cast<size_t>(n));
      auto at = buffer.find("listening on ");
      auto colon = at == std::string::npos ? at : buffer.find(':', at);
      auto end = colon == std::string::npos ? colon : buffer.find(';', colon);
      if (end != std::string::npos)
        return std::atoi(buffer.substr(colon + 1, end - colon - 1).c_str());
    }
    if (int status = 0; waitpid(server, &status, WNOHANG) == server) {
      *exited = status;
      char chunk[4096]; // what it wrote before it ended: its reason
      for (ssize_t n; (n = read(fd, chunk, sizeof chunk)) > 0;)
        echo.feed(chunk, static_cast<size_t>(n));
      return 0;
    }
  }
  return 0;
}

void stop_all(std::map<pid_t, std::string>& children) {
  for (auto& [pid, name] : children)
    kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!children.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto i = children.begin(); i != children.end();)
      i = waitpid(i->first, nullptr, WNOHANG) == i->first ? children.erase(i) : std::next(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& [pid, name] : children) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  children.clear();
}

int exit_code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

std::vector<int> deal_workers(int workers, int processes) {
  std::vector<int> out(static_cast<size_t>(processes), workers / processes);
  for (int k = 0; k < workers % processes; ++k)
    ++out[static_cast<size_t>(k)];
  return out;
}

int launch(const std::string& self_exe, const std::vector<std::string>& options,
           const std::vector<std::string>& worker_options,
           const std::vector<int>& workers_per_process, bool stdout_is_results,
           int max_restarts) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    say(fmt::format("psgd launch: pipe: {}\n", std::strerror(errno)));
    return 1;
  }
  std::vector<std::string> serve{self_exe, "serve"};
  serve.insert(serve.end(), options.begin(), options.end());
  serve.push_back("--port=0");
  serve.push_back("--bind=127.0.0.1");
  std::map<pid_t, std::string> children;
  pid_t server = start(serve, pipe_fds[1]);
  close(pipe_fds[1]);
  if (server < 0) {
    say("psgd launch: cannot start the server\n");
    return 1;
  }
  children[server] = "server";
  // The server says "training starts" once its workers joined, or (resumed) "training goes
  // on"; also with --quiet.
  std::atomic<bool> training_started{false};
  line_forwarder echo;
  echo.watch_for({"training starts", "training goes on"}, &training_started);
  std::atomic<int> opened_ids{0}; // by the scenario's join events, not yet given a process
  echo.count_opened_ids(&opened_ids);
  std::optional<int> server_exit;
  int port = read_port(pipe_fds[0], server, echo, &server_exit);
  if (port == 0) {
    if (server_exit)
      children.erase(server);
    stop_all(children);
    echo.finish();
    if (interrupts > 0) {
      say("psgd launch: interrupted before the server listened; every process stopped\n");
      return 130;
    }
    // The server refused its options or data (exit 2) and said why: that is launch's answer.
    if (server_exit && exit_code_of(*server_exit) == 2)
      return 2;
    say(server_exit ? fmt::format("psgd launch: the server exited with {} before it listened\n",
                                  exit_code_of(*server_exit))
                    : std::string{"psgd launch: the server did not start listening\n"});
    return server_exit ? exit_code_of(*server_exit) : 1;
  }
  // The rest of the server's stderr (progress, events) goes on to ours.
  std::thread forward([fd = pipe_fds[0], echo = std::move(echo)]() mutable {
    forward_all(fd, echo);
  });
  // The work processes' stderr: one pipe for all, its repeated lines collapsed. Without a
  // pipe they write to ours.
  int work_fds[2] = {-1, -1};
  if (pipe2(work_fds, O_CLOEXEC) != 0)
    work_fds[0] = work_fds[1] = -1;
  // As many work processes as CPUs: each gets a CPU of its own, and the server is left to
  // the OS. Unpinned, Linux at times stacked two workers on one CPU: 6 interleaved runs of
  // launch m=2 on 2 CPUs, async softmax 441-492k -> 538-600k samples/s, sync 306-458k ->
  // 437-493k. With fewer processes than CPUs (m=1) or more (m=4, 8) pinning was 10-17%
  // slower: the OS then places them.
  const auto cpus = allowed_cpus();
  const bool pin = workers_per_process.size() > 1 && workers_per_process.size() == cpus.size();
  std::map<pid_t, size_t> slot_of;                      // work process -> its k
  std::vector<int> slots = workers_per_process;         // and those for join events
  std::vector<bool> restarted(slots.size(), false);     // before training started
  int restarts_left = max_restarts;                     // after
  auto start_work = [&](size_t k) -> pid_t {
    std::vector<std::string> work{self_exe, "work", "--connect=127.0.0.1:" + std::to_string(port),
                                  "--workers=" + std::to_string(slots[k])};
    work.insert(work.end(), worker_options.begin(), worker_options.end());
    pid_t pid = start(work, work_fds[1], pin && k < cpus.size() ? cpus[k] : -1,
                      stdout_is_results);
    if (pid > 0) {
      children[pid] = "worker process " + std::to_string(k);
      slot_of[pid] = k;
    }
    return pid;
  };
  for (size_t k = 0; k < workers_per_process.size(); ++k)
    if (pid_t pid = start_work(k); pid > 0) {
      const int n = workers_per_process[k];
      say(fmt::format("psgd launch: worker process {} pid {}{}\n", k, pid,
                      n == 1 ? std::string{} : fmt::format(", {} workers", n)));
    }
  size_t work_alive = children.size() - 1, work_succeeded = 0;
  // Work process k (pid, exit status) exited `when` ("before"/"after") training started: a new
  // one in its place.
  auto start_again = [&](size_t k, pid_t pid, int status, const char* when,
                         const std::string& purpose) {
    const pid_t again = start_work(k);
    say(fmt::format("psgd launch: worker process {} (pid {}) exited with {} {} training "
                    "started; starting it again{}\n",
                    k, pid, exit_code_of(status), when,
                    again > 0 ? fmt::format(" (pid {}){}", again, purpose) : ": failed"));
    if (again <= 0)
      --work_alive;
  };
  joined_processes joined;
  std::thread forward_work;
  if (work_fds[0] >= 0) {
    close(work_fds[1]);
    forward_work = std::thread([fd = work_fds[0], &joined] {
      line_forwarder echo{/*collapse=*/true};
      echo.record_joined(&joined);
      forward_all(fd, echo);
    });
  }
  auto join_forwarders = [&] {
    forward.join();
    if (forward_work.joinable())
      forward_work.join();
  };
  int server_status = 0;
  bool server_done = false;
  // A worker process that exits with an error has said why itself. Its line here waits a
  // second: if the server exits with an error meanwhile, the server stopped the run and took
  // the workers along (its own line says why), and a line per work process would only bury
  // it. A process killed by a signal could not speak: reported at once.
  struct report {
    std::chrono::steady_clock::time_point due;
    std::string text;
  };
  std::vector<report> reports;
  auto say_due = [&](std::chrono::steady_clock::time_point now) {
    auto due = std::stable_partition(reports.begin(), reports.end(),
                                     [&](const report& r) { return r.due > now; });
    for (auto r = due; r != reports.end(); ++r)
      say(r->text);
    reports.erase(due, reports.end());
  };
  // Every work process failed before training started (each said why): nobody will join,
  // and the server would wait out --request-timeout-ms (a minute by default) for them. Once
  // training has started the server decides: a run it stopped (diverged, say) takes its work
  // processes with it, and its own line must come last.
  std::optional<std::chrono::steady_clock::time_point> all_failed_at;
  std::optional<std::chrono::steady_clock::time_point> stop_asked_at;
  while (!server_done && interrupts < 2) {
    if (interrupts == 1 && !stop_asked_at) {
      stop_asked_at = std::chrono::steady_clock::now();
      kill(server, first_signal);
      say("psgd launch: interrupted; the server stops the run with its results so far (again "
          "to stop every process at once)\n");
    }
    // The server's final evaluation and the workers' reports take seconds, not more.
    if (stop_asked_at && std::chrono::steady_clock::now() - *stop_asked_at > stop_grace)
      break;
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR)
      break;
    if (pid <= 0) {
      const auto now = std::chrono::steady_clock::now();
      say_due(now);
      if (const int opened = opened_ids.exchange(0); opened > 0 && interrupts == 0) {
        // A join event opened worker ids: a new work process takes them.
        slots.push_back(opened);
        restarted.push_back(false);
        const size_t k = slots.size() - 1;
        const pid_t joiner = start_work(k);
        say(joiner > 0 ? fmt::format("psgd launch: worker process {} pid {}, {} worker(s), for "
                                     "the ids the join event opened\n",
                                     k, joiner, opened)
                       : fmt::format("psgd launch: cannot start a work process for the ids "
                                     "the join event opened\n"));
        work_alive += joiner > 0;
      }
      if (work_alive == 0 && work_succeeded == 0 && !training_started && !all_failed_at)
        all_failed_at = now;
      // A second for a "training starts" line already on its way.
      if (all_failed_at && !training_started && now - *all_failed_at > std::chrono::seconds(1)) {
        say_due(std::chrono::steady_clock::time_point::max());
        stop_all(children);
        join_forwarders();
        say("psgd launch: every work process exited before training started (their lines "
            "above say why); the server is stopped\n");
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto i = children.find(pid);
    if (i == children.end())
      continue;
    if (pid == server) {
      server_done = true;
      server_status = status;
    } else if (const size_t k = slot_of[pid]; !training_started && interrupts == 0
                                                && exit_code_of(status) != 2 && !restarted[k]) {
      // Died before training started (killed, crashed, out of memory): started again, once,
      // so the run starts with its m workers (the server gave its ids back). Exit 2 is a
      // refusal (other data, no ids left): the same again would be refused again.
      restarted[k] = true;
      children.erase(i);
      start_again(k, pid, status, "before", "");
      continue;
    } else if (training_started && interrupts == 0 && exit_code_of(status) >= 128
               && restarts_left > 0) {
      // Crashed mid-run (a signal, not an error of its own, which it has said and which would
      // repeat): a new process takes over its workers, from where the server has them.
      --restarts_left;
      children.erase(i);
      start_again(k, pid, status, "after",
                  fmt::format(" to take over its workers ({} restart(s) left)", restarts_left));
      continue;
    } else {
      --work_alive;
      work_succeeded += exit_code_of(status) == 0;
    }
    if (pid != server && exit_code_of(status) != 0) {
      // No claim about the training here: the server's own lines say whether its workers
      // left the quorum (and training goes on) or the run ended.
      const bool crashed_mid_run = training_started && interrupts == 0
                                   && exit_code_of(status) >= 128 && !server_done;
      auto text = fmt::format("psgd launch: {} (pid {}) exited with {}{}\n", i->second, pid,
                              exit_code_of(status),
                              crashed_mid_run ? fmt::format("; its workers are lost ({})",
                                                            max_restarts == 0
                                                              ? "--max-restarts N starts a "
                                                                "new process for them"
                                                              : "no restarts left")
                                              : std::string{});
      if (WIFSIGNALED(status))
        say(text);
      else
        reports.push_back({std::chrono::steady_clock::now() + std::chrono::seconds(1), text});
    }
    children.erase(i);
  }
  if (server_done && exit_code_of(server_status) == 0)
    say_due(std::chrono::steady_clock::time_point::max());
  if (!server_done && interrupts > 0) {
    stop_all(children);
    join_forwarders();
    say("psgd launch: interrupted; every process stopped\n");
    return 130;
  }
  // The workers stop by themselves once the server is done; give them a moment. Before
  // training started they were still loading or connecting: nothing is left for them.
  // One that never joined (started for a join event the run outlived) has nothing to
  // report: it is named and stopped at once.
  std::map<pid_t, std::string> never_joined;
  for (auto i = children.begin(); i != children.end();)
    if (i->first != server && !joined.has(i->first)) {
      if (training_started)
        say(fmt::format("psgd launch: {} (pid {}) had not joined when the run ended; "
                        "stopped\n",
                        i->second, i->first));
      never_joined.insert(*i);
      i = children.erase(i);
    } else {
      ++i;
    }
  stop_all(never_joined);
  auto deadline = std::chrono::steady_clock::now()
                  + (training_started ? std::chrono::seconds(3) : std::chrono::seconds(0));
  while (!children.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto i = children.begin(); i != children.end();)
      i = waitpid(i->first, nullptr, WNOHANG) == i->first ? children.erase(i) : std::next(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop_all(children);
  join_forwarders();
  return exit_code_of(server_status);
}

} // namespace psgd
