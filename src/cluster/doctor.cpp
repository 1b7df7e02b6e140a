#include "cluster/doctor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "io/safetensors.h"

namespace netdist::cluster {

namespace fs = std::filesystem;

const char* check_level_name(CheckLevel level) {
  switch (level) {
    case CheckLevel::ok:
      return "ok";
    case CheckLevel::warn:
      return "warn";
    case CheckLevel::fail:
      return "FAIL";
  }
  return "?";
}

void DoctorReport::ok(const std::string& area, const std::string& what, const std::string& detail) {
  add({area, what, CheckLevel::ok, detail, ""});
}
void DoctorReport::warn(const std::string& area, const std::string& what, const std::string& detail,
                        const std::string& fix) {
  add({area, what, CheckLevel::warn, detail, fix});
}
void DoctorReport::fail(const std::string& area, const std::string& what, const std::string& detail,
                        const std::string& fix) {
  add({area, what, CheckLevel::fail, detail, fix});
}

bool DoctorReport::failed() const {
  return std::any_of(checks_.begin(), checks_.end(), [](const DoctorCheck& c) { return c.level == CheckLevel::fail; });
}

std::string DoctorReport::table() const {
  size_t area_w = 4, what_w = 5;
  for (const DoctorCheck& c : checks_) {
    area_w = std::max(area_w, c.area.size());
    what_w = std::max(what_w, c.what.size());
  }
  std::ostringstream out;
  const auto pad = [](const std::string& s, size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  out << pad("area", area_w) << "  " << pad("check", what_w) << "  result  detail\n";
  int fails = 0, warns = 0;
  for (const DoctorCheck& c : checks_) {
    out << pad(c.area, area_w) << "  " << pad(c.what, what_w) << "  " << pad(check_level_name(c.level), 6) << "  "
        << c.detail << "\n";
    if (!c.fix.empty()) out << pad("", area_w) << "  " << pad("", what_w) << "          fix: " << c.fix << "\n";
    fails += c.level == CheckLevel::fail;
    warns += c.level == CheckLevel::warn;
  }
  out << "\n" << checks_.size() << " checks: " << fails << " failed, " << warns << " warnings\n";
  return out.str();
}

nlohmann::json DoctorReport::to_json() const {
  nlohmann::json rows = nlohmann::json::array();
  for (const DoctorCheck& c : checks_)
    rows.push_back({{"area", c.area}, {"what", c.what}, {"level", check_level_name(c.level)}, {"detail", c.detail},
                    {"fix", c.fix}});
  return {{"ok", !failed()}, {"checks", rows}};
}

// --- models folder --------------------------------------------------------------------------------------

namespace {

bool doctor_is_pickle(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin";
}

// Every regular file in `folder` (recursively unless `flat`), sorted.
std::vector<fs::path> doctor_files(const fs::path& folder, bool flat) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return out;
  if (flat) {
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_regular_file(ec)) out.push_back(it->path());
  } else {
    for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename() == ".partial") it.disable_recursion_pending();  // model_fetch's downloads
      else if (it->is_regular_file(ec)) out.push_back(it->path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void doctor_check_file(const fs::path& root, const fs::path& file, bool checkpoint, const DescribeCheckpoint& describe,
                       DoctorReport& report) {
  const std::string name = file.lexically_relative(root).generic_string();
  if (doctor_is_pickle(file)) {
    report.warn("models", name, "a pickle file: netdist never loads pickles (they can run code)",
                "convert it to .safetensors (e.g. with the safetensors Python package) and remove the pickle");
    return;
  }
  if (file.extension() != ".safetensors") return;  // notes, previews, configs
  if (checkpoint && describe) {
    auto what = describe(file.string());
    if (what.is_ok()) report.ok("models", name, *what);
    else report.fail("models", name, what.status().message(),
                     "replace the file (a damaged or partial download), or remove it if netdist cannot run that model");
    return;
  }
  auto opened = io::SafetensorsFile::open(file.string());
  if (opened.is_ok()) report.ok("models", name, std::to_string((*opened)->tensors().size()) + " tensors");
  else report.fail("models", name, opened.status().message(), "replace the file (a damaged or partial download)");
}

}  // namespace

void check_models_dir(const std::string& dir, const DescribeCheckpoint& describe, DoctorReport& report) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    report.fail("models", "folder", "'" + dir + "' is not a folder",
                "create it, or pass --models-dir with the folder that holds checkpoints/, loras/, vae/");
    return;
  }
  const fs::path root(dir);
  std::vector<fs::path> checkpoints = doctor_files(root / "checkpoints", false);
  for (const fs::path& f : doctor_files(root, true)) checkpoints.push_back(f);  // files directly in the folder
  size_t usable = 0;
  for (const fs::path& f : checkpoints) {
    const size_t before = report.checks().size();
    doctor_check_file(root, f, true, describe, report);
    if (report.checks().size() > before && report.checks().back().level == CheckLevel::ok) ++usable;
  }
  for (const char* kind : {"loras", "vae", "upscale_models", "embeddings"})
    for (const fs::path& f : doctor_files(root / kind, false)) doctor_check_file(root, f, false, describe, report);
  if (usable == 0)
    report.warn("models", "checkpoints", "no usable checkpoint in '" + dir + "'",
                "put .safetensors checkpoints in " + (root / "checkpoints").string() +
                    " (until then only the embedded demo model runs)");
  else
    report.ok("models", "checkpoints", std::to_string(usable) + " usable in '" + dir + "'");
}

// --- clock ------------------------------------------------------------------------------------------------

DoctorCheck clock_skew_check(const std::string& area, const std::string& date_header, std::time_t now,
                             double max_skew_s) {
  DoctorCheck c{area, "clock", CheckLevel::ok, "", ""};
  std::tm tm{};
  const char* end = date_header.empty() ? nullptr : strptime(date_header.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) {
    c.level = CheckLevel::warn;
    c.detail = date_header.empty() ? "the reply has no Date header" : "unreadable Date header '" + date_header + "'";
    c.fix = "compare the machines' clocks by hand (timedatectl)";
    return c;
  }
  const double skew = std::difftime(timegm(&tm), now);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%+.0f s against this machine", skew);
  c.detail = buf;
  if (std::fabs(skew) > max_skew_s) {
    c.level = CheckLevel::fail;
    c.detail += " (its clock says " + date_header + ")";
    c.fix = "synchronise the clocks (systemd-timesyncd or chrony: timedatectl set-ntp true): TLS certificates, "
            "worker leases and history times depend on them";
  }
  return c;
}

}  // namespace netdist::cluster
