#include "model/params_file.hpp"

#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace psgd::model {

std::string save_params(const std::string& path, const saved_params& p) {
  nlohmann::json header = {{"format", "psgd-params"},
                           {"format_version", 1},
                           {"model", to_string(p.spec.type)},
                           {"input_dim", p.spec.input_dim},
                           {"classes", p.spec.classes},
                           {"hidden", p.spec.type == kind::mlp ? p.spec.hidden : 0},
                           {"num_params", p.params.size()},
                           {"version", p.version}};
  const auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::binary | std::ios::trunc};
    if (!out)
      return fmt::format("--save: cannot write {}", tmp);
    out << header.dump() << '\n';
    out.write(reinterpret_cast<const char*>(p.params.data()),
              static_cast<std::streamsize>(p.params.size() * sizeof(float)));
    out.flush();
    if (!out)
      return fmt::format("--save: error while writing {}", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return fmt::format("--save: cannot rename {} to {}", tmp, path);
  return {};
}

outcome<saved_params> load_params(const std::string& path) {
  using result = outcome<saved_params>;
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return result::failure(fmt::format("{}: cannot open", path));
  std::string line;
  if (!std::getline(in, line))
    return result::failure(fmt::format("{}: empty file, not a psgd parameter file", path));
  auto header = nlohmann::json::parse(line, nullptr, false);
  if (header.is_discarded() || !header.is_object()
      || header.value("format", "") != "psgd-params")
    return result::failure(fmt::format("{}: not a psgd parameter file (bad header)", path));
  if (header.value("format_version", 0) != 1)
    return result::failure(fmt::format("{}: unsupported format_version {}", path,
                                       header.value("format_version", 0)));
  saved_params p;
  auto k = parse_kind(header.value("model", ""));
  if (!k)
    return result::failure(fmt::format("{}: {}", path, k.error()));
  p.spec.type = *k;
  p.spec.input_dim = header.value("input_dim", 0);
  p.spec.classes = header.value("classes", 0);
  p.spec.hidden = header.value("hidden", 0);
  p.version = header.value("version", uint64_t{0});
  auto m = make_model(p.spec);
  if (!m)
    return result::failure(fmt::format("{}: {}", path, m.error()));
  const auto n = (*m)->num_params();
  if (header.value("num_params", int64_t{-1}) != n)
    return result::failure(fmt::format("{}: header says {} parameters, the model has {}", path,
                                       header.value("num_params", int64_t{-1}), n));
  p.params.resize(n);
  in.read(reinterpret_cast<char*>(p.params.data()), static_cast<std::streamsize>(n * sizeof(float)));
  if (in.gcount() != static_cast<std::streamsize>(n * sizeof(float)))
    return result::failure(fmt::format("{}: truncated: {} of {} parameter bytes", path,
                                       in.gcount(), n * sizeof(float)));
  if (in.peek() != std::char_traits<char>::eof())
    return result::failure(fmt::format("{}: trailing bytes after the parameters", path));
  return p;
}

} // namespace psgd::model
