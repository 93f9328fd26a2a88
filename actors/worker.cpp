#include "actors/worker.hpp"

#include <algorithm>

#include <caf/all.hpp>

#include "actors/injector.hpp"
#include "actors/link.hpp"
#include "config/scenario.hpp"
#include "data/random.hpp"
#include "model/kernels.hpp"

namespace psgd {

uint64_t worker_seed(uint64_t run_seed, int32_t id, int shards) {
  return id < shards ? run_seed : data::mix_seed(run_seed, 0x101, static_cast<uint64_t>(id));
}

namespace {

// Every function takes the worker's self pointer as a template: the same code runs as an
// event-based actor on the scheduler and as a broker on the multiplexer thread (see
// worker_on_multiplexer).

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

template <class Self>
void push(Self* self, gradient g);
template <class Self>
void step(Self* self, snapshot snap);
template <class Self>
void stop(Self* self, caf::error reason);

/// The server is gone: hold still until the driver sends the restarted one (see tick).
template <class Self>
void orphan(Self* self) {
  auto& st = self->state;
  if (st.orphaned)
    return;
  st.orphaned = true;
  st.orphaned_at = std::chrono::steady_clock::now();
}

/// Scratch memory for one gradient, one per thread rather than one per worker: a worker
/// computes inside one handler, so the workers a scheduler thread runs never need it at
/// the same time. With m = 64 workers on 2 threads that keeps 2 workspaces (and their cache
/// footprint) instead of 64. Keyed by the model's spec and the batch: a new run (another
/// model) gets a fresh one.
model::workspace& thread_workspace(const model::model& m, int batch) {
  struct cached {
    model::model_spec spec;
    int batch = 0;
    std::unique_ptr<model::workspace> ws;
  };
  thread_local cached cache;
  const auto& s = m.spec();
  if (!cache.ws || cache.batch != batch || cache.spec.type != s.type
      || cache.spec.input_dim != s.input_dim || cache.spec.classes != s.classes
      || cache.spec.hidden != s.hidden) {
    cache.ws = m.make_workspace(batch);
    cache.spec = s;
    cache.batch = batch;
  }
  return *cache.ws;
}

/// Where this worker's messages go: its link (network faults) or the server itself.
template <class Self>
upstream_actor path(Self* self) {
  auto& st = self->state;
  return st.link ? upstream_actor{st.link} : st.server;
}

/// Joins `server` and computes on the snapshot it answers.
template <class Self>
void join(Self* self, upstream_actor server) {
  auto& st = self->state;
  st.server = std::move(server);
  self->monitor(st.server);
  if (st.link) // before the join: the link forwards it to this server
    self->send(st.link, rejoin_atom::value, st.server);
  const auto generation = st.generation;
  self->request(path(self), st.settings.timeout, join_atom::value, st.settings.id)
    .then(
      [=](snapshot& first) {
        if (generation == self->state.generation)
          step(self, std::move(first));
      },
      [=](caf::error& err) {
        if (generation == self->state.generation)
          stop(self, std::move(err)); // training_finished: interrupted at the join barrier
      });
}

/// Continues with a restarted server: what it held was computed for the old server's
/// timeline (lost in flight), and an answer to an older request must not start a second step
/// loop.
template <class Self>
void rejoin(Self* self, upstream_actor server) {
  auto& st = self->state;
  st.orphaned = false;
  st.awaiting = false;
  ++st.generation;
  st.held.reset();
  join(self, std::move(server));
}

/// Stops the worker: first its report to the observer, then quit (normally if no error, or
/// if the error is the server's training_finished: the end of the run is no failure).
template <class Self>
void stop(Self* self, caf::error reason) {
  auto& st = self->state;
  if (st.server)
    self->send(st.server, report_atom::value,
               worker_report{st.settings.id, st.computed, st.lost_in_network,
                             seconds(st.compute_time), seconds(st.wait_time)});
  if (reason == make_error(error_code::training_finished))
    reason = caf::error{};
  self->quit(std::move(reason));
}

/// The extra time the injected effects add to this step, in milliseconds.
template <class Self>
double injected_delay_ms(Self* self, const int64_t* index, double compute_ms) {
  auto& st = self->state;
  double ms = st.pending_pause_ms;
  st.pending_pause_ms = 0;
  for (auto& [event, f] : st.faults) {
    const auto& e = f.effect;
    switch (e.kind) {
      case fault_effect::slow_factor:
        ms += (e.factor - 1.0) * compute_ms;
        break;
      case fault_effect::slow_delay: {
        delay_distribution d{static_cast<delay_distribution::family>(e.dist), e.a, e.b};
        ms += d.draw(f.draws);
        break;
      }
      case fault_effect::example_cost:
        for (int i = 0; i < st.settings.batch; ++i) {
          auto label = static_cast<size_t>(st.train->labels.empty() ? 0 : st.train->labels[index[i]]);
          if (label < e.per_class_ms.size())
            ms += e.per_class_ms[label];
        }
        break;
      default:
        break;
    }
  }
  return ms;
}

/// Computes one minibatch gradient on `snap`, then pushes it (now or after the delay).
template <class Self>
void step(Self* self, snapshot snap) {
  auto& st = self->state;
  const auto& s = st.settings;
  auto values = st.gradients->acquire();
  const bool gathered = st.next_batch_epoch == st.sampler->epoch()
                        && st.next_batch_step == st.sampler->step();
  st.next_batch_epoch = st.next_batch_step = -1;
  const int64_t* index = st.sampler->next();
  const auto started = std::chrono::steady_clock::now();
  auto& ws = thread_workspace(*st.model, s.batch);
  float loss = gathered ? st.model->gradient(snap.params.data(), st.next_batch.view(),
                                             values->data(), ws)
                        : st.model->gradient(snap.params.data(), *st.train, index, s.batch,
                                             values->data(), ws);
  const auto computing = std::chrono::steady_clock::now() - started;
  st.compute_time += computing;
  const double compute_ms = std::chrono::duration<double, std::milli>(computing).count();
  auto delay = s.step_delay;
  if (!st.faults.empty() || st.pending_pause_ms > 0)
    delay += std::chrono::microseconds{
      static_cast<int64_t>(1000.0 * injected_delay_ms(self, index, compute_ms))};
  ++st.computed;
  gradient g{s.id,
             snap.version,
             s.batch,
             loss,
             static_cast<uint64_t>(st.computed),
             st.sampler->epoch(),
             st.sampler->step(),
             float_buffer{std::move(values)},
             {}};
  if (s.track_inclusion)
    g.examples.assign(index, index + s.batch);
  snap = snapshot{}; // release the parameters before the round trip
  if (delay.count() > 0) {
    // The timer fires late (a scripted 1 ms took 1.24, a 0.05 ms one 0.19): what it overshot
    // comes off the next delays, and one no longer than the overshoot owed is not timed.
    const auto wanted = std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay);
    if (wanted <= st.delay_debt) {
      st.delay_debt -= wanted;
    } else {
      st.held = std::move(g);
      st.delay_scripted = wanted;
      st.delay_began = std::chrono::steady_clock::now();
      self->delayed_send(self, wanted - st.delay_debt, push_atom::value);
      return;
    }
  }
  push(self, std::move(g));
}

template <class Self>
void pull(Self* self);

/// The answer to the push or pull in flight has come (a snapshot or an error).
template <class Self>
void answered(Self* self) {
  auto& st = self->state;
  st.awaiting = false;
  st.wait_time += std::chrono::steady_clock::now() - st.sent;
}

/// Sends `msg` (a push or a pull) upstream and computes on the snapshot it answers.
template <class Self, class... Ts>
void exchange(Self* self, Ts&&... msg) {
  auto& st = self->state;
  st.awaiting = true;
  st.sent = std::chrono::steady_clock::now();
  const auto generation = st.generation;
  // Bounded by the watchdog (see tick), not by a per-request timer.
  self->request(path(self), caf::infinite, std::forward<Ts>(msg)...)
    .then([=](snapshot& next) {
            if (generation != self->state.generation)
              return;
            answered(self);
            step(self, std::move(next));
          },
          [=](caf::error& err) {
            auto& st = self->state;
            if (generation != st.generation)
              return;
            answered(self);
            if (err == make_error(error_code::training_finished))
              stop(self, std::move(err)); // before the orphan check: the run is over
            else if (err == make_error(error_code::lost_in_network)) {
              ++st.lost_in_network; // the link lost it: go on with the current parameters
              pull(self);
            } else if (err == caf::sec::request_receiver_down || st.orphaned)
              orphan(self); // the server died with our push: wait for its restart
            else
              stop(self, std::move(err));
          });
}

template <class Self>
void push(Self* self, gradient g) {
  exchange(self, push_atom::value, std::move(g));
}

template <class Self>
void pull(Self* self) {
  exchange(self, pull_atom::value, self->state.settings.id);
}

std::chrono::milliseconds tick_interval(const worker_settings& s) {
  return std::clamp(s.timeout / 4, std::chrono::milliseconds{1}, std::chrono::milliseconds{1000});
}

template <class Self>
worker_actor::behavior_type worker_behavior(Self* self, upstream_actor server,
                                            std::shared_ptr<const model::model> model,
                                            std::shared_ptr<const data::dataset> train,
                                            worker_settings settings) {
  auto& st = self->state;
  st.settings = settings;
  st.server = server;
  // A worker that joined mid-run (id >= shards) takes shard id % shards of its own stream.
  st.sampler = std::make_unique<data::shard_sampler>(train->rows, settings.seed,
                                                     settings.id % settings.shards,
                                                     settings.shards, settings.batch);
  st.sampler->seek(settings.start_epoch, settings.start_step);
  st.computed = settings.start_computed;
  st.gradients = settings.gradient_pool
                   ? settings.gradient_pool
                   : std::make_shared<buffer_pool>(static_cast<size_t>(model->num_params()));
  if (settings.network_faults)
    st.link = self->template spawn<caf::linked>(network_link, settings.id, server);
  st.model = std::move(model);
  st.train = std::move(train);
  self->set_down_handler([=](caf::down_msg& msg) {
    if (msg.source == self->state.server.address())
      orphan(self);
  });
  // An exit (its work process stopping it, its link dying) ends it as stop() does: the report
  // first, so that the server has its count of computed gradients.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.reason)
      stop(self, std::move(msg.reason));
  });
  return {
    [=](start_atom) {
      auto& st = self->state;
      if (st.started)
        return;
      st.started = true;
      self->delayed_send(self, tick_interval(st.settings), tick_atom::value);
      join(self, st.server);
    },
    [=](push_atom) {
      auto& st = self->state;
      if (st.held && !st.orphaned) {
        st.delay_debt += std::chrono::steady_clock::now() - st.delay_began - st.delay_scripted;
        auto g = std::move(*st.held);
        st.held.reset();
        push(self, std::move(g));
      }
    },
    [=](warm_atom) {
      // The server's hint that this worker's gradient waits for its round to close: gather
      // the next minibatch meanwhile, so that the next step starts from it. Unless the
      // answer has come already: then the step starts now.
      auto& st = self->state;
      if (!self->mailbox().empty())
        return;
      if (const int64_t* next = st.sampler->peek()) {
        const auto began = std::chrono::steady_clock::now();
        st.next_batch.gather(*st.train, next, st.settings.batch);
        // Computing, not waiting: the answer adds the whole wait that this gather overlaps.
        const auto gathering = std::chrono::steady_clock::now() - began;
        st.compute_time += gathering;
        st.wait_time -= gathering;
        st.next_batch_epoch = st.sampler->epoch();
        st.next_batch_step = st.sampler->step();
      }
    },
    [=](fault_atom, const fault_effect& effect) {
      auto& st = self->state;
      switch (effect.kind) {
        case fault_effect::crash:
          stop(self, make_error(error_code::injected_crash,
                                "worker " + std::to_string(st.settings.id) + " (scenario event "
                                  + std::to_string(effect.event) + ")"));
          return;
        case fault_effect::pause:
          st.pending_pause_ms += effect.duration_ms;
          return;
        case fault_effect::net_delay:
        case fault_effect::net_drop:
          if (st.link)
            self->send(st.link, fault_atom::value, effect);
          return;
        default:
          st.faults.insert_or_assign(
            effect.event,
            worker_state::active_fault{effect,
                                       data::splitmix64{draw_seed(effect, st.settings.id)}});
      }
    },
    [=](heal_atom, int32_t event) {
      auto& st = self->state;
      st.faults.erase(event);
      if (st.link)
        self->send(st.link, heal_atom::value, event);
    },
    [=](rejoin_atom, upstream_actor server) { rejoin(self, std::move(server)); },
    [=](rejoin_atom, upstream_actor server, int64_t epoch, int64_t step) {
      self->state.sampler->seek(epoch, step);
      rejoin(self, std::move(server));
    },
    [=](tick_atom) {
      auto& st = self->state;
      const auto now = std::chrono::steady_clock::now();
      if (st.orphaned && now - st.orphaned_at > st.settings.timeout) {
        stop(self, make_error(error_code::peer_lost,
                              "worker " + std::to_string(st.settings.id)
                                + ": the server is gone and no restart came within "
                                + std::to_string(st.settings.timeout.count()) + " ms"));
        return;
      }
      auto waited = now - st.sent;
      if (st.awaiting && waited > st.settings.timeout) {
        stop(self, caf::make_error(caf::sec::request_timeout,
                                   "worker " + std::to_string(st.settings.id)
                                     + ": the server did not answer a push within "
                                     + std::to_string(st.settings.timeout.count()) + " ms"));
        return;
      }
      self->delayed_send(self, tick_interval(st.settings), tick_atom::value);
    },
  };
}

} // namespace

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self,
                                   upstream_actor server,
                                   std::shared_ptr<const model::model> model,
                                   std::shared_ptr<const data::dataset> train,
                                   worker_settings settings) {
  return worker_behavior(self, std::move(server), std::move(model), std::move(train),
                         std::move(settings));
}

caf::behavior worker_on_multiplexer(worker_broker* self, upstream_actor server,
                                    std::shared_ptr<const model::model> model,
                                    std::shared_ptr<const data::dataset> train,
                                    worker_settings settings) {
  return worker_behavior(self, std::move(server), std::move(model), std::move(train),
                         std::move(settings))
    .unbox();
}

} // namespace psgd
