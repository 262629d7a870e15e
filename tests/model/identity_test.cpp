// ctest-labels: model
// The model identity (LoadedModel::content_hash) covers every weight byte, the config and the
// tokenizer files, exactly as model.h states; and nothing about how the model is run.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "model/model.h"

using namespace atax;

namespace {

const fs::path kStories = fs::path(ATAX_SHARED_DIR) / "models/stories260K/hf";

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_identity_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The fingerprint atax used before this rule (size, then 65 evenly spaced 1 MiB samples for files
// over 1 GiB): kept here to show that the test below catches what it missed.
std::string sampled_fingerprint(const fs::path& path) {
  auto size = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  Sha256 h;
  h.update(std::to_string(size));
  std::vector<char> buf(1 << 20);
  for (int i = 0; i <= 64; ++i) {
    uint64_t off = std::min<uint64_t>(size - buf.size(), (size - buf.size()) / 64 * i);
    in.seekg(static_cast<std::streamoff>(off));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex_digest();
}

void copy_folder(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), to / e.path().filename());
}

}  // namespace

TEST(ModelIdentityTest, OneTensorChangeInAFileOver1GiBChangesTheDigest) {
  // A 1.1 GiB safetensors file (sparse: its zeros cost no disk) with one F32 tensor; one value
  // changed between two of the old fingerprint's samples.
  auto d = temp_dir("large");
  const fs::path file = d / "model.safetensors";
  const uint64_t numel = (uint64_t{1100} << 20) / 4;
  json header = {{"w", {{"dtype", "F32"}, {"shape", {numel}}, {"data_offsets", {0, numel * 4}}}}};
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';
  std::string prefix;
  for (int i = 0; i < 8; ++i) prefix += static_cast<char>((h.size() >> (8 * i)) & 0xff);
  prefix += h;
  {
    int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, prefix.data(), prefix.size()), static_cast<ssize_t>(prefix.size()));
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(prefix.size() + numel * 4)), 0);
    ::close(fd);
  }
  std::string before;
  load_safetensors(file, &before);
  const std::string sampled_before = sampled_fingerprint(file);
  const uint64_t size = fs::file_size(file), step = (size - (1u << 20)) / 64;
  const uint64_t offset = 10 * step + (1u << 20) + 4096;  // between samples 10 and 11
  ASSERT_LT(offset + (1u << 20), 11 * step);
  {
    int fd = ::open(file.c_str(), O_WRONLY);
    const float one = 1.0f;
    ASSERT_EQ(::pwrite(fd, &one, sizeof one, static_cast<off_t>(offset / 4 * 4)), static_cast<ssize_t>(sizeof one));
    ::close(fd);
  }
  std::string after;
  auto tensors = load_safetensors(file, &after);
  EXPECT_NE(before, after);
  EXPECT_EQ(before.size(), 64u);
  // The digest is the file's sha256, the same as reading the file through.
  EXPECT_EQ(after, sha256_file(file));
  EXPECT_EQ(tensors.at("w").numel(), static_cast<int64_t>(numel));
  // What the rule guards against: the sampled fingerprint did not see the change.
  EXPECT_EQ(sampled_before, sampled_fingerprint(file));
  fs::remove_all(d);
}

TEST(ModelIdentityTest, CoversWeightsConfigAndTokenizerFilesButNotTheRuntime) {
  const std::string original = load_model(kStories).content_hash;
  EXPECT_EQ(original.size(), 64u);
  EXPECT_EQ(load_model(kStories).content_hash, original);  // stable
  // The compute dtype is not part of the identity (the request cache keys on it beside it).
  LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  EXPECT_EQ(load_model(kStories, bf16).content_hash, original);

  // One tensor changed (the same shapes, a saved copy of the model).
  auto d = temp_dir("folder");
  {
    LoadedModel m = load_model(kStories);
    {
      torch::NoGradGuard g;
      m.net->named_parameters(true).begin()->value().view(-1)[0].add_(1e-3);
    }
    save_model(m, d / "changed");
  }
  EXPECT_NE(load_model(d / "changed").content_hash, original);

  // Each identity file: the config, the tokenizer's config (its chat template), the tokenizer.
  copy_folder(kStories, d / "copy");
  EXPECT_EQ(load_model(d / "copy").content_hash, original);  // the same bytes: the same model
  json tc = read_json(d / "copy/tokenizer_config.json");
  tc["chat_template"] = "{{ messages[0]['content'] }}";
  write_json_atomic(d / "copy/tokenizer_config.json", tc);
  const std::string with_template = load_model(d / "copy").content_hash;
  EXPECT_NE(with_template, original);
  write_file_atomic(d / "copy/chat_template.jinja", "{{ messages[0]['content'] }}!");
  EXPECT_NE(load_model(d / "copy").content_hash, with_template);
  json cfg = read_json(d / "copy/config.json");
  cfg["rms_norm_eps"] = 1e-6;
  write_json_atomic(d / "copy/config.json", cfg);
  const std::string with_cfg = load_model(d / "copy").content_hash;
  EXPECT_NE(with_cfg, with_template);
  json tok = read_json(d / "copy/tokenizer.json");
  tok["added_tokens"] = tok.value("added_tokens", json::array());
  write_file_atomic(d / "copy/tokenizer.json", tok.dump(1));  // the same tokens, other bytes
  EXPECT_NE(load_model(d / "copy").content_hash, with_cfg);
  fs::remove_all(d);
}

TEST(ModelIdentityTest, RuntimeSettingsNameDtypeContextAndChatTemplate) {
  LoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  HfModel f32(load_model(kStories)), b16(load_model(kStories, bf16));
  InferenceOptions io;
  io.max_length = 64;
  HfModel short_ctx(load_model(kStories), io);
  EXPECT_EQ(f32.runtime_settings()["dtype"], "Float");
  EXPECT_EQ(b16.runtime_settings()["dtype"], "BFloat16");
  EXPECT_EQ(f32.runtime_settings()["device"], "cpu");
  EXPECT_EQ(short_ctx.runtime_settings()["max_length"], 64);
  EXPECT_NE(f32.runtime_settings(), b16.runtime_settings());
  EXPECT_NE(f32.runtime_settings(), short_ctx.runtime_settings());
  HfModel chatml(load_model(kStories));
  chatml.model().tokenizer->set_chat_format(chat_format_from_name("chatml"));
  EXPECT_NE(chatml.runtime_settings()["chat_template"], f32.runtime_settings()["chat_template"]);
}
