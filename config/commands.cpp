#include "config/commands.hpp"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include <fmt/format.h>

namespace psgd {

namespace {

using option_names = std::vector<std::string_view>;

/// What a training run reads: train, serve and launch (the server's side) act on all of it.
const option_names training_options = {
  "mode", "workers", "backup", "batch", "lr", "epochs", "max-updates", "model", "hidden",
  "aggregate", "seed", "staleness-bound", "stale-lr", "simulate-staleness", "track-inclusion",
  "data", "dataset", "loss-subsample", "eval-every", "out", "save", "quiet", "scenario",
  "round-timeout", "round-timeout-policy", "quarantine-after", "divergence-loss", "checkpoint",
  "checkpoint-every", "checkpoint-seconds", "resume", "request-timeout-ms"};

/// How a node of a networked run talks to its peers.
const option_names link_options = {"tls-cert", "tls-key", "tls-passphrase-file", "tls-ca", "heartbeat-ms",
                                   "connection-timeout-ms"};

/// CAF's own flags in the global group: every command has them.
const option_names universal_options = {"help", "long-help", "dump-config", "config-file"};

option_names join(std::initializer_list<option_names> parts) {
  option_names all;
  for (const auto& p : parts)
    all.insert(all.end(), p.begin(), p.end());
  return all;
}

struct command_scope {
  std::string_view command;
  option_names options;
};

const std::vector<command_scope>& scopes() {
  static const std::vector<command_scope> all = {
    {"train", join({training_options, {"placement"}})},
    {"serve", join({training_options, link_options, {"port", "bind", "insecure"}})},
    // launch serves on loopback on a port the OS picks, and deals the workers out itself.
    {"launch", join({training_options, link_options, {"processes", "max-restarts"}})},
    // The server's run_spec sets everything else (mode, model, batch, lr, ...).
    {"work", join({link_options, {"connect", "workers", "data", "request-timeout-ms"}})},
    {"eval", {"load", "data"}},
    // Async with one worker and simulated staleness: no rounds, no bound, no aggregate; only
    // the final evaluation, and its test accuracy and loss are what a point records.
    {"sweep", {"batch", "lr", "epochs", "max-updates", "hidden", "seed", "stale-lr", "data",
               "dataset", "out", "quiet", "scenario", "divergence-loss", "quarantine-after",
               "request-timeout-ms"}},
  };
  return all;
}

const command_scope* find_scope(std::string_view command) {
  for (const auto& s : scopes())
    if (s.command == command)
      return &s;
  return nullptr;
}

bool contains(const option_names& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

/// Where an option that `command` ignores belongs, in words.
std::string instead(std::string_view command, std::string_view name) {
  if (command == "work" && contains(training_options, name)
      && !contains({"out", "save", "quiet"}, name))
    return "the server's run decides it: give it to psgd serve or launch";
  if (command == "sweep" && contains({"mode", "workers", "backup", "simulate-staleness"}, name))
    return "a sweep runs async with one worker and sets the staleness K itself: --staleness";
  if (command == "sweep" && name == "model")
    return "a sweep trains each model of --models";
  if (command == "launch" && contains({"port", "bind", "insecure"}, name))
    return "launch serves on loopback, on a port the OS picks; psgd serve takes it";
  std::vector<std::string> owners;
  for (const auto& s : scopes())
    if (contains(s.options, name))
      owners.push_back("psgd " + std::string{s.command});
  return fmt::format("it is an option of {}", fmt::join(owners, ", "));
}

/// An option's help line in `command`, where it means less than in train.
std::string description_in(std::string_view command, std::string_view name, std::string text) {
  // In work, --workers is how many this process runs, not the run's m (the server's).
  if (command == "work" && name == "workers")
    return "k: workers this process runs (default 2)";
  if (command == "sweep" && name == "dataset")
    return "fashion-mnist|synthetic|auto (default auto: Fashion-MNIST)";
  // A server serves workers: sequential SGD has none.
  if ((command == "serve" || command == "launch") && name == "mode")
    return "sync|async|backup|ssp (default sync)";
  return text;
}

bool is_psgd_option(const caf::config_option& o) {
  return o.category() == "global";
}

std::string_view view(caf::string_view s) {
  return {s.data(), s.size()};
}

} // namespace

std::string caf_key_psgd_sets(const given_options& given) {
  const std::pair<const char*, const char*> keys[] = {
    {"middleman.heartbeat-interval", "--heartbeat-ms"},
    {"middleman.connection-timeout", "--connection-timeout-ms"}};
  for (const auto& [key, option] : keys) {
    const bool in_file = given.config_file.count(key) > 0;
    if (given.command_line.count(key) > 0 || in_file)
      return fmt::format("{}{}: psgd sets it from {} (give that instead)", key,
                         in_file ? " (set in the config file)" : "", option);
  }
  return {};
}

std::string option_name(const std::string& arg) {
  if (arg.size() < 3 || arg.compare(0, 2, "--") != 0)
    return {};
  auto name = arg.substr(2, arg.find('=') - 2);
  return name.rfind("global.", 0) == 0 ? name.substr(7) : name; // CAF's long form
}

bool acts_on(std::string_view command, std::string_view name) {
  const auto* scope = find_scope(command);
  return scope != nullptr && (contains(universal_options, name) || contains(scope->options, name));
}

std::string foreign_option(std::string_view command, const caf::config_option_set& options,
                           const std::vector<std::string>& args) {
  for (const auto& arg : args) {
    const auto name = option_name(arg);
    if (name.empty())
      continue;
    const bool psgd_option = std::any_of(options.begin(), options.end(), [&](const auto& o) {
      return is_psgd_option(o) && view(o.long_name()) == name;
    });
    if (psgd_option && !acts_on(command, name))
      return fmt::format("--{} does nothing in psgd {} ({})", name, command,
                         instead(command, name));
  }
  return {};
}

std::string unused_by_mode(const run_config& run, const given_options& given) {
  // Given, and not a config-file default that the command line's choice of `deciders` left
  // unused.
  auto set = [&](std::string_view name, std::initializer_list<std::string_view> deciders) {
    const std::string key{name};
    if (given.command_line.count(key) > 0)
      return true;
    return given.config_file.count(key) > 0
           && std::none_of(deciders.begin(), deciders.end(), [&](std::string_view d) {
                return given.command_line.count(std::string{d}) > 0;
              });
  };
  // Where the value came from, when the user may not have typed it.
  auto from = [&](std::string_view name) {
    return given.command_line.count(std::string{name}) > 0 ? "" : " (set in the config file)";
  };
  const auto mode = run.parsed_mode;
  const bool rounds = mode == train_mode::sync || mode == train_mode::backup;
  if (mode == train_mode::sequential && run.workers != 1 && set("workers", {"mode"}))
    return fmt::format("--workers{}: sequential SGD is one worker (got {}); use a parallel mode",
                       from("workers"), run.workers);
  auto ignored = [&](std::string_view name, std::string_view why) {
    return fmt::format("--{}{} does nothing in --mode {} ({})", name, from(name), run.mode, why);
  };
  for (std::string_view name : {"placement", "quarantine-after", "request-timeout-ms"})
    if (mode == train_mode::sequential && set(name, {"mode"}))
      return ignored(name, "one loop on one thread: no actors, no server");
  if (mode != train_mode::backup && set("backup", {"mode"}))
    return ignored("backup", "backup workers are backup mode's");
  if (mode != train_mode::ssp && set("staleness-bound", {"mode"}))
    return ignored("staleness-bound", "the bound is ssp's");
  for (std::string_view name : {"aggregate", "round-timeout", "round-timeout-policy"})
    if (!rounds && set(name, {"mode"}))
      return ignored(name, "only sync and backup have rounds");
  if (run.synthetic && set("data", {"model", "dataset"}))
    return fmt::format("--data{} does nothing with synthetic data (--model lsq, --dataset "
                       "synthetic)",
                       from("data"));
  if (run.parsed_model != model::kind::mlp && set("hidden", {"model"}))
    return fmt::format("--hidden{} does nothing with --model {} (only the MLP has hidden units)",
                       from("hidden"), run.model);
  for (std::string_view name : {"checkpoint-every", "checkpoint-seconds"})
    if (run.checkpoint.empty() && set(name, {"checkpoint"}))
      return fmt::format("--{}{} does nothing without --checkpoint FILE", name, from(name));
  return {};
}

std::string command_help(std::string_view command, std::string_view usage,
                         const caf::config_option_set& options) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& o : options) {
    const auto long_name = view(o.long_name());
    if (!is_psgd_option(o) || !acts_on(command, long_name)
        || contains(universal_options, long_name))
      continue;
    auto name = "--" + std::string{long_name};
    if (!o.is_flag())
      name += "=<" + std::string{view(o.type_name())} + ">";
    rows.emplace_back(std::move(name), description_in(command, long_name,
                                                      std::string{view(o.description())}));
  }
  size_t width = 0;
  for (const auto& [name, what] : rows)
    width = std::max(width, name.size());
  std::string text{usage};
  text += "\noptions (also as --name VALUE, or name=value in a --config-file):\n";
  for (const auto& [name, what] : rows)
    text += fmt::format("  {:<{}} : {}\n", name, width, what);
  text += fmt::format("\nCAF's own options (scheduler, middleman, logging): psgd {} --long-help\n",
                      command);
  return text;
}

} // namespace psgd
