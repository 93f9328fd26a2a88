// float_env: the floating-point environment psgd computes in.
//
// Denormal floats (magnitude below 2^-126, ~1.2e-38) are flushed to zero, as results and as
// operands (x86 FTZ and DAZ). Why: with many workers (high staleness) the softmax
// probabilities of very unlikely classes underflow into denormals, and every product that
// touches one ran in microcode, several times slower: async m=64 softmax went from 1.55M to
// 1.13M samples/s, the GEMM kernel's share of the run tripling. Values that small are zero
// to SGD; TensorFlow runs its CPU threads the same way.
//
// Thread-safety: the setting is per thread; each function changes only the calling thread
// (threads it starts afterwards inherit the setting: Linux copies it).
// On targets without SSE control registers the functions do nothing.
// model/ knows nothing of CAF: config/ installs a CAF thread hook that calls
// flush_denormals() on every thread the actor system starts.
#pragma once

namespace psgd::model {

/// From now on, the calling thread flushes denormals to zero.
void flush_denormals();

/// True if the calling thread flushes denormals to zero.
bool denormals_flushed();

/// Flushes denormals on the calling thread while it lives, then restores the previous mode.
class scoped_flush_denormals {
public:
  scoped_flush_denormals();
  ~scoped_flush_denormals();
  scoped_flush_denormals(const scoped_flush_denormals&) = delete;
  scoped_flush_denormals& operator=(const scoped_flush_denormals&) = delete;

private:
  unsigned saved_;
};

} // namespace psgd::model
