// Fault injection over a queue of mixed prompts (issue #7): a seeded script of worker kills (SIGKILL, then a
// fresh process joins again), stalls (SIGSTOP past the lease, then SIGCONT), link cuts (each dial-in worker
// reaches the coordinator through its own TcpLink, a relay that can be cut like a pulled cable: no byte
// moves, nothing closes; some cuts outlast the lease, some are blips under it), coordinator kills (SIGKILL,
// then a restart on the same port and --data-dir, which the workers dial into again) and a throttled
// worker, while 50 prompts of different batch sizes, sizes, steps and samplers run through a coordinator
// with dial-in workers. At the end every prompt is in history exactly once, successful, with PNG bytes equal
// to a fault-free render by one plain server, and the output folder holds exactly the expected files.
// NETDIST_FAULT_SEED picks another script; the counts are printed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "cluster/tcp_link_test_util.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr int kPrompts = 50;

struct MixedPrompt {
  nlohmann::json prompt;
  int images = 0;
};

std::vector<MixedPrompt> mixed_prompts(std::mt19937& rng) {
  std::vector<MixedPrompt> out;
  const char* samplers[] = {"euler", "euler_ancestral", "dpmpp_2m"};
  const char* texts[] = {"red heart", "blue star", "green tree", "yellow sun"};
  for (int i = 0; i < kPrompts; ++i) {
    std::string prefix = "f";
    prefix += std::to_string(i);
    const int batch = 1 + int(rng() % 4);
    const int side = rng() % 2 ? 64 : 48;
    const int steps = 2 + int(rng() % 3);
    nlohmann::json p = {
        {"4", {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "tiny-emoji.safetensors"}}}}},
        {"5",
         {{"class_type", "EmptyLatentImage"}, {"inputs", {{"width", side}, {"height", side}, {"batch_size", batch}}}}},
        {"6", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", texts[rng() % 4]}, {"clip", {"4", 1}}}}}},
        {"7", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", ""}, {"clip", {"4", 1}}}}}},
        {"3",
         {{"class_type", "KSampler"},
          {"inputs",
           {{"seed", uint64_t(rng())}, {"steps", steps}, {"cfg", 5.0}, {"sampler_name", samplers[rng() % 3]},
            {"scheduler", "normal"}, {"denoise", 1.0}, {"model", {"4", 0}}, {"positive", {"6", 0}},
            {"negative", {"7", 0}}, {"latent_image", {"5", 0}}}}}},
        {"8", {{"class_type", "VAEDecode"}, {"inputs", {{"samples", {"3", 0}}, {"vae", {"4", 2}}}}}},
        {"9", {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", prefix}, {"images", {"8", 0}}}}}}};
    out.push_back({std::move(p), batch});
  }
  return out;
}

// Every PNG under `dir`, recursively.
size_t count_pngs(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().extension() == ".png") ++n;
  }
  return n;
}

TEST(FaultInjection, FiftyMixedPromptsSurviveKillsStallsAndASlowWorker) {
  const char* seed_env = std::getenv("NETDIST_FAULT_SEED");
  const uint32_t seed = seed_env ? uint32_t(std::strtoul(seed_env, nullptr, 10)) : 20261128u;
  std::mt19937 rng(seed);
  const std::vector<MixedPrompt> prompts = mixed_prompts(rng);
  int expected_images = 0;
  for (const auto& p : prompts) expected_images += p.images;

  // The fault-free reference: one plain server renders every prompt.
  const fs::path dir = scratch("faults");
  std::vector<std::vector<std::string>> reference;
  {
    Proc server(coordinator_args(dir / "ref", {}), dir / "ref.log");
    std::vector<std::string> ids;
    for (const auto& p : prompts) ids.push_back(submit(server.url(), p.prompt));
    for (const auto& id : ids) reference.push_back(images(wait_history(server.url(), id), dir / "ref" / "out"));
  }

  const std::string beat = "300";  // ms: a stalled worker loses its lease after 3 beats
  std::vector<std::string> coord_args = coordinator_args(
      dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0", "--test-heartbeat-ms", beat,
                  "--data-dir", (dir / "c" / "state").string()});
  int coord_runs = 0;
  auto coord = std::make_unique<Proc>(coord_args, dir / "c0.log");
  const std::string coord_url = coord->url();
  ASSERT_FALSE(coord_url.empty());
  // Restarts reuse the port, so the dial-in workers find the new process at the URL they know.
  for (size_t i = 0; i + 1 < coord_args.size(); ++i) {
    if (coord_args[i] == "--port") coord_args[i + 1] = coord_url.substr(coord_url.rfind(':') + 1);
  }
  // Each worker slot's link to the coordinator; a restarted worker dials in through its slot's link again.
  const auto coord_port = uint16_t(std::stoi(coord_url.substr(coord_url.rfind(':') + 1)));
  std::vector<std::unique_ptr<TcpLink>> links;
  for (int i = 0; i < 3; ++i) {
    links.push_back(std::make_unique<TcpLink>(coord_port));
    ASSERT_EQ(links.back()->error(), "");
  }
  std::vector<std::unique_ptr<Proc>> workers;
  int incarnation = 0;
  auto start_worker = [&](size_t slot, std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--join", links[slot]->url()});
    const fs::path home = dir / ("w" + std::to_string(slot));
    auto w = std::make_unique<Proc>(worker_args(home, extra), dir / ("w" + std::to_string(incarnation++) + ".log"));
    if (slot < workers.size()) workers[slot] = std::move(w);
    else workers.push_back(std::move(w));
  };
  start_worker(0, {});
  start_worker(1, {});
  start_worker(2, {"--test-step-delay-ms", "40"});  // the slow one
  wait_alive(coord_url, 3);

  std::vector<std::string> ids;
  for (const auto& p : prompts) ids.push_back(submit(coord_url, p.prompt));

  // The script: a fault every 0.3-0.9 s until the queue drains (at most 40 faults, 3 of the coordinator).
  int kills = 0, stalls = 0, cuts = 0, coordinator_kills = 0;
  auto done = [&] {
    auto q = nlohmann::json::parse(call(coord_url, "GET", "/queue").body, nullptr, false);
    return q.is_object() && q["queue_running"].empty() && q["queue_pending"].empty();
  };
  const auto deadline = Clock::now() + std::chrono::seconds(150);
  while (!done() && Clock::now() < deadline && kills + stalls + cuts + coordinator_kills < 40) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 600));
    const uint32_t dice = rng() % 10;
    const size_t victim = rng() % 2;  // the two normal workers; the slow one stays slow
    if (dice < 2 && coordinator_kills < 3) {
      coord->stop(SIGKILL);
      coord = std::make_unique<Proc>(coord_args, dir / ("c" + std::to_string(++coord_runs) + ".log"));
      ASSERT_EQ(coord->url(), coord_url) << "the coordinator did not come back on its port";
      ++coordinator_kills;
    } else if (dice < 5) {
      workers[victim]->stop(SIGKILL);
      start_worker(victim, {});
      ++kills;
    } else if (dice < 7) {
      kill(workers[victim]->pid(), SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(4 * std::stoi(beat)));
      kill(workers[victim]->pid(), SIGCONT);
      ++stalls;
    } else {  // 1-5 beats: a blip the lease rides out, or a cut that loses the lease
      links[victim]->cut();
      std::this_thread::sleep_for(std::chrono::milliseconds((1 + rng() % 5) * std::stoi(beat)));
      links[victim]->heal();
      ++cuts;
    }
  }

  int checked = 0;
  std::set<std::string> seen_files;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto h = wait_history(coord_url, ids[i]);
    ASSERT_TRUE(h.is_object()) << "prompt " << i << " never finished";
    EXPECT_EQ(h["status"]["status_str"], "success") << "prompt " << i << ": " << h["status"].dump();
    for (const auto& img : h["outputs"]["9"]["images"]) {
      EXPECT_TRUE(seen_files.insert(img["filename"].get<std::string>()).second) << "file listed twice";
    }
    const std::vector<std::string> got = images(h, dir / "c" / "out");
    EXPECT_EQ(got.size(), size_t(prompts[i].images)) << "prompt " << i;
    EXPECT_TRUE(got == reference[i]) << "prompt " << i << " differs from the fault-free render";
    checked += int(got.size());
  }
  auto history = nlohmann::json::parse(call(coord_url, "GET", "/history").body, nullptr, false);
  EXPECT_EQ(history.size(), size_t(kPrompts)) << "every prompt once in history, nothing twice";
  EXPECT_EQ(count_pngs(dir / "c" / "out"), size_t(expected_images)) << "no duplicate or stray output files";
  EXPECT_GT(kills + stalls + cuts + coordinator_kills, 0) << "the queue drained before any fault";
  for (const auto& link : links) EXPECT_GT(link->connections(), 0) << "a worker did not reach the coordinator through its link";
  std::printf("fault injection (seed %u): %d prompts, %d faults injected (%d worker kills, %d stalls past the "
              "lease, %d link cuts, %d coordinator kills and restarts, 1 throttled worker), %d images checked "
              "against the fault-free render\n",
              seed, kPrompts, kills + stalls + cuts + coordinator_kills, kills, stalls, cuts, coordinator_kills,
              checked);
}

}  // namespace
}  // namespace netdist::cluster
