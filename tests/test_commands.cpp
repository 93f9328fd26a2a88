// Which options each command acts on, and the options a run's mode ignores.
#include <catch2/catch.hpp>

#include <set>

#include "config/commands.hpp"
#include "config/run_config.hpp"

using namespace psgd;

namespace {

const std::vector<std::string> commands = {"train", "serve", "launch", "work", "eval", "sweep"};

std::string first_foreign(const std::string& command, std::vector<std::string> args) {
  psgd_config cfg;
  return foreign_option(command, cfg.options(), join_option_values(cfg.options(), args));
}

} // namespace

TEST_CASE("every psgd option belongs to some command", "[commands]") {
  // A new option must be given a scope, or every command would refuse it.
  psgd_config cfg;
  for (const auto& o : cfg.options()) {
    if (o.category() != "global")
      continue;
    const std::string name(o.long_name().begin(), o.long_name().end());
    INFO("--" << name);
    bool somewhere = false;
    for (const auto& c : commands)
      somewhere |= acts_on(c, name);
    CHECK(somewhere);
  }
  CHECK_FALSE(acts_on("fly", "lr"));
}

TEST_CASE("an option a command ignores is named with where it belongs", "[commands]") {
  CHECK(first_foreign("train", {"--lr", "0.5", "--mode=async"}).empty());
  CHECK(first_foreign("work", {"--connect", "h:1", "--workers", "2", "--tls-ca=x"}).empty());
  // CAF's own options are nobody's to refuse.
  CHECK(first_foreign("eval", {"--load=x", "--scheduler.max-threads=2", "--help"}).empty());
  CHECK(first_foreign("work", {"--connect=h:1", "--lr=0.5"})
        == "--lr does nothing in psgd work (the server's run decides it: give it to psgd serve "
           "or launch)");
  CHECK(first_foreign("work", {"--port=7000"})
        == "--port does nothing in psgd work (it is an option of psgd serve)");
  CHECK(first_foreign("train", {"--load", "x.params"})
        == "--load does nothing in psgd train (it is an option of psgd eval)");
  CHECK(first_foreign("train", {"--insecure"})
        == "--insecure does nothing in psgd train (it is an option of psgd serve)");
  CHECK_THAT(first_foreign("launch", {"--port", "7000"}),
             Catch::Contains("--port does nothing in psgd launch")
               && Catch::Contains("psgd serve takes it"));
  CHECK_THAT(first_foreign("sweep", {"--model=mlp"}), Catch::Contains("--models"));
  CHECK_THAT(first_foreign("eval", {"--load=x", "--epochs=2"}),
             Catch::Contains("--epochs does nothing in psgd eval"));
  CHECK_THAT(first_foreign("train", {"--global.connect=h:1"}),
             Catch::Contains("--connect does nothing in psgd train"));
  // A value that looks like an option is the option's value, not an option.
  CHECK(first_foreign("train", {"--out", "--load"}).empty());
}

TEST_CASE("a command's help lists its own options", "[commands]") {
  psgd_config cfg;
  auto work = command_help("work", "usage: psgd work\n", cfg.options());
  CHECK_THAT(work, Catch::StartsWith("usage: psgd work\n") && Catch::Contains("--connect=<")
                     && Catch::Contains("--heartbeat-ms=<") && Catch::Contains("--long-help"));
  CHECK_THAT(work, !Catch::Contains("--lr") && !Catch::Contains("--mode"));
  auto train = command_help("train", "usage: psgd train\n", cfg.options());
  CHECK_THAT(train, Catch::Contains("--aggregate=<string>") && Catch::Contains("  --stale-lr ")
                      && !Catch::Contains("--connect") && !Catch::Contains("--help"));
}

TEST_CASE("an option the run's mode ignores is refused", "[commands]") {
  auto problem = [](const std::string& mode, std::set<std::string> given,
                    std::string checkpoint = {}) {
    run_config run;
    run.mode = mode;
    run.workers = 4;
    run.checkpoint = checkpoint;
    REQUIRE(validate(run).empty());
    return unused_by_mode(run, given_options{given, {}});
  };
  CHECK_THAT(problem("sequential", {"workers"}), Catch::Contains("--workers: sequential SGD"));
  CHECK(problem("sequential", {}).empty()); // the default m=2 is not the user's
  CHECK_THAT(problem("sequential", {"placement"}),
             Catch::Contains("--placement does nothing in --mode sequential"));
  CHECK(problem("async", {"placement", "quarantine-after", "request-timeout-ms"}).empty());
  CHECK(problem("async", {"workers"}).empty());
  CHECK(problem("async", {"backup"}) == "--backup does nothing in --mode async (backup workers "
                                        "are backup mode's)");
  CHECK(problem("backup", {"backup", "aggregate", "round-timeout"}).empty());
  CHECK_THAT(problem("sync", {"staleness-bound"}), Catch::Contains("ssp"));
  CHECK(problem("ssp", {"staleness-bound"}).empty());
  CHECK_THAT(problem("async", {"aggregate"}), Catch::Contains("only sync and backup have rounds"));
  CHECK_THAT(problem("ssp", {"round-timeout-policy"}), Catch::Contains("--round-timeout-policy"));
  CHECK_THAT(problem("sync", {"checkpoint-every"}),
             Catch::Contains("--checkpoint-every does nothing without --checkpoint"));
  CHECK(problem("sync", {"checkpoint-every"}, "/tmp/x.ckpt").empty());
  CHECK_THAT(problem("sync", {"hidden"}), Catch::Contains("--hidden does nothing with --model softmax"));
}

TEST_CASE("a config file's key counts unless the command line chose what decides it",
          "[commands]") {
  run_config run;
  run.mode = "sync";
  REQUIRE(validate(run).empty());
  // The file says mode="backup", backup=1; the command line says --mode sync: a default the
  // user overrode (before, refused), not a mistake.
  CHECK(unused_by_mode(run, given_options{{"mode"}, {"mode", "backup"}}).empty());
  // The file alone: its own two keys disagree.
  CHECK(unused_by_mode(run, given_options{{}, {"mode", "backup"}})
        == "--backup (set in the config file) does nothing in --mode sync (backup workers are "
           "backup mode's)");
  CHECK(unused_by_mode(run, given_options{{"model"}, {"hidden"}}).empty());
}
