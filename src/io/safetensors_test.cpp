#include "io/safetensors.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include <gtest/gtest.h>

namespace netdist::io {
namespace {

constexpr const char* kWhat = "bad.safetensors";

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// A file made of the length prefix, `header` padded with spaces to 8 bytes, and `data`.
std::string file_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

std::string floats(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "safetensors_test_XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(file(name), std::ios::binary) << bytes;
    return file(name);
  }

 private:
  std::string path_;
};

// The error's code, and that its message starts with `what` and contains every needle.
void expect_status(const Status& s, StatusCode code, const std::string& what,
                   std::initializer_list<std::string> needles) {
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().rfind(what + ": ", 0), 0u) << s.message();
  for (const auto& n : needles)
    EXPECT_NE(s.message().find(n), std::string::npos) << "want '" << n << "' in: " << s.message();
}

template <typename T>
void expect_error(const Result<T>& r, StatusCode code, const std::string& what,
                  std::initializer_list<std::string> needles) {
  ASSERT_FALSE(r.is_ok());
  expect_status(r.status(), code, what, needles);
}

void expect_corrupt(const std::string& header, const std::string& data,
                    std::initializer_list<std::string> needles) {
  expect_error(SafetensorsFile::open_buffer(file_bytes(header, data), kWhat), StatusCode::kCorruption, kWhat,
               needles);
}

const std::string kEightBytes = floats({1.0f, 2.0f});

TEST(Safetensors, DtypeNamesAndSizes) {
  const std::pair<const char*, size_t> all[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2}, {"F16", 2},     {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
  };
  for (const auto& [name, size] : all) {
    auto d = dtype_from_name(name);
    ASSERT_TRUE(d.has_value()) << name;
    EXPECT_EQ(dtype_name(*d), name);
    EXPECT_EQ(dtype_size(*d), size) << name;
  }
  EXPECT_FALSE(dtype_from_name("F4").has_value());
  EXPECT_FALSE(dtype_from_name("f32").has_value());
}

// The bytes the reference writer (huggingface/safetensors, Python save_file) produces for
// {"a": [1.0, 2.0]} with metadata {"format": "pt"}: metadata first, header padded with spaces to 8.
TEST(Safetensors, ReadsReferenceWriterBytes) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 85u);
  std::string bytes = std::string("\x58\0\0\0\0\0\0\0", 8) + header + "   " +
                      std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  auto file = SafetensorsFile::open_buffer(bytes, "ref.safetensors");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  const TensorInfo* a = (*file)->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, Dtype::kF32);
  EXPECT_EQ(a->shape, std::vector<int64_t>({2}));
  EXPECT_EQ(a->byte_size, 8u);
  float v[2];
  std::memcpy(v, a->data, 8);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.0f);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");

  // Key order inside the header does not matter.
  auto swapped = SafetensorsFile::open_buffer(
      file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}})",
                 kEightBytes),
      "ref2.safetensors");
  ASSERT_TRUE(swapped.is_ok()) << swapped.status().to_string();
  EXPECT_EQ((*swapped)->metadata().at("format"), "pt");
}

// Byte-for-byte the reference implementation's own serialisation test (attn.0, F32 [1,2,3] = 0..5).
TEST(Safetensors, WriterMatchesReferenceBytes) {
  const float values[] = {0, 1, 2, 3, 4, 5};
  TensorView attn{"attn.0", Dtype::kF32, {1, 2, 3}, values, sizeof values};
  auto out = serialize_safetensors({attn}, {});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(header.size(), 64u);
  EXPECT_EQ(*out, le64(64) + header + std::string(reinterpret_cast<const char*>(values), 24));

  TensorView padded{"attn0", Dtype::kF32, {1, 1, 2, 3}, values, sizeof values};
  out = serialize_safetensors({padded}, {});
  ASSERT_TRUE(out.is_ok());
  const std::string header2 = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  EXPECT_EQ(*out, le64(72) + header2 + std::string(72 - header2.size(), ' ') +
                      std::string(reinterpret_cast<const char*>(values), 24));
}

TEST(Safetensors, GoldenFileFromTestData) {
  const char* root = std::getenv("NETDIST_TEST_DATA");
  ASSERT_NE(root, nullptr) << "NETDIST_TEST_DATA is not set";
  const std::string path = std::string(root) + "/safetensors/reference_f32.safetensors";
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->names(), std::vector<std::string>({"a"}));
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*file)->find("a")->data), 8), kEightBytes);
}

TEST(Safetensors, EmptyFileScalarAndEmptyTensor) {
  auto empty = SafetensorsFile::open_buffer(file_bytes("{}", ""), "empty.safetensors");
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_TRUE((*empty)->tensors().empty());

  auto file =
      SafetensorsFile::open_buffer(file_bytes(R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
                                              R"("e":{"dtype":"F32","shape":[3,0],"data_offsets":[8,8]}})",
                                              std::string(8, '\x01')),
                                   "x.safetensors");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->find("s")->numel(), 1);
  EXPECT_TRUE((*file)->find("s")->shape.empty());
  EXPECT_EQ((*file)->find("e")->numel(), 0);
  EXPECT_EQ((*file)->find("e")->byte_size, 0u);
  EXPECT_EQ((*file)->find("missing"), nullptr);
}

TEST(Safetensors, NamesInOffsetOrder) {
  auto file =
      SafetensorsFile::open_buffer(file_bytes(R"({"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                              R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},)"
                                              R"("a":{"dtype":"I16","shape":[1],"data_offsets":[1,3]}})",
                                              "\x01\x02\x03\x04\x05"),
                                   "x.safetensors");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->names(), std::vector<std::string>({"z", "a", "b"}));
  EXPECT_EQ((*file)->find("b")->data[0], 4);
}

TEST(Safetensors, TruncatedFiles) {
  TempDir dir;
  std::string path = dir.write("short.safetensors", std::string("\x05\0\0\0", 4));
  expect_error(SafetensorsFile::open(path), StatusCode::kCorruption, path, {"4 bytes", "too short"});

  path = dir.write("header.safetensors", le64(100) + R"({"a":)");
  expect_error(SafetensorsFile::open(path), StatusCode::kCorruption, path,
               {"header length 100", "truncated"});

  path = dir.write("data.safetensors", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                                  kEightBytes.substr(0, 4)));
  expect_error(SafetensorsFile::open(path), StatusCode::kCorruption, path,
               {"tensor 'a'", "[0,8]", "truncated"});

  expect_error(SafetensorsFile::open(dir.file("missing.safetensors")), StatusCode::kNotFound,
               dir.file("missing.safetensors"), {"no such file"});
}

TEST(Safetensors, HeaderLengthHuge) {
  expect_error(SafetensorsFile::open_buffer(le64(uint64_t{1} << 40) + "{}", kWhat), StatusCode::kCorruption,
               kWhat, {"header length 1099511627776", "exceeds"});
  expect_error(SafetensorsFile::open_buffer(le64(~uint64_t{0}) + "{}", kWhat), StatusCode::kCorruption, kWhat,
               {"exceeds"});
}

TEST(Safetensors, HeaderNotJsonObject) {
  expect_corrupt("{not json}", "", {"not valid JSON"});
  expect_corrupt("[1,2]", "", {"does not start with '{'"});
  expect_corrupt(R"( {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"does not start with '{'"});
  expect_corrupt(R"({"a":5})", "", {"tensor 'a'", "not a JSON object"});
  expect_corrupt(std::string("{}\0\0", 4), "", {"not valid JSON"});
  expect_error(SafetensorsFile::open_buffer(le64(0), kWhat), StatusCode::kCorruption, kWhat,
               {"does not start with '{'"});
}

TEST(Safetensors, MissingFields) {
  expect_corrupt(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "missing \"dtype\""});
  expect_corrupt(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "missing \"shape\""});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2]}})", kEightBytes,
                 {"tensor 'a'", "missing \"data_offsets\""});
  expect_corrupt(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "dtype"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "shape"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", kEightBytes,
                 {"tensor 'a'", "data_offsets"});
}

TEST(Safetensors, BadShape) {
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "shape dimension", "non-negative", "-2"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "shape dimension"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "overflows"});
}

TEST(Safetensors, BadOffsets) {
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", kEightBytes,
                 {"tensor 'a'", "[0,16]", "run past the data buffer of 8 bytes"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", kEightBytes,
                 {"tensor 'a'", "[8,4]", "end before"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", kEightBytes,
                 {"tensor 'a'", "data_offsets[0]"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes,
                 {"tensor 'a'", "shape [3]", "needs 12 bytes", "hold 8"});
}

TEST(Safetensors, BufferCoverage) {
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 kEightBytes, {"tensor 'b'", "overlaps tensor 'a'"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}})",
                 kEightBytes.substr(0, 4), {"tensor 'b'", "overlaps tensor 'a'"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", kEightBytes,
                 {"hole of 4 bytes", "before tensor 'a'"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})",
                 kEightBytes, {"hole of 2 bytes", "tensor 'b'"});
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kEightBytes + "xyz",
                 {"3 trailing bytes"});
  expect_corrupt("{}", "x", {"1 trailing bytes"});
}

TEST(Safetensors, DuplicateKeys) {
  expect_corrupt(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 kEightBytes, {"duplicate key 'a'"});
  expect_corrupt(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                 {"duplicate key 'dtype'"});
  expect_corrupt(R"({"__metadata__":{"k":"1","k":"2"}})", "", {"duplicate key 'k'"});
}

TEST(Safetensors, UnknownDtypeIsUnsupported) {
  for (const char* dtype : {"F4", "C64", "F8_E4M3FNUZ", "float32"}) {
    std::string header =
        std::string(R"({"w.weight":{"dtype":")") + dtype + R"(","shape":[8],"data_offsets":[0,8]}})";
    expect_error(SafetensorsFile::open_buffer(file_bytes(header, kEightBytes), kWhat),
                 StatusCode::kUnsupported, kWhat, {"tensor 'w.weight'", std::string("'") + dtype + "'"});
  }
}

TEST(Safetensors, MetadataMustBeStrings) {
  expect_corrupt(R"({"__metadata__":{"format":"pt","steps":20}})", "",
                 {"__metadata__", "'steps'", "not a string"});
  expect_corrupt(R"({"__metadata__":{"nested":{"a":"b"}}})", "", {"__metadata__", "'nested'"});
  expect_corrupt(R"({"__metadata__":"pt"})", "", {"__metadata__", "not a JSON object"});
}

TEST(Safetensors, ParseHeaderWithoutFile) {
  auto h = SafetensorsFile::parse_header(R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}   )", 8,
                                         "net body");
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  ASSERT_EQ(h->tensors.size(), 1u);
  EXPECT_EQ(h->tensors[0].dtype, Dtype::kBF16);
  EXPECT_EQ(h->tensors[0].data, nullptr);
  expect_error(SafetensorsFile::parse_header("{}", 4, "net body"), StatusCode::kCorruption, "net body",
               {"4 trailing bytes"});
}

std::vector<TensorView> sample_views(const std::vector<float>& f, const std::vector<int64_t>& l,
                                     const uint8_t* b) {
  return {
      {"f", Dtype::kF32, {2, 2}, f.data(), 16}, {"l", Dtype::kI64, {3}, l.data(), 24},
      {"b", Dtype::kBool, {3}, b, 3},           {"empty", Dtype::kF16, {0, 4}, nullptr, 0},
      {"scalar", Dtype::kF32, {}, f.data(), 4},
  };
}

TEST(Safetensors, WriteThenReadRoundTrip) {
  TempDir dir;
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f};
  const std::vector<int64_t> l = {1, -2, int64_t{1} << 40};
  const uint8_t b[3] = {1, 0, 1};
  const std::string path = dir.file("round.safetensors");
  ASSERT_TRUE(write_safetensors(path, sample_views(f, l, b), {{"format", "pt"}, {"seed", "42"}}).is_ok());
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);

  const std::string bytes = read_file(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->metadata().size(), 2u);
  EXPECT_EQ((*file)->metadata().at("seed"), "42");
  for (const TensorInfo& t : (*file)->tensors()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << t.name;
  }
  EXPECT_EQ((*file)->names(), std::vector<std::string>({"l", "f", "scalar", "empty", "b"}));
  EXPECT_EQ(std::memcmp((*file)->find("f")->data, f.data(), 16), 0);
  EXPECT_EQ(std::memcmp((*file)->find("l")->data, l.data(), 24), 0);
  EXPECT_EQ(std::memcmp((*file)->find("b")->data, b, 3), 0);
  EXPECT_EQ((*file)->find("empty")->shape, std::vector<int64_t>({0, 4}));
  EXPECT_TRUE((*file)->find("scalar")->shape.empty());

  auto buffer = serialize_safetensors(sample_views(f, l, b), {{"format", "pt"}, {"seed", "42"}});
  ASSERT_TRUE(buffer.is_ok());
  EXPECT_EQ(*buffer, bytes);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const float f[2] = {1, 2};
  auto bad = [&](std::vector<TensorView> views, std::initializer_list<std::string> needles) {
    expect_status(write_safetensors("/tmp/never.safetensors", views, {}), StatusCode::kInvalidArgument,
                  "/tmp/never.safetensors", needles);
  };
  bad({{"a", Dtype::kF32, {3}, f, 8}}, {"tensor 'a'", "needs 12 bytes, got 8"});
  bad({{"a", Dtype::kF32, {2}, f, 8}, {"a", Dtype::kF32, {2}, f, 8}}, {"tensor 'a'", "duplicate"});
  bad({{"__metadata__", Dtype::kF32, {2}, f, 8}}, {"reserved"});
  bad({{"a", Dtype::kF32, {-1}, f, 8}}, {"tensor 'a'", "bad shape"});
  bad({{"\xff", Dtype::kF32, {2}, f, 8}}, {"UTF-8"});
  EXPECT_NE(::access("/tmp/never.safetensors", F_OK), 0);
}

TEST(Safetensors, WriteToUnwritableDirectory) {
  TempDir dir;
  const float f[2] = {1, 2};
  const std::string not_a_dir = dir.write("plain", "x");
  const std::string path = not_a_dir + "/out.safetensors";
  Status s = write_safetensors(path, {{"a", Dtype::kF32, {2}, f, 8}}, {});
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_EQ(s.message().rfind(path + ": ", 0), 0u) << s.message();

  s = write_safetensors(dir.file("no/such/dir/out.safetensors"), {{"a", Dtype::kF32, {2}, f, 8}}, {});
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_NE(s.message().find("no/such/dir/out.safetensors"), std::string::npos);
}

// A full disk, simulated with RLIMIT_FSIZE: the write fails, nothing is left at the path or the .tmp.
TEST(Safetensors, WriteFailureLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("full.safetensors");
  const std::string old_bytes = "previous contents";
  dir.write("full.safetensors", old_bytes);
  std::vector<float> big(1 << 16, 1.0f);

  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  Status s = write_safetensors(path, {{"big", Dtype::kF32, {1 << 16}, big.data(), big.size() * 4}}, {});
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.to_string();
  EXPECT_EQ(s.message().rfind(path + ": ", 0), 0u) << s.message();
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
  EXPECT_EQ(read_file(path), old_bytes);
}

}  // namespace
}  // namespace netdist::io
