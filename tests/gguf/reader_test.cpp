// The GGUF container: every metadata value type, versions 2 and 3, alignment, mmap, and every
// malformed case rejected with an atax::Error that names the file and gives a hint.
#include <gtest/gtest.h>

#include <fstream>

#include "gguf/gguf_file.h"
#include "gguf_builder.h"

using namespace atax;
using namespace atax::gguf;
using namespace gguf_test;

namespace {

// Expects parsing `bytes` to fail with an Error whose text contains `needle`, names the file and
// carries a hint.
void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    GgufFile::from_bytes(bytes, "bad.gguf");
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.file(), "bad.gguf");
    EXPECT_FALSE(e.hint().empty()) << e.what();
  }
}

std::vector<float> iota_f32(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

Builder with_f32_tensor() {
  Builder b;
  b.str("general.architecture", "llama");
  b.f32_tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  return b;
}

TEST(ReaderTest, ParsesEveryValueType) {
  Builder b;
  b.kv_raw("u8", U8, le<uint8_t>(200)).kv_raw("i8", I8, le<int8_t>(-100));
  b.kv_raw("u16", U16, le<uint16_t>(60000)).kv_raw("i16", I16, le<int16_t>(-30000));
  b.u32("u32", 4000000000u).i32("i32", -2000000000);
  b.f32("f32", 0.25f).boolean("bool", true).str("str", "héllo");
  b.u64("u64", 18000000000000000000ull).kv_raw("i64", I64, le<int64_t>(-9000000000000000000ll));
  b.kv_raw("f64", F64, le<double>(-1.0 / 3));
  b.strs("arr_str", {"a", "", "ccc"}).f32s("arr_f32", {1.5f, -2.f});
  // An array of two arrays of uint16.
  std::string inner1 = le<uint32_t>(U16) + le<uint64_t>(2) + le<uint16_t>(1) + le<uint16_t>(2);
  std::string inner2 = le<uint32_t>(U16) + le<uint64_t>(1) + le<uint16_t>(3);
  b.kv_raw("nested", ARR, le<uint32_t>(ARR) + le<uint64_t>(2) + inner1 + inner2);
  b.kv_raw("empty", ARR, le<uint32_t>(I64) + le<uint64_t>(0));
  GgufFile f = GgufFile::from_bytes(b.build(), "all.gguf");
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.metadata()[0].first, "u8");  // file order kept
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_float("f32"), 0.25);
  EXPECT_EQ(f.get_float32("f32"), 0.25f);
  EXPECT_EQ(f.get_bool("bool"), true);
  EXPECT_EQ(f.get_string("str"), "héllo");
  EXPECT_EQ(f.find("u64")->u, 18000000000000000000ull);
  EXPECT_THROW(f.get_int("u64"), Error);  // above INT64_MAX
  EXPECT_EQ(f.get_int("i64"), -9000000000000000000ll);
  EXPECT_EQ(f.get_float("f64"), -1.0 / 3);
  EXPECT_EQ(f.get_string_array("arr_str"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_float_array("arr_f32"), (std::vector<double>{1.5, -2.0}));
  const Value* n = f.find("nested");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->elem_type, ValueType::kArray);
  EXPECT_EQ(n->to_json(), json::parse("[[1,2],[3]]"));
  EXPECT_EQ(f.get_int_array("empty")->size(), 0u);
  EXPECT_FALSE(f.get_int("absent").has_value());
  EXPECT_EQ(f.find("absent"), nullptr);
  // Asking for the wrong type names the key.
  try {
    f.get_string("u8");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'u8' is uint8 but a string was expected"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_string_array("arr_f32"), Error);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(ReaderTest, ReadsVersion2AndVersion3Alike) {
  for (uint32_t v : {2u, 3u}) {
    Builder b = with_f32_tensor();
    b.version = v;
    GgufFile f = GgufFile::from_bytes(b.build());
    EXPECT_EQ(f.version(), v);
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.dequantize_tensor(f.tensors()[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  }
}

TEST(ReaderTest, TensorInfosShapesAndDefaultAlignment) {
  Builder b;
  b.f32_tensor("a", {3}, {1, 2, 3});  // 12 bytes, next tensor at offset 32
  b.f32_tensor("m", {2, 3}, {1, 2, 3, 4, 5, 6});
  std::string bytes = b.build();
  GgufFile f = GgufFile::from_bytes(bytes);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  const TensorInfo* m = f.find_tensor("m");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->offset, 32u);
  EXPECT_EQ(m->ne, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m->shape(), (std::vector<int64_t>{3, 2}));  // torch order: ne reversed
  EXPECT_EQ(m->n_elements, 6);
  EXPECT_EQ(m->n_bytes, 24u);
  float first;
  std::memcpy(&first, f.tensor_data(*m), 4);
  EXPECT_EQ(first, 1.0f);
}

TEST(ReaderTest, HonoursGeneralAlignment) {
  Builder b;
  b.alignment = 64;
  b.u32("general.alignment", 64);
  b.f32_tensor("a", {3}, {1, 2, 3});
  b.f32_tensor("b", {2}, {7, 8});
  GgufFile f = GgufFile::from_bytes(b.build());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);
  EXPECT_EQ(f.dequantize_tensor(*f.find_tensor("b")), (std::vector<float>{7, 8}));
}

TEST(ReaderTest, OpensThroughMmapLikeFromBytes) {
  std::string bytes = with_f32_tensor().build();
  fs::path p = fs::temp_directory_path() / "atax_gguf_reader_test.gguf";
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  GgufFile f = GgufFile::open(p);
  EXPECT_EQ(f.name(), p.string());
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.dequantize_tensor(f.tensors()[0])[5], 6.0f);
  GgufFile copy = f;  // copies share the mapping
  fs::remove(p);
  EXPECT_EQ(copy.dequantize_tensor(copy.tensors()[0])[0], 1.0f);
  EXPECT_THROW(GgufFile::open(p), Error);  // gone now
}

// ------------------------------------------------------------------------------- malformed files

TEST(ReaderTest, RejectsBadMagic) {
  std::string bytes = with_f32_tensor().build();
  bytes[0] = 'X';
  expect_error(bytes, "not a GGUF file: it starts with 'XGUF'");
  expect_error("GG", "not a GGUF file: only 2 bytes");
  expect_error("", "only 0 bytes");
  expect_error("{\"architectures\": []}", "not a GGUF file");
}

TEST(ReaderTest, RejectsUnsupportedVersions) {
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    Builder b = with_f32_tensor();
    b.version = v;
    expect_error(b.build(), v == 1 ? "version 1 is not supported"
                            : v == 0x03000000u ? "big-endian"
                                               : "unsupported GGUF version " + std::to_string(v));
  }
}

TEST(ReaderTest, RejectsEveryTruncation) {
  // Cutting a valid file anywhere (header, metadata, tensor infos, data) must give an Error.
  Builder b = with_f32_tensor();
  b.strs("tokenizer.ggml.tokens", {"a", "b"}).f32("x", 1.f);
  std::string bytes = b.build();
  GgufFile::from_bytes(bytes);  // the whole file is fine
  size_t data_end = bytes.size() - 32 + 24;  // the tensor's last byte
  for (size_t n = 0; n < data_end; ++n) {
    try {
      GgufFile::from_bytes(bytes.substr(0, n), "cut.gguf");
      ADD_FAILURE() << "a prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), "cut.gguf");
    }
  }
}

TEST(ReaderTest, RejectsTruncatedMetadata) {
  Builder b;
  b.str("general.name", "tiny");
  std::string bytes = b.build(/*pad_end=*/false);
  GgufFile::from_bytes(bytes);
  expect_error(bytes.substr(0, bytes.size() - 2), "a metadata string has length 4 but only 2 bytes are left");
  expect_error(bytes.substr(0, 20), "truncated: the metadata count");
}

TEST(ReaderTest, RejectsStringLongerThanFile) {
  Builder b;
  b.kv_raw("general.name", STR, le<uint64_t>(1000) + "abc");
  expect_error(b.build(), "a metadata string has length 1000 but only");
  Builder huge;  // a length near 2^64 must not be allocated
  huge.kv_raw("general.name", STR, le<uint64_t>(~0ull) + "abc");
  expect_error(huge.build(), "has length 18446744073709551615");
  std::string key_too_long = "GGUF" + le<uint32_t>(3) + le<uint64_t>(0) + le<uint64_t>(1) + le<uint64_t>(1ull << 62);
  key_too_long += std::string(40, 'k');
  expect_error(key_too_long, "a metadata key has length 4611686018427387904");
}

TEST(ReaderTest, RejectsArrayCountLongerThanFile) {
  Builder b;
  b.kv_raw("tokenizer.ggml.tokens", ARR, le<uint32_t>(STR) + le<uint64_t>(1ull << 40) + gstr("a"));
  expect_error(b.build(), "array of 1099511627776 string needs at least");
  Builder c;
  c.kv_raw("tokenizer.ggml.scores", ARR, le<uint32_t>(F32) + le<uint64_t>(~0ull) + le<float>(1));
  expect_error(c.build(), "array of 18446744073709551615 float32");
  Builder d;  // count fits in the bytes left, but the elements run out (strings of length 100)
  d.kv_raw("a", ARR, le<uint32_t>(STR) + le<uint64_t>(3) + gstr("x") + le<uint64_t>(100) + std::string(20, 'y'));
  expect_error(d.build(), "has length 100 but only");
}

TEST(ReaderTest, RejectsHugeCounts) {
  expect_error("GGUF" + le<uint32_t>(3) + le<uint64_t>(~0ull) + le<uint64_t>(0), "tensor count 18446744073709551615");
  expect_error("GGUF" + le<uint32_t>(3) + le<uint64_t>(0) + le<uint64_t>(1ull << 60), "metadata count");
}

TEST(ReaderTest, RejectsUnknownValueTypesAndBadBools) {
  Builder b;
  b.kv_raw("k", 13, le<uint32_t>(0));
  expect_error(b.build(), "metadata 'k': unknown value type 13");
  Builder c;
  c.kv_raw("k", ARR, le<uint32_t>(99) + le<uint64_t>(0));
  expect_error(c.build(), "unknown array element type 99");
  Builder d;
  d.kv_raw("k", BOOL, le<uint8_t>(7));
  expect_error(d.build(), "bool value 7 is neither 0 nor 1");
}

TEST(ReaderTest, RejectsDeeplyNestedArrays) {
  std::string v = le<uint32_t>(U8) + le<uint64_t>(0);
  for (int i = 0; i < 50; ++i) v = le<uint32_t>(ARR) + le<uint64_t>(1) + v;
  Builder b;
  b.kv_raw("deep", ARR, v);
  expect_error(b.build(), "nested deeper than");
}

TEST(ReaderTest, RejectsDuplicates) {
  Builder b;
  b.u32("k", 1).u32("k", 2);
  expect_error(b.build(), "duplicate metadata key 'k'");
  Builder c;
  c.f32_tensor("w", {1}, {1}).f32_tensor("w", {1}, {2});
  expect_error(c.build(), "duplicate tensor name 'w'");
}

TEST(ReaderTest, RejectsTensorPastTheEnd) {
  std::string bytes = with_f32_tensor().build();
  expect_error(bytes.substr(0, bytes.size() - 32 + 20), "tensor 'w' (F32, 24 bytes at data offset 0) runs past the end");
  Builder b = with_f32_tensor();
  b.tensors[0].offset_override = 1ull << 40;
  expect_error(b.build(), "runs past the end of the file");
  Builder c = with_f32_tensor();
  c.tensors[0].offset_override = ~0ull - 31;  // offset + size wraps around
  expect_error(c.build(), "runs past the end");
}

// Two tensors whose data share bytes would both load, one showing the other's numbers: the file
// is refused, naming it and both tensors. Adjacent and zero-byte tensors are not overlaps.
TEST(ReaderTest, RejectsOverlappingTensorData) {
  Builder b;
  b.f32_tensor("a", {16}, iota_f32(16));  // bytes 0..64 of the data section
  b.f32_tensor("b", {8}, iota_f32(8));
  b.tensors[1].offset_override = 32;  // bytes 32..64: inside 'a'
  expect_error(b.build(), "tensors 'a' (bytes 0..64 of the data section) and 'b' (from byte 32) overlap");
  Builder same;  // both at byte 32; 'pad' (written at byte 64) makes the data section long enough
  same.f32_tensor("x", {8}, iota_f32(8)).f32_tensor("y", {8}, iota_f32(8)).f32_tensor("pad", {8}, iota_f32(8));
  same.tensors[0].offset_override = 32;
  same.tensors[1].offset_override = 32;
  expect_error(same.build(), "(bytes 32..64 of the data section) and ");  // x and y, in either order
  try {
    GgufFile::from_bytes(same.build(), "bad.gguf");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
  }
  Builder ok;  // back to back, aligned: fine
  ok.f32_tensor("a", {8}, iota_f32(8)).f32_tensor("b", {8}, iota_f32(8)).tensor("e", {0}, T_F32, "");
  ok.tensors[2].offset_override = 0;  // zero bytes at 'a''s offset overlap nothing
  GgufFile f = GgufFile::from_bytes(ok.build(), "ok.gguf");
  EXPECT_EQ(f.tensors().size(), 3u);
}

TEST(ReaderTest, RejectsMisalignedTensorOffsets) {
  Builder b = with_f32_tensor();
  b.tensors[0].offset_override = 4;
  expect_error(b.build(), "data offset 4 is not a multiple of the alignment 32");
}

TEST(ReaderTest, RejectsBadAlignmentValues) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Builder b;
    b.u32("general.alignment", a);
    expect_error(b.build(), "general.alignment must be a uint32 power of two");
  }
  Builder c;
  c.str("general.alignment", "32");
  expect_error(c.build(), "general.alignment must be a uint32 power of two");
}

TEST(ReaderTest, RejectsUnknownTensorType) {
  Builder b = with_f32_tensor();
  b.tensors[0].type = 4;  // Q4_2: removed from ggml
  expect_error(b.build(), "tensor 'w' has unknown ggml type 4");
  b.tensors[0].type = 1000;
  expect_error(b.build(), "unknown ggml type 1000");
}

TEST(ReaderTest, RejectsMoreThanFourDimensions) {
  Builder b;
  b.f32_tensor("w", {1, 1, 1, 1, 1}, {1});
  expect_error(b.build(), "tensor 'w' has 5 dimensions (at most 4)");
  Builder c;
  c.tensor("w", {}, T_F32, le<float>(1));
  c.tensors[0].ne.assign(1000000, 1);  // a dimension count that would be a huge loop
  expect_error(c.build(), "has 1000000 dimensions");
}

TEST(ReaderTest, RejectsElementCountOverflowAndNegativeDims) {
  Builder b;
  b.tensor("w", {1ull << 32, 1ull << 32}, T_F32, "");
  expect_error(b.build(), "tensor 'w': element count overflows 64 bits");
  Builder c;
  c.tensor("w", {1ull << 62, 1}, T_F32, "");  // 2^62 elements fit int64, 2^64 bytes do not
  expect_error(c.build(), "byte size overflows");
  Builder d;
  d.tensor("w", {~0ull}, T_F32, "");
  expect_error(d.build(), "dimension 0 is 18446744073709551615 (negative or too large)");
  Builder e;
  e.tensor("w", {1ull << 40}, T_F32, "");  // plausible count, data absent
  expect_error(e.build(), "runs past the end");
}

TEST(ReaderTest, RejectsRowsThatAreNotWholeBlocks) {
  Builder b;
  b.tensor("w", {16, 2}, T_Q8_0, std::string(68, '\0'));
  expect_error(b.build(), "row length 16 is not a multiple of Q8_0's block size 32");
}

TEST(ReaderTest, KnownButUndequantizableTypesFailOnLoad) {
  Builder b;
  b.tensor("w", {256}, T_Q5_K, std::string(176, '\0'));
  GgufFile f = GgufFile::from_bytes(b.build(), "q5k.gguf");  // the container is fine
  try {
    f.dequantize_tensor(f.tensors()[0]);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' has type Q5_K, which atax cannot dequantize"), std::string::npos);
    EXPECT_NE(e.hint().find("Q4_K"), std::string::npos);
  }
}

TEST(ReaderTest, ErrorsNameTheFileAndPosition) {
  Builder b;
  b.kv_raw("k", 13, "");
  try {
    GgufFile::from_bytes(b.build(), "model.gguf");
    FAIL();
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_EQ(w.rfind("model.gguf: ", 0), 0u) << w;
    EXPECT_NE(w.find("(at byte 33)"), std::string::npos) << w;  // 24-byte header + 8 + 1-byte key
    EXPECT_NE(w.find("\nhint: "), std::string::npos) << w;
  }
}

}  // namespace
