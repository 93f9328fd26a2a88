// checkpoint: the server's state on disk (see checkpoint.hpp for the contract).
//
// File format, version 1. All integers are little-endian whatever the host's order, so a
// checkpoint moves between machines:
//
//   offset      size   field
//   0           8      magic "PSGDCKPT" (no terminating NUL)
//   8           4      uint32 format version (1)
//   12          8      uint64 J: length of the state text
//   20          J      the state, nlohmann::json::dump() text (compact, UTF-8)
//   20+J        8      uint64 version (server updates applied)
//   28+J        8      uint64 N: parameter count
//   36+J        4*N    the parameters, IEEE-754 float32, little-endian
//   36+J+4*N    4      uint32 CRC-32 (zlib crc32()) of every byte before it
//
// The trailer is always the last four bytes of the file, so the CRC covers the same bytes
// whatever the (possibly corrupt) lengths say. Reading checks the layout first (each length
// against the bytes that are actually left, before anything is allocated from it), then the
// CRC, then parses the state: a torn file is reported as truncated, a flipped byte as a CRC
// mismatch, and no corrupted count can make the reader allocate more than the file's size.
#include "actors/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include <fmt/format.h>

namespace psgd {

namespace {

constexpr char magic[8] = {'P', 'S', 'G', 'D', 'C', 'K', 'P', 'T'};
constexpr uint32_t format_version = 1;
constexpr size_t header_size = sizeof(magic) + 4 + 8;  // magic, format version, J
constexpr size_t trailer_size = 4;

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

// --- encoding ------------------------------------------------------------------------

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// zlib's crc32() takes a 32-bit length: feed it in chunks so any size works.
uint32_t crc_of(const char* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

std::string encode(const checkpoint& c, const std::string& state_text) {
  std::string out;
  out.reserve(header_size + state_text.size() + 16 + 4 * c.params.size() + trailer_size);
  out.append(magic, sizeof(magic));
  put_u32(out, format_version);
  put_u64(out, state_text.size());
  out += state_text;
  put_u64(out, c.version);
  put_u64(out, c.params.size());
  // Through the bit pattern, so the bytes are little-endian on any host.
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559);
  for (float f : c.params) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    put_u32(out, bits);
  }
  put_u32(out, crc_of(out.data(), out.size()));
  return out;
}

// --- decoding ------------------------------------------------------------------------

/// Where the parts of a structurally valid file are (offsets into its bytes).
struct layout {
  size_t state_at = 0;
  size_t state_size = 0;
  uint64_t version = 0;
  size_t params_at = 0;
  size_t param_count = 0;
};

/// Checks magic, format version and that every length fits in the bytes actually left.
/// Returns the problem (without the file name) or the layout.
outcome<layout> check_layout(const std::string& bytes) {
  using result = outcome<layout>;
  const size_t size = bytes.size();
  // A prefix of the magic is a torn checkpoint, anything else is not a checkpoint at all.
  if (std::memcmp(bytes.data(), magic, std::min(size, sizeof(magic))) != 0)
    return result::failure("not a psgd checkpoint (bad magic)");
  if (size < header_size)
    return result::failure(
        fmt::format("truncated: {} bytes, shorter than the {}-byte header", size, header_size));
  const auto version = get_u32(bytes.data() + sizeof(magic));
  if (version != format_version)
    return result::failure(fmt::format("unsupported checkpoint format version {} (this build reads {})",
                                       version, format_version));
  layout l;
  size_t at = header_size;
  const uint64_t state_size = get_u64(bytes.data() + sizeof(magic) + 4);
  if (state_size > size - at)
    return result::failure(fmt::format(
        "truncated or corrupt: state length {} exceeds the {} bytes left", state_size, size - at));
  l.state_at = at;
  l.state_size = static_cast<size_t>(state_size);
  at += l.state_size;
  if (size - at < 16)
    return result::failure("truncated: the version and parameter count are missing");
  l.version = get_u64(bytes.data() + at);
  const uint64_t count = get_u64(bytes.data() + at + 8);
  at += 16;
  // Divide rather than multiply: count * 4 can wrap around for a corrupted count.
  if (count > (size - at) / 4)
    return result::failure(fmt::format(
        "truncated or corrupt: parameter count {} needs more than the {} bytes left", count,
        size - at));
  l.params_at = at;
  l.param_count = static_cast<size_t>(count);
  at += 4 * l.param_count;
  if (size - at < trailer_size)
    return result::failure("truncated: the CRC trailer is missing");
  if (size - at > trailer_size)
    return result::failure(
        fmt::format("{} trailing bytes after the CRC trailer", size - at - trailer_size));
  return l;
}

/// Verifies and decodes a whole file's bytes; the error is the problem only.
outcome<checkpoint> decode(const std::string& bytes) {
  using result = outcome<checkpoint>;
  auto l = check_layout(bytes);
  if (!l)
    return result::failure(l.error());
  const size_t body = bytes.size() - trailer_size;
  if (get_u32(bytes.data() + body) != crc_of(bytes.data(), body))
    return result::failure("CRC mismatch (torn or corrupt)");
  checkpoint c;
  c.state = nlohmann::json::parse(bytes.begin() + static_cast<std::ptrdiff_t>(l->state_at),
                                  bytes.begin() + static_cast<std::ptrdiff_t>(l->state_at + l->state_size),
                                  nullptr, false);
  // The CRC matched, so a bad state means the writer was broken, not the disk.
  if (c.state.is_discarded())
    return result::failure("the state is not valid JSON");
  c.version = l->version;
  c.params.resize(l->param_count);  // bounded by the file size: checked in check_layout
  for (size_t i = 0; i < l->param_count; ++i) {
    const uint32_t bits = get_u32(bytes.data() + l->params_at + 4 * i);
    std::memcpy(&c.params[i], &bits, sizeof bits);
  }
  return c;
}

// --- POSIX file operations -----------------------------------------------------------

int open_retrying(const char* file, int flags, mode_t mode = 0) {
  int fd;
  do
    fd = ::open(file, flags, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

/// 0 or the errno of the failure; loops over short writes and EINTR.
int write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (w == 0)  // cannot happen for a regular file; do not spin if it does
      return EIO;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

int fsync_retrying(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR)
      return errno;
  }
  return 0;
}

/// Creates `file` with `bytes` and makes them durable; "" or "file: cannot ...: reason".
std::string write_durably(const std::string& file, const std::string& bytes) {
  const int fd = open_retrying(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return fmt::format("{}: cannot create: {}", file, errno_text(errno));
  const char* what = "write";
  int e = write_all(fd, bytes.data(), bytes.size());
  if (e == 0) {
    what = "fsync";
    e = fsync_retrying(fd);
  }
  // Linux closes the descriptor even when close() fails, so never retry it; EINTR after a
  // successful fsync loses nothing.
  if (::close(fd) != 0 && e == 0 && errno != EINTR) {
    what = "close";
    e = errno;
  }
  return e == 0 ? std::string{} : fmt::format("{}: cannot {}: {}", file, what, errno_text(e));
}

/// Makes the renames in `path`'s directory durable.
std::string sync_directory_of(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty())
    dir = ".";
  const int fd = open_retrying(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fmt::format("{}: cannot open the directory to fsync it: {}", dir, errno_text(errno));
  const int e = fsync_retrying(fd);
  (void)::close(fd);  // read-only descriptor: a failing close cannot lose anything
  // EINVAL: the file system cannot sync directories; the renames are as durable as it allows.
  if (e != 0 && e != EINVAL)
    return fmt::format("{}: cannot fsync the directory: {}", dir, errno_text(e));
  return {};
}

/// The whole content of `file`, or the problem (without the file name).
outcome<std::string> read_whole(const std::string& file) {
  using result = outcome<std::string>;
  const int fd = open_retrying(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return result::failure(fmt::format("cannot open: {}", errno_text(errno)));
  struct stat st {};
  std::string bytes;
  int e = ::fstat(fd, &st) != 0 ? errno : 0;
  // A device or FIFO could stream forever; a checkpoint is always a regular file.
  if (e == 0 && !S_ISREG(st.st_mode))
    e = EINVAL;
  if (e == 0) {
    bytes.reserve(static_cast<size_t>(st.st_size));
    char buffer[1 << 16];
    for (;;) {
      const ssize_t r = ::read(fd, buffer, sizeof buffer);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        e = errno;
      if (r <= 0)
        break;
      bytes.append(buffer, static_cast<size_t>(r));
    }
  }
  (void)::close(fd);  // read-only descriptor: a failing close cannot lose anything
  if (e == EINVAL)
    return result::failure("not a regular file");
  if (e != 0)
    return result::failure(fmt::format("cannot read: {}", errno_text(e)));
  return bytes;
}

outcome<checkpoint> read_one(const std::string& file) {
  auto bytes = read_whole(file);
  if (!bytes)
    return outcome<checkpoint>::failure(bytes.error());
  return decode(*bytes);
}

} // namespace

std::string write_checkpoint(const std::string& path, const checkpoint& c) {
  std::string state_text;
  try {
    state_text = c.state.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a string that is not UTF-8
    return fmt::format("{}: cannot serialise the state: {}", path, e.what());
  }
  const auto tmp = path + ".tmp";
  const auto prev = path + ".prev";
  if (auto error = write_durably(tmp, encode(c, state_text)); !error.empty()) {
    ::unlink(tmp.c_str());  // best effort: a partial .tmp is never read anyway
    return error;
  }
  // The current checkpoint becomes .prev (there is none on the first write) as a second
  // name, so that `path` exists at every moment: the rename below replaces it in one step
  // (two renames left a moment without it, in which a crash left only .prev).
  ::unlink(prev.c_str());
  if (::link(path.c_str(), prev.c_str()) != 0 && errno != ENOENT
      && ::rename(path.c_str(), prev.c_str()) != 0 && errno != ENOENT) {
    // (rename: a file system without hard links; the moment without `path` is accepted.)
    const int e = errno;
    ::unlink(tmp.c_str());
    return fmt::format("{}: cannot keep it as {}: {}", path, prev, errno_text(e));
  }
  // Keep .tmp if this fails: it is then the newest complete checkpoint.
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fmt::format("{}: cannot rename to {}: {}", tmp, path, errno_text(errno));
  return sync_directory_of(path);
}

outcome<loaded_checkpoint> read_checkpoint(const std::string& path) {
  using result = outcome<loaded_checkpoint>;
  auto newest = read_one(path);
  if (newest)
    return loaded_checkpoint{std::move(*newest), path, {}};
  const auto prev = path + ".prev";
  auto older = read_one(prev);
  if (!older)
    return result::failure(
        fmt::format("{}: {}; {}: {}", path, newest.error(), prev, older.error()));
  auto note = fmt::format("{}: {}; resumed from {}", path, newest.error(), prev);
  return loaded_checkpoint{std::move(*older), prev, std::move(note)};
}

} // namespace psgd
