// Shared by the world tests: generates quick-scale worlds once per test program into a private
// folder under the build tree (removed at exit), plus small readers.
#pragma once

#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/core.h"
#include "world/world.h"

namespace atax::world::testing {

class WorldDirs {
 public:
  static WorldDirs& get() {
    static WorldDirs d;
    return d;
  }
  // The quick world for (seed, flip_share), generated on first use.
  const fs::path& quick(uint64_t seed = 7, double flip_share = 0) {
    std::string key = std::to_string(seed) + "_" + std::to_string(flip_share);
    auto it = dirs_.find(key);
    if (it != dirs_.end()) return it->second;
    fs::path dir = root_ / ("quick_" + key);
    WorldOptions o;
    o.seed = seed;
    o.scale = "quick";
    o.flip_share = flip_share;
    manifests_[key] = generate_world(o, dir);
    return dirs_[key] = dir;
  }
  const WorldManifest& manifest(uint64_t seed = 7, double flip_share = 0) {
    quick(seed, flip_share);
    return manifests_.at(std::to_string(seed) + "_" + std::to_string(flip_share));
  }
  fs::path scratch(const std::string& name) { return root_ / name; }

 private:
  WorldDirs() {
    root_ = fs::path(ATAX_BINARY_DIR) / "world_test_tmp" / std::to_string(::getpid());
    fs::create_directories(root_);
  }
  ~WorldDirs() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path root_;
  std::map<std::string, fs::path> dirs_;
  std::map<std::string, WorldManifest> manifests_;
};

inline const fs::path& quick_world(uint64_t seed = 7) { return WorldDirs::get().quick(seed); }

// Every file of the world with the given prefix and suffix (relative paths, sorted).
inline std::vector<std::string> world_files(const fs::path& dir, const std::string& prefix,
                                            const std::string& suffix = "") {
  std::vector<std::string> out;
  for (const auto& f : read_manifest(dir).files)
    if (starts_with(f.path, prefix) && ends_with(f.path, suffix)) out.push_back(f.path);
  return out;
}

}  // namespace atax::world::testing
