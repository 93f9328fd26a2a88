#include "model/float_env.hpp"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace psgd::model {

namespace {

#if defined(__SSE__)
constexpr unsigned ftz_daz = 0x8040u;  // MXCSR bits 15 (flush to zero), 6 (denormals are zero)
unsigned read_mode() { return _mm_getcsr(); }
void write_mode(unsigned mode) { _mm_setcsr(mode); }
#else
constexpr unsigned ftz_daz = 0;
unsigned read_mode() { return 0; }
void write_mode(unsigned) {}
#endif

} // namespace

void flush_denormals() {
  write_mode(read_mode() | ftz_daz);
}

bool denormals_flushed() {
  return ftz_daz != 0 && (read_mode() & ftz_daz) == ftz_daz;
}

scoped_flush_denormals::scoped_flush_denormals() : saved_(read_mode()) {
  flush_denormals();
}

scoped_flush_denormals::~scoped_flush_denormals() {
  write_mode(saved_);
}

} // namespace psgd::model
