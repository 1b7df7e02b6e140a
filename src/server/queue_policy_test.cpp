#include "server/queue_policy.h"

#include <gtest/gtest.h>

#include "server/prompt_queue.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// A prompt of one KSampler over an EmptyLatentImage: steps × (size/64)² units.
json sampler_prompt(int steps, int size) {
  return {{"5", {{"class_type", "EmptyLatentImage"}, {"inputs", {{"width", size}, {"height", size}, {"batch_size", 1}}}}},
          {"3", {{"class_type", "KSampler"}, {"inputs", {{"steps", steps}, {"latent_image", json::array({"5", 0})}}}}}};
}

QueueItem item(int number, const std::string& id, json extra = json::object(), json prompt = sampler_prompt(10, 64)) {
  QueueItem it;
  it.number = number;
  it.prompt_id = id;
  it.prompt = std::move(prompt);
  it.extra_data = std::move(extra);
  it.outputs_to_execute = json::array({"3"});
  return it;
}

// Takes every pending prompt (finishing each at once) and returns the ids in run order.
std::vector<std::string> drain(PromptQueue& q) {
  std::vector<std::string> order;
  while (auto r = q.get(std::chrono::milliseconds(0))) {
    order.push_back(r->item.prompt_id);
    q.task_done(r->task_id, json::object(), json::object(), ExecutionStatus{"success", true});
  }
  return order;
}

TEST(QueuePolicy, FifoIsComfyOrderAndTheDefault) {
  PromptQueue q;
  EXPECT_EQ(q.policy_name(), "fifo");
  q.put(item(2, "b"));
  q.put(item(-1, "front"));
  q.put(item(2, "a"));
  q.put(item(1, "first"));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"front", "first", "a", "b"}));
}

TEST(QueuePolicy, LifoRunsTheNewestSubmissionFirst) {
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("lifo").is_ok());
  for (int i = 0; i < 4; ++i) q.put(item(i, "p" + std::to_string(i)));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"p3", "p2", "p1", "p0"}));
}

TEST(QueuePolicy, PriorityHighestFirstTiesInFifoOrder) {
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("priority").is_ok());
  q.put(item(0, "none"));
  q.put(item(1, "low", {{"netdist", {{"priority", -3}}}}));
  q.put(item(2, "high", {{"netdist", {{"priority", 5}}}}));
  q.put(item(3, "high2", {{"netdist", {{"priority", 5}}}}));
  q.put(item(4, "mid", {{"netdist", {{"priority", 1}}}}));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"high", "high2", "mid", "none", "low"}));
}

TEST(QueuePolicy, SjfRunsTheSmallestPredictedWorkFirst) {
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("sjf").is_ok());
  q.put(item(0, "big", {}, sampler_prompt(30, 128)));     // 30 × 4 = 120 units
  q.put(item(1, "small", {}, sampler_prompt(4, 64)));     // 4 units
  q.put(item(2, "mid", {}, sampler_prompt(10, 128)));     // 40 units
  q.put(item(3, "small2", {}, sampler_prompt(4, 64)));    // tie with "small": fifo
  EXPECT_EQ(drain(q), (std::vector<std::string>{"small", "small2", "mid", "big"}));
}

PendingPrompt pending(uint64_t seq, Clock::time_point at, double units, std::string client = "") {
  PendingPrompt p;
  p.sequence = seq;
  p.enqueued = at;
  p.predicted_units = units;
  p.client_id = std::move(client);
  return p;
}

TEST(QueuePolicy, SjfAgingLetsAWaitingLongPromptBeatNewShortOnes) {
  auto sjf = make_queue_policy("sjf").value();
  const Clock::time_point t0 = Clock::now();
  // 100 units = 1 s at the seed rate; a stream of 0.1 s prompts arrives every 0.1 s.
  std::vector<PendingPrompt> queue = {pending(0, t0, 100)};
  uint64_t seq = 1;
  int picks_before_long = 0;
  for (int tick = 0; tick < 100; ++tick) {
    const Clock::time_point now = t0 + std::chrono::milliseconds(100 * tick);
    queue.push_back(pending(seq++, now, 10));
    std::vector<const PendingPrompt*> view;
    for (const auto& p : queue) view.push_back(&p);
    const size_t i = sjf->pick(view, now);
    if (queue[i].sequence == 0) break;
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i));
    ++picks_before_long;
  }
  // Without aging the long prompt would never run; with kSjfAging = 1 it runs once its wait exceeds its
  // predicted excess over a short one (0.9 s), i.e. after about 10 short prompts.
  EXPECT_GE(picks_before_long, 1);
  EXPECT_LE(picks_before_long, 11);
}

TEST(QueuePolicy, SjfLearnsSecondsPerUnitFromFinishedPrompts) {
  auto sjf = make_queue_policy("sjf").value();
  const Clock::time_point t0 = Clock::now();
  // Long: 100 units enqueued 5 s before short (10 units). At the seed rate (0.01 s/unit) the long one's
  // score 1 − 5 beats 0.1; once a prompt measured 1 s/unit, it is 100 − 5 against 10 and short goes first.
  PendingPrompt long_prompt = pending(0, t0, 100), short_prompt = pending(1, t0 + std::chrono::seconds(5), 10);
  const std::vector<const PendingPrompt*> view = {&long_prompt, &short_prompt};
  EXPECT_EQ(sjf->pick(view, t0 + std::chrono::seconds(5)), 0u);
  for (int i = 0; i < 20; ++i) sjf->finished(10, 10.0);
  EXPECT_EQ(sjf->pick(view, t0 + std::chrono::seconds(5)), 1u);
}

TEST(QueuePolicy, FairRoundRobinsBetweenClientsFifoWithinOne) {
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("fair").is_ok());
  for (int i = 0; i < 4; ++i) q.put(item(i, "a" + std::to_string(i), {{"client_id", "alice"}}));
  q.put(item(10, "b0", {{"client_id", "bob"}}));
  q.put(item(11, "b1", {{"client_id", "bob"}}));
  q.put(item(12, "c0", {{"client_id", "carol"}}));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}));
}

TEST(QueuePolicy, FairHonoursAClientsOwnPolicyWithinItsTurns) {
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("fair").is_ok());
  const json alice_lifo = {{"client_id", "alice"}, {"netdist", {{"policy", "lifo"}}}};
  for (int i = 0; i < 3; ++i) q.put(item(i, "a" + std::to_string(i), alice_lifo));
  q.put(item(10, "b0", {{"client_id", "bob"}}));
  q.put(item(11, "b1", {{"client_id", "bob"}}));
  // Turns still alternate alice, bob, ...; alice's turns take her newest prompt first.
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a2", "b0", "a1", "b1", "a0"}));
}

TEST(QueuePolicy, UnknownNamesAreErrorsListingTheValidOnes) {
  PromptQueue q;
  const Status s = q.set_policy("shortest");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("unknown queue policy 'shortest'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fair, fifo, lifo, priority, sjf"), std::string::npos) << s.message();
  EXPECT_EQ(q.policy_name(), "fifo");
  EXPECT_FALSE(make_queue_policy("").is_ok());
}

TEST(QueuePolicy, SettingsParseAndRejectBadFields) {
  auto s = parse_queue_settings({{"netdist", {{"priority", 5}, {"policy", "sjf"}}}});
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->priority, 5);
  EXPECT_EQ(s->policy, "sjf");
  EXPECT_TRUE(parse_queue_settings(json::object()).is_ok());
  EXPECT_NE(parse_queue_settings({{"netdist", 3}}).status().message().find("extra_data.netdist must be an object"),
            std::string::npos);
  EXPECT_NE(parse_queue_settings({{"netdist", {{"priority", 1.5}}}}).status().message().find("priority must be an integer"),
            std::string::npos);
  EXPECT_NE(parse_queue_settings({{"netdist", {{"policy", "nope"}}}}).status().message().find("valid: fair"),
            std::string::npos);
  QueueSettings lifo;
  lifo.policy = "lifo";
  EXPECT_TRUE(check_queue_settings(lifo, "fair").is_ok());
  EXPECT_TRUE(check_queue_settings(lifo, "lifo").is_ok());
  EXPECT_FALSE(check_queue_settings(lifo, "fifo").is_ok());
  EXPECT_TRUE(check_queue_settings(QueueSettings{}, "fifo").is_ok());
}

// The documented custom-policy example (docs/scheduling.md): smallest batch first.
class FewestImagesFirst : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point) override {
    size_t best = 0;
    for (size_t i = 1; i < pending.size(); ++i) {
      if (images(*pending[i]->item) < images(*pending[best]->item)) best = i;
    }
    return best;
  }

 private:
  static int64_t images(const QueueItem& item) {
    int64_t n = 0;
    for (const auto& [id, node] : item.prompt.items()) {
      if (node.value("class_type", "") == "EmptyLatentImage") n += node["inputs"].value("batch_size", 1);
    }
    return n;
  }
};

TEST(QueuePolicy, CustomPoliciesRegisterOnceAndRun) {
  ASSERT_TRUE(register_queue_policy("fewest-images", [] { return std::make_unique<FewestImagesFirst>(); }).is_ok());
  EXPECT_FALSE(register_queue_policy("fewest-images", [] { return std::make_unique<FewestImagesFirst>(); }).is_ok());
  EXPECT_FALSE(register_queue_policy("bad name", [] { return std::make_unique<FewestImagesFirst>(); }).is_ok());
  PromptQueue q;
  ASSERT_TRUE(q.set_policy("fewest-images").is_ok());
  json four = sampler_prompt(4, 64);
  four["5"]["inputs"]["batch_size"] = 4;
  q.put(item(0, "four", {}, four));
  q.put(item(1, "one", {}, sampler_prompt(30, 64)));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"one", "four"}));
}

}  // namespace
}  // namespace netdist::server
