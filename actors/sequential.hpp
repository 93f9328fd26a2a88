// Sequential minibatch SGD without actors: the baseline for speed and the reference for
// exactness. Same model, same sampler (worker 0 of 1), same budget rule and the same
// summary as the actor modes, so results compare one to one.
//
// Contract: deterministic in the config; training seconds exclude evaluation pauses; no
// heap allocation per step; a minibatch loss above --divergence-loss (or NaN) stops the run
// with error_code::diverged, as the parameter server does. Not thread-safe (runs on the
// caller's thread).
#pragma once

#include "actors/trainer.hpp"

namespace psgd {

caf::expected<run_summary> run_sequential(const training_job& job);

} // namespace psgd
