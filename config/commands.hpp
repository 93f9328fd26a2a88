// commands: which of psgd's options each command acts on.
//
// Contract:
// - Every psgd command (train, serve, work, launch, eval, sweep) parses the same psgd_config,
//   but acts on only some of its options: work takes the run from the server it joins, eval
//   reads only --load and --data, launch picks its own port. An option given to a command
//   that would ignore it is refused (`foreign_option`): a user who gives one expects it to
//   act, and before, `psgd work --lr 0.5` ran without a word at the server's lr.
// - unused_by_mode refuses, in the same way, an option the run's mode ignores (sequential
//   SGD with --workers 4 ran one worker without a word).
// - `command_help` lists a command's own options only, as CAF formats them.
// - Only the options of psgd_config's "global" group are scoped; CAF's own (scheduler.*,
//   middleman.*, ...) pass to every command. Config files are not scoped: one file may serve
//   several commands (serve and work), and a key there that one of them ignores is no error.
// Stateless; thread-safe.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <caf/config_option_set.hpp>

#include "config/run_config.hpp"

namespace psgd {

/// The option an argument names ("lr" for --lr=0.5, --lr or --global.lr=0.5), or empty for
/// an argument that is no option.
std::string option_name(const std::string& arg);

/// Whether `command` acts on the option `name` (its long name, without dashes). False for
/// a command psgd does not have.
bool acts_on(std::string_view command, std::string_view name);

/// The first psgd option among `args` (--name=VALUE or --name, as join_option_values leaves
/// them) that `command` does not act on, as one line naming it, the command and what to use
/// instead; empty if every option acts.
std::string foreign_option(std::string_view command, const caf::config_option_set& options,
                           const std::vector<std::string>& args);

/// The options a command was given, by name ("lr", "scheduler.policy"), and where.
struct given_options {
  std::set<std::string> command_line;  ///< --name, --name=V, --global.name=V
  std::set<std::string> config_file;   ///< its keys ("section.key" outside the global one)
};

/// A CAF key that psgd sets itself from its own option (middleman.heartbeat-interval from
/// --heartbeat-ms, middleman.connection-timeout from --connection-timeout-ms), given on the
/// command line or in the config file, as one line naming psgd's option; empty if none.
/// Before, such a value was accepted and silently replaced.
std::string caf_key_psgd_sets(const given_options& given);

/// The first option given that the run's mode ignores, as one line; empty if none. A
/// config-file key counts unless the command line set what decides it (the mode, the
/// model, the dataset, --checkpoint): a file's backup=1 is a default that a --mode sync
/// on the command line leaves unused, not a mistake. --workers other than 1, --placement, --quarantine-after and
/// --request-timeout-ms in sequential mode; --backup outside backup mode;
/// --staleness-bound outside ssp; --aggregate and --round-timeout(-policy) outside the modes
/// with rounds (sync, backup); --hidden with a model other than the MLP; --data with
/// synthetic data; --checkpoint-every/-seconds without --checkpoint. After
/// validate().
std::string unused_by_mode(const run_config& run, const given_options& given);

/// `usage` and then the options `command` acts on, one per line with its type and its
/// description (which states its default), and where CAF's own options are listed.
std::string command_help(std::string_view command, std::string_view usage,
                         const caf::config_option_set& options);

} // namespace psgd
