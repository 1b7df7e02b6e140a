// Differential check of the mask, latent, image and conditioning operation classes against the pinned
// ComfyUI's own classes: tools/parity/ops_reference.py runs them on fixed small random inputs (CPU torch) and
// writes cases.json + tensors.safetensors; each case here runs the same class of netdist's registry with the
// same inputs and compares every output: tensors by max |diff| (bound 1e-5; MASK as [N, H, W]), batch_index
// lists and shapes exactly; and every compared class's /object_info entry with ComfyUI's (object_info.json). NETDIST_OPS_PARITY_DATA names the directory; without it the test fails, naming
// what is missing. Built into netdist_parity_tests; tests/parity/run_gpu_parity.sh (step "ops") runs it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "engine/runtime/tensor_io.h"
#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using ops_testing::output;

constexpr double kOpsParityBound = 1e-5;

class OpsParityCase {
 public:
  OpsParityCase(const runtime::WeightMap& tensors, const Json& c) : tensors_(tensors), c_(c) {}

  Result<at::Tensor> tensor(const Json& key) const {
    auto it = key.is_string() ? tensors_.find(key.get<std::string>()) : tensors_.end();
    if (it == tensors_.end()) return Status::not_found("tensors.safetensors has no tensor " + key.dump());
    return it->second.to(at::kFloat).contiguous();
  }

  Result<Conditioning> conditioning(const Json& entries) const {
    Conditioning c;
    for (const Json& e : entries) {
      CondEntry entry;
      ND_ASSIGN_OR_RETURN(entry.context, tensor(e["context"]));
      if (e.contains("pooled")) {
        ND_ASSIGN_OR_RETURN(entry.pooled, tensor(e["pooled"]));
      }
      c.push_back(std::move(entry));
    }
    return c;
  }

  Result<graph::NodeInputs> inputs() const {
    graph::NodeInputs in;
    for (const auto& [name, v] : c_["inputs"].items()) {
      if (v.is_object() && v.contains("image")) {
        ND_ASSIGN_OR_RETURN(at::Tensor t, tensor(v["image"]));
        in.set(name, ops_testing::image_value(t));
      } else if (v.is_object() && v.contains("mask")) {
        ND_ASSIGN_OR_RETURN(at::Tensor t, tensor(v["mask"]));
        in.set(name, ops_testing::mask_value(t));
      } else if (v.is_object() && v.contains("latent")) {
        ND_ASSIGN_OR_RETURN(at::Tensor t, tensor(v["latent"]));
        std::optional<std::vector<int64_t>> index;
        if (v.contains("batch_index")) index = v["batch_index"].get<std::vector<int64_t>>();
        in.set(name, ops_testing::latent_value(t, index));
      } else if (v.is_object() && v.contains("conditioning")) {
        ND_ASSIGN_OR_RETURN(Conditioning c, conditioning(v["conditioning"]));
        in.set(name, ops_testing::cond_value(std::move(c)));
      } else if (v.is_boolean()) {
        in.set(name, v.get<bool>());
      } else if (v.is_number_integer()) {
        in.set(name, v.get<int64_t>());
      } else if (v.is_number()) {
        in.set(name, v.get<double>());
      } else if (v.is_string()) {
        in.set(name, v.get<std::string>());
      } else {
        return Status::invalid_argument("case input " + name + " = " + v.dump() + " is not understood");
      }
    }
    return in;
  }

  // The largest |diff| of `got` against the reference `key` (shapes must match; +inf where they do not).
  double compare(const std::string& what, const at::Tensor& got, const Json& key) const {
    auto ref = tensor(key);
    EXPECT_TRUE(ref.is_ok()) << ref.status().to_string();
    if (!ref.is_ok() || !got.defined()) return INFINITY;
    EXPECT_EQ(got.sizes(), ref->sizes()) << what;
    if (got.sizes() != ref->sizes()) return INFINITY;
    return got.numel() == 0 ? 0.0 : (got.to(at::kFloat) - *ref).abs().max().item<double>();
  }

  // Every output of `out` against the case's expected outputs; returns the largest |diff|.
  double compare_outputs(const std::vector<graph::Value>& out) const {
    double err = 0;
    const Json& expected = c_["outputs"];
    EXPECT_EQ(out.size(), expected.size());
    for (size_t i = 0; i < expected.size() && i < out.size(); ++i) {
      const Json& e = expected[i];
      const std::string what = c_["name"].get<std::string>() + " output " + std::to_string(i);
      if (e.contains("image")) {
        auto im = output<ImageObject>(out, i);
        err = std::max(err, compare(what, im ? im->images : at::Tensor(), e["image"]));
      } else if (e.contains("mask")) {
        auto m = output<MaskObject>(out, i);
        at::Tensor t = m ? m->mask.reshape({-1, m->mask.size(-2), m->mask.size(-1)}) : at::Tensor();
        err = std::max(err, compare(what, t, e["mask"]));
      } else if (e.contains("latent")) {
        auto l = output<LatentObject>(out, i);
        err = std::max(err, compare(what, l ? l->samples : at::Tensor(), e["latent"]));
        if (l && e.contains("batch_index")) {
          EXPECT_TRUE(l->batch_index.has_value()) << what;
          if (l->batch_index) {
            EXPECT_EQ(*l->batch_index, e["batch_index"].get<std::vector<int64_t>>()) << what;
          }
        }
      } else if (e.contains("conditioning")) {
        auto c = output<ConditioningObject>(out, i);
        const Json& entries = e["conditioning"];
        EXPECT_TRUE(c && c->conditioning.size() == entries.size()) << what;
        if (!c || c->conditioning.size() != entries.size()) return INFINITY;
        for (size_t j = 0; j < entries.size(); ++j) {
          err = std::max(err, compare(what + " context", c->conditioning[j].context, entries[j]["context"]));
          EXPECT_EQ(c->conditioning[j].pooled.defined(), entries[j].contains("pooled")) << what << " entry " << j;
          if (entries[j].contains("pooled") && c->conditioning[j].pooled.defined()) {
            err = std::max(err, compare(what + " pooled", c->conditioning[j].pooled, entries[j]["pooled"]));
          }
        }
      }
    }
    return err;
  }

 private:
  const runtime::WeightMap& tensors_;
  const Json& c_;
};

// NETDIST_OPS_PARITY_DATA/<name> parsed, or null (the test has failed, naming what is missing).
Json ops_parity_json(const std::string& name) {
  const char* dir = std::getenv("NETDIST_OPS_PARITY_DATA");
  if (dir == nullptr || *dir == '\0') {
    ADD_FAILURE() << "NETDIST_OPS_PARITY_DATA is not set (tools/parity/ops_reference.py writes the data; "
                     "tests/parity/run_gpu_parity.sh makes it and runs this suite)";
    return nullptr;
  }
  std::ifstream f(std::filesystem::path(dir) / name);
  if (!f.good()) {
    ADD_FAILURE() << (std::filesystem::path(dir) / name).string() << " cannot be read";
    return nullptr;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return Json::parse(ss.str());
}

TEST(ParityOps, ObjectInfoMatchesComfyUI) {
  const Json ref = ops_parity_json("object_info.json");
  ASSERT_TRUE(ref.is_object() && !ref.empty());
  ops_testing::OpsHarness h("parity_info");
  for (const auto& [name, expected] : ref.items()) {
    Json ours = h.info(name);
    if (name == "LoadImageMask" && ours.is_object()) ours["input"]["required"]["image"][0] = Json::array();
    const bool same = nlohmann::json::parse(ours.dump()) == nlohmann::json::parse(expected.dump());
    EXPECT_TRUE(same) << name << "\n netdist: " << ours.dump() << "\n ComfyUI: " << expected.dump();
    std::printf("[ parity ] ops object_info %s: max |diff| = %d (bound 0)\n", name.c_str(), same ? 0 : 1);
  }
}

TEST(ParityOps, EveryCaseMatchesComfyUI) {
  const Json doc = ops_parity_json("cases.json");
  ASSERT_TRUE(doc.is_object());
  const std::filesystem::path base(std::getenv("NETDIST_OPS_PARITY_DATA"));
  auto tensors = runtime::load_safetensors((base / "tensors.safetensors").string());
  ASSERT_TRUE(tensors.is_ok()) << tensors.status().to_string();
  ASSERT_GT(doc["cases"].size(), 0u);
  ops_testing::OpsHarness h("parity");
  for (const Json& c : doc["cases"]) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    OpsParityCase pc(*tensors, c);
    auto in = pc.inputs();
    ASSERT_TRUE(in.is_ok()) << in.status().to_string();
    auto out = h.run(c["class"].get<std::string>(), *in);
    EXPECT_TRUE(out.is_ok()) << out.status().to_string();
    const double err = out.is_ok() ? pc.compare_outputs(*out) : INFINITY;
    EXPECT_LE(err, kOpsParityBound) << name;
    std::printf("[ parity ] ops %s (%s): max |diff| = %.3g (bound %.3g)\n", name.c_str(),
                c["class"].get<std::string>().c_str(), err, kOpsParityBound);
  }
}

}  // namespace
}  // namespace netdist::nodes
