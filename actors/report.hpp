// report: an HTML page of plots and tables from the JSON lines files psgd writes (`--out`).
//
// Contract:
// - write_report(files, dir) reads every file whole before writing anything, then writes
//   dir/data/*.dat (the plotted numbers, one whitespace-separated table per series),
//   dir/plots.gp (one gnuplot script for every plot: `cd dir && gnuplot plots.gp` redraws
//   them), runs gnuplot once on it as a child process (its stderr goes to dir/gnuplot.log),
//   checks that every SVG it listed exists and is non-empty, and writes dir/index.html last.
//   So index.html exists only when every plot it references was drawn (an older index.html
//   from an earlier report is replaced only on success).
// - Input lines: {"type":"eval",...} lines belong to the next {"type":"summary",...} line of
//   the same file (one run); eval lines left at the end of a file without a summary still make
//   a run (labelled by the file's stem, noted in the page). {"type":"sweep_point",...} lines
//   are pooled over all files by (model, K). Empty lines and lines of other types are ignored.
//   Every optional field may be missing: a plot without data is left out and the page says
//   why, in one line per plot.
// - Errors come back as one line, never as an exception: "F: cannot open", "F:LINE: not valid
//   JSON", "F:LINE: not a JSON object", or "psgd report: ..." (no runs, dir not creatable, a
//   file not writable, gnuplot not found, gnuplot failing with its first error line, an SVG
//   missing after gnuplot).
// - Run labels: the mode, " net" for the network transport, " m=M e=E" when runs of the same
//   mode (and scenario) differ in m or e, then the scenario's name; a label still shared by
//   two runs gets " (file stem)", and " #k" as a last resort.
// - Thread-safety: no shared state; concurrent calls are safe with distinct directories.
// - This unit knows only the JSON files: no model/ or data/ types (data/outcome.hpp aside).
#pragma once

#include <string>
#include <vector>

#include "data/outcome.hpp"

namespace psgd {

/// One plot of the report.
struct report_plot {
  std::string file;                 ///< SVG file name, relative to the report's directory
  std::string title;                ///< the plot's title (also its caption's first words)
  std::string caption;              ///< what the plot shows, one or two sentences
  std::vector<std::string> series;  ///< the key entries, in drawing order
  std::string x_label, y_label;
};

/// What a report holds.
struct report_contents {
  std::vector<report_plot> plots;    ///< in page order
  std::vector<std::string> omitted;  ///< "TITLE: why it was left out", one per missing plot
  std::vector<std::string> notes;    ///< input oddities that are not errors (skipped lines...)
};

/// `gnuplot` is the program to run (looked up in PATH unless it contains a '/').
outcome<report_contents> write_report_plots(const std::vector<std::string>& jsonl_files,
                                            const std::string& out_dir,
                                            const std::string& gnuplot = "gnuplot");

/// "FILE: the run failed (ERROR)", for a results file that ends with a failure record
/// ({"type":"failure","error":...}): the page's note and psgd report's terminal line.
std::string failure_note(const std::string& file, const std::string& error);

/// `files` without the ones that name a file given before (the same path, or another path
/// to it): a file given twice was two rows and two curves.
std::vector<std::string> distinct_files(const std::vector<std::string>& files);

/// write_report_plots without the contents: "" on success, else the one-line error.
std::string write_report(const std::vector<std::string>& jsonl_files, const std::string& out_dir);

} // namespace psgd
