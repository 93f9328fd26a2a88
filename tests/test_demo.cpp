// make demo's report, rendered: scripts/demo runs as a user would (in a scratch directory),
// and every plot of its report exists, is non-empty, and shows its axis labels and one series
// per run (per mode).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "actors/report.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd::testing;

namespace {

/// How gnuplot's SVG writes text: XML-escaped.
std::string svg_text(std::string s) {
  std::string out;
  for (char c : s)
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  return out;
}

} // namespace

TEST_CASE("make demo ends with a report whose every plot is drawn, labelled and keyed",
          "[demo][report]") {
  if (std::system("command -v gnuplot > /dev/null") != 0) {
    WARN("gnuplot not installed: the demo's report is not checked");
    return;
  }
  temp_dir dir;
  const std::string source = PSGD_SOURCE_DIR;
  const std::string build = std::filesystem::path(PSGD_BINARY).parent_path().string();
  auto cmd = "cd " + dir.path() + " && ln -s " + source + "/config config && " + source
             + "/scripts/demo " + build + " > demo.out 2> demo.err";
  INFO(read_file(dir.file("demo.err")));
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto out = read_file(dir.file("demo.out"));
  INFO(out);
  REQUIRE_THAT(out, Catch::Contains("report: results/demo/report/index.html"));
  const auto report = dir.file("results/demo/report");
  auto html = read_file(report + "/index.html");
  // Re-derive what the report holds from the demo's own result files, in the demo's order
  // (plots per run are numbered by it).
  std::vector<std::string> files;
  for (std::string run : {"sequential", "sync", "async", "ssp", "backup", "mlp-async",
                          "launch-async", "backup-slow-worker", "backup-example-cost", "sweep"})
    files.push_back(dir.file("results/demo/" + run + ".jsonl"));
  temp_dir again;
  auto contents = psgd::write_report_plots(files, again.path());
  REQUIRE(contents);
  CHECK(contents->plots.size() >= 12);
  for (const auto& plot : contents->plots) {
    INFO(plot.file);
    const auto path = report + "/" + plot.file;
    REQUIRE(std::filesystem::exists(path));
    CHECK(std::filesystem::file_size(path) > 1000);
    CHECK_THAT(html, Catch::Contains(plot.file));
    auto svg = read_file(path);
    CHECK_THAT(svg, Catch::Contains(svg_text(plot.x_label)) && Catch::Contains(svg_text(plot.y_label)));
    CHECK_FALSE(plot.series.empty());
    for (const auto& series : plot.series)
      CHECK_THAT(svg, Catch::Contains(svg_text(series)));
  }
  // One series per mode in the accuracy plots.
  for (std::string mode : {"sequential", "sync", "async", "ssp", "backup", "async net"})
    CHECK_THAT(read_file(report + "/accuracy_vs_updates.svg"), Catch::Contains(mode));
}
