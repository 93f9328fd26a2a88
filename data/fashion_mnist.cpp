#include "data/fashion_mnist.hpp"

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace psgd::data {

namespace {

constexpr uint32_t images_magic = 0x00000803; // unsigned byte, 3 dimensions
constexpr uint32_t labels_magic = 0x00000801; // unsigned byte, 1 dimension
constexpr int image_side = 28;
constexpr int num_classes = 10;

struct gz_closer {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

/// The whole decompressed content of a .gz file (a plain file reads as is).
outcome<std::vector<unsigned char>> gunzip(const std::string& path) {
  std::unique_ptr<gzFile_s, gz_closer> f{gzopen(path.c_str(), "rb")};
  if (!f)
    return outcome<std::vector<unsigned char>>::failure(
      fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  for (;;) {
    int n = gzread(f.get(), buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      return outcome<std::vector<unsigned char>>::failure(
        fmt::format("{}: corrupt gzip data ({})", path, msg));
    }
    if (n == 0)
      break;
    out.insert(out.end(), buf, buf + n);
  }
  // zlib reports a stream cut short only through gzerror after the last read.
  int code = 0;
  gzerror(f.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END)
    return outcome<std::vector<unsigned char>>::failure(
      fmt::format("{}: truncated or corrupt gzip stream", path));
  return out;
}

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

} // namespace

outcome<dataset> load_idx_pair(const std::string& images_path,
                               const std::string& labels_path) {
  using result = outcome<dataset>;
  auto images = gunzip(images_path);
  if (!images)
    return result::failure(images.error());
  auto labels = gunzip(labels_path);
  if (!labels)
    return result::failure(labels.error());
  const auto& im = *images;
  const auto& lb = *labels;
  if (im.size() < 16)
    return result::failure(fmt::format("{}: truncated: {} bytes, no IDX header", images_path,
                                       im.size()));
  if (read_be32(im.data()) != images_magic)
    return result::failure(fmt::format("{}: wrong magic number 0x{:08x} (expected 0x{:08x}, "
                                       "an IDX image file)",
                                       images_path, read_be32(im.data()), images_magic));
  uint32_t count = read_be32(im.data() + 4);
  uint32_t rows = read_be32(im.data() + 8);
  uint32_t cols = read_be32(im.data() + 12);
  if (rows != image_side || cols != image_side)
    return result::failure(fmt::format("{}: images are {}x{} (expected {}x{})", images_path,
                                       rows, cols, image_side, image_side));
  const size_t pixels = size_t{rows} * cols;
  if (im.size() != 16 + size_t{count} * pixels)
    return result::failure(fmt::format("{}: truncated or oversized: header says {} images, "
                                       "file holds {} bytes of pixels (expected {})",
                                       images_path, count, im.size() - 16,
                                       size_t{count} * pixels));
  if (lb.size() < 8)
    return result::failure(fmt::format("{}: truncated: {} bytes, no IDX header", labels_path,
                                       lb.size()));
  if (read_be32(lb.data()) != labels_magic)
    return result::failure(fmt::format("{}: wrong magic number 0x{:08x} (expected 0x{:08x}, "
                                       "an IDX label file)",
                                       labels_path, read_be32(lb.data()), labels_magic));
  uint32_t label_count = read_be32(lb.data() + 4);
  if (label_count != count)
    return result::failure(fmt::format("{}: {} labels for {} images in {}", labels_path,
                                       label_count, count, images_path));
  if (lb.size() != 8 + size_t{count})
    return result::failure(fmt::format("{}: truncated or oversized: header says {} labels, "
                                       "file holds {}",
                                       labels_path, count, lb.size() - 8));
  dataset d;
  d.rows = count;
  d.dim = static_cast<int>(pixels);
  d.classes = num_classes;
  d.features.resize(size_t{count} * pixels);
  for (size_t i = 0; i < d.features.size(); ++i)
    d.features[i] = im[16 + i] / 255.0f;
  d.labels.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (lb[8 + i] >= num_classes)
      return result::failure(fmt::format("{}: label {} of example {} is out of range [0, {})",
                                         labels_path, lb[8 + i], i, num_classes));
    d.labels[i] = lb[8 + i];
  }
  return d;
}

outcome<split> load_fashion_mnist(const std::string& dir) {
  auto path = [&](const char* name) { return fmt::format("{}/{}", dir, name); };
  auto train = load_idx_pair(path("train-images-idx3-ubyte.gz"),
                             path("train-labels-idx1-ubyte.gz"));
  if (!train)
    return outcome<split>::failure(train.error());
  auto test = load_idx_pair(path("t10k-images-idx3-ubyte.gz"), path("t10k-labels-idx1-ubyte.gz"));
  if (!test)
    return outcome<split>::failure(test.error());
  return split{std::move(*train), std::move(*test)};
}

} // namespace psgd::data
