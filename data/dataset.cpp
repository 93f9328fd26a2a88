#include "data/dataset.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

namespace psgd::data {

dataset dataset::head(int64_t n) const {
  n = std::min(n, rows);
  dataset d;
  d.rows = n;
  d.dim = dim;
  d.classes = classes;
  d.features.assign(features.begin(), features.begin() + n * dim);
  if (!labels.empty())
    d.labels.assign(labels.begin(), labels.begin() + n);
  if (!targets.empty())
    d.targets.assign(targets.begin(), targets.begin() + n);
  return d;
}

namespace {

template <class T>
void fnv1a(uint64_t& h, const T& value) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) {
    h ^= bytes[i];
    h *= 0x100000001b3ULL;
  }
}

} // namespace

std::string fingerprint(const dataset& d) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (auto y : d.labels)
    fnv1a(h, y);
  for (auto t : d.targets)
    fnv1a(h, t);
  for (size_t i = 0; i < d.features.size(); i += 97)
    fnv1a(h, d.features[i]);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::to_string(d.rows) + "x" + std::to_string(d.dim) + "/" + std::to_string(d.classes)
         + ":" + hex;
}

} // namespace psgd::data
