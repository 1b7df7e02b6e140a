// Conditioning masks, timestep ranges and percentage areas against goldens made by the pinned ComfyUI's
// comfy/samplers.py on the CPU (tools/parity/condmask_golden.py): the entries of each case are rebuilt as
// CondEntry values, resolved by cond::resolve_entry, paired by add_opposite_areas and run through
// calc_cond_batch with the golden's toy model; whole batches and split row ranges.
#include "engine/cond_masks.h"

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/runtime/tensor_io.h"
#include "engine/text/test_data.h"
#include "io/safetensors.h"

namespace netdist::cond {
namespace {

struct CondMaskGolden {
  runtime::WeightMap t;
  nlohmann::json cases, percent_to_sigma;
};

CondMaskGolden load_condmask_golden() {
  std::filesystem::path path(text::testing::test_data_dir());
  path /= "condmask";
  path /= "golden_condmask.safetensors";
  auto file = io::SafetensorsFile::open(path.string());
  EXPECT_TRUE(file.is_ok()) << "missing golden " << path << " (tools/parity/condmask_golden.py)";
  CondMaskGolden g;
  if (!file.is_ok()) return g;
  auto w = runtime::weights_from_file(*file);
  EXPECT_TRUE(w.is_ok());
  if (w.is_ok()) g.t = std::move(*w);
  g.cases = nlohmann::json::parse((*file)->metadata().at("cases"));
  g.percent_to_sigma = nlohmann::json::parse((*file)->metadata().at("percent_to_sigma"));
  return g;
}

CondEntry condmask_entry(const CondMaskGolden& g, const nlohmann::json& e) {
  CondEntry c;
  c.context = g.t.at(e.at("context").get<std::string>());
  if (e.contains("area")) {
    const auto a = e.at("area");
    c.area = std::array<int, 4>{a[0].get<int>(), a[1].get<int>(), a[2].get<int>(), a[3].get<int>()};
  }
  if (e.contains("area_percent")) {
    const auto a = e.at("area_percent");
    c.area_percent =
        std::array<double, 4>{a[0].get<double>(), a[1].get<double>(), a[2].get<double>(), a[3].get<double>()};
  }
  if (e.contains("strength")) c.strength = e.at("strength").get<float>();
  if (e.contains("mask")) {
    c.mask = g.t.at(e.at("mask").get<std::string>());
    c.mask_strength = e.value("mask_strength", 1.0f);
    c.set_area_to_bounds = e.value("set_area_to_bounds", false);
  }
  if (e.contains("start_percent")) c.start_percent = e.at("start_percent").get<double>();
  if (e.contains("end_percent")) c.end_percent = e.at("end_percent").get<double>();
  return c;
}

at::Tensor condmask_toy_model(const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& context,
                              const at::Tensor&) {
  return 0.5 * x + context.mean({1, 2}).view({-1, 1, 1, 1}) + 0.1 * sigma.view({-1, 1, 1, 1});
}

std::vector<CondRow> condmask_rows(const CondMaskGolden& g, const nlohmann::json& list,
                                   const CondShape& shape, const sampling::ModelSampling& ms) {
  std::vector<CondRow> rows;
  for (const auto& e : list) {
    CondRow r;
    const CondEntry c = condmask_entry(g, e);
    r.context = c.context;
    r.strength = c.strength;
    const Status s = resolve_entry(c, shape, ms, "entry", r);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    rows.push_back(r);
  }
  return rows;
}

// Runs one case on rows [begin, end) and compares with the golden's rows; returns the largest difference.
double condmask_run(const CondMaskGolden& g, const nlohmann::json& c, int64_t begin, int64_t end) {
  const sampling::ModelSampling ms;
  const std::string prefix = c.at("prefix").get<std::string>();
  const at::Tensor x = g.t.at(prefix + ".x");
  const CondShape shape{x.size(0), begin, end, x.size(2), x.size(3), at::kCPU};
  std::vector<CondRow> pos = condmask_rows(g, c.at("positive"), shape, ms);
  std::vector<CondRow> neg = condmask_rows(g, c.at("negative"), shape, ms);
  add_opposite_areas(pos, neg);
  // The areas as ComfyUI resolved them (after the opposite areas were added).
  const auto& want = c.at("resolved_areas");
  for (const auto& [list, rows] : {std::pair{"positive", &pos}, std::pair{"negative", &neg}}) {
    EXPECT_EQ(rows->size(), want.at(list).size()) << prefix << " " << list;
    for (size_t i = 0; i < rows->size() && i < want.at(list).size(); ++i) {
      const auto& a = want.at(list)[i];
      EXPECT_EQ(a.is_null(), !(*rows)[i].area.has_value()) << prefix << " " << list << " " << i;
      if (!a.is_null() && (*rows)[i].area) {
        for (int k = 0; k < 4; ++k)
          EXPECT_EQ(a[k].get<int64_t>(), (*(*rows)[i].area)[k]) << prefix << " " << i;
      }
    }
  }
  const at::Tensor sigmas = g.t.at("sigmas");
  double worst = 0;
  for (int64_t si = 0; si < sigmas.size(0); ++si) {
    const std::string key = prefix + ".s" + std::to_string(si);
    if (g.t.find(key + ".pos") == g.t.end()) continue;
    const at::Tensor sigma = at::full({end - begin}, sigmas[si].item<float>(), at::kFloat);
    const auto out = calc_cond_batch(condmask_toy_model, {&pos, &neg}, x.slice(0, begin, end), sigma);
    const at::Tensor want_pos = g.t.at(key + ".pos").slice(0, begin, end);
    const at::Tensor want_neg = g.t.at(key + ".neg").slice(0, begin, end);
    worst = std::max(worst, (out[0] - want_pos).abs().max().item<double>());
    worst = std::max(worst, (out[1] - want_neg).abs().max().item<double>());
  }
  return worst;
}

TEST(CondMasks, PercentToSigmaMatchesComfy) {
  const CondMaskGolden g = load_condmask_golden();
  ASSERT_FALSE(g.percent_to_sigma.empty());
  const sampling::ModelSampling ms;
  for (const auto& [p, want] : g.percent_to_sigma.items()) {
    const double got = percent_to_sigma(ms, std::stod(p));
    EXPECT_NEAR(got, want.get<double>(), 1e-6 * std::max(1.0, want.get<double>())) << "percent " << p;
  }
}

TEST(CondMasks, CalcCondBatchMatchesComfy) {
  const CondMaskGolden g = load_condmask_golden();
  ASSERT_TRUE(g.cases.is_array());
  ASSERT_EQ(g.cases.size(), 5u);
  for (const auto& c : g.cases) {
    const int64_t n = c.at("batch").get<int64_t>();
    const double whole = condmask_run(g, c, 0, n);
    EXPECT_LE(whole, 1e-6) << c.at("name");
    if (n > 1) {  // split = unsplit: each row alone gets the whole batch's values
      for (int64_t r = 0; r < n; ++r)
        EXPECT_LE(condmask_run(g, c, r, r + 1), 1e-6) << c.at("name") << " row " << r;
    }
  }
}

TEST(CondMasks, BadMasksAndAreasAreRefused) {
  const sampling::ModelSampling ms;
  CondEntry e;
  e.context = at::zeros({1, 77, 8});
  e.mask = at::ones({3, 8, 8});
  CondRow r;
  const Status rows = resolve_entry(e, CondShape{4, 0, 4, 8, 8, at::kCPU}, ms, "positive entry 0", r);
  EXPECT_FALSE(rows.is_ok());
  EXPECT_NE(rows.to_string().find("positive entry 0"), std::string::npos) << rows.to_string();
  e.mask = at::ones({4}, at::kFloat);
  EXPECT_FALSE(resolve_entry(e, CondShape{1, 0, 1, 8, 8, at::kCPU}, ms, "x", r).is_ok());
  e.mask = at::Tensor();
  e.area_percent = std::array<double, 4>{0.25, 0.25, 0.5, 0.5};  // 4 cells with feathered edges
  EXPECT_FALSE(resolve_entry(e, CondShape{1, 0, 1, 16, 16, at::kCPU}, ms, "x", r).is_ok());
  e.area_percent = std::array<double, 4>{1.0, 1.0, 1.0, 0.0};  // starts at the bottom edge
  EXPECT_FALSE(resolve_entry(e, CondShape{1, 0, 1, 16, 16, at::kCPU}, ms, "x", r).is_ok());
}

}  // namespace
}  // namespace netdist::cond
