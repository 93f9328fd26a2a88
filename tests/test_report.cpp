#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "actors/report.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;
using json = nlohmann::json;

namespace {

bool have_gnuplot() {
  static const bool found = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  return found;
}

// The tests that draw need gnuplot; without it they say so and pass.
#define REQUIRE_GNUPLOT_OR_SKIP()                                                                \
  do {                                                                                           \
    if (!have_gnuplot()) {                                                                       \
      WARN("gnuplot not installed (apt-get install gnuplot-nox): test skipped");                \
      return;                                                                                    \
    }                                                                                            \
  } while (false)

void write_lines(const std::string& path, const std::vector<json>& lines) {
  std::ofstream out{path};
  for (const auto& l : lines)
    out << l.dump() << '\n';
  REQUIRE(out.good());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out{path};
  out << text;
  REQUIRE(out.good());
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json eval_line(double seconds, int updates, double loss, double accuracy) {
  return {{"type", "eval"},       {"seconds", seconds},  {"updates", updates},
          {"samples", updates * 64}, {"train_loss", loss}, {"test_loss", loss},
          {"test_accuracy", accuracy}};
}

std::vector<json> evals(double scale) {
  return {eval_line(0.5 * scale, 100, 0.9, 0.70), eval_line(1.0 * scale, 200, 0.6, 0.78),
          eval_line(1.5 * scale, 300, 0.5, 0.81)};
}

/// A summary with the fields every psgd version writes; `extra` adds or replaces fields.
json summary(const std::string& mode, json extra = json::object()) {
  json s = {{"type", "summary"},
            {"mode", mode},
            {"model", "softmax"},
            {"m", 2},
            {"e", mode == "backup" ? 1 : 0},
            {"b", 32},
            {"lr", 0.05},
            {"seed", 1},
            {"transport", "in-process"},
            {"train_seconds", 1.5},
            {"updates", 300},
            {"samples_per_s", 12800.0},
            {"gradients_applied", 600},
            {"gradients_dropped", mode == "backup" ? 37 : 0},
            {"final_test_accuracy", 0.81},
            {"final_test_loss", 0.5},
            {"staleness_mean", 0.0},
            {"staleness_max", 0},
            {"staleness_histogram", {600}},
            {"workers", json::array({{{"worker", 0}, {"applied", 300}, {"dropped", 0}},
                                     {{"worker", 1}, {"applied", 300}, {"dropped", 0}}})}};
  s.update(extra);
  return s;
}

std::vector<json> run_lines(const std::string& mode, json extra = json::object(),
                            double scale = 1.0) {
  auto lines = evals(scale);
  lines.push_back(summary(mode, std::move(extra)));
  return lines;
}

json async_extra() {
  return {{"staleness_mean", 0.7},
          {"staleness_max", 4},
          {"staleness_histogram", {300, 200, 80, 19, 1}},
          {"workers",
           json::array({{{"worker", 0}, {"applied", 300}, {"staleness_histogram", {200, 80, 20}}},
                        {{"worker", 1},
                         {"applied", 300},
                         {"staleness_histogram", {100, 120, 60, 19, 1}}}})}};
}

json inclusion_extra() {
  return {{"staleness_bound", 2},
          {"staleness_histogram", {400, 150, 50}},
          {"inclusion",
           {{"classes", 3},
            {"received", {100, 100, 100}},
            {"applied", {90, 60, 95}},
            {"rate", {0.9, 0.6, 0.95}},
            {"chi2", 14.2},
            {"dof", 2},
            {"p_value", 0.0008}}}};
}

std::vector<json> sweep_lines() {
  auto p = [](const std::string& model, int k, int seed, json accuracy, bool diverged) {
    return json{{"type", "sweep_point"},       {"model", model},
                {"K", k},                      {"seed", seed},
                {"final_test_accuracy", accuracy}, {"final_test_loss", 0.5},
                {"diverged", diverged}};
  };
  return {p("softmax", 0, 1, 0.80, false), p("softmax", 0, 2, 0.84, false),
          p("softmax", 4, 1, 0.78, false), p("softmax", 4, 2, 0.76, false),
          p("softmax", 32, 1, 0.60, false), p("mlp", 0, 1, 0.85, false),
          p("mlp", 4, 1, 0.50, false),     p("mlp", 4, 2, nullptr, true)};
}

/// How gnuplot's SVG terminal writes a text (it escapes & and <).
std::string svg_text(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '&' ? "&amp;" : c == '<' ? "&lt;" : std::string(1, c);
  return "<text>" + out + "</text>";
}

const report_plot& plot_named(const report_contents& r, const std::string& file) {
  auto it = std::find_if(r.plots.begin(), r.plots.end(),
                         [&](const report_plot& p) { return p.file == file; });
  REQUIRE(it != r.plots.end());
  return *it;
}

bool mentions(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

/// Every plot is an SVG that shows its title, axis labels and key entries.
void check_drawn(const std::string& dir, const report_contents& r) {
  const auto html = slurp(dir + "/index.html");
  for (const auto& p : r.plots) {
    INFO(p.file);
    const auto svg = slurp(dir + "/" + p.file);
    REQUIRE(!svg.empty());
    CHECK(svg.find(svg_text(p.title)) != std::string::npos);
    CHECK(svg.find(svg_text(p.x_label)) != std::string::npos);
    CHECK(svg.find(svg_text(p.y_label)) != std::string::npos);
    CHECK(!p.series.empty());
    for (const auto& s : p.series)
      CHECK(svg.find(svg_text(s)) != std::string::npos);
    CHECK(html.find("src=\"" + p.file + "\"") != std::string::npos);
  }
}

} // namespace

TEST_CASE("the report draws every plot with its axis labels and one series per run",
          "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  write_lines(dir.file("sync.jsonl"), run_lines("sync"));
  write_lines(dir.file("async.jsonl"), run_lines("async", async_extra(), 0.5));
  write_lines(dir.file("backup.jsonl"), run_lines("backup", json::object(), 0.8));
  write_lines(dir.file("ssp.jsonl"), run_lines("ssp", inclusion_extra(), 0.6));
  write_lines(dir.file("sweep.jsonl"), sweep_lines());
  const auto out = dir.file("report");
  auto r = write_report_plots({dir.file("sync.jsonl"), dir.file("async.jsonl"),
                               dir.file("backup.jsonl"), dir.file("ssp.jsonl"),
                               dir.file("sweep.jsonl")},
                              out);
  REQUIRE(r);

  std::vector<std::string> files;
  for (const auto& p : r->plots)
    files.push_back(p.file);
  CHECK(files == std::vector<std::string>{"accuracy_vs_seconds.svg", "accuracy_vs_updates.svg",
                                          "loss_vs_seconds.svg", "loss_vs_updates.svg",
                                          "staleness.svg", "staleness_workers_run2.svg",
                                          "time_per_update.svg", "dropped_share.svg",
                                          "staleness_sweep.svg", "inclusion.svg"});
  check_drawn(out, *r);

  const std::vector<std::string> modes = {"sync", "async", "backup", "ssp"};
  for (const auto* f : {"accuracy_vs_seconds.svg", "accuracy_vs_updates.svg",
                        "loss_vs_seconds.svg", "loss_vs_updates.svg", "time_per_update.svg",
                        "dropped_share.svg"})
    CHECK(plot_named(*r, f).series == modes);
  CHECK(plot_named(*r, "staleness.svg").series == std::vector<std::string>{"async", "ssp"});
  CHECK(plot_named(*r, "staleness_workers_run2.svg").series ==
        std::vector<std::string>{"worker 0", "worker 1"});
  CHECK(plot_named(*r, "staleness_sweep.svg").series ==
        std::vector<std::string>{"mlp", "softmax"});
  CHECK(plot_named(*r, "inclusion.svg").series ==
        std::vector<std::string>{"ssp (chi2 p=0.0008)"});
  // The ssp run has no per-worker histograms: its plot is left out, with the reason.
  REQUIRE(r->omitted.size() == 1);
  CHECK(r->omitted[0] ==
        "Staleness per worker: ssp: no per-worker staleness histograms in the summary");

  const auto html = slurp(out + "/index.html");
  CHECK(html.find("<h2>Runs</h2>") != std::string::npos);
  CHECK(html.find("<th>final test accuracy</th>") != std::string::npos);
  CHECK(html.find("<td>0.8100</td>") != std::string::npos);
  CHECK(html.find("<h2>Staleness sweep</h2>") != std::string::npos);
  CHECK(html.find("<th>mean accuracy</th>") != std::string::npos);
  CHECK(html.find("<td>14.2</td><td>2</td><td>0.0008</td><td>uniform rejected at 5%</td>") !=
        std::string::npos);
  CHECK(html.find("Plots left out") != std::string::npos);
  CHECK(html.find(dir.file("sweep.jsonl") + ": 8 sweep points") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);

  // gnuplot had nothing to complain about, and the script redraws the plots by itself.
  CHECK(slurp(out + "/gnuplot.log").find("warning") == std::string::npos);
  std::filesystem::remove(out + "/staleness.svg");
  CHECK(std::system(("cd '" + out + "' && gnuplot plots.gp 2>/dev/null").c_str()) == 0);
  CHECK(std::filesystem::file_size(out + "/staleness.svg") > 0);
}

TEST_CASE("the sweep table pools seeds by model and K and counts diverged runs", "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  write_lines(dir.file("sweep.jsonl"), sweep_lines());
  auto r = write_report_plots({dir.file("sweep.jsonl")}, dir.file("out"));
  REQUIRE(r);  // a sweep alone is a report
  REQUIRE(r->plots.size() == 1);
  CHECK(r->plots[0].file == "staleness_sweep.svg");
  CHECK(mentions(r->omitted, "Test accuracy vs training time: no eval line"));
  const auto html = slurp(dir.file("out/index.html"));
  // model, K, runs with an accuracy, mean, min, max, diverged
  CHECK(html.find("<tr><td>softmax</td><td>0</td><td>2</td><td>0.8200</td><td>0.8000</td>"
                  "<td>0.8400</td><td>0</td></tr>") != std::string::npos);
  CHECK(html.find("<tr><td>mlp</td><td>4</td><td>1</td><td>0.5000</td><td>0.5000</td>"
                  "<td>0.5000</td><td>1</td></tr>") != std::string::npos);
  const auto data = slurp(dir.file("out/data/sweep2.dat"));  // softmax, after mlp
  CHECK(data.find("1 0.82 0.8 0.84 0\n") != std::string::npos);
  CHECK(data.find("33 0.6 0.6 0.6 32\n") != std::string::npos);
}

TEST_CASE("sweeps of other settings are other curves, and a point read twice counts once",
          "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  auto at_lr = [](double lr) {
    auto lines = sweep_lines();
    for (auto& l : lines)
      l["lr"] = lr;
    return lines;
  };
  write_lines(dir.file("lr01.jsonl"), at_lr(0.1));
  write_lines(dir.file("lr002.jsonl"), at_lr(0.02));
  // Before: pooled by (model, K) alone, two runs of softmax K=0 became four "seeds", and the
  // same file twice doubled every count.
  auto r = write_report_plots({dir.file("lr01.jsonl"), dir.file("lr002.jsonl"),
                               dir.file("lr01.jsonl")},
                              dir.file("out"));
  REQUIRE(r);
  const auto html = slurp(dir.file("out/index.html"));
  CHECK(html.find("<tr><td>softmax (lr 0.1, b -, - epochs)</td><td>0</td><td>2</td>")
        != std::string::npos);
  CHECK(html.find("<tr><td>softmax (lr 0.02, b -, - epochs)</td><td>0</td><td>2</td>")
        != std::string::npos);
}

TEST_CASE("runs are labelled by mode, transport, m and e, scenario, then file", "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  write_lines(dir.file("a2.jsonl"), run_lines("async", {{"m", 2}}));
  write_lines(dir.file("a4.jsonl"), run_lines("async", {{"m", 4}}));
  write_lines(dir.file("net.jsonl"), run_lines("sync", {{"transport", "network"}}));
  write_lines(dir.file("slow.jsonl"),
              run_lines("sync", {{"transport", "network"}, {"scenario", "it's <b>&\"slow\""}}));
  write_lines(dir.file("first.jsonl"), run_lines("backup"));
  write_lines(dir.file("second.jsonl"), run_lines("backup"));
  write_lines(dir.file("lsq.jsonl"), run_lines("sequential", {{"model", "lsq"}}));
  write_lines(dir.file("stopped.jsonl"), run_lines("ssp", {{"interrupted", true}}));
  auto r = write_report_plots({dir.file("a2.jsonl"), dir.file("a4.jsonl"), dir.file("net.jsonl"),
                               dir.file("slow.jsonl"), dir.file("first.jsonl"),
                               dir.file("second.jsonl"), dir.file("stopped.jsonl"),
                               dir.file("lsq.jsonl")},
                              dir.file("out it's"));  // gnuplot must find it anyway
  REQUIRE(r);
  const std::vector<std::string> labels = {"async m=2 e=0",
                                           "async m=4 e=0",
                                           "sync net",
                                           "sync net it's <b>&\"slow\"",
                                           "backup (first)",
                                           "backup (second)",
                                           "ssp (interrupted)",
                                           "sequential"};
  CHECK(plot_named(*r, "loss_vs_updates.svg").series == labels);
  // Least squares has no accuracy: left out of the accuracy plots, and the caption says so.
  const auto& accuracy = plot_named(*r, "accuracy_vs_seconds.svg");
  CHECK(accuracy.series == std::vector<std::string>(labels.begin(), labels.end() - 1));
  CHECK(accuracy.caption.find("Left out (least squares, no accuracy): sequential.") !=
        std::string::npos);
  check_drawn(dir.file("out it's"), *r);  // the quote, < and & reach the SVG intact
  const auto html = slurp(dir.file("out it's/index.html"));
  CHECK(html.find("<td>sync net it&#39;s &lt;b&gt;&amp;&quot;slow&quot;</td>") !=
        std::string::npos);
  CHECK(html.find("<b>&") == std::string::npos);
  // Staleness only where gradients are applied on arrival, as in the terminal table.
  const auto row_of = [&](const std::string& label) {
    auto at = html.find("<td>" + label + "</td>");
    REQUIRE(at != std::string::npos);
    return html.substr(at, html.find("</tr>", at) - at);
  };
  INFO(row_of("sync net"));
  CHECK_THAT(row_of("sync net"), Catch::EndsWith("<td>-</td><td>0</td>"));
}

TEST_CASE("missing optional data leaves plots out, each with a one-line reason", "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  // An older summary: no staleness histogram, no workers, no inclusion; and a run cut short
  // (eval lines, no summary).
  auto old = summary("sync");
  for (const auto* key : {"staleness_histogram", "workers", "gradients_applied"})
    old.erase(key);
  auto lines = evals(1.0);
  lines.push_back(old);
  write_lines(dir.file("old.jsonl"), lines);
  write_lines(dir.file("cut.jsonl"), evals(2.0));
  // A failed run: its evaluations, then why (psgd's failure record).
  auto failed = evals(3.0);
  failed.push_back({{"type", "failure"}, {"error", "peer_lost: every worker was lost"}});
  write_lines(dir.file("failed.jsonl"), failed);
  auto r = write_report_plots({dir.file("old.jsonl"), dir.file("cut.jsonl"),
                               dir.file("failed.jsonl")},
                              dir.file("out"));
  REQUIRE(r);
  std::vector<std::string> files;
  for (const auto& p : r->plots)
    files.push_back(p.file);
  CHECK(files == std::vector<std::string>{"accuracy_vs_seconds.svg", "accuracy_vs_updates.svg",
                                          "loss_vs_seconds.svg", "loss_vs_updates.svg",
                                          "time_per_update.svg"});
  CHECK(plot_named(*r, "accuracy_vs_updates.svg").series ==
        std::vector<std::string>{"sync", "cut", "failed"});
  CHECK(r->omitted == std::vector<std::string>{
                        "Staleness of applied gradients: no async or ssp run, and no run with "
                        "nonzero staleness",
                        "Staleness per worker: no async or ssp run, and no run with nonzero "
                        "staleness",
                        "Share of dropped gradients: no summary with gradients_applied and "
                        "gradients_dropped",
                        "Final test accuracy vs simulated staleness K: no sweep_point lines",
                        "Per-class inclusion rate: no run with an \"inclusion\" record"});
  CHECK(mentions(r->notes, "cut.jsonl: 3 eval lines without a summary line"));
  CHECK(mentions(r->notes, "failed.jsonl: the run failed (peer_lost: every worker was lost): 3 "
                           "eval lines plotted"));
  check_drawn(dir.file("out"), *r);
  const auto html = slurp(dir.file("out/index.html"));
  for (auto o : r->omitted) {
    // The page escapes the quotes.
    for (size_t at; (at = o.find('"')) != std::string::npos;)
      o.replace(at, 1, "&quot;");
    CHECK(html.find("<li>" + o + "</li>") != std::string::npos);
  }
  CHECK(html.find("<h2>Staleness sweep</h2>") == std::string::npos);
}

TEST_CASE("a run whose update count goes back (a server restart) is noted", "[report]") {
  REQUIRE_GNUPLOT_OR_SKIP();
  testing::temp_dir dir;
  // After the restart the evaluations count from the checkpoint's update on.
  write_lines(dir.file("restarted.jsonl"),
              {eval_line(0.5, 100, 0.9, 0.70), eval_line(1.0, 200, 0.6, 0.78),
               eval_line(1.6, 150, 0.6, 0.77), eval_line(2.0, 300, 0.5, 0.81), summary("sync")});
  write_lines(dir.file("plain.jsonl"), run_lines("async", async_extra()));
  auto r = write_report_plots({dir.file("restarted.jsonl"), dir.file("plain.jsonl")},
                              dir.file("out"));
  REQUIRE(r);
  CHECK(r->notes == std::vector<std::string>{
                      "sync: the update count goes back once (the server restarted from its "
                      "checkpoint and redid the updates after it): its curves against updates "
                      "fold back there, those against seconds do not"});
  CHECK(slurp(dir.file("out/index.html")).find("the update count goes back once")
        != std::string::npos);
}

TEST_CASE("bad inputs give one clear error line and no page", "[report]") {
  testing::temp_dir dir;
  const auto out = dir.file("out");
  auto error_of = [&](const std::vector<std::string>& files) {
    auto r = write_report_plots(files, out);
    REQUIRE(!r);
    CHECK(r.error().find('\n') == std::string::npos);
    CHECK(!std::filesystem::exists(out + "/index.html"));
    return r.error();
  };
  write_lines(dir.file("good.jsonl"), run_lines("sync"));

  const auto missing = dir.file("missing.jsonl");
  CHECK(error_of({dir.file("good.jsonl"), missing}) == missing + ": cannot open");

  write_text(dir.file("bad.jsonl"), eval_line(1, 1, 1, 1).dump() + "\n{\"type\": \"eval\",\n");
  CHECK(error_of({dir.file("bad.jsonl")}) == dir.file("bad.jsonl") + ":2: not valid JSON");

  write_text(dir.file("array.jsonl"), "\n[1, 2]\n");
  CHECK(error_of({dir.file("array.jsonl")}) == dir.file("array.jsonl") + ":2: not a JSON object");

  write_text(dir.file("empty.jsonl"), "");
  write_text(dir.file("other.jsonl"), "{\"type\": \"progress\"}\n");
  CHECK(error_of({dir.file("empty.jsonl"), dir.file("other.jsonl")}) ==
        "psgd report: no runs in " + dir.file("empty.jsonl") + ", " + dir.file("other.jsonl") +
          " (no summary, eval or sweep_point lines)");
  CHECK(error_of({}) == "psgd report: no input files");

  // The output directory cannot be made under a regular file.
  auto r = write_report_plots({dir.file("good.jsonl")}, dir.file("good.jsonl") + "/report");
  REQUIRE(!r);
  CHECK(r.error().rfind("psgd report: cannot create " + dir.file("good.jsonl") + "/report: ", 0) ==
        0);
  CHECK(write_report({missing}, out) == missing + ": cannot open");
}

TEST_CASE("a missing or failing gnuplot is one clear error line", "[report]") {
  testing::temp_dir dir;
  write_lines(dir.file("run.jsonl"), run_lines("sync"));
  auto r = write_report_plots({dir.file("run.jsonl")}, dir.file("out"), "/nonexistent/gnuplot");
  REQUIRE(!r);
  CHECK(r.error() == "psgd report: gnuplot not found (apt-get install gnuplot-nox)");
  // The data and the script are there, for a gnuplot installed later.
  CHECK(std::filesystem::file_size(dir.file("out/plots.gp")) > 0);
  CHECK(std::filesystem::file_size(dir.file("out/data/run1.dat")) > 0);

  const auto fake = dir.file("fake-gnuplot");
  write_text(fake, "#!/bin/sh\necho >&2\necho '\"plots.gp\" line 7: no such thing' >&2\n"
                   "echo 'second line' >&2\nexit 1\n");
  REQUIRE(chmod(fake.c_str(), 0755) == 0);
  r = write_report_plots({dir.file("run.jsonl")}, dir.file("out"), fake);
  REQUIRE(!r);
  CHECK(r.error() == "psgd report: gnuplot failed (exit code 1): \"plots.gp\" line 7: no such "
                     "thing");

  // A gnuplot that succeeds without drawing: the missing SVG is named.
  write_text(fake, "#!/bin/sh\nexit 0\n");
  r = write_report_plots({dir.file("run.jsonl")}, dir.file("out"), fake);
  REQUIRE(!r);
  CHECK(r.error().rfind("psgd report: gnuplot drew no accuracy_vs_seconds.svg (see ", 0) == 0);
}
