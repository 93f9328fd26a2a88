// What a psgd binary is: its version, the commit it was built from, the libraries it was
// built against, and whether it was built for this machine's CPU only (-march=native).
//
// Contract: build_info() is constant for a binary (`git describe --dirty` at build time;
// "unknown" outside a git checkout) and is what `psgd --version` prints and every results
// summary records ("build"), so a figure can be traced to the code that produced it.
// Thread-safe.
#pragma once

#include <string>

namespace psgd {

/// "0.1.0"
const char* psgd_version();

/// The commit, e.g. "8c53cdb" or "8c53cdb-dirty" (uncommitted changes), or "unknown".
const char* psgd_commit();

/// "psgd 0.1.0 (commit 8c53cdb, CAF 0.17.6, Eigen 3.4.0, fmt 9.1.0, -march=native)"
std::string build_info();

} // namespace psgd
