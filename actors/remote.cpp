#include "actors/remote.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <optional>
#include <thread>
#include <utility>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/trainer.hpp"
#include "actors/worker.hpp"
#include "model/model.hpp"

namespace psgd {

namespace {

caf::error refused(std::string what) {
  return make_error(error_code::refused, std::move(what));
}

/// Connects with a timeout and checks the published actor's interface. `nobody_listening`
/// (if given) says whether a failure was a refused connection: no server on that port (yet).
caf::expected<facade_actor> connect(caf::actor_system& sys, caf::scoped_actor& self,
                                    const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout,
                                    bool* nobody_listening = nullptr) {
  caf::expected<facade_actor> result{caf::error{}};
  // With TLS loaded, connect through the openssl module (mutual TLS), never in plain text.
  auto mm = sys.has_openssl_manager() ? sys.openssl_manager().actor_handle()
                                      : sys.middleman().actor_handle();
  self->request(mm, timeout, caf::connect_atom::value, host, port)
    .receive(
      [&](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& ifs) {
        if (!ptr)
          result = refused(fmt::format("{}:{} publishes no actor", host, port));
        else if (ifs != sys.message_types<facade_actor>())
          result = refused(fmt::format("{}:{} does not speak the psgd worker protocol", host,
                                       port));
        else
          result = caf::actor_cast<facade_actor>(ptr);
      },
      [&](caf::error& err) { // unreachable: a failure, not a mismatch
        if (nobody_listening != nullptr)
          *nobody_listening = err == caf::sec::cannot_connect_to_node;
        auto text = sys.render(err);
        // A plain node's handshake with a TLS server ends in a disconnect, nothing more.
        if (!sys.has_openssl_manager() && text.find("disconnect_during_handshake") != std::string::npos)
          text += " (if the server uses TLS, give --tls-cert, --tls-key and --tls-ca)";
        result = make_error(error_code::peer_lost,
                            fmt::format("cannot connect to {}:{}: {}", host, port, text));
      });
  return result;
}

/// Waits (up to a second) for the answer to a flush() sent to `front`. The workers that
/// just left sent their down messages, with why they left, ahead of it on the same
/// connection: once it is answered the serving node has them, and this process may exit.
/// Without it the process could close its connection first, and the server logged only a
/// lost link ("remote_link_unreachable") for an interrupted worker (seen once in a loaded
/// test run).
void flush(caf::scoped_actor& self, const facade_actor& front) {
  self->request(front, std::chrono::seconds{1}, flush_atom::value)
    .receive([](flush_atom) {}, [](caf::error&) {});
}

/// Rendered "interrupted: <when>".
caf::error interrupted_while(const std::string& when) {
  return make_error(error_code::interrupted, when);
}

/// Asks the facade for the run (and worker ids), up to `timeout`, and watches `interrupt`
/// every 100 ms meanwhile: a helper actor makes the request and forwards its answer, since a
/// blocking request cannot be interrupted (SIGTERM waited out the whole timeout, and psgd
/// launch killed the process after 2 s). The facade takes the hello's sender for this
/// process and gives its ids back when that actor goes down: a helper whose hello was
/// answered lives as long as `self` does.
caf::expected<run_spec> hello(caf::actor_system& sys, caf::scoped_actor& self,
                              const facade_actor& front, hello_request req,
                              std::chrono::milliseconds timeout,
                              const std::atomic<bool>* interrupt) {
  req.version = protocol_version;
  const caf::actor waiter = self;
  auto asker = sys.spawn([=](caf::event_based_actor* helper) -> caf::behavior {
    helper->monitor(waiter);
    helper->set_down_handler([helper](caf::down_msg&) { helper->quit(); });
    helper->request(front, timeout, hello_atom::value, req)
      .then([=](run_spec& spec) { helper->send(waiter, hello_atom::value, std::move(spec)); },
            [=](caf::error& err) { helper->send(waiter, hello_atom::value, std::move(err)); });
    return {[](hello_atom) {}}; // nothing more to do: it stands for the process
  });
  caf::expected<run_spec> result{caf::error{}};
  bool done = false;
  auto from_asker = [&] { return self->current_sender() == asker.address(); };
  self->receive_while([&] { return !done; })(
    [&](hello_atom, run_spec& spec) {
      if (from_asker()) {
        result = std::move(spec);
        done = true;
      }
    },
    [&](hello_atom, caf::error& err) {
      if (from_asker()) {
        result = std::move(err);
        done = true;
        self->send_exit(asker, caf::exit_reason::user_shutdown); // it holds no ids
      }
    },
    caf::after(std::chrono::milliseconds{100}) >> [&] {
      if (interrupt == nullptr || !interrupt->load())
        return;
      self->send_exit(asker, caf::exit_reason::user_shutdown);
      result = interrupted_while("waiting for the server's answer to this process's hello");
      done = true;
    });
  return result;
}

/// The pauses between connection attempts: 100 ms, doubling up to 2 s, until a deadline or
/// an interrupt. Each attempt is short (3 s at most): one lost handshake or hello must not
/// use up the whole deadline.
class back_off {
public:
  back_off(std::chrono::milliseconds timeout, const std::atomic<bool>* interrupt)
    : deadline_(std::chrono::steady_clock::now() + timeout),
      attempt_(std::min(timeout, std::chrono::milliseconds{3000})),
      interrupt_(interrupt) {}
  std::chrono::milliseconds attempt() const { return attempt_; }
  /// Sleeps before the next attempt; false if the deadline passed or the user interrupted.
  bool wait() {
    if (interrupted() || std::chrono::steady_clock::now() >= deadline_)
      return false;
    // In slices: a signal stops the wait within 50 ms, not after a pause of up to 2 s.
    const auto until = std::chrono::steady_clock::now() + pause_;
    while (!interrupted() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds{50}, until - std::chrono::steady_clock::now()));
    pause_ = std::min(pause_ * 2, std::chrono::milliseconds{2000});
    return !interrupted();
  }
  bool interrupted() const { return interrupt_ != nullptr && interrupt_->load(); }

private:
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::milliseconds attempt_;
  std::chrono::milliseconds pause_{100};
  const std::atomic<bool>* interrupt_;
};

/// A hello that failed in the runtime (no answer in time, the connection dropped), not by
/// the server's refusal: named as such (before: "system_error(request_timeout)" alone).
caf::error unanswered(caf::actor_system& sys, const run_config& cfg, const caf::error& err) {
  if (err.category() == psgd_error_atom::value)
    return err;
  return make_error(error_code::peer_lost,
                    fmt::format("the server at {} did not answer this process's hello ({}); "
                                "its run may have ended",
                                cfg.connect, sys.render(err)));
}

/// The first connection: a port nobody listens on yet (the server starts after its workers,
/// or still loads its data) is tried again with back-off up to the request timeout, and the
/// wait is said once. Other failures (a TLS handshake, not psgd's protocol) come back at once.
caf::expected<facade_actor> connect_patiently(caf::actor_system& sys, caf::scoped_actor& self,
                                              const run_config& cfg, const std::string& host,
                                              uint16_t port, std::chrono::milliseconds timeout,
                                              const std::atomic<bool>* interrupt) {
  back_off pauses{timeout, interrupt};
  bool said = false;
  for (;;) {
    bool nobody_listening = false;
    auto front = connect(sys, self, host, port, pauses.attempt(), &nobody_listening);
    if (front || !nobody_listening)
      return front;
    if (!said) {
      std::cerr << fmt::format("psgd work (pid {}): no server at {} yet; trying for up to {} ms\n",
                               ::getpid(), cfg.connect, timeout.count());
      said = true;
    }
    if (!pauses.wait())
      return pauses.interrupted() ? interrupted_while("before a server listened") : front;
  }
}

/// The connection to the server dropped: connect again (with back-off, until the timeout)
/// and get the same worker ids back, from the same server or its restarted successor.
caf::expected<std::pair<facade_actor, run_spec>>
reconnect(caf::actor_system& sys, caf::scoped_actor& self, const std::string& host,
          uint16_t port, const hello_request& again, std::chrono::milliseconds timeout,
          const std::atomic<bool>* interrupt) {
  back_off pauses{timeout, interrupt};
  caf::error last;
  do {
    auto front = connect(sys, self, host, port, pauses.attempt());
    if (front) {
      auto spec = hello(sys, self, *front, again, pauses.attempt(), interrupt);
      if (spec)
        return std::make_pair(*front, std::move(*spec));
      last = spec.error();
    } else {
      last = front.error();
    }
  } while (pauses.wait());
  if (pauses.interrupted())
    return interrupted_while("while reconnecting");
  return make_error(error_code::peer_lost,
                    fmt::format("the server at {}:{} is gone and did not come back within {} ms "
                                "(last: {})",
                                host, port, timeout.count(), sys.render(last)));
}

/// What differs between the run a work process joined and the one a reconnect found on the
/// same port ("model mlp, was softmax"), or "": a fresh psgd serve of another run there took
/// the workers in, and their gradients were refused as the wrong length.
std::string run_difference(const run_spec& was, const run_spec& now) {
  std::vector<std::string> diffs;
  auto differ = [&](const char* what, const auto& a, const auto& b) {
    if (a != b)
      diffs.push_back(fmt::format("{} {}, was {}", what, b, a));
  };
  differ("mode", was.mode, now.mode);
  differ("model", was.model, now.model);
  differ("hidden", was.hidden, now.hidden);
  differ("inputs", was.input_dim, now.input_dim);
  differ("classes", was.classes, now.classes);
  differ("batch", was.batch, now.batch);
  differ("seed", was.seed, now.seed);
  differ("shards", was.shards, now.shards);
  differ("dataset", was.dataset, now.dataset);
  differ("track-inclusion", was.track_inclusion, now.track_inclusion);
  differ("network faults", was.network_faults, now.network_faults);
  // The same settings, a fresh start (not --resume): its counters and sample positions
  // are not the ones these workers continue.
  differ("run id", was.run_id, now.run_id);
  return fmt::format("{}", fmt::join(diffs, ", "));
}

/// "psgd work (pid 17038): workers 0, 1 <what> HOST:PORT", on stderr in one write.
void say_ids(const run_config& cfg, const std::vector<int32_t>& ids, const char* what) {
  std::cerr << fmt::format("psgd work (pid {}): worker{} {} {} {}\n", ::getpid(),
                           ids.size() == 1 ? "" : "s", fmt::join(ids, ", "), what, cfg.connect);
}

/// Worker `id`'s place in a resumed run's spec, if it has one.
struct resume_place {
  int64_t epoch = 0, step = 0, computed = 0;
};
std::optional<resume_place> position_of(const run_spec& spec, int32_t id) {
  for (size_t i = 0; i + 3 < spec.positions.size(); i += 4)
    if (spec.positions[i] == id)
      return resume_place{spec.positions[i + 1], spec.positions[i + 2], spec.positions[i + 3]};
  return std::nullopt;
}

/// The run_config a run_spec describes, with this process's data directory.
run_config config_of(const run_spec& spec, const run_config& local) {
  run_config cfg = local;
  cfg.mode = spec.mode;
  cfg.model = spec.model;
  cfg.hidden = spec.hidden;
  cfg.batch = spec.batch;
  cfg.seed = spec.seed;
  cfg.dataset = spec.dataset;
  cfg.request_timeout_ms = spec.request_timeout_ms;
  return cfg;
}

} // namespace

caf::expected<work_outcome> work_remotely(caf::actor_system& sys, const run_config& cfg,
                                          const std::atomic<bool>* interrupt) {
  const auto timeout = std::chrono::milliseconds{cfg.request_timeout_ms};
  const auto colon = cfg.connect.rfind(':');
  auto host = cfg.connect.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') // [::1]:7000, as in URLs
    host = host.substr(1, host.size() - 2);
  const auto port = static_cast<uint16_t>(std::stoi(cfg.connect.substr(colon + 1)));
  caf::scoped_actor self{sys};
  auto front = connect_patiently(sys, self, cfg, host, port, timeout, interrupt);
  if (!front)
    return front.error();
  auto query = hello(sys, self, *front, hello_request{}, timeout, interrupt);
  if (!query)
    return unanswered(sys, cfg, query.error());
  auto run = config_of(*query, cfg);
  if (auto problem = validate(run); !problem.empty())
    return refused("the server's run is not valid here: " + problem);
  auto data = load_data(run);
  if (!data)
    return refused(data.error());
  model::model_spec mspec;
  mspec.type = run.parsed_model;
  mspec.input_dim = (*data)->train.dim;
  mspec.classes = (*data)->train.classes;
  mspec.hidden = run.hidden;
  if (mspec.input_dim != query->input_dim || mspec.classes != query->classes)
    return refused(fmt::format("the local data have {} inputs and {} classes, the run {} and {}",
                               mspec.input_dim, mspec.classes, query->input_dim,
                               query->classes));
  auto made = model::make_model(mspec);
  if (!made)
    return refused(made.error());
  std::shared_ptr<const model::model> model{std::move(*made)};
  hello_request ask;
  ask.fingerprint = data::fingerprint((*data)->train);
  ask.wanted = cfg.workers;
  auto spec = hello(sys, self, *front, ask, timeout, interrupt);
  if (!spec)
    return unanswered(sys, cfg, spec.error());
  // With its pid: psgd launch names its work processes by pid, the server its workers by id.
  say_ids(cfg, spec->ids, "joined");
  std::shared_ptr<const data::dataset> train{*data, &(*data)->train};
  upstream_actor upstream = *front;
  work_outcome out;
  std::map<caf::actor_addr, int32_t> running;
  auto gradient_pool = std::make_shared<buffer_pool>(static_cast<size_t>(model->num_params()));
  for (auto id : spec->ids) {
    worker_settings ws;
    ws.id = id;
    ws.shards = spec->shards;
    ws.batch = spec->batch;
    ws.seed = worker_seed(spec->seed, id, spec->shards);
    ws.timeout = timeout;
    ws.network_faults = spec->network_faults;
    ws.track_inclusion = spec->track_inclusion;
    ws.gradient_pool = gradient_pool;
    if (auto at = position_of(*spec, id)) { // a resumed run: where the checkpoint left it
      ws.start_epoch = at->epoch;
      ws.start_step = at->step;
      ws.start_computed = at->computed;
    }
    // One worker computes on the multiplexer thread (no hand-off per step); several
    // share the scheduler, which spreads them over the cores.
    auto w = spec->ids.size() == 1
               ? caf::actor_cast<worker_actor>(
                 sys.middleman().spawn_broker(worker_on_multiplexer, upstream, model, train, ws))
               : sys.spawn(worker, upstream, model, train, ws);
    self->monitor(w);
    running.emplace(w.address(), id);
    self->send(w, start_atom::value);
  }
  out.workers = static_cast<int>(running.size());
  std::map<int32_t, worker_actor> by_id;
  for (auto& [addr, id] : running)
    by_id.emplace(id, caf::actor_cast<worker_actor>(addr));
  self->monitor(*front);
  facade_actor current_front = *front;   // after a reconnect, the new one
  hello_request again = ask;
  again.wanted = 0;
  again.ids = spec->ids;
  caf::error fatal;
  // Ctrl-C or SIGTERM: each worker leaves with error interrupted (its report first), so the
  // server's log says why it left, and an id held at the join barrier is free again.
  const auto leave = make_error(error_code::interrupted,
                                fmt::format("psgd work (pid {}) was stopped by a signal",
                                            ::getpid()));
  auto on_interrupt = [&] {
    if (out.interrupted || interrupt == nullptr || !interrupt->load())
      return;
    out.interrupted = true;
    std::cerr << fmt::format("psgd work (pid {}): interrupted; the workers leave the run\n",
                             ::getpid());
    for (auto& [id, w] : by_id)
      self->send_exit(w, leave);
  };
  self->receive_while([&] { return !running.empty() && !fatal; })([&](caf::down_msg& msg) {
    if (msg.source == current_front.address()) {
      if (running.empty())
        return;
      // The server stopped the run (diverged, a round timeout with policy stop, ...): its
      // facade died with the server's reason. No successor comes; stop now.
      if (msg.reason.category() == psgd_error_atom::value) {
        fatal = make_error(error_code::peer_lost,
                           "the server stopped the run: " + sys.render(msg.reason));
        return;
      }
      // The connection dropped (heartbeats stopped) or the server process died: reconnect
      // to it, or to its successor (psgd serve --resume).
      std::cerr << fmt::format("psgd work (pid {}): lost the server at {}; reconnecting for "
                               "up to {} ms (to it, or to psgd serve --resume there)\n",
                               ::getpid(), cfg.connect, timeout.count());
      auto next = reconnect(sys, self, host, port, again, timeout, interrupt);
      if (!next) {
        fatal = next.error();
        return;
      }
      auto& [next_front, next_spec] = *next;
      if (auto diff = run_difference(*spec, next_spec); !diff.empty()) {
        fatal = make_error(error_code::refused,
                           fmt::format("the server back at {} runs another run ({}): not "
                                       "joining it (start psgd work again for that run)",
                                       cfg.connect, diff));
        return;
      }
      say_ids(cfg, spec->ids, "rejoined");
      self->monitor(next_front);
      current_front = next_front;
      // Back to each worker's position at the checkpoint the server restarted from: the
      // rolled-back updates are trained again on the same minibatches.
      for (auto& [id, w] : by_id)
        if (auto at = position_of(next_spec, id))
          self->send(w, rejoin_atom::value, upstream_actor{next_front}, at->epoch, at->step);
        else
          self->send(w, rejoin_atom::value, upstream_actor{next_front});
      return;
    }
    auto i = running.find(msg.source);
    if (i == running.end())
      return;
    if (!msg.reason)
      ++out.finished;
    out.lines.push_back(fmt::format("worker {}: {}", i->second,
                                    !msg.reason          ? std::string{"finished"}
                                    : msg.reason == leave ? std::string{"left (interrupted)"}
                                                          : "stopped: " + sys.render(msg.reason)));
    by_id.erase(i->second);
    running.erase(i);
  }, caf::after(std::chrono::milliseconds{100}) >> on_interrupt);
  if (out.interrupted && !fatal)
    flush(self, current_front);
  if (fatal) {
    for (auto& [id, w] : by_id)
      self->send_exit(w, caf::exit_reason::user_shutdown);
    return fatal;
  }
  return out;
}

} // namespace psgd
