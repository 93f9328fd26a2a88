#include "data/fashion_mnist.hpp"

#include <zlib.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <fstream>
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

/// The decompressed size of a file as zlib will read it: a gzip file's trailer (ISIZE, the
/// size mod 4 GiB), or a plain file's size. Read before allocating anything from a header's
/// count, so a forged count cannot make us allocate what the file does not hold.
uint64_t content_size(const std::string& path) {
  std::ifstream in{path, std::ios::binary | std::ios::ate};
  const auto size = static_cast<uint64_t>(std::max<std::streamoff>(0, in.tellg()));
  unsigned char head[2] = {0, 0};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(head), 2);
  if (!in || head[0] != 0x1f || head[1] != 0x8b || size < 18)
    return size;
  unsigned char tail[4];
  in.seekg(static_cast<std::streamoff>(size - 4));
  in.read(reinterpret_cast<char*>(tail), 4);
  return uint64_t{tail[0]} | (uint64_t{tail[1]} << 8) | (uint64_t{tail[2]} << 16)
         | (uint64_t{tail[3]} << 24);
}

/// Reads exactly `n` bytes (fewer only at the end of the stream); -1 on a zlib error.
int64_t read_exactly(gzFile_s* f, unsigned char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const auto want = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 20));
    const int r = gzread(f, out + got, want);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return static_cast<int64_t>(got);
}

} // namespace

outcome<dataset> load_idx_pair(const std::string& images_path,
                               const std::string& labels_path) {
  using result = outcome<dataset>;
  // The images are streamed into the float features (the 47 MB of bytes are never held
  // whole next to the 188 MB of floats); the labels are small and read whole.
  std::unique_ptr<gzFile_s, gz_closer> im{gzopen(images_path.c_str(), "rb")};
  if (!im)
    return result::failure(fmt::format("{}: cannot open: {}", images_path, std::strerror(errno)));
  auto labels = gunzip(labels_path);
  if (!labels)
    return result::failure(labels.error());
  const auto& lb = *labels;
  unsigned char header[16];
  const int64_t header_bytes = read_exactly(im.get(), header, sizeof header);
  if (header_bytes < 0)
    return result::failure(fmt::format("{}: corrupt gzip data", images_path));
  if (header_bytes < 16)
    return result::failure(fmt::format("{}: truncated: {} bytes, no IDX header", images_path,
                                       header_bytes));
  if (read_be32(header) != images_magic)
    return result::failure(fmt::format("{}: wrong magic number 0x{:08x} (expected 0x{:08x}, "
                                       "an IDX image file)",
                                       images_path, read_be32(header), images_magic));
  uint32_t count = read_be32(header + 4);
  uint32_t rows = read_be32(header + 8);
  uint32_t cols = read_be32(header + 12);
  if (rows != image_side || cols != image_side)
    return result::failure(fmt::format("{}: images are {}x{} (expected {}x{})", images_path,
                                       rows, cols, image_side, image_side));
  const size_t pixels = size_t{rows} * cols;
  const uint64_t expected = size_t{count} * pixels;
  auto size_problem = [&](uint64_t held) {
    return result::failure(fmt::format("{}: truncated or oversized: header says {} images, "
                                       "file holds {} bytes of pixels (expected {})",
                                       images_path, count, held, expected));
  };
  const uint64_t content = content_size(images_path);
  if (content % (uint64_t{1} << 32) != (16 + expected) % (uint64_t{1} << 32))
    return size_problem(content >= 16 ? content - 16 : 0);
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
  d.features.resize(expected);
  std::vector<unsigned char> chunk(size_t{1} << 20);
  uint64_t done = 0;
  while (done < expected) {
    const auto want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), expected - done));
    const int64_t got = read_exactly(im.get(), chunk.data(), want);
    if (got < 0)
      return result::failure(fmt::format("{}: corrupt gzip data", images_path));
    for (int64_t i = 0; i < got; ++i)
      d.features[done + uint64_t(i)] = chunk[size_t(i)] / 255.0f;
    done += uint64_t(got);
    if (uint64_t(got) < want)
      return size_problem(done);
  }
  unsigned char extra;
  if (gzread(im.get(), &extra, 1) != 0)
    return size_problem(expected + 1);
  // zlib reports a stream cut short only through gzerror after the last read.
  int code = 0;
  gzerror(im.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END)
    return result::failure(fmt::format("{}: truncated or corrupt gzip stream", images_path));
  d.labels.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (lb[8 + i] >= num_classes)
      return result::failure(fmt::format("{}: label {} of example {} is out of range [0, {})",
                                         labels_path, lb[8 + i], i, num_classes));
    d.labels[i] = lb[8 + i];
  }
  return d;
}

uint64_t fashion_mnist_memory_bytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const char* set : {"train", "t10k"}) {
    const auto images = content_size(fmt::format("{}/{}-images-idx3-ubyte.gz", dir, set));
    const auto labels = content_size(fmt::format("{}/{}-labels-idx1-ubyte.gz", dir, set));
    bytes += (images > 16 ? images - 16 : 0) * sizeof(float)
             + (labels > 8 ? labels - 8 : 0) * sizeof(int32_t);
  }
  return bytes;
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
