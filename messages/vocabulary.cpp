#include "messages/vocabulary.hpp"

#include <cstring>

#include <caf/make_message.hpp>

namespace psgd {

const std::vector<float>& float_buffer::values() const {
  static const std::vector<float> empty_values;
  return ptr ? *ptr : empty_values;
}

std::string to_string(reject_reason r) {
  switch (r) {
    case reject_reason::wrong_length: return "wrong_length";
    case reject_reason::non_finite: return "non_finite";
    case reject_reason::duplicate: return "duplicate";
    case reject_reason::quarantined: return "quarantined";
    case reject_reason::count_: break;
  }
  return "?";
}

int64_t worker_stats::rejected_total() const {
  int64_t n = 0;
  for (auto r : rejected)
    n += r;
  return n;
}

bool operator==(const float_buffer& x, const float_buffer& y) {
  return x.size() == y.size()
         && (x.size() == 0 || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
}

std::string to_string(error_code x) {
  switch (x) {
    case error_code::none: return "none";
    case error_code::training_finished: return "training_finished";
    case error_code::not_a_member: return "not_a_member";
    case error_code::peer_lost: return "peer_lost";
    case error_code::rejected: return "rejected";
    case error_code::injected_crash: return "injected_crash";
    case error_code::refused: return "refused";
    case error_code::round_timeout: return "round_timeout";
    case error_code::diverged: return "diverged";
    case error_code::lost_in_network: return "lost_in_network";
    case error_code::interrupted: return "interrupted";
  }
  return "unknown";
}

caf::error make_error(error_code x, std::string context) {
  if (context.empty())
    return caf::error{static_cast<uint8_t>(x), psgd_error_atom::value};
  return caf::error{static_cast<uint8_t>(x), psgd_error_atom::value,
                    caf::make_message(std::move(context))};
}

void register_vocabulary(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::psgd>();
  // (0.17's add_error_category<T> does not compile: pass the renderer directly.)
  cfg.add_error_category(psgd_error_atom::value,
                         [](uint8_t code, caf::atom_value, const caf::message& context) {
                           auto text = to_string(static_cast<error_code>(code));
                           if (context.match_elements<std::string>())
                             text += ": " + context.get_as<std::string>(0);
                           return text;
                         });
}

} // namespace psgd
