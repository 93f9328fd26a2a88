// Parameter files: the final parameters of a run, loadable by `psgd eval --load FILE`.
//
// Format: one header line of JSON, then the parameters as raw little-endian float32:
//   {"format":"psgd-params","format_version":1,"model":"softmax","input_dim":784,
//    "classes":10,"hidden":0,"num_params":7850,"version":5625}\n
//   <num_params * 4 bytes>
// load_params() checks the header, that the spec builds a model with num_params
// parameters, and that exactly that many bytes follow; any mismatch is a one-line error
// naming the file. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/outcome.hpp"
#include "model/model.hpp"

namespace psgd::model {

struct saved_params {
  model_spec spec;
  uint64_t version = 0;   ///< server updates that produced these parameters
  std::vector<float> params;
};

/// Writes the file atomically (temporary file, then rename). Returns an error line or "".
std::string save_params(const std::string& path, const saved_params& p);

outcome<saved_params> load_params(const std::string& path);

} // namespace psgd::model
