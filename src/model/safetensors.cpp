// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw little-endian data.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "model/model.h"

namespace atax {

namespace {

struct DtypeInfo {
  torch::Dtype dtype;
  int64_t size;
};

std::optional<DtypeInfo> dtype_from_name(const std::string& s) {
  static const std::map<std::string, DtypeInfo> m = {
      {"F32", {torch::kFloat32, 4}}, {"F16", {torch::kFloat16, 2}}, {"BF16", {torch::kBFloat16, 2}},
      {"F64", {torch::kFloat64, 8}}, {"I64", {torch::kInt64, 8}},   {"I32", {torch::kInt32, 4}},
      {"I16", {torch::kInt16, 2}},   {"I8", {torch::kInt8, 1}},     {"U8", {torch::kUInt8, 1}},
      {"BOOL", {torch::kBool, 1}}};
  auto it = m.find(s);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string dtype_name(torch::Dtype d) {
  switch (d) {
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kFloat64: return "F64";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kInt16: return "I16";
    case torch::kInt8: return "I8";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: throw Error("cannot store this dtype in safetensors");
  }
}

// A private copy-on-write mapping that lives as long as any tensor made from it (writable, so
// that a tensor adopted as a model parameter can be trained in place; the file never changes).
struct Mapping {
  void* data = MAP_FAILED;
  size_t size = 0;
  // Drops the resident pages lying wholly inside [p, p + n) (a tensor that is gone: a page it
  // shares with a neighbour stays), so a tensor copied into a model stops costing memory.
  void release(const uint8_t* p, size_t n) const {
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
  }
  ~Mapping() {
    if (data != MAP_FAILED && size) ::munmap(data, size);
  }
};

}  // namespace

std::map<std::string, torch::Tensor> load_safetensors(const fs::path& path, std::string* sha256, bool keep_resident) {
  const std::string file = path.string();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (!fs::exists(path)) throw Error("no such file", file, "the model folder needs model.safetensors");
    throw Error(std::string("cannot open: ") + std::strerror(errno), file);
  }
  struct stat st {};
  ::fstat(fd, &st);
  auto map = std::make_shared<Mapping>();
  map->size = static_cast<size_t>(st.st_size);
  if (map->size < 8) {
    ::close(fd);
    throw Error(fmt::format("file is {} bytes, too short for a safetensors header", map->size), file,
                "the file is truncated");
  }
  map->data = ::mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map->data == MAP_FAILED) throw Error(std::string("mmap failed: ") + std::strerror(errno), file);
  const auto* bytes = static_cast<const uint8_t*>(map->data);
  // The identity digest reads every byte of the mapping, which also pages the weights in for the
  // copy into the model that follows (model identity, see LoadedModel::content_hash).
  if (sha256) {
    Sha256 h;
    constexpr size_t kStretch = size_t(8) << 20;
    for (size_t at = 0; at < map->size; at += kStretch) {
      const size_t n = std::min(kStretch, map->size - at);
      h.update(bytes + at, n);
      // Nothing has written to the mapping yet, so dropping its pages loses nothing: a later
      // read faults them in again from the page cache.
      if (!keep_resident) map->release(bytes + at, n);
    }
    *sha256 = h.hex_digest();
  }
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(bytes[i]) << (8 * i);
  if (header_len > map->size - 8)
    throw Error(fmt::format("header length {} runs past the end of the file ({} bytes)", header_len, map->size),
                file, "the file is truncated or not safetensors");
  json header;
  try {
    header = json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len));
  } catch (const json::parse_error& e) {
    throw Error(std::string("header is not valid JSON: ") + e.what(), file);
  }
  if (!header.is_object()) throw Error("header is not a JSON object", file);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = map->size - data_start;
  struct Entry {
    std::string name;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  std::map<std::string, torch::Tensor> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const json& e = it.value();
    auto bad = [&](const std::string& what) { return Error("tensor \"" + name + "\": " + what, file); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    auto info = dtype_from_name(e["dtype"].is_string() ? e["dtype"].get<std::string>() : "");
    if (!info) throw bad("unknown dtype " + e["dtype"].dump());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw bad("bad shape " + e["shape"].dump());
      uint64_t v = d.get<uint64_t>();
      if (v && numel > UINT64_MAX / v) throw bad("shape overflows");
      numel *= v;
      shape.push_back(static_cast<int64_t>(v));
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      throw bad(fmt::format("data_offsets [{}, {}] out of range (data section is {} bytes)", b, en, data_size));
    if (en - b != numel * static_cast<uint64_t>(info->size))
      throw bad(fmt::format("byte size {} does not match dtype {} x shape {} = {} bytes", en - b,
                            e["dtype"].get<std::string>(), e["shape"].dump(), numel * info->size));
    entries.push_back({name, b, en});
    auto* ptr = const_cast<uint8_t*>(bytes + data_start + b);
    auto keep = map;
    const size_t n = en - b;
    out[name] = torch::from_blob(
        ptr, shape, [keep, n](void* p) { keep->release(static_cast<const uint8_t*>(p), n); },
        torch::TensorOptions().dtype(info->dtype));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end && entries[i].end > entries[i].begin)
      throw Error("tensors \"" + entries[i - 1].name + "\" and \"" + entries[i].name + "\" overlap", file);
  return out;
}

std::map<std::string, torch::Tensor> load_safetensors_dir(const fs::path& dir,
                                                         std::map<std::string, std::string>* file_sha256,
                                                         bool keep_resident) {
  auto digest_of = [&](const std::string& name) { return file_sha256 ? &(*file_sha256)[name] : nullptr; };
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json idx = read_json(index);
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw Error("no \"weight_map\" object", index.string());
    std::set<std::string> shards;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it)
      shards.insert(it.value().get<std::string>());
    std::map<std::string, torch::Tensor> all;
    for (const auto& shard : shards) {
      auto part = load_safetensors(dir / shard, digest_of(shard), keep_resident);
      for (auto& [k, v] : part) {
        auto want = idx["weight_map"].find(k);
        if (want == idx["weight_map"].end() || want->get<std::string>() != shard)
          throw Error("tensor \"" + k + "\" is in " + shard + " but the index does not place it there",
                      index.string());
        all[k] = v;
      }
    }
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it)
      if (!all.count(it.key()))
        throw Error("the index lists \"" + it.key() + "\" but " + it.value().get<std::string>() + " lacks it",
                    index.string());
    return all;
  }
  fs::path single = dir / "model.safetensors";
  if (!fs::exists(single))
    throw Error("no model.safetensors or model.safetensors.index.json", dir.string(),
                "a Hugging Face model folder holds config.json and *.safetensors");
  return load_safetensors(single, digest_of("model.safetensors"), keep_resident);
}

void save_safetensors(const fs::path& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  write_file_atomic(path, out);
}

}  // namespace atax
