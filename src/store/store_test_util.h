// Test-only: a fresh scratch folder name, and a tiny tmpfs to make SQLite hit a real full disk (SQLITE_FULL).
// Mounting needs root (or CAP_SYS_ADMIN); where it fails, mounted() is false and error() says why, and the
// test skips (ND_SKIP_NEEDS_ROOT).
// Thread-safety: none; one owner.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace netdist::store {

// A path under the temp folder, unique to this process and call and removed if it exists (not created).
inline std::filesystem::path scratch_path(const std::string& suite) {
  static std::atomic<int> counter{0};
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            (suite + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(p);
  return p;
}

class TmpfsMount {
 public:
  TmpfsMount(std::filesystem::path path, size_t bytes) : path_(std::move(path)) {
    std::filesystem::create_directories(path_);
    const std::string data = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, data.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace netdist::store
