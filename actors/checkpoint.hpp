// checkpoint: the server's state on disk, written atomically and verified on read.
//
// Contract:
// - write_checkpoint(path, c) writes `path.tmp`, fsyncs it, keeps the current `path` as
//   `path.prev` (rename), renames `path.tmp` to `path` and fsyncs the directory. A crash at
//   any moment leaves at least one complete, verifiable checkpoint among path and path.prev
//   (once one write has completed). Returns "" or a one-line error naming the file; never
//   throws (a state that cannot be serialised, e.g. a non-UTF-8 string, is an error too).
// - read_checkpoint(path) verifies the file (magic, format version, lengths, CRC-32 of
//   everything before the trailer); if `path` is missing, torn or corrupt it falls back to
//   `path.prev` and says so in `note`. Fails (one line naming both files and what is wrong)
//   only when neither is good.
// - No CAF here: the server converts its counters to and from `state` (JSON).
//
// Format (version 1; integers little-endian; layout table in checkpoint.cpp):
//   "PSGDCKPT" | uint32 format version | uint64 J | J bytes state (json dump() text)
//   | uint64 version | uint64 N | N float32 parameters (little-endian)
//   | uint32 CRC-32 (zlib) of every byte before it.
// The reader checks each length against the bytes actually left before allocating, so a
// corrupted count is refused, never allocated. The state round-trips as JSON does: numbers
// compare equal but may change kind (3 written as int reads back as unsigned), and NaN or
// infinite doubles inside it are written as null.
// Thread-safety: none needed (free functions on distinct files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/outcome.hpp"

namespace psgd {

struct checkpoint {
  uint64_t version = 0;        ///< server updates applied
  std::vector<float> params;   ///< the parameters at that version
  nlohmann::json state;        ///< everything else: counters, sampler positions, config
                               ///< fingerprint (written and read back as given)
};

struct loaded_checkpoint {
  checkpoint data;
  std::string file;  ///< the file actually read (path or path.prev)
  std::string note;  ///< empty, or why path was skipped
                     ///< ("x.ckpt: CRC mismatch (torn or corrupt); resumed from x.ckpt.prev")
};

std::string write_checkpoint(const std::string& path, const checkpoint& c);

outcome<loaded_checkpoint> read_checkpoint(const std::string& path);

} // namespace psgd
