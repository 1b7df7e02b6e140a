// A task that fails for a reason of its input fails its prompt once (issue #15): real coordinator and worker
// processes (one connect-out, one dial-in) and a batch-2 KSampler fed a 3-channel latent from
// LoadLatentNumpy, split over both. Each worker's shard fails with the KSampler's named error and says the
// input is at fault; the coordinator fails the prompt with that message without retrying, no worker is
// counted as failed or dropped, and every process renders the next prompt.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "nodes/npy.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

// input/<name> under `dir` as np.save writes a float32 zeros array of `shape`.
void write_zeros_npy(const fs::path& dir, const std::string& name, const std::vector<int64_t>& shape) {
  nodes::NpyArray a;
  a.shape = shape;
  a.data.assign(static_cast<size_t>(a.numel()) * sizeof(float), '\0');
  auto bytes = nodes::serialize_npy(a);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  fs::create_directories(dir / "in");
  std::ofstream(dir / "in" / name, std::ios::binary) << *bytes;
}

nlohmann::json poisoned_prompt() {
  nlohmann::json p = prompt(2);
  p["10"] = {{"class_type", "LoadLatentNumpy"}, {"inputs", {{"latent", "rgb.npy"}}}};
  p["3"]["inputs"]["latent_image"] = nlohmann::json::array({"10", 0});
  return p;
}

TEST(InputFaultProcess, ABadShardFailsItsPromptOnceAndEveryWorkerRendersTheNext) {
  fs::path dir = scratch("input_fault", "split");
  // The latent file is where every process's LoadLatentNumpy looks (such files do not travel with shards).
  for (const char* who : {"c", "w", "d"}) write_zeros_npy(dir / who, "rgb.npy", {2, 3, 8, 8});
  Proc w(worker_args(dir / "w"), dir / "w.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0", "--workers",
                                          w.url()}),
             dir / "c.log");
  Proc d(worker_args(dir / "d", {"--join", coord.url()}), dir / "d.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));

  auto bad = wait_history(coord.url(), submit(coord.url(), poisoned_prompt()));
  EXPECT_EQ(bad["status"]["status_str"], "error");
  std::string message;
  for (const auto& m : bad["status"]["messages"]) {
    if (m[0] == "execution_error") message = m[1].value("exception_message", "");
  }
  EXPECT_NE(message.find("KSampler: latent_image has 3 channels ([2, 3, 8, 8])"), std::string::npos) << message;
  EXPECT_NE(message.find("samples 4-channel latents"), std::string::npos) << message;

  // Not retried: no worker counted a failure or lost its place, and the coordinator logged no retry.
  for (const auto& [url, info] : workers_by_url(coord.url())) {
    EXPECT_EQ(info["failures"], 0) << url;
    EXPECT_EQ(info["alive"], true) << url;
  }
  const std::string log = read_file(dir / "c.log");
  EXPECT_NE(log.find("failed by its input"), std::string::npos) << log;
  EXPECT_FALSE(std::regex_search(log, std::regex("cluster: shard \\S+ on \\S+ failed: ")))
      << "a shard was retried:\n" << log;

  // Every process still serves: the cluster renders a split batch, and each worker renders on its own.
  auto good = wait_history(coord.url(), submit(coord.url(), prompt(2, 11)));
  EXPECT_EQ(good["status"]["status_str"], "success");
  EXPECT_EQ(images(good, dir / "c" / "out").size(), 2u);
  for (const Proc* p : {&w, &d}) {
    auto own = wait_history(p->url(), submit(p->url(), prompt(1, 12)));
    EXPECT_EQ(own["status"]["status_str"], "success") << p->url();
  }
}

}  // namespace
}  // namespace netdist::cluster
