// Helpers shared by the test files: temporary directories, IDX/gzip fixtures, the real
// Fashion-MNIST set loaded once per process, and running the psgd binary.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <optional>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "config/run_config.hpp"
#include "config/scenario.hpp"
#include "data/dataset.hpp"
#include "messages/vocabulary.hpp"

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
/// Runs a shell command and collects its stdout and stderr together.
command_result run_shell(const std::string& command);
/// Runs `psgd <args>` in `dir`, sends it SIGINT once its stderr (or the file `cue_file` in
/// `dir`) shows `cue` (REQUIREd within 60 s), and waits for it: its exit code, and its stdout
/// then its stderr.
command_result run_psgd_interrupted(const std::string& dir, const std::string& args,
                                    const std::string& cue,
                                    const std::string& cue_file = "int.err");
/// The same, and it must exit 130 (stopped by the SIGINT, its results written): its output.
std::string expect_interrupted(const std::string& dir, const std::string& args,
                               const std::string& cue, const std::string& cue_file = "int.err");
/// A whole file as text ("" if it cannot be read).
std::string read_file(const std::string& path);
/// A small separable 10-class set (8192 train, 1024 test rows of 32 features), made once per
/// test process: fast end-to-end runs.
std::shared_ptr<const data::split> separable_set();

/// The last line of a results file (--out), parsed: its summary (REQUIREs one).
nlohmann::json last_record(const std::string& path);

/// Lines of text, without empty ones.
std::vector<std::string> lines_of(const std::string& text);

/// A quiet run of `mode` (m=2, e=1) that evaluates only at the end, on a 1,000-example loss
/// subsample: the base of the end-to-end tests.
run_config test_config(const std::string& mode, const std::string& model = "softmax");

/// Runs a training job as the CLI would: validates `cfg` (REQUIREs it valid), prepares the
/// job on `data` with `faults`, picks the scheduler (psgd_config::fit_scheduler_to) and runs
/// it on a fresh actor system.
caf::expected<run_summary> run_job(run_config cfg, std::shared_ptr<const data::split> data,
                                   std::optional<scenario> faults = std::nullopt);
/// Same; the run must succeed (the test fails with its error otherwise).
run_summary must_run(run_config cfg, std::shared_ptr<const data::split> data,
                     std::optional<scenario> faults = std::nullopt);
/// An error as text (psgd's error category included).
std::string render(const caf::error& err);
/// Parses a scenario given as JSON text (REQUIREs it valid).
scenario scenario_of(const std::string& json);
/// The largest |difference| between two runs' final parameters.
float max_abs_difference(const run_summary& a, const run_summary& b);

} // namespace psgd::testing
