// The GGUF container: mmap, header, metadata, tensor infos, bounds checks.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "gguf/gguf_file.h"

namespace atax::gguf {

namespace {

constexpr int kMaxArrayDepth = 8;  // real files nest at most 1 level; bounds recursion
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS
const char* const kHintRedownload =
    "the file is damaged or not a GGUF model; download or convert it again (llama.cpp's "
    "convert_hf_to_gguf.py writes valid files)";

// A bounds-checked little-endian reader over the mapped bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& file) : p_(data), size_(size), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what, uint64_t at, const std::string& hint = kHintRedownload) const {
    throw Error(fmt::format("{} (at byte {})", what, at), file_, hint);
  }
  void need(uint64_t n, const char* what) const {
    if (n > left())
      fail(fmt::format("truncated: {} needs {} bytes but only {} are left in the {}-byte file", what, n,
                       left(), size_),
           pos_);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t at = pos_;
    uint64_t n = read<uint64_t>(what);
    if (n > left())
      fail(fmt::format("{} has length {} but only {} bytes are left in the {}-byte file", what, n, left(),
                       size_),
           at);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& file_;
};

// Fewest bytes one array element of type t occupies (used to bound counts before allocating).
uint64_t min_element_bytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: return 8;
    case ValueType::kArray: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= 12; }

Value read_value(Cursor& c, ValueType type, const std::string& key, int depth) {
  Value v;
  v.type = type;
  switch (type) {
    case ValueType::kUint8: v.u = c.read<uint8_t>("a uint8 value"); break;
    case ValueType::kUint16: v.u = c.read<uint16_t>("a uint16 value"); break;
    case ValueType::kUint32: v.u = c.read<uint32_t>("a uint32 value"); break;
    case ValueType::kUint64: v.u = c.read<uint64_t>("a uint64 value"); break;
    case ValueType::kInt8: v.i = c.read<int8_t>("an int8 value"); break;
    case ValueType::kInt16: v.i = c.read<int16_t>("an int16 value"); break;
    case ValueType::kInt32: v.i = c.read<int32_t>("an int32 value"); break;
    case ValueType::kInt64: v.i = c.read<int64_t>("an int64 value"); break;
    case ValueType::kFloat32: v.f = c.read<float>("a float32 value"); break;
    case ValueType::kFloat64: v.f = c.read<double>("a float64 value"); break;
    case ValueType::kBool: {
      uint64_t at = c.pos();
      uint8_t b = c.read<uint8_t>("a bool value");
      if (b > 1) c.fail(fmt::format("metadata '{}': bool value {} is neither 0 nor 1", key, b), at);
      v.b = b == 1;
      break;
    }
    case ValueType::kString: v.s = c.read_string("a metadata string"); break;
    case ValueType::kArray: {
      uint64_t at = c.pos();
      if (depth >= kMaxArrayDepth)
        c.fail(fmt::format("metadata '{}': arrays nested deeper than {} levels", key, kMaxArrayDepth), at);
      uint32_t et = c.read<uint32_t>("an array element type");
      if (!valid_value_type(et)) c.fail(fmt::format("metadata '{}': unknown array element type {}", key, et), at);
      v.elem_type = static_cast<ValueType>(et);
      uint64_t n = c.read<uint64_t>("an array length");
      uint64_t min = min_element_bytes(v.elem_type);
      if (n > c.left() / min)
        c.fail(fmt::format("metadata '{}': array of {} {} needs at least {} bytes but only {} are left in "
                           "the file",
                           key, n, value_type_name(v.elem_type),
                           n > std::numeric_limits<uint64_t>::max() / min ? std::string("> 2^64")
                                                                          : std::to_string(n * min),
                           c.left()),
               at);
      v.items.reserve(n);
      for (uint64_t k = 0; k < n; ++k) v.items.push_back(read_value(c, v.elem_type, key, depth + 1));
      break;
    }
  }
  return v;
}

// The file mapped read-only; unmapped when the last GgufFile copy goes.
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) munmap(addr, size);
  }
};

uint64_t align_up(uint64_t x, uint64_t a, bool* overflow) {
  uint64_t r = x % a;
  if (r == 0) return x;
  if (x > std::numeric_limits<uint64_t>::max() - (a - r)) {
    *overflow = true;
    return 0;
  }
  return x + (a - r);
}

}  // namespace

std::string value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kUint16: case ValueType::kInt16:
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kUint64: case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

std::optional<int64_t> Value::as_int() const {
  switch (type) {
    case ValueType::kUint8: case ValueType::kUint16: case ValueType::kUint32: case ValueType::kUint64:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(u);
    case ValueType::kInt8: case ValueType::kInt16: case ValueType::kInt32: case ValueType::kInt64:
      return i;
    default:
      return std::nullopt;
  }
}

json Value::to_json() const {
  switch (type) {
    case ValueType::kUint8: case ValueType::kUint16: case ValueType::kUint32: case ValueType::kUint64:
      return u;
    case ValueType::kInt8: case ValueType::kInt16: case ValueType::kInt32: case ValueType::kInt64:
      return i;
    case ValueType::kFloat32: case ValueType::kFloat64: return f;
    case ValueType::kBool: return b;
    case ValueType::kString: return s;
    case ValueType::kArray: {
      json a = json::array();
      for (const auto& it : items) a.push_back(it.to_json());
      return a;
    }
  }
  return nullptr;
}

std::vector<int64_t> TensorInfo::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

// ------------------------------------------------------------------------------------- opening

GgufFile GgufFile::open(const fs::path& path) {
  GgufFile g;
  g.name_ = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) throw Error("no such file", g.name_, "check the path to the .gguf file");
    throw Error(std::string("cannot open: ") + std::strerror(err), g.name_, "check the file's permissions");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("not a regular file", g.name_, "pass a .gguf file, not a folder or device");
  }
  auto map = std::make_shared<Mapping>();
  if (st.st_size > 0) {
    map->size = static_cast<size_t>(st.st_size);
    // Writable but private (copy-on-write): float32 tensors become model parameters in place.
    map->addr = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (map->addr == MAP_FAILED) {
      map->addr = nullptr;
      throw Error(std::string("cannot memory-map: ") + std::strerror(err), g.name_);
    }
  } else {
    ::close(fd);
  }
  g.data_ = static_cast<const uint8_t*>(map->addr);
  g.size_ = map->size;
  g.keep_ = map;
  g.mapped_ = map->addr != nullptr;
  g.parse();
  return g;
}

void GgufFile::release_pages(const TensorInfo& t) const {
  if (!mapped_ || t.n_bytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto p = reinterpret_cast<uintptr_t>(tensor_data(t));
  const uintptr_t b = (p + page - 1) / page * page, e = (p + t.n_bytes) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

GgufFile GgufFile::from_bytes(std::string bytes, const std::string& name) {
  auto owned = std::make_shared<std::string>(std::move(bytes));
  GgufFile g;
  g.name_ = name;
  g.data_ = reinterpret_cast<const uint8_t*>(owned->data());
  g.size_ = owned->size();
  g.keep_ = owned;
  g.parse();
  return g;
}

GgufFile GgufFile::from_memory(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile g;
  g.name_ = name;
  g.data_ = data;
  g.size_ = size;
  g.parse();
  return g;
}

// --------------------------------------------------------------------------------------- parsing

void GgufFile::parse() {
  Cursor c(data_, size_, name_);
  if (size_ < 4)
    throw Error(fmt::format("not a GGUF file: only {} bytes", size_), name_,
                "a GGUF file starts with the 4 bytes 'GGUF'; " + std::string(kHintRedownload));
  if (std::memcmp(data_, "GGUF", 4) != 0) {
    std::string shown;
    for (int k = 0; k < 4; ++k) {
      char ch = static_cast<char>(data_[k]);
      shown += (data_[k] >= 32 && data_[k] < 127) ? std::string(1, ch) : fmt::format("\\x{:02x}", data_[k]);
    }
    throw Error(fmt::format("not a GGUF file: it starts with '{}' instead of 'GGUF'", shown), name_,
                "pass a .gguf model file (llama.cpp's format); a Hugging Face model is a folder passed as "
                "--model DIR");
  }
  c.read<uint32_t>("the magic");
  version_ = c.read<uint32_t>("the version");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && (version_ >> 16) != 0)
      c.fail(fmt::format("big-endian GGUF (version field {:#x}) is not supported", version_), 4,
             "convert the model again on a little-endian machine");
    if (version_ == 1)
      c.fail("GGUF version 1 is not supported (only versions 2 and 3)", 4,
             "re-convert the model with a current llama.cpp (convert_hf_to_gguf.py)");
    c.fail(fmt::format("unsupported GGUF version {} (atax reads versions 2 and 3)", version_), 4,
           "re-convert the model with llama.cpp's convert_hf_to_gguf.py, or update atax");
  }
  uint64_t at = c.pos();
  uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Each tensor info takes >= 24 bytes and each key/value >= 13: bound the counts by the file.
  if (n_tensors > c.left() / 24)
    c.fail(fmt::format("tensor count {} needs at least {} bytes of tensor infos but only {} are left in the "
                       "{}-byte file (truncated or corrupt)",
                       n_tensors, n_tensors <= (1ull << 58) ? std::to_string(n_tensors * 24) : "2^62+", c.left(),
                       size_),
           at);
  if (n_kv > c.left() / 13)
    c.fail(fmt::format("metadata count {} needs at least {} bytes but only {} are left in the {}-byte file "
                       "(truncated or corrupt)",
                       n_kv, n_kv <= (1ull << 59) ? std::to_string(n_kv * 13) : "2^63+", c.left(), size_),
           at + 8);

  kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    uint64_t key_at = c.pos();
    std::string key = c.read_string("a metadata key");
    if (kv_index_.count(key))
      c.fail(fmt::format("duplicate metadata key '{}'", key), key_at);
    uint64_t type_at = c.pos();
    uint32_t type = c.read<uint32_t>("a metadata value type");
    if (!valid_value_type(type)) c.fail(fmt::format("metadata '{}': unknown value type {}", key, type), type_at);
    Value v = read_value(c, static_cast<ValueType>(type), key, 0);
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const Value* a = find("general.alignment")) {
    if (a->type != ValueType::kUint32 || a->u == 0 || (a->u & (a->u - 1)) != 0)
      throw Error(fmt::format("general.alignment must be a uint32 power of two, found {} {}",
                              value_type_name(a->type),
                              a->to_json().dump(-1, ' ', false, json::error_handler_t::replace)),
                  name_, kHintRedownload);
    alignment_ = a->u;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    uint64_t info_at = c.pos();
    TensorInfo t;
    t.name = c.read_string("a tensor name");
    if (tensor_index_.count(t.name)) c.fail(fmt::format("duplicate tensor name '{}'", t.name), info_at);
    uint64_t dims_at = c.pos();
    uint32_t n_dims = c.read<uint32_t>("a tensor's dimension count");
    if (n_dims > kMaxDims)
      c.fail(fmt::format("tensor '{}' has {} dimensions (at most {})", t.name, n_dims, kMaxDims), dims_at);
    int64_t count = 1;
    bool overflow = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne_at = c.pos();
      uint64_t ne = c.read<uint64_t>("a tensor dimension");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        c.fail(fmt::format("tensor '{}': dimension {} is {} (negative or too large)", t.name, d, ne), ne_at);
      t.ne.push_back(static_cast<int64_t>(ne));
      overflow = overflow || __builtin_mul_overflow(count, static_cast<int64_t>(ne), &count);
    }
    if (overflow) c.fail(fmt::format("tensor '{}': element count overflows 64 bits", t.name), dims_at);
    t.n_elements = count;
    uint64_t type_at = c.pos();
    uint32_t type = c.read<uint32_t>("a tensor type");
    const TypeTraits* tr = type_traits(type);
    if (!tr)
      c.fail(fmt::format("tensor '{}' has unknown ggml type {}", t.name, type), type_at,
             "the file may come from a newer llama.cpp; atax dequantizes " + dequantizable_type_names());
    t.type = static_cast<GgmlType>(type);
    int64_t row = t.ne.empty() ? 1 : t.ne[0];
    if (row % tr->block_size != 0)
      c.fail(fmt::format("tensor '{}': row length {} is not a multiple of {}'s block size {}", t.name, row,
                         tr->name, tr->block_size),
             dims_at);
    if (tr->type_size > 0) {
      uint64_t blocks = static_cast<uint64_t>(count / tr->block_size);
      if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tr->type_size), &t.n_bytes))
        c.fail(fmt::format("tensor '{}': byte size overflows 64 bits", t.name), dims_at);
    }
    uint64_t off_at = c.pos();
    t.offset = c.read<uint64_t>("a tensor offset");
    if (t.offset % alignment_ != 0)
      c.fail(fmt::format("tensor '{}': data offset {} is not a multiple of the alignment {}", t.name, t.offset,
                         alignment_),
             off_at);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  bool overflow = false;
  data_offset_ = align_up(c.pos(), alignment_, &overflow);
  if (overflow || (data_offset_ > size_ && !tensors_.empty()))
    c.fail(fmt::format("truncated: the data section would start at byte {} but the file has {} bytes",
                       data_offset_, size_),
           c.pos());
  uint64_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
  for (const TensorInfo& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      throw Error(fmt::format("tensor '{}' ({}, {} bytes at data offset {}) runs past the end of the file: the "
                              "data section holds {} bytes",
                              t.name, type_traits(static_cast<uint32_t>(t.type))->name, t.n_bytes, t.offset,
                              data_size),
                  name_, "the file is truncated (an interrupted download?); download or convert it again");
  }
  // No two tensors may share bytes (the safetensors reader's rule too): sorted by offset, each
  // one ends before the next begins. Zero-byte tensors overlap nothing.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_)
    if (t.n_bytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (a.offset + a.n_bytes > b.offset)
      throw Error(fmt::format("tensors '{}' (bytes {}..{} of the data section) and '{}' (from byte {}) overlap",
                              a.name, a.offset, a.offset + a.n_bytes, b.name, b.offset),
                  name_, kHintRedownload);
  }
}

// ------------------------------------------------------------------------------------- accessors

const Value* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_type(const std::string& file, const std::string& key, const Value& v, const char* want) {
  throw Error(fmt::format("metadata '{}' is {} but {} was expected", key,
                          v.type == ValueType::kArray ? "an array of " + value_type_name(v.elem_type)
                                                      : value_type_name(v.type),
                          want),
              file, "the file's metadata does not follow llama.cpp's conventions; convert the model again");
}
}  // namespace

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  auto r = v->as_int();
  if (!r) wrong_type(name_, key, *v, "an integer below 2^63");
  return r;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (auto r = v->as_int()) return static_cast<double>(*r);
  wrong_type(name_, key, *v, "a number");
}

std::optional<float> GgufFile::get_float32(const std::string& key) const {
  const Value* v = find(key);
  if (!v || v->type != ValueType::kFloat32) return std::nullopt;
  return static_cast<float>(v->f);
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::kBool) wrong_type(name_, key, *v, "a bool");
  return v->b;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::kString) wrong_type(name_, key, *v, "a string");
  return v->s;
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::kArray || v->elem_type != ValueType::kString)
    wrong_type(name_, key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (const auto& it : v->items) out.push_back(it.s);
  return out;
}

std::optional<std::vector<double>> GgufFile::get_float_array(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::kArray) wrong_type(name_, key, *v, "an array of numbers");
  std::vector<double> out;
  out.reserve(v->items.size());
  for (const auto& it : v->items) {
    if (it.is_float()) out.push_back(it.f);
    else if (auto r = it.as_int()) out.push_back(static_cast<double>(*r));
    else wrong_type(name_, key, *v, "an array of numbers");
  }
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::kArray) wrong_type(name_, key, *v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(v->items.size());
  for (const auto& it : v->items) {
    auto r = it.as_int();
    if (!r) wrong_type(name_, key, *v, "an array of integers");
    out.push_back(*r);
  }
  return out;
}

std::vector<float> GgufFile::dequantize_tensor(const TensorInfo& t) const {
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(t.type));
  if (!tr->dequantizable)
    throw Error(fmt::format("tensor '{}' has type {}, which atax cannot dequantize", t.name, tr->name), name_,
                "atax reads " + dequantizable_type_names() +
                    "; requantize with llama-quantize (e.g. to Q8_0 or Q4_K_M) or convert from the HF model");
  std::vector<float> out(static_cast<size_t>(t.n_elements));
  dequantize(t.type, tensor_data(t), t.n_elements, out.data());
  return out;
}

}  // namespace atax::gguf
