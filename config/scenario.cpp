#include "config/scenario.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace psgd {

using json = nlohmann::json;

std::string to_string(fault_kind k) {
  switch (k) {
    case fault_kind::slow: return "slow";
    case fault_kind::example_cost: return "example_cost";
    case fault_kind::pause: return "pause";
    case fault_kind::crash: return "crash";
    case fault_kind::join: return "join";
    case fault_kind::server_crash: return "server_crash";
    case fault_kind::net_delay: return "net_delay";
    case fault_kind::net_drop: return "net_drop";
  }
  return "?";
}

std::string to_string(const fault_point& p) {
  if (p.in == fault_point::unit::seconds)
    return fmt::format("{} s", p.value);
  return fmt::format("update {}", p.value);
}

// -- delay_distribution ----------------------------------------------------------------------

namespace {

/// One draw, uncapped.
double raw_draw(const delay_distribution& d, data::splitmix64& rng) {
  using f = delay_distribution::family;
  switch (d.dist) {
    case f::constant: return d.a;
    case f::uniform: return d.a + (d.b - d.a) * rng.uniform();
    // 1 - u is in (0, 1]: the logarithm stays finite, the power is > 0 (or underflows to 0,
    // and the draw is infinite: capped below).
    case f::exponential: return -d.a * std::log(1.0 - rng.uniform());
    case f::lognormal: return d.a * std::exp(d.b * rng.normal());
    case f::pareto: return d.a / std::pow(1.0 - rng.uniform(), 1.0 / d.b);
  }
  return 0;
}

} // namespace

double delay_distribution::draw(data::splitmix64& rng) const {
  // The tails are unbounded even with bounded parameters (pareto with a small shape draws
  // infinity): a wait beyond the cap would overflow the worker's timer and not happen.
  return std::min(raw_draw(*this, rng), max_duration_ms);
}

double delay_distribution::mean() const {
  using f = family;
  switch (dist) {
    case f::constant: return a;
    case f::uniform: return (a + b) / 2;
    case f::exponential: return a;
    case f::lognormal: return a * std::exp(b * b / 2);
    case f::pareto: return b > 1 ? a * b / (b - 1) : std::numeric_limits<double>::infinity();
  }
  return 0;
}

std::string delay_distribution::describe() const {
  using f = family;
  switch (dist) {
    case f::constant: return fmt::format("constant({} ms)", a);
    case f::uniform: return fmt::format("uniform({} to {} ms)", a, b);
    case f::exponential: return fmt::format("exponential(mean {} ms)", a);
    case f::lognormal: return fmt::format("lognormal(median {} ms, sigma {})", a, b);
    case f::pareto: return fmt::format("pareto(scale {} ms, shape {})", a, b);
  }
  return "?";
}

// -- worker_set ------------------------------------------------------------------------------

std::vector<int32_t> worker_set::resolve(int n, data::splitmix64& rng) const {
  std::vector<int32_t> everyone;
  for (int32_t i = 0; i < n; ++i)
    everyone.push_back(i);
  if (all || (random > 0 && random >= n))
    return everyone;
  if (random > 0) {
    // Partial Fisher-Yates: the first `random` slots become a uniform sample without
    // replacement, drawn with below() so that it reproduces on every platform.
    for (int i = 0; i < random; ++i) {
      auto j = i + static_cast<int>(rng.below(static_cast<uint64_t>(n - i)));
      std::swap(everyone[i], everyone[j]);
    }
    everyone.resize(random);
    std::sort(everyone.begin(), everyone.end());
    return everyone;
  }
  // check_workers() refuses ids the run never has; those >= n are workers that a join
  // event adds (the injector reaches them once they are enlisted).
  std::vector<int32_t> out;
  for (auto id : ids)
    if (id >= 0)
      out.push_back(id);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// -- parsing ---------------------------------------------------------------------------------

/// Where the parser is, as a field path: "events[2].delay".
struct parse_frame {
  json* node;                   ///< the open object or array
  std::string key;              ///< object: the key whose value comes next
  std::set<std::string> keys;   ///< object: the keys seen so far
};

/// Renders a user-given string (valid UTF-8: the parser checked it) on one line and
/// shortened, since keys and values end up in one-line error messages.
std::string printable(const std::string& s) {
  constexpr size_t max_bytes = 60;
  size_t cut = std::min(s.size(), max_bytes);
  while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut;  // not inside a multi-byte character
  std::string out;
  for (char c : s.substr(0, cut))
    out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
  return cut < s.size() ? out + "..." : out;
}

/// nlohmann's parse messages quote the raw input, which need not be UTF-8: keep ASCII only.
std::string ascii(const std::string& s) {
  std::string out;
  for (char c : s)
    out += static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e ? '?' : c;
  return out;
}

/// Builds the DOM as nlohmann's own parser does, and tracks the field path on the way:
/// nlohmann silently keeps the last of duplicated keys (which can disable a fault just like
/// a typo would) and reports a number overflow only by position, so both come out here
/// with the field they concern.
class tracking_parser final : public json::json_sax_t {
public:
  explicit tracking_parser(const std::string& text) : text_(text) {}

  json root;
  std::string problem;  ///< "<field path>: <problem>" or "not valid JSON (...)"

  bool null() override { return place(nullptr) != nullptr; }
  bool boolean(bool v) override { return place(v) != nullptr; }
  bool number_integer(number_integer_t v) override { return place(v) != nullptr; }
  bool number_unsigned(number_unsigned_t v) override { return place(v) != nullptr; }
  bool number_float(number_float_t v, const string_t&) override { return place(v) != nullptr; }
  bool string(string_t& v) override { return place(std::move(v)) != nullptr; }
  bool binary(binary_t&) override { return false; }  // JSON text has no binary values
  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    auto& top = stack_.back();
    if (!top.keys.insert(k).second) {
      problem = fmt::format("{}duplicate key '{}'", prefix(path(false)), printable(k));
      return false;
    }
    top.key = k;
    return true;
  }

  bool parse_error(std::size_t position, const std::string& token,
                   const nlohmann::detail::exception& e) override {
    constexpr int number_overflow = 406;  // nlohmann's out_of_range.406
    if (e.id == number_overflow)
      problem = fmt::format("{}not a finite number (got {})", prefix(path(true)),
                            ascii(token));
    else
      problem = fmt::format("not valid JSON ({}){}", line_and_column(position), reason(e));
    return false;
  }

private:
  static std::string prefix(const std::string& path) {
    return path.empty() ? "" : path + ": ";
  }

  /// The value about to be placed (pending) or the innermost open container, as a path.
  std::string path(bool pending) const {
    std::string out;
    for (size_t i = 0; i < stack_.size(); ++i) {
      const auto& f = stack_[i];
      const bool innermost = i + 1 == stack_.size();
      if (f.node->is_array()) {
        auto n = f.node->size();
        // An open container is already the array's last element; a pending value is not.
        out += fmt::format("[{}]", pending && innermost ? n : n - 1);
      } else if (pending || !innermost) {
        out += (out.empty() ? "" : ".") + printable(f.key);
      }
    }
    return out;
  }

  /// nlohmann gives the bytes read; the offending one is the last of them.
  std::string line_and_column(std::size_t position) const {
    const size_t at = std::min(position > 0 ? position - 1 : 0, text_.size());
    const auto line = 1 + std::count(text_.begin(), text_.begin() + at, '\n');
    const auto newline = at == 0 ? std::string::npos : text_.rfind('\n', at - 1);
    const auto column = newline == std::string::npos ? at + 1 : at - newline;
    return fmt::format("line {}, column {}", line, column);
  }

  /// nlohmann's description without its own "[json.exception...] ... column C" head.
  static std::string reason(const nlohmann::detail::exception& e) {
    std::string what = e.what();
    auto head = what.find("column ");
    auto colon = head == std::string::npos ? head : what.find(": ", head);
    if (colon == std::string::npos)
      return "";
    auto text = ascii(what.substr(colon + 2));
    return ": " + (text.size() > 160 ? text.substr(0, 160) + "..." : text);
  }

  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    auto& top = stack_.back();
    if (top.node->is_array()) {
      top.node->push_back(std::move(v));
      return &top.node->back();
    }
    return &((*top.node)[top.key] = std::move(v));
  }

  // A parent is only written to after its open child is closed, so the pointers on the
  // stack stay valid (as in nlohmann's json_sax_dom_parser).
  bool open(json container) {
    stack_.push_back({place(std::move(container)), {}, {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  const std::string& text_;
  std::vector<parse_frame> stack_;
};

// -- validation helpers ----------------------------------------------------------------------
//
// Each reader returns the first problem as "<field path>: <problem>", or "" when valid.

using problem = std::string;

problem fail(const std::string& path, const std::string& what) {
  return path.empty() ? what : path + ": " + what;
}

std::string field(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string item(const std::string& path, size_t i) {
  return fmt::format("{}[{}]", path, i);
}

std::string type_of(const json& j) {
  return j.type_name();
}

/// "a, b or c"
std::string one_of(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  return out;
}

bool contains(const std::vector<std::string>& names, const std::string& s) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

const json* find(const json& object, const std::string& key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

problem missing(const std::string& path, const std::string& key, const std::string& why) {
  return fail(field(path, key), "missing (" + why + ")");
}

problem require_object(const json& j, const std::string& path) {
  return j.is_object() ? "" : fail(path, fmt::format("must be an object (got {})", type_of(j)));
}

/// A typo must not silently disable a fault: every key must be one of `allowed`.
problem check_keys(const json& object, const std::string& path,
                   const std::vector<std::string>& allowed) {
  for (const auto& [key, value] : object.items())
    if (!contains(allowed, key))
      return fail(path, fmt::format("unknown key '{}' (expected {})", printable(key),
                                    one_of(allowed)));
  return {};
}

enum class bound { at_least, above };  ///< value >= limit, value > limit

/// The largest value a field accepts, and what it is in words for the message ("" if none).
struct ceiling {
  double value;
  const char* words;
};

constexpr ceiling no_ceiling{std::numeric_limits<double>::infinity(), ""};
constexpr ceiling one_day_ms{max_duration_ms, "a day"};
constexpr ceiling one_day_s{max_duration_ms / 1000, "a day"};

/// A finite number with `limit` below (>= or >, as `b` says) and `top` above (<=).
problem read_number(const json& j, const std::string& path, double limit, bound b,
                    ceiling top, double& out) {
  if (!j.is_number())
    return fail(path, fmt::format("must be a number (got {})", type_of(j)));
  out = j.get<double>();
  if (!std::isfinite(out))
    return fail(path, fmt::format("must be a finite number (got {})", out));
  if (b == bound::at_least && !(out >= limit))
    return fail(path, fmt::format("must be >= {} (got {})", limit, out));
  if (b == bound::above && !(out > limit))
    return fail(path, fmt::format("must be > {} (got {})", limit, out));
  if (!(out <= top.value))
    return fail(path, fmt::format("must be <= {}{} (got {})", top.value,
                                  *top.words ? fmt::format(", {}", top.words) : "", out));
  return {};
}

/// An integer in [lo, hi]; a float with an integral value (1e3) counts. hi <= 2^53.
problem read_integer(const json& j, const std::string& path, int64_t lo, int64_t hi,
                     int64_t& out) {
  if (!j.is_number())
    return fail(path, fmt::format("must be an integer (got {})", type_of(j)));
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (!std::isfinite(v) || v != std::floor(v))
      return fail(path, fmt::format("must be an integer (got {})", v));
    if (v < static_cast<double>(lo))
      return fail(path, fmt::format("must be >= {} (got {})", lo, v));
    if (v > static_cast<double>(hi))
      return fail(path, fmt::format("must be <= {} (got {})", hi, v));
    out = static_cast<int64_t>(v);
  } else if (j.is_number_unsigned()) {
    const auto v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(hi))
      return fail(path, fmt::format("must be <= {} (got {})", hi, v));
    out = static_cast<int64_t>(v);
  } else {
    out = j.get<int64_t>();
  }
  if (out < lo)
    return fail(path, fmt::format("must be >= {} (got {})", lo, out));
  if (out > hi)
    return fail(path, fmt::format("must be <= {} (got {})", hi, out));
  return {};
}

constexpr int64_t max_int32 = std::numeric_limits<int32_t>::max();
constexpr int64_t max_exact_double = int64_t{1} << 53;
constexpr int64_t max_join_count = 1024; // --workers' own limit

// -- scenario parts --------------------------------------------------------------------------

problem read_point(const json& j, const std::string& path, fault_point& out) {
  const std::string shape = R"(must be {"seconds": S} or {"updates": U})";
  if (!j.is_object())
    return fail(path, fmt::format("{} (got {})", shape, type_of(j)));
  if (auto p = check_keys(j, path, {"seconds", "updates"}); !p.empty())
    return p;
  const json* seconds = find(j, "seconds");
  const json* updates = find(j, "updates");
  if (seconds && updates)
    return fail(path, "give seconds or updates, not both");
  if (seconds) {
    out.in = fault_point::unit::seconds;
    return read_number(*seconds, field(path, "seconds"), 0, bound::at_least, one_day_s,
                       out.value);
  }
  if (updates) {
    out.in = fault_point::unit::updates;
    int64_t u = 0;
    auto p = read_integer(*updates, field(path, "updates"), 0, max_exact_double, u);
    out.value = static_cast<double>(u);
    return p;
  }
  return fail(path, shape + " (got an empty object)");
}

problem read_optional_point(const json& event, const std::string& path, const std::string& key,
                            std::optional<fault_point>& out) {
  const json* j = find(event, key);
  if (!j)
    return {};
  fault_point p;
  if (auto e = read_point(*j, field(path, key), p); !e.empty())
    return e;
  out = p;
  return {};
}

problem read_window(const json& event, const std::string& path, fault_event& out) {
  if (auto p = read_optional_point(event, path, "from", out.from); !p.empty())
    return p;
  if (auto p = read_optional_point(event, path, "to", out.to); !p.empty())
    return p;
  if (out.from && out.to && out.from->in == out.to->in && !(out.from->value < out.to->value))
    return fail(field(path, "to"), fmt::format("must be later than from (from {}, to {})",
                                               to_string(*out.from), to_string(*out.to)));
  return {};
}

problem read_worker_ids(const json& j, const std::string& path, worker_set& out) {
  if (j.empty())
    return fail(path, R"(names no worker (give at least one id, or "all"))");
  for (size_t i = 0; i < j.size(); ++i) {
    int64_t id = 0;
    if (auto p = read_integer(j[i], item(path, i), 0, max_int32, id); !p.empty())
      return p;
    if (std::find(out.ids.begin(), out.ids.end(), id) != out.ids.end())
      return fail(item(path, i), fmt::format("duplicate worker id {}", id));
    out.ids.push_back(static_cast<int32_t>(id));
  }
  return {};
}

problem read_workers(const json& j, const std::string& path, worker_set& out) {
  const std::string shape = R"("all", a list of worker ids or {"random": K})";
  if (j.is_string()) {
    if (j.get<std::string>() == "all") {
      out.all = true;
      return {};
    }
    return fail(path, fmt::format("unknown worker set '{}' (expected {})",
                                  printable(j.get<std::string>()), shape));
  }
  if (j.is_array())
    return read_worker_ids(j, path, out);
  if (j.is_object()) {
    if (auto p = check_keys(j, path, {"random"}); !p.empty())
      return p;
    const json* k = find(j, "random");
    if (!k)
      return missing(path, "random", "the number of workers to draw");
    int64_t count = 0;
    if (auto p = read_integer(*k, field(path, "random"), 1, max_int32, count); !p.empty())
      return p;
    out.random = static_cast<int>(count);
    return {};
  }
  return fail(path, fmt::format("must be {} (got {})", shape, type_of(j)));
}

using family = delay_distribution::family;

/// A distribution's name and parameters: all must be given; each is >= 0 or > 0, and at
/// most its ceiling.
struct dist_param {
  std::string key;
  bound low;
  ceiling top;
};

struct dist_rule {
  family dist;
  std::string name;
  std::vector<dist_param> params;  ///< a, then b
};

const std::vector<dist_rule>& dist_rules() {
  // The times are bounded to keep the waits representable; sigma too, since it scales the
  // exponent. A pareto shape only divides it (a small one draws the cap, see draw()).
  static const std::vector<dist_rule> rules{
    {family::constant, "constant", {{"ms", bound::at_least, one_day_ms}}},
    {family::uniform, "uniform",
     {{"min_ms", bound::at_least, one_day_ms}, {"max_ms", bound::at_least, one_day_ms}}},
    {family::exponential, "exponential", {{"mean_ms", bound::above, one_day_ms}}},
    {family::lognormal, "lognormal",
     {{"median_ms", bound::above, one_day_ms},
      {"sigma", bound::at_least, ceiling{max_lognormal_sigma, ""}}}},
    {family::pareto, "pareto",
     {{"scale_ms", bound::above, one_day_ms}, {"shape", bound::above, no_ceiling}}},
  };
  return rules;
}

problem read_dist_name(const json& j, const std::string& path, const dist_rule*& out) {
  std::vector<std::string> names;
  for (const auto& r : dist_rules())
    names.push_back(r.name);
  if (!j.is_string())
    return fail(path, fmt::format("must be a string (got {})", type_of(j)));
  for (const auto& r : dist_rules())
    if (r.name == j.get<std::string>()) {
      out = &r;
      return {};
    }
  return fail(path, fmt::format("unknown distribution '{}' (expected {})",
                                printable(j.get<std::string>()), one_of(names)));
}

problem read_delay(const json& j, const std::string& path, delay_distribution& out) {
  if (auto p = require_object(j, path); !p.empty())
    return p;
  const json* name = find(j, "dist");
  if (!name)
    return missing(path, "dist", "constant, uniform, exponential, lognormal or pareto");
  const dist_rule* rule = nullptr;
  if (auto p = read_dist_name(*name, field(path, "dist"), rule); !p.empty())
    return p;
  std::vector<std::string> allowed{"dist"};
  for (const auto& param : rule->params)
    allowed.push_back(param.key);
  if (auto p = check_keys(j, path, allowed); !p.empty())
    return p;
  out.dist = rule->dist;
  double* slots[] = {&out.a, &out.b};
  for (size_t i = 0; i < rule->params.size(); ++i) {
    const auto& param = rule->params[i];
    const json* v = find(j, param.key);
    if (!v)
      return missing(path, param.key, "required for " + rule->name);
    if (auto p = read_number(*v, field(path, param.key), 0, param.low, param.top, *slots[i]);
        !p.empty())
      return p;
  }
  if (out.dist == family::uniform && out.b < out.a)
    return fail(field(path, "max_ms"),
                fmt::format("must be >= min_ms (got {} < {})", out.b, out.a));
  // Half of a pareto's draws lie beyond scale * 2^(1/shape): with a small shape that is
  // beyond the day each draw is capped at, and the run waited a day per step (it hung).
  if (out.dist == family::pareto && out.a * std::exp2(1 / out.b) > max_duration_ms)
    return fail(field(path, "shape"),
                fmt::format("with scale_ms {} a shape of {} makes the median delay more than a "
                            "day (give at least {:.3g})",
                            out.a, out.b, 1 / std::log2(max_duration_ms / out.a)));
  return {};
}

problem read_per_class(const json& j, const std::string& path, std::vector<double>& out) {
  if (!j.is_array())
    return fail(path, fmt::format("must be an array of milliseconds per class (got {})",
                                  type_of(j)));
  if (j.empty())
    return fail(path, "names no class (give the cost of classes 0, 1, ...)");
  out.resize(j.size());
  for (size_t i = 0; i < j.size(); ++i)
    if (auto p = read_number(j[i], item(path, i), 0, bound::at_least,
                             ceiling{max_example_cost_ms, "a minute per example"}, out[i]);
        !p.empty())
      return p;
  return {};
}

// -- events ----------------------------------------------------------------------------------

const std::vector<fault_kind> all_kinds{
  fault_kind::slow, fault_kind::example_cost, fault_kind::pause,     fault_kind::crash,
  fault_kind::join, fault_kind::server_crash, fault_kind::net_delay, fault_kind::net_drop};

/// The keys each kind accepts; "workers", "at", "duration_ms" and "per_class_ms" are
/// required wherever they are allowed.
std::vector<std::string> event_keys(fault_kind k) {
  switch (k) {
    case fault_kind::slow: return {"kind", "workers", "from", "to", "factor", "delay"};
    case fault_kind::example_cost: return {"kind", "workers", "from", "to", "per_class_ms"};
    case fault_kind::pause: return {"kind", "workers", "at", "duration_ms"};
    case fault_kind::crash: return {"kind", "workers", "at"};
    case fault_kind::join: return {"kind", "at", "count"};
    case fault_kind::server_crash: return {"kind", "at"};
    case fault_kind::net_delay: return {"kind", "workers", "from", "to", "delay"};
    case fault_kind::net_drop:
      return {"kind", "workers", "from", "to", "probability", "detect_ms"};
  }
  return {};
}

problem read_kind(const json& j, const std::string& path, fault_kind& out) {
  if (!j.is_string())
    return fail(path, fmt::format("must be a string (got {})", type_of(j)));
  const auto name = j.get<std::string>();
  std::vector<std::string> names;
  for (auto k : all_kinds) {
    if (name == to_string(k)) {
      out = k;
      return {};
    }
    names.push_back(to_string(k));
  }
  return fail(path, fmt::format("unknown kind '{}' (expected {})", printable(name),
                                one_of(names)));
}

/// A key of another kind gets a message saying so: "at" on a slow event is not a typo.
problem check_event_keys(const json& event, const std::string& path, fault_kind kind) {
  const auto allowed = event_keys(kind);
  for (const auto& [key, value] : event.items()) {
    if (contains(allowed, key))
      continue;
    bool other_kind = false;
    for (auto k : all_kinds)
      other_kind = other_kind || contains(event_keys(k), key);
    if (other_kind)
      return fail(field(path, key), fmt::format("not allowed for kind '{}' (allowed: {})",
                                                to_string(kind), one_of(allowed)));
    return fail(path, fmt::format("unknown key '{}' (allowed for {}: {})", printable(key),
                                  to_string(kind), one_of(allowed)));
  }
  return {};
}

problem read_slow(const json& event, const std::string& path, fault_event& out) {
  const json* factor = find(event, "factor");
  const json* delay = find(event, "delay");
  if (factor && delay)
    return fail(field(path, "delay"), "not allowed together with factor (give one of them)");
  if (factor)
    return read_number(*factor, field(path, "factor"), 1, bound::at_least,
                       ceiling{max_slow_factor, ""}, out.factor);
  if (delay) {
    delay_distribution d;
    if (auto p = read_delay(*delay, field(path, "delay"), d); !p.empty())
      return p;
    out.delay = d;
    return {};
  }
  return fail(path, "slow needs \"factor\" (a step time multiplier) or \"delay\" (a "
                    "distribution of extra time per step)");
}

problem read_drop(const json& event, const std::string& path, fault_event& out) {
  const json* p = find(event, "probability");
  if (!p)
    return missing(path, "probability", "required for net_drop (the chance a gradient is lost)");
  if (auto e = read_number(*p, field(path, "probability"), 0, bound::above, ceiling{1, ""},
                           out.probability);
      !e.empty())
    return e;
  if (const json* d = find(event, "detect_ms"))
    return read_number(*d, field(path, "detect_ms"), 0, bound::at_least, one_day_ms,
                       out.duration_ms);
  out.duration_ms = default_detect_ms;
  return {};
}

/// The kind-specific keys, after the common ones.
problem read_kind_fields(const json& event, const std::string& path, fault_event& out) {
  const auto why = "required for " + to_string(out.kind);
  switch (out.kind) {
    case fault_kind::slow: return read_slow(event, path, out);
    case fault_kind::example_cost: {
      const json* costs = find(event, "per_class_ms");
      if (!costs)
        return missing(path, "per_class_ms", why);
      return read_per_class(*costs, field(path, "per_class_ms"), out.per_class_ms);
    }
    case fault_kind::pause: {
      const json* d = find(event, "duration_ms");
      if (!d)
        return missing(path, "duration_ms", why);
      return read_number(*d, field(path, "duration_ms"), 0, bound::above, one_day_ms,
                         out.duration_ms);
    }
    case fault_kind::join: {
      const json* c = find(event, "count");
      int64_t count = 1;
      if (c)
        // As many as --workers may start with: each joiner is an actor and a worker state.
        if (auto p = read_integer(*c, field(path, "count"), 1, max_join_count, count);
            !p.empty())
          return p;
      out.count = static_cast<int>(count);
      return {};
    }
    case fault_kind::net_delay: {
      const json* d = find(event, "delay");
      if (!d)
        return missing(path, "delay", why + " (a distribution of the extra time per message)");
      delay_distribution dist;
      if (auto p = read_delay(*d, field(path, "delay"), dist); !p.empty())
        return p;
      out.delay = dist;
      return {};
    }
    case fault_kind::net_drop: return read_drop(event, path, out);
    case fault_kind::crash:
    case fault_kind::server_crash: return {};
  }
  return {};
}

problem read_event(const json& j, const std::string& path, fault_event& out) {
  if (auto p = require_object(j, path); !p.empty())
    return p;
  std::vector<std::string> kinds;
  for (auto k : all_kinds)
    kinds.push_back(to_string(k));
  const json* kind = find(j, "kind");
  if (!kind)
    return missing(path, "kind", "one of " + one_of(kinds));
  if (auto p = read_kind(*kind, field(path, "kind"), out.kind); !p.empty())
    return p;
  if (auto p = check_event_keys(j, path, out.kind); !p.empty())
    return p;
  const auto allowed = event_keys(out.kind);
  const auto why = "required for " + to_string(out.kind);
  if (contains(allowed, "workers")) {
    const json* w = find(j, "workers");
    if (!w)
      return missing(path, "workers", why);
    if (auto p = read_workers(*w, field(path, "workers"), out.workers); !p.empty())
      return p;
  }
  if (contains(allowed, "from")) {
    if (auto p = read_window(j, path, out); !p.empty())
      return p;
  }
  if (contains(allowed, "at")) {
    const json* at = find(j, "at");
    if (!at)
      return missing(path, "at", why);
    fault_point p;
    if (auto e = read_point(*at, field(path, "at"), p); !e.empty())
      return e;
    out.from = p;
  }
  return read_kind_fields(j, path, out);
}

problem read_optional_string(const json& root, const std::string& key, std::string& out) {
  const json* j = find(root, key);
  if (!j)
    return {};
  if (!j->is_string())
    return fail(key, fmt::format("must be a string (got {})", type_of(*j)));
  out = j->get<std::string>();
  return {};
}

problem read_scenario(const json& root, scenario& out) {
  if (!root.is_object())
    return fmt::format("must be a JSON object with \"events\" (got {})", type_of(root));
  if (auto p = check_keys(root, "", {"name", "description", "events"}); !p.empty())
    return p;
  if (auto p = read_optional_string(root, "name", out.name); !p.empty())
    return p;
  if (find(root, "name") && out.name.empty())
    return fail("name", "must not be empty (leave it out to use the file's name)");
  if (auto p = read_optional_string(root, "description", out.description); !p.empty())
    return p;
  const json* events = find(root, "events");
  if (!events)
    return missing("", "events", "a list of events, possibly empty");
  if (!events->is_array())
    return fail("events", fmt::format("must be an array (got {})", type_of(*events)));
  for (size_t i = 0; i < events->size(); ++i) {
    fault_event e;
    if (auto p = read_event((*events)[i], item("events", i), e); !p.empty())
      return p;
    out.events.push_back(std::move(e));
  }
  return {};
}

} // namespace

bool scenario::has_network_faults() const {
  return std::any_of(events.begin(), events.end(), [](const fault_event& e) {
    return e.kind == fault_kind::net_delay || e.kind == fault_kind::net_drop;
  });
}

const fault_event* scenario::server_crash() const {
  for (const auto& e : events)
    if (e.kind == fault_kind::server_crash)
      return &e;
  return nullptr;
}

namespace {

std::string workers_text(int64_t n) {
  return fmt::format("{} worker{}", n, n == 1 ? "" : "s");
}

} // namespace

std::string check_workers(const scenario& s, int workers) {
  // A worker that joins takes the next free id (actors/driver.cpp): after joins adding
  // `joined` workers, ids workers .. workers + joined - 1 exist. int64: counts go to 2^31.
  const auto run = fmt::format("the run has {}", workers_text(workers));
  int64_t joined = 0;
  for (size_t i = 0; i < s.events.size(); ++i) {
    const auto& e = s.events[i];
    const auto path = field(item("events", i), "workers");
    if (e.kind == fault_kind::join)
      joined += e.count;
    // A random set is drawn as the injector is spawned, among the workers the run starts
    // with; one larger than that would silently shrink to all of them.
    if (e.workers.random > workers)
      return fail(field(path, "random"),
                  fmt::format("cannot draw {} distinct workers ({}{})", e.workers.random, run,
                              joined > 0 ? "; a random set is drawn among those it starts with"
                                         : ""));
    for (size_t j = 0; j < e.workers.ids.size(); ++j) {
      const int64_t id = e.workers.ids[j];
      if (id >= workers + joined)
        return fail(item(path, j),
                    fmt::format("worker {} does not exist ({}{})", id, run,
                                joined > 0 ? fmt::format(", and the join events before this "
                                                         "one add {}", joined)
                                           : ""));
    }
  }
  return {};
}

outcome<scenario> parse_scenario(const std::string& json_text, const std::string& origin) {
  using result = outcome<scenario>;
  tracking_parser parser{json_text};
  if (!json::sax_parse(json_text, &parser, json::input_format_t::json, true, false))
    return result::failure(
      fmt::format("{}: {}", origin, parser.problem.empty() ? "not valid JSON" : parser.problem));
  scenario s;
  if (auto p = read_scenario(parser.root, s); !p.empty())
    return result::failure(fmt::format("{}: {}", origin, p));
  if (s.name.empty())
    s.name = std::filesystem::path(origin).stem().string();
  return s;
}

outcome<scenario> load_scenario(const std::string& path) {
  using result = outcome<scenario>;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return result::failure(fmt::format("{}: cannot open: is a directory", path));
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return result::failure(
      fmt::format("{}: cannot open: {}", path, std::generic_category().message(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return result::failure(fmt::format("{}: cannot read", path));
  return parse_scenario(text.str(), path);
}

outcome<scenario> load_scenario(const std::string& path, int workers) {
  auto loaded = load_scenario(path);
  if (!loaded)
    return loaded;
  if (auto p = check_workers(*loaded, workers); !p.empty())
    return outcome<scenario>::failure(fmt::format("{}: {}", path, p));
  return loaded;
}

} // namespace psgd
