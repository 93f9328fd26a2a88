#include "tests/test_helpers.hpp"

#include "data/synthetic.hpp"

#include <sys/wait.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actors/trainer.hpp"
#include "data/fashion_mnist.hpp"

namespace psgd::testing {

temp_dir::temp_dir() {
  // mkdtemp replaces the trailing six 'X's with a unique suffix.
  std::string tmpl = "/tmp/psgd-test-" + std::string(6, 'X');
  const char* p = mkdtemp(tmpl.data());
  REQUIRE(p != nullptr);
  path_ = p;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

namespace {

void put_be32(std::vector<unsigned char>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>(v >> shift));
}

} // namespace

std::vector<unsigned char> idx_images(uint32_t count, uint32_t side, unsigned char fill) {
  std::vector<unsigned char> out;
  put_be32(out, 0x803);
  put_be32(out, count);
  put_be32(out, side);
  put_be32(out, side);
  out.resize(out.size() + size_t(count) * side * side, fill);
  return out;
}

std::vector<unsigned char> idx_labels(uint32_t count, unsigned char label) {
  std::vector<unsigned char> out;
  put_be32(out, 0x801);
  put_be32(out, count);
  out.resize(out.size() + count, label);
  return out;
}

void copy_fashion_mnist(const std::string& dir) {
  for (auto name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    std::filesystem::copy_file(std::string{PSGD_DATA_DIR} + "/" + name, dir + "/" + name);
}

std::shared_ptr<const data::split> fashion_mnist() {
  static std::mutex mtx;
  static std::shared_ptr<const data::split> cached;
  std::lock_guard<std::mutex> guard{mtx};
  if (!cached) {
    auto loaded = data::load_fashion_mnist(PSGD_DATA_DIR);
    INFO(loaded.error());
    REQUIRE(loaded);
    cached = std::make_shared<const data::split>(std::move(*loaded));
  }
  return cached;
}

command_result run_psgd(const std::string& args) {
  return run_shell(std::string{PSGD_BINARY} + " " + args);
}

command_result run_psgd_interrupted(const std::string& dir, const std::string& args,
                                    const std::string& cue, const std::string& cue_file) {
  const auto script = fmt::format(
    "cd '{0}' && {{ {1} {2} > int.out 2> int.err & pid=$!; "
    "for i in $(seq 1 1200); do grep -qF '{3}' '{4}' 2>/dev/null && touch int.cue && break; "
    "sleep 0.05; done; kill -INT $pid; wait $pid; echo $? > int.rc; }}",
    dir, PSGD_BINARY, args, cue, cue_file);
  REQUIRE(std::system(script.c_str()) == 0);
  INFO(read_file(dir + "/int.err"));
  REQUIRE(std::filesystem::exists(dir + "/int.cue")); // interrupted where the test meant
  std::filesystem::remove(dir + "/int.cue");
  return {std::stoi(read_file(dir + "/int.rc")),
          read_file(dir + "/int.out") + read_file(dir + "/int.err")};
}

std::string expect_interrupted(const std::string& dir, const std::string& args,
                               const std::string& cue, const std::string& cue_file) {
  auto r = run_psgd_interrupted(dir, args, cue, cue_file);
  INFO("psgd " << args << "\n" << r.output);
  CHECK(r.exit_code == 130);
  return r.output;
}

nlohmann::json last_record(const std::string& path) {
  auto lines = lines_of(read_file(path));
  INFO(path);
  REQUIRE_FALSE(lines.empty());
  return nlohmann::json::parse(lines.back());
}

command_result run_shell(const std::string& command) {
  FILE* pipe = popen(("(" + command + ") 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0)
    output.append(buf, n);
  int status = pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, output};
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<const data::split> separable_set() {
  static auto data =
    std::make_shared<const data::split>(data::make_separable(8192, 1024, 32, 10, 4));
  return data;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(line);
  return out;
}

run_config test_config(const std::string& mode, const std::string& model) {
  run_config cfg;
  cfg.mode = mode;
  cfg.model = model;
  cfg.workers = 2;
  cfg.backup = 1;
  cfg.quiet = true;
  cfg.eval_every = 100000000;
  cfg.loss_subsample = 1000;
  return cfg;
}

caf::expected<run_summary> run_job(run_config cfg, std::shared_ptr<const data::split> data,
                                   std::optional<scenario> faults) {
  auto problem = validate(cfg);
  INFO(problem);
  REQUIRE(problem.empty());
  auto job = prepare_job(cfg, std::move(data));
  INFO(job.error());
  REQUIRE(job);
  job->faults = std::move(faults);
  if (job->faults)
    cfg.scenario = "<test>"; // as the CLI would for a scenario run
  psgd_config sys_cfg;
  sys_cfg.fit_scheduler_to(cfg);
  caf::actor_system sys{sys_cfg};
  return run_training(sys, *job);
}

run_summary must_run(run_config cfg, std::shared_ptr<const data::split> data,
                     std::optional<scenario> faults) {
  auto r = run_job(std::move(cfg), std::move(data), std::move(faults));
  if (!r)
    FAIL_CHECK("the run failed: " << render(r.error()));
  REQUIRE(r);
  return std::move(*r);
}

std::string render(const caf::error& err) {
  psgd_config cfg;
  caf::actor_system sys{cfg};
  return sys.render(err);
}

scenario scenario_of(const std::string& json) {
  auto s = parse_scenario(json, "<test>");
  INFO(s.error());
  REQUIRE(s);
  return *s;
}

float max_abs_difference(const run_summary& a, const run_summary& b) {
  const auto& x = a.final_params.params.values();
  const auto& y = b.final_params.params.values();
  REQUIRE(x.size() == y.size());
  float d = 0;
  for (size_t i = 0; i < x.size(); ++i)
    d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}

} // namespace psgd::testing
