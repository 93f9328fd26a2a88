#include <catch2/catch.hpp>

#include <stdlib.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "actors/checkpoint.hpp"

using psgd::checkpoint;
using psgd::read_checkpoint;
using psgd::write_checkpoint;

namespace {

/// A fresh directory under /tmp, removed with its content at the end of the test. Its own
/// helper (not tests/test_helpers) so this file also builds alone against checkpoint.cpp.
class scratch_dir {
public:
  scratch_dir() {
    // mkdtemp replaces the six trailing 'X's with a unique suffix.
    std::string tmpl = std::string("/tmp/psgd-ckpt-") + std::string(6, 'X');
    const char* p = mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// Random floats over every bit pattern but NaN (so infinities, -0 and denormals too).
std::vector<float> random_params(size_t n, unsigned seed) {
  std::mt19937 gen{seed};
  std::vector<float> v;
  while (v.size() < n) {
    const uint32_t bits = gen();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    if (!std::isnan(f))
      v.push_back(f);
  }
  return v;
}

checkpoint sample(uint64_t version, unsigned seed, size_t n = 64) {
  checkpoint c;
  c.version = version;
  c.params = random_params(n, seed);
  c.state = {{"updates", version},
             {"loss", -0.125},
             {"name", "run \"α\"\n"},
             {"workers", {{{"id", 0}, {"position", 17}}, {{"id", 1}, {"position", -3}}}},
             {"config", {{"fingerprint", "ab12"}, {"nested", {{"deep", {1, 2.5, nullptr, true}}}}}}};
  return c;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size()
         && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void check_same(const checkpoint& got, const checkpoint& want) {
  CHECK(got.version == want.version);
  CHECK(same_bits(got.params, want.params));
  CHECK(got.state == want.state);
}

std::string slurp(const std::string& file) {
  std::ifstream in{file, std::ios::binary};
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& file, const std::string& bytes) {
  std::ofstream out{file, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

/// Overwrites one byte in place: no truncation, so ext4 does not flush on every close
/// (which made rewriting the whole file hundreds of times slow).
void poke(const std::string& file, size_t at, char byte) {
  std::fstream f{file, std::ios::binary | std::ios::in | std::ios::out};
  f.seekp(static_cast<std::streamoff>(at));
  f.put(byte);
  REQUIRE(f);
}

void put_u64_at(std::string& bytes, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i)
    bytes[at + i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}

/// Recomputes the trailer, so that only the structural checks can catch a bad field.
void reseal(std::string& bytes) {
  const size_t body = bytes.size() - 4;
  auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(body)));
  for (size_t i = 0; i < 4; ++i)
    bytes[body + i] = static_cast<char>((crc >> (8 * i)) & 0xffu);
}

/// Offsets of the fields in a version 1 file (see checkpoint.cpp).
struct offsets {
  size_t state_length = 12, state, version, count, params, trailer;
  explicit offsets(const checkpoint& c, size_t file_size) {
    state = 20;
    version = state + c.state.dump().size();
    count = version + 8;
    params = count + 8;
    trailer = file_size - 4;
  }
};

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == std::string::npos;
}

} // namespace

TEST_CASE("a checkpoint survives a write and a read bit for bit", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto c = sample(123456789012345ull, 1, 1000);
  REQUIRE(write_checkpoint(path, c) == "");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_FALSE(std::filesystem::exists(path + ".prev"));
  CHECK(slurp(path).compare(0, 8, "PSGDCKPT") == 0);
  auto r = read_checkpoint(path);
  INFO(r.error());
  REQUIRE(r);
  CHECK(r->file == path);
  CHECK(r->note.empty());
  check_same(r->data, c);
}

TEST_CASE("an empty checkpoint with a null state round trips", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  checkpoint c;
  REQUIRE(write_checkpoint(path, c) == "");
  auto r = read_checkpoint(path);
  INFO(r.error());
  REQUIRE(r);
  check_same(r->data, c);
  CHECK(r->data.state.is_null());
}

TEST_CASE("a second write keeps the first as prev and the read returns the newest",
          "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto first = sample(1, 1), second = sample(2, 2);
  REQUIRE(write_checkpoint(path, first) == "");
  REQUIRE(write_checkpoint(path, second) == "");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  auto r = read_checkpoint(path);
  INFO(r.error());
  REQUIRE(r);
  CHECK(r->file == path);
  CHECK(r->note.empty());
  check_same(r->data, second);
  auto p = read_checkpoint(path + ".prev");
  INFO(p.error());
  REQUIRE(p);
  check_same(p->data, first);
}

TEST_CASE("a stale tmp file from an interrupted write is replaced", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  spit(path + ".tmp", std::string(100000, 'z'));
  const auto c = sample(9, 9);
  REQUIRE(write_checkpoint(path, c) == "");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  auto r = read_checkpoint(path);
  INFO(r.error());
  REQUIRE(r);
  check_same(r->data, c);
}

TEST_CASE("a truncated checkpoint falls back to prev with a note", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto first = sample(1, 1), second = sample(2, 2);
  REQUIRE(write_checkpoint(path, first) == "");
  REQUIRE(write_checkpoint(path, second) == "");
  const auto good = slurp(path);
  const offsets at{second, good.size()};
  for (size_t cut : {size_t{0}, size_t{5}, size_t{10}, size_t{16}, at.state + 3, at.version + 4,
                     at.count + 2, at.params + 1, at.params + 4 * 20 + 2, at.trailer,
                     at.trailer + 2, good.size() - 1}) {
    INFO("cut at " << cut << " of " << good.size());
    spit(path, good.substr(0, cut));
    auto r = read_checkpoint(path);
    INFO(r.error());
    REQUIRE(r);
    CHECK(r->file == path + ".prev");
    CHECK_THAT(r->note, Catch::StartsWith(path + ": truncated"));
    CHECK_THAT(r->note, Catch::EndsWith("; resumed from " + path + ".prev"));
    CHECK(one_line(r->note));
    check_same(r->data, first);
  }
}

TEST_CASE("a flipped byte anywhere is detected and falls back to prev", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto first = sample(1, 1), second = sample(2, 2);
  REQUIRE(write_checkpoint(path, first) == "");
  REQUIRE(write_checkpoint(path, second) == "");
  const auto good = slurp(path);
  const offsets at{second, good.size()};
  for (unsigned char mask : {0x01, 0x80, 0xff}) {
    for (size_t i = 0; i < good.size(); ++i) {
      INFO("byte " << i << " of " << good.size() << " xor " << int(mask));
      poke(path, i, static_cast<char>(good[i] ^ mask));
      auto r = read_checkpoint(path);
      poke(path, i, good[i]);
      INFO(r.error());
      REQUIRE(r);
      CHECK(r->file == path + ".prev");
      CHECK(one_line(r->note));
      // Only the lengths and the header are caught before the CRC: the payload is the CRC's.
      const bool payload = (i >= at.state && i < at.count) || i >= at.params;
      if (payload)
        CHECK_THAT(r->note, Catch::Contains("CRC mismatch"));
      check_same(r->data, first);
    }
  }
}

TEST_CASE("a corrupted count or length is refused by the length check", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto c = sample(5, 5);
  REQUIRE(write_checkpoint(path, c) == "");
  const auto good = slurp(path);
  const offsets at{c, good.size()};
  // With the CRC recomputed too, only the length check stands between the count and an
  // allocation. 2^62 and 2^63 wrap to 0 when multiplied by sizeof(float).
  const uint64_t values[] = {uint64_t{1} << 60, uint64_t{1} << 62, uint64_t{1} << 63,
                             ~uint64_t{0}, uint64_t{1} << 26, c.params.size() + 2};
  for (uint64_t value : values) {
    for (bool resealed : {false, true}) {
      INFO("value " << value << (resealed ? " with a recomputed CRC" : ""));
      auto bad = good;
      put_u64_at(bad, at.count, value);
      if (resealed)
        reseal(bad);
      spit(path, bad);
      auto r = read_checkpoint(path);
      REQUIRE_FALSE(r);
      CHECK_THAT(r.error(), Catch::Contains(path + ": truncated or corrupt: parameter count "
                                            + std::to_string(value)));
      if (value <= good.size())
        continue;  // too small to overflow the state length
      bad = good;
      put_u64_at(bad, at.state_length, value);
      if (resealed)
        reseal(bad);
      spit(path, bad);
      r = read_checkpoint(path);
      REQUIRE_FALSE(r);
      CHECK_THAT(r.error(), Catch::Contains(path + ": truncated or corrupt: state length "
                                            + std::to_string(value)));
    }
  }
}

TEST_CASE("a file that is not a checkpoint or of another format version is refused",
          "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  SECTION("text") {
    spit(path, "{\"version\": 3}\n");
    auto r = read_checkpoint(path);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains(path + ": not a psgd checkpoint (bad magic)"));
  }
  SECTION("format version 2") {
    REQUIRE(write_checkpoint(path, sample(1, 1)) == "");
    auto bad = slurp(path);
    bad[8] = 2;
    reseal(bad);
    spit(path, bad);
    auto r = read_checkpoint(path);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains("unsupported checkpoint format version 2"));
  }
  SECTION("trailing bytes") {
    REQUIRE(write_checkpoint(path, sample(1, 1)) == "");
    spit(path, slurp(path) + "xyz");
    auto r = read_checkpoint(path);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains("3 trailing bytes"));
  }
  SECTION("a directory") {
    std::filesystem::create_directory(path);
    auto r = read_checkpoint(path);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error(), Catch::Contains(path + ": not a regular file"));
  }
}

TEST_CASE("both checkpoints bad gives a failure naming both", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  REQUIRE(write_checkpoint(path, sample(1, 1)) == "");
  REQUIRE(write_checkpoint(path, sample(2, 2)) == "");
  auto newest = slurp(path);
  spit(path, newest.substr(0, newest.size() - 10));  // inside the parameters
  auto older = slurp(path + ".prev");
  older[older.size() - 10] ^= 0x10;
  spit(path + ".prev", older);
  auto r = read_checkpoint(path);
  REQUIRE_FALSE(r);
  CHECK(one_line(r.error()));
  CHECK_THAT(r.error(), Catch::StartsWith(path + ": truncated"));
  CHECK_THAT(r.error(), Catch::EndsWith("; " + path + ".prev: CRC mismatch (torn or corrupt)"));
}

TEST_CASE("a missing checkpoint with a good prev resumes from prev", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto first = sample(1, 1);
  REQUIRE(write_checkpoint(path, first) == "");
  REQUIRE(write_checkpoint(path, sample(2, 2)) == "");
  std::filesystem::remove(path);
  auto r = read_checkpoint(path);
  INFO(r.error());
  REQUIRE(r);
  CHECK(r->file == path + ".prev");
  CHECK(r->note
        == path + ": cannot open: No such file or directory; resumed from " + path + ".prev");
  check_same(r->data, first);
}

TEST_CASE("missing checkpoint and prev give a failure naming both", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  auto r = read_checkpoint(path);
  REQUIRE_FALSE(r);
  CHECK(r.error()
        == path + ": cannot open: No such file or directory; " + path
               + ".prev: cannot open: No such file or directory");
}

TEST_CASE("writing into a missing directory gives a one line error", "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("nowhere/run.ckpt");
  std::string error;
  REQUIRE_NOTHROW(error = write_checkpoint(path, sample(1, 1)));
  CHECK(one_line(error));
  CHECK(error == path + ".tmp: cannot create: No such file or directory");
}

TEST_CASE("a state that cannot be serialised gives an error and keeps the old checkpoint",
          "[checkpoint]") {
  scratch_dir dir;
  const auto path = dir.file("run.ckpt");
  const auto first = sample(1, 1);
  REQUIRE(write_checkpoint(path, first) == "");
  auto bad = sample(2, 2);
  bad.state["name"] = std::string("\xff\xfe not UTF-8");
  std::string error;
  REQUIRE_NOTHROW(error = write_checkpoint(path, bad));
  CHECK(one_line(error));
  CHECK_THAT(error, Catch::StartsWith(path + ": cannot serialise the state"));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_FALSE(std::filesystem::exists(path + ".prev"));
  auto r = read_checkpoint(path);
  REQUIRE(r);
  check_same(r->data, first);
}
