// Helpers shared by the test files: temporary directories, IDX/gzip fixtures, the real
// Fashion-MNIST set loaded once per process, and running the psgd binary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace psgd::testing {

/// A fresh directory under /tmp, removed with its content on destruction.
class temp_dir {
public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// Writes `bytes` gzip-compressed to `path`.
void write_gz(const std::string& path, const std::vector<unsigned char>& bytes);
/// An IDX image file (magic 0x803) of `count` images of side x side bytes.
std::vector<unsigned char> idx_images(uint32_t count, uint32_t side, unsigned char fill = 128);
/// An IDX label file (magic 0x801).
std::vector<unsigned char> idx_labels(uint32_t count, unsigned char label = 3);
/// Copies the real Fashion-MNIST files into `dir` (for corrupting one of them).
void copy_fashion_mnist(const std::string& dir);

/// The real Fashion-MNIST set, loaded once per test process (REQUIREs success).
std::shared_ptr<const data::split> fashion_mnist();

struct command_result {
  int exit_code;
  std::string output;  ///< stdout and stderr together
};
/// Runs `psgd <args>` (the binary built with the tests) and collects its output.
command_result run_psgd(const std::string& args);

/// Lines of text, without empty ones.
std::vector<std::string> lines_of(const std::string& text);

} // namespace psgd::testing
