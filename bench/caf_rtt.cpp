// psgd_caf_rtt: the round trip of a float payload through CAF 0.17's middleman, between two
// processes on loopback, measured the way a remote worker and the server use it.
//
// usage: psgd_caf_rtt FLOATS [ROUNDS]   (ROUNDS default 2000, after 200 warm-up rounds)
// Prints one JSON line: {"rtt": median seconds, "bytes_each_way": 4 * FLOATS, "rounds": ROUNDS,
// "two_cpus": whether the two ends ran on two CPUs (false with a single usable CPU)}.
//
// An echo actor in a child process answers every float_buffer with itself; a pinger in this
// process sends the next one when the answer arrives. Both are brokers on their process's
// multiplexer thread, as the server and a remote worker are in `psgd launch` (no hand-off to
// a scheduler thread), and the payload goes through psgd's own float_buffer serialisation.
// The difference to bench/compare's raw TCP round trip of the same bytes is therefore what
// CAF's transport adds per step: serialisation, its buffers, its system calls. No compute.
// The two processes run on two different CPUs (the first two this process may use), as
// bench/compare's raw ping-pong does: on this kind of VM a message that wakes a halted CPU
// costs ~30 us more than one on the same CPU, and unpinned the scheduler picks either.
// Exit codes: 0 measured, 2 bad arguments, 1 the measurement failed (named on stderr).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "config/run_config.hpp"
#include "config/thread_placement.hpp"
#include "messages/vocabulary.hpp"

namespace {

using namespace psgd;
using clock_type = std::chrono::steady_clock;

caf::behavior echo(caf::io::broker*) {
  return {[](float_buffer& x) { return x; }};
}

struct ping_state {
  static inline const char* name = "pinger";
  caf::actor echo;
  float_buffer payload;
  int left = 0;
  clock_type::time_point sent;
  std::vector<double> seconds;
  std::promise<std::vector<double>>* done = nullptr;
};

using ping_broker = caf::stateful_actor<ping_state, caf::io::broker>;

/// One round trip; the answer starts the next. No per-request timer (in CAF 0.17 each one
/// wakes the timer thread, which the training loop avoids too): main() bounds the wait.
void ping_once(ping_broker* self) {
  auto& st = self->state;
  st.sent = clock_type::now();
  self->request(st.echo, caf::infinite, st.payload)
    .then(
      [=](float_buffer&) {
        auto& st = self->state;
        st.seconds.push_back(std::chrono::duration<double>(clock_type::now() - st.sent).count());
        if (--st.left > 0) {
          ping_once(self);
          return;
        }
        st.done->set_value(std::move(st.seconds));
        self->quit();
      },
      [=](caf::error& err) {
        self->state.done->set_value({});
        self->quit(std::move(err));
      });
}

caf::behavior pinger(ping_broker* self, caf::actor echo, float_buffer payload, int rounds,
                     std::promise<std::vector<double>>* done) {
  auto& st = self->state;
  st.echo = std::move(echo);
  st.payload = std::move(payload);
  st.left = rounds;
  st.done = done;
  st.seconds.reserve(static_cast<size_t>(rounds));
  ping_once(self);
  return {[](caf::unit_t) {}};
}

/// The child: publishes the echo on an ephemeral loopback port, writes the port to
/// `port_fd`, and serves until `stop_fd` reaches end of file (the parent closed it).
int serve_echo(int port_fd, int stop_fd) {
  psgd_config cfg;
  cfg.enable_network(1);
  caf::actor_system sys{cfg};
  auto e = sys.middleman().spawn_broker(echo);
  auto port = sys.middleman().publish(e, 0, "127.0.0.1");
  const uint16_t value = port ? *port : 0;
  if (write(port_fd, &value, sizeof value) != sizeof value || value == 0)
    return 1;
  char c;
  while (read(stop_fd, &c, 1) > 0) {
  }
  caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
  return 0;
}

int usage(const char* problem) {
  std::fprintf(stderr, "psgd_caf_rtt: %s\nusage: psgd_caf_rtt FLOATS [ROUNDS]\n", problem);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3)
    return usage("expected FLOATS and optionally ROUNDS");
  char* end = nullptr;
  const long floats = std::strtol(argv[1], &end, 10);
  if (*end != '\0' || floats < 1 || floats > (1L << 28))
    return usage("FLOATS must be an integer in [1, 2^28]");
  long rounds = 2000;
  if (argc == 3) {
    rounds = std::strtol(argv[2], &end, 10);
    if (*end != '\0' || rounds < 1 || rounds > 10000000)
      return usage("ROUNDS must be an integer in [1, 10^7]");
  }
  const long warmup = 200;

  int port_pipe[2], stop_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(stop_pipe) != 0) {
    std::perror("psgd_caf_rtt: pipe");
    return 1;
  }
  // Fork before either process starts a thread; each end then takes its CPU (its threads
  // inherit it).
  const auto cpus = allowed_cpus();
  const pid_t child = fork();
  if (child < 0) {
    std::perror("psgd_caf_rtt: fork");
    return 1;
  }
  if (child == 0) {
    if (cpus.size() >= 2)
      pin_current_thread(cpus[1]);
    close(port_pipe[0]);
    close(stop_pipe[1]);
    _exit(serve_echo(port_pipe[1], stop_pipe[0]));
  }
  if (cpus.size() >= 2)
    pin_current_thread(cpus[0]);
  close(port_pipe[1]);
  close(stop_pipe[0]);
  auto finish = [&](int rc) {
    close(stop_pipe[1]); // the child's end of file: it stops
    int status = 0;
    waitpid(child, &status, 0);
    return rc;
  };
  uint16_t port = 0;
  if (read(port_pipe[0], &port, sizeof port) != sizeof port || port == 0) {
    std::fprintf(stderr, "psgd_caf_rtt: the echo process could not publish on loopback\n");
    return finish(1);
  }

  std::vector<double> seconds;
  {
    psgd_config cfg;
    cfg.enable_network(1);
    caf::actor_system sys{cfg};
    auto remote = sys.middleman().remote_actor("127.0.0.1", port);
    if (!remote) {
      std::fprintf(stderr, "psgd_caf_rtt: cannot reach the echo: %s\n",
                   sys.render(remote.error()).c_str());
      return finish(1);
    }
    std::promise<std::vector<double>> done;
    auto result = done.get_future();
    float_buffer payload{std::vector<float>(static_cast<size_t>(floats), 0.5f)};
    auto p = sys.middleman().spawn_broker(pinger, *remote, payload,
                                          static_cast<int>(rounds + warmup), &done);
    if (result.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
      std::fprintf(stderr, "psgd_caf_rtt: no answer within 120 s\n");
      std::fflush(stderr);
      _exit(finish(1)); // the actor system would wait for the stuck pinger
    }
    seconds = result.get();
  }
  if (seconds.size() != static_cast<size_t>(rounds + warmup)) {
    std::fprintf(stderr, "psgd_caf_rtt: the echo failed after %zu round trips\n",
                 seconds.size());
    return finish(1);
  }
  seconds.erase(seconds.begin(), seconds.begin() + warmup);
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  std::printf("{\"rtt\": %.9f, \"bytes_each_way\": %ld, \"rounds\": %ld, "
              "\"two_cpus\": %s}\n",
              seconds[seconds.size() / 2], 4 * floats, rounds,
              cpus.size() >= 2 ? "true" : "false");
  return finish(0);
}
