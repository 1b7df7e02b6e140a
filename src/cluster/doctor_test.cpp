// The torch-free parts of `netdist doctor`: the clock row, the models-folder rows and the report's table.
#include "cluster/doctor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"

namespace netdist::cluster {
namespace {

namespace fs = std::filesystem;

TEST(DoctorClock, SkewWithinTheBoundIsOkBeyondItFailsNamingBothTimes) {
  // Mon, 07 Dec 2026 22:30:00 GMT
  const std::time_t server = 1796682600;
  const std::string date = "Mon, 07 Dec 2026 22:30:00 GMT";
  DoctorCheck near = clock_skew_check("w", date, server + 5, 30);
  EXPECT_EQ(near.level, CheckLevel::ok) << near.detail;
  EXPECT_NE(near.detail.find("-5 s"), std::string::npos) << near.detail;
  DoctorCheck far = clock_skew_check("w", date, server - 120, 30);
  EXPECT_EQ(far.level, CheckLevel::fail);
  EXPECT_NE(far.detail.find("+120 s"), std::string::npos) << far.detail;
  EXPECT_NE(far.detail.find(date), std::string::npos) << far.detail;
  EXPECT_NE(far.fix.find("timedatectl"), std::string::npos);
  EXPECT_EQ(clock_skew_check("w", "", server, 30).level, CheckLevel::warn);
  EXPECT_EQ(clock_skew_check("w", "yesterday", server, 30).level, CheckLevel::warn);
}

class DoctorModels : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("netdist_doctor_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "checkpoints");
    fs::create_directories(dir_ / "loras");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
  void write_tensor(const fs::path& p) {
    const float v = 1.0f;
    ASSERT_TRUE(io::write_safetensors(p.string(), {{"x", io::Dtype::kF32, {1}, &v, sizeof v}}, {}).is_ok());
  }
  const DoctorCheck* find(const DoctorReport& r, const std::string& what) {
    for (const DoctorCheck& c : r.checks())
      if (c.what == what) return &c;
    return nullptr;
  }
  fs::path dir_;
};

TEST_F(DoctorModels, EachFileIsCheckedAndDamageFailsNamingTheFile) {
  write_tensor(dir_ / "checkpoints" / "good.safetensors");
  write(dir_ / "checkpoints" / "cut.safetensors", std::string("\x40\x00\x00\x00\x00\x00\x00\x00{\"x\"", 13));
  write(dir_ / "loras" / "old.ckpt", "pickle");
  write_tensor(dir_ / "loras" / "style.safetensors");
  write(dir_ / "checkpoints" / "README.txt", "notes are ignored");
  DoctorReport report;
  std::vector<std::string> described;
  check_models_dir(dir_.string(), [&](const std::string& path) -> Result<std::string> {
    described.push_back(fs::path(path).filename().string());
    if (fs::path(path).filename() == "good.safetensors") return std::string("SD1 (eps)");
    return Status::corruption(path + ": header cut short");
  }, report);
  ASSERT_NE(find(report, "checkpoints/good.safetensors"), nullptr);
  EXPECT_EQ(find(report, "checkpoints/good.safetensors")->level, CheckLevel::ok);
  EXPECT_EQ(find(report, "checkpoints/good.safetensors")->detail, "SD1 (eps)");
  ASSERT_NE(find(report, "checkpoints/cut.safetensors"), nullptr);
  EXPECT_EQ(find(report, "checkpoints/cut.safetensors")->level, CheckLevel::fail);
  EXPECT_NE(find(report, "checkpoints/cut.safetensors")->detail.find("cut.safetensors"), std::string::npos);
  ASSERT_NE(find(report, "loras/old.ckpt"), nullptr);
  EXPECT_EQ(find(report, "loras/old.ckpt")->level, CheckLevel::warn);
  ASSERT_NE(find(report, "loras/style.safetensors"), nullptr);
  EXPECT_EQ(find(report, "loras/style.safetensors")->level, CheckLevel::ok);  // opened, not described
  EXPECT_EQ(find(report, "checkpoints/README.txt"), nullptr);
  EXPECT_EQ(described, (std::vector<std::string>{"cut.safetensors", "good.safetensors"}));
  EXPECT_TRUE(report.failed());
  const std::string table = report.table();
  EXPECT_NE(table.find("fix: replace the file"), std::string::npos) << table;
  EXPECT_NE(table.find("checks: 1 failed, 1 warnings"), std::string::npos) << table;
}

TEST_F(DoctorModels, AMissingFolderFailsAndAnEmptyOneWarns) {
  DoctorReport missing;
  check_models_dir((dir_ / "nope").string(), nullptr, missing);
  EXPECT_TRUE(missing.failed());
  EXPECT_NE(missing.checks().at(0).fix.find("--models-dir"), std::string::npos);
  DoctorReport empty;
  check_models_dir(dir_.string(), nullptr, empty);
  EXPECT_FALSE(empty.failed());
  ASSERT_NE(find(empty, "checkpoints"), nullptr);
  EXPECT_EQ(find(empty, "checkpoints")->level, CheckLevel::warn);
  const nlohmann::json j = empty.to_json();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["checks"].back()["level"], "warn");
}

}  // namespace
}  // namespace netdist::cluster
