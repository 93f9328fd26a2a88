#include "data/fashion_mnist.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <system_error>
#include <vector>

#include <sys/mman.h>

#include <fmt/format.h>

namespace psgd::data {

namespace {

constexpr uint32_t images_magic = 0x00000803; // unsigned byte, 3 dimensions
constexpr uint32_t labels_magic = 0x00000801; // unsigned byte, 1 dimension
constexpr int image_side = 28;
constexpr int num_classes = 10;
// zlib's deflate never expands more than 1032:1: a header that claims more than a file that
// size can hold is lying, whatever its trailer says.
constexpr uint64_t max_deflate_ratio = 1032;

struct gz_closer {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
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

/// "" if `f`'s reads so far met no zlib error, else a one-line message naming the file.
/// zlib reports a stream cut short only here (gzread returns what it had), so this is asked
/// after every read that came back short.
std::string stream_problem(gzFile_s* f, const std::string& path) {
  int code = 0;
  std::string reason = gzerror(f, &code);
  if (code == Z_OK || code == Z_STREAM_END)
    return "";
  // zlib's message starts with the path it was opened with.
  if (reason.rfind(path + ": ", 0) == 0)
    reason.erase(0, path.size() + 2);
  if (code == Z_ERRNO) // the file itself, not its content (a directory, an I/O error)
    return fmt::format("{}: cannot read: {}", path, reason);
  return fmt::format("{}: truncated or corrupt gzip file ({})", path, reason);
}

enum class idx_kind { images, labels };

/// An IDX file open for reading, past its checked header.
struct idx_file {
  std::string path;
  idx_kind kind = idx_kind::images;
  std::unique_ptr<gzFile_s, gz_closer> f;
  uint64_t count = 0;      ///< images or labels, as the header says
  uint64_t item_bytes = 0; ///< bytes per image (rows x cols) or per label (1)
  /// Whether the file's own size information agrees with the header, so that the header's
  /// size may be allocated up front. Known without decompressing the body.
  bool size_agrees = false;

  const char* noun() const { return kind == idx_kind::images ? "images" : "labels"; }
  const char* item() const { return kind == idx_kind::images ? "pixels" : "labels"; }
  uint64_t body_bytes() const { return count * item_bytes; }
};

/// Whether the file's size agrees with a decompressed content of `total` bytes. A gzip
/// file's trailer (ISIZE, the size mod 4 GiB) must match, and `total` must be what deflate
/// can expand the file to; a plain file (zlib reads it as is) must be `total` bytes long.
/// The trailer is only the file's last 4 bytes: a truncated file ends in arbitrary bytes
/// there, so a disagreement is no size to report or to allocate, only a reason to find out
/// by decompressing (a valid file of several gzip members disagrees too: ISIZE is the last
/// member's).
bool size_agrees_with(const std::string& path, uint64_t total) {
  std::ifstream in{path, std::ios::binary | std::ios::ate};
  const auto size = static_cast<uint64_t>(std::max<std::streamoff>(0, in.tellg()));
  unsigned char head[2] = {0, 0};
  in.seekg(0);
  in.read(reinterpret_cast<char*>(head), 2);
  if (!in)
    return false;
  if (head[0] != 0x1f || head[1] != 0x8b)
    return size == total;
  if (size < 18) // the smallest gzip file: a 10-byte header and an 8-byte trailer
    return false;
  unsigned char tail[4];
  in.seekg(static_cast<std::streamoff>(size - 4));
  in.read(reinterpret_cast<char*>(tail), 4);
  const uint64_t isize = uint64_t{tail[0]} | (uint64_t{tail[1]} << 8)
                         | (uint64_t{tail[2]} << 16) | (uint64_t{tail[3]} << 24);
  return in && isize == total % (uint64_t{1} << 32) && total <= size * max_deflate_ratio;
}

/// Opens an IDX file and reads and checks its header (magic number, and 28x28 for images).
/// Only the header is decompressed.
outcome<idx_file> open_idx(const std::string& path, idx_kind kind) {
  using result = outcome<idx_file>;
  idx_file file;
  file.path = path;
  file.kind = kind;
  file.f.reset(gzopen(path.c_str(), "rb"));
  if (!file.f)
    return result::failure(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  const bool images = kind == idx_kind::images;
  const size_t header_size = images ? 16 : 8;
  unsigned char header[16];
  const int64_t got = read_exactly(file.f.get(), header, header_size);
  if (got < int64_t(header_size)) {
    if (auto problem = stream_problem(file.f.get(), path); !problem.empty())
      return result::failure(problem);
    return result::failure(fmt::format("{}: truncated: {} bytes, no IDX header", path,
                                       std::max<int64_t>(got, 0)));
  }
  const uint32_t magic = images ? images_magic : labels_magic;
  if (read_be32(header) != magic)
    return result::failure(fmt::format("{}: wrong magic number 0x{:08x} (expected 0x{:08x}, "
                                       "an IDX {} file)",
                                       path, read_be32(header), magic,
                                       images ? "image" : "label"));
  file.count = read_be32(header + 4);
  file.item_bytes = 1;
  if (images) {
    const uint32_t rows = read_be32(header + 8);
    const uint32_t cols = read_be32(header + 12);
    if (rows != image_side || cols != image_side)
      return result::failure(fmt::format("{}: images are {}x{} (expected {}x{})", path, rows,
                                         cols, image_side, image_side));
    file.item_bytes = uint64_t{rows} * cols;
  }
  file.size_agrees = size_agrees_with(path, header_size + file.body_bytes());
  return file;
}

/// Decompresses the body of `file` (count x item bytes after the header) in chunks, handing
/// each to `sink(bytes, n, offset)`, and checks that the stream holds exactly that much and
/// ends cleanly. "" or the problem, naming the file: a stream cut short or corrupt is called
/// so (with how far it got), a clean one of the wrong length gets its real length.
template <class Sink>
std::string read_body(idx_file& file, Sink&& sink) {
  const uint64_t expected = file.body_bytes();
  uint64_t done = 0;
  try {
    std::vector<unsigned char> chunk(size_t{1} << 20);
    while (done < expected) {
      const auto want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), expected - done));
      const int64_t got = read_exactly(file.f.get(), chunk.data(), want);
      if (got > 0) {
        sink(chunk.data(), size_t(got), done);
        done += uint64_t(got);
      }
      if (got < int64_t(want)) {
        if (auto problem = stream_problem(file.f.get(), file.path); !problem.empty())
          return fmt::format("{} after {} of {} bytes of {}", problem, done, expected,
                             file.item());
        return fmt::format("{}: truncated: header says {} {}, file holds {} bytes of {} "
                           "(expected {})",
                           file.path, file.count, file.noun(), done, file.item(), expected);
      }
    }
  } catch (const std::bad_alloc&) {
    return fmt::format("{}: out of memory after {} bytes of {} (header says {} {})", file.path,
                       done, file.item(), file.count, file.noun());
  }
  // Reading on (and discarding) tells a longer valid stream, whose length we can then give,
  // from a corrupt one, which may decode to anything, and checks the trailer's CRC.
  std::vector<unsigned char> rest(size_t{1} << 16);
  uint64_t extra = 0;
  for (int r; (r = gzread(file.f.get(), rest.data(), unsigned(rest.size()))) > 0;)
    extra += uint64_t(r);
  if (auto problem = stream_problem(file.f.get(), file.path); !problem.empty())
    return problem;
  if (extra > 0)
    return fmt::format("{}: oversized: header says {} {}, file holds {} bytes of {} (expected "
                       "{})",
                       file.path, file.count, file.noun(), expected + extra, file.item(),
                       expected);
  return "";
}

/// Asks the kernel to back [p, p + bytes) with transparent huge pages (2 MiB) as it is first
/// written; a hint, ignored where unsupported. Why: a minibatch reads 32 rows at random from
/// the 47 MB of training pixels, and with 4 KiB pages nearly every row misses the TLB (on a
/// VM, a two-level page walk). A loop gathering such batches ran 13% faster with huge pages.
void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t huge = uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + huge - 1) & ~(huge - 1);
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(huge - 1);
  if (end > begin)
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

/// Reads the body of `file` into `out`, each byte through `convert`. Memory is reserved up front
/// only when the file's size agrees with its header; otherwise `out` grows with what the
/// stream really holds, so a header that lies (or a truncated file) cannot make us allocate
/// what the file does not have.
template <class T, class Convert>
std::string read_body_into(idx_file& file, std::vector<T>& out, Convert convert) {
  out.clear();
  if (file.size_agrees) {
    try {
      out.reserve(file.body_bytes());
      // Before the first write: pages already touched would stay small.
      advise_huge_pages(out.data(), out.capacity() * sizeof(T));
    } catch (const std::bad_alloc&) {
      // Grow instead; if the content is really that large, read_body says so.
    }
  }
  return read_body(file, [&](const unsigned char* bytes, size_t n, uint64_t offset) {
    out.resize(offset + n);
    for (size_t i = 0; i < n; ++i)
      out[offset + i] = convert(bytes[i]);
  });
}

/// A file's decompressed content cannot be known from its size: decompress it (discarding)
/// to find out what is wrong, so that launch's check gives the loader's message rather than
/// a size read from arbitrary bytes. "" if the stream is valid after all.
std::string verify_by_reading(idx_file& file) {
  return read_body(file, [](const unsigned char*, size_t, uint64_t) {});
}

} // namespace

std::string data_directory_problem(const std::string& dir) {
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (st.type() == std::filesystem::file_type::not_found)
    return fmt::format("data directory '{}' does not exist", dir);
  if (ec)
    return fmt::format("data directory '{}': {}", dir, ec.message());
  if (st.type() != std::filesystem::file_type::directory)
    return fmt::format("data directory '{}' is not a directory", dir);
  return "";
}

outcome<dataset> load_idx_pair(const std::string& images_path,
                               const std::string& labels_path) {
  using result = outcome<dataset>;
  auto images = open_idx(images_path, idx_kind::images);
  if (!images)
    return result::failure(images.error());
  auto labels = open_idx(labels_path, idx_kind::labels);
  if (!labels)
    return result::failure(labels.error());
  if (labels->count != images->count)
    return result::failure(fmt::format("{}: {} labels for {} images in {}", labels_path,
                                       labels->count, images->count, images_path));
  dataset d;
  d.rows = static_cast<int64_t>(images->count);
  d.dim = static_cast<int>(images->item_bytes);
  d.classes = num_classes;
  // The labels first: small, and their errors cost no decompression of the pixels.
  if (auto problem = read_body_into(*labels, d.labels,
                                    [](unsigned char y) { return int32_t{y}; });
      !problem.empty())
    return result::failure(problem);
  for (size_t i = 0; i < d.labels.size(); ++i)
    if (d.labels[i] >= num_classes)
      return result::failure(fmt::format("{}: label {} of example {} is out of range [0, {})",
                                         labels_path, d.labels[i], i, num_classes));
  if (auto problem = read_body_into(*images, d.pixels,
                                    [](unsigned char v) { return uint8_t{v}; });
      !problem.empty())
    return result::failure(problem);
  return d;
}

outcome<uint64_t> fashion_mnist_footprint(const std::string& dir) {
  using result = outcome<uint64_t>;
  if (auto problem = data_directory_problem(dir); !problem.empty())
    return result::failure(problem);
  uint64_t bytes = 0;
  for (const char* set : {"train", "t10k"}) {
    auto images = open_idx(fmt::format("{}/{}-images-idx3-ubyte.gz", dir, set),
                           idx_kind::images);
    if (!images)
      return result::failure(images.error());
    auto labels = open_idx(fmt::format("{}/{}-labels-idx1-ubyte.gz", dir, set),
                           idx_kind::labels);
    if (!labels)
      return result::failure(labels.error());
    if (labels->count != images->count)
      return result::failure(fmt::format("{}: {} labels for {} images in {}", labels->path,
                                         labels->count, images->count, images->path));
    for (idx_file* file : {&*labels, &*images})
      if (!file->size_agrees)
        if (auto problem = verify_by_reading(*file); !problem.empty())
          return result::failure(problem);
    bytes += images->body_bytes() + labels->count * sizeof(int32_t);
  }
  return bytes;
}

outcome<split> load_fashion_mnist(const std::string& dir) {
  if (auto problem = data_directory_problem(dir); !problem.empty())
    return outcome<split>::failure(problem);
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
