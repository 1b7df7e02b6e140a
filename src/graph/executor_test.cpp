#include "graph/executor.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "graph/fake_nodes.h"
#include "graph/test_util.h"

namespace netdist::graph {
namespace {

using testing::load_json;
using testing::Recorder;
using testing::unordered;

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake::register_core_nodes(registry_, &runs_);
    executor_.set_clock([] { return int64_t(1700000000000); });
  }

  ValidatedPrompt validated(const Json& prompt) {
    ValidationResult result = validate_prompt(prompt, registry_);
    EXPECT_TRUE(result.ok()) << result.error_body.dump();
    return std::move(*result.validated);
  }

  ExecutionOutcome run(const Json& prompt, const std::string& prompt_id, Recorder& sink) {
    return executor_.execute(validated(prompt), prompt_id, Json{{"client_id", "c"}}, sink, interrupt_);
  }

  static Json base() { return load_json("graph/execution_golden.json")[0]["steps"][0]["prompt"]; }

  fake::FakeRuns runs_;
  NodeRegistry registry_;
  Executor executor_{registry_};
  std::atomic<bool> interrupt_{false};
};

// Each scenario in execution_golden.json is a sequence of prompts that ComfyUI's own PromptExecutor ran
// on one executor (gen_golden.py); events, UI outputs and success must match step by step.
TEST_F(ExecutorTest, MatchesComfyUIGolden) {
  Json scenarios = load_json("graph/execution_golden.json");
  for (const Json& scenario : scenarios) {
    SCOPED_TRACE(scenario["name"].get<std::string>());
    fake::FakeRuns runs;
    NodeRegistry registry;
    fake::register_core_nodes(registry, &runs);
    Executor executor(registry);
    std::atomic<bool> interrupt{false};
    if (scenario["name"] == "interrupt") runs.interrupt_at_step = &interrupt;
    int i = 0;
    for (const Json& step : scenario["steps"]) {
      SCOPED_TRACE(std::string("step ").append(std::to_string(i)));
      ValidationResult v = validate_prompt(step["prompt"], registry);
      ASSERT_TRUE(v.ok());
      Recorder sink;
      ExecutionOutcome outcome =
          executor.execute(*v.validated, std::string("p").append(std::to_string(i)), Json{{"client_id", "c"}}, sink, interrupt);
      EXPECT_EQ(sink.events.dump(1), step["events"].dump(1));
      EXPECT_EQ(unordered(outcome.outputs), unordered(step["outputs"]));
      EXPECT_EQ(outcome.success, step["success"].get<bool>());
      ++i;
    }
  }
}

TEST_F(ExecutorTest, ResubmitRunsNothingAndSeedChangeRerunsDependents) {
  Recorder first;
  ExecutionOutcome a = run(base(), "a", first);
  EXPECT_TRUE(a.success);
  EXPECT_EQ(runs_.total(), 7);
  EXPECT_EQ(a.executed, (std::vector<std::string>{"4", "5", "7", "6", "3", "8", "9"}));

  Recorder second;
  ExecutionOutcome b = run(base(), "b", second);
  EXPECT_EQ(runs_.total(), 7);
  EXPECT_TRUE(b.executed.empty());
  EXPECT_EQ(second.types(),
            (std::vector<std::string>{"execution_start", "execution_cached", "executed", "execution_success"}));
  EXPECT_EQ(second.events[1][1]["nodes"], Json::parse(R"(["3","4","5","6","7","8","9"])"));
  EXPECT_EQ(b.outputs, a.outputs);

  Json changed = base();
  changed["3"]["inputs"]["seed"] = 1;
  Recorder third;
  ExecutionOutcome c = run(changed, "c", third);
  EXPECT_EQ(c.executed, (std::vector<std::string>{"3", "8", "9"}));
  EXPECT_EQ(runs_.count["KSampler"], 2);
  EXPECT_EQ(runs_.count["CheckpointLoaderSimple"], 1);
  EXPECT_EQ(third.events[1][1]["nodes"], Json::parse(R"(["4","5","6","7"])"));
}

// History netdist.nodes (issue #21): one timing per node that ran, in order; none for cached nodes.
TEST_F(ExecutorTest, TimesEachNodeThatRan) {
  Recorder first;
  ExecutionOutcome a = run(base(), "a", first);
  ASSERT_EQ(a.node_timings.size(), a.executed.size());
  for (size_t i = 0; i < a.executed.size(); ++i) {
    EXPECT_EQ(a.node_timings[i]["node"], a.executed[i]);
    EXPECT_EQ(a.node_timings[i]["class_type"], base()[a.executed[i]]["class_type"]);
    EXPECT_GE(a.node_timings[i]["seconds"].get<double>(), 0.0);
  }
  Recorder second;
  EXPECT_TRUE(run(base(), "b", second).node_timings.empty());
}

TEST_F(ExecutorTest, MessagesCarryTimestampsForHistory) {
  Recorder sink;
  ExecutionOutcome outcome = run(base(), "p", sink);
  ASSERT_EQ(outcome.messages.size(), 3u);
  EXPECT_EQ(outcome.messages[0][0], "execution_start");
  EXPECT_EQ(outcome.messages[0][1].dump(), R"({"prompt_id":"p","timestamp":1700000000000})");
  EXPECT_EQ(outcome.messages[1][1].dump(), R"({"nodes":[],"prompt_id":"p","timestamp":1700000000000})");
  EXPECT_EQ(outcome.messages[2][0], "execution_success");
  EXPECT_EQ(outcome.meta["9"].dump(),
            R"({"node_id":"9","display_node":"9","parent_node":null,"real_node_id":"9"})");
}

// An exception escaping a node (libtorch throws c10::Error, a std::exception) fails that prompt with ComfyUI's
// execution_error, RuntimeError, and the same executor runs the next prompt.
TEST_F(ExecutorTest, ExceptionInANodeFailsThatPromptOnly) {
  NodeSchema throws;
  throws.class_type = "TestThrow";
  throws.category = "testing";
  throws.required = {link_input("images", "IMAGE")};
  throws.output_types = {"IMAGE"};
  fake::add_node(registry_, &runs_, throws, [](NodeContext&, const NodeInputs&) -> Result<std::vector<Value>> {
    throw std::runtime_error("Expected size 4 but got size 3 for tensor number 1 in the list");
  });
  Json prompt = base();
  prompt["12"] = {{"class_type", "TestThrow"}, {"inputs", {{"images", {"8", 0}}}}};
  prompt["9"]["inputs"]["images"] = {"12", 0};
  Recorder sink;
  ExecutionOutcome outcome = run(prompt, "p", sink);
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.status.code(), StatusCode::kInternal);
  ASSERT_EQ(outcome.messages.back()[0], "execution_error");
  const Json& error = outcome.messages.back()[1];
  EXPECT_EQ(error["node_id"], "12");
  EXPECT_EQ(error["exception_type"], "RuntimeError");
  EXPECT_EQ(error["exception_message"], "Expected size 4 but got size 3 for tensor number 1 in the list");
  Recorder next;
  EXPECT_TRUE(run(base(), "q", next).success);
}

TEST_F(ExecutorTest, NodeErrorEvent) {
  Json prompt = base();
  prompt["12"] = {{"class_type", "TestFail"}, {"inputs", {{"images", {"8", 0}}, {"reason", "bad things"}}}};
  prompt["9"]["inputs"]["images"] = {"12", 0};
  Recorder sink;
  ExecutionOutcome outcome = run(prompt, "p", sink);
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.status.code(), StatusCode::kInvalidArgument);  // the node's own code (ValueError below)
  const Json& last = sink.events.back();
  ASSERT_EQ(last[0], "execution_error");
  EXPECT_EQ(last[1]["node_id"], "12");
  EXPECT_EQ(last[1]["node_type"], "TestFail");
  EXPECT_EQ(last[1]["exception_message"], "bad things");
  EXPECT_EQ(last[1]["exception_type"], "ValueError");
  EXPECT_EQ(last[1]["current_inputs"].dump(), R"({"images":["<IMAGE seed8566257>"],"reason":["bad things"]})");
  EXPECT_EQ(outcome.messages.back()[0], "execution_error");
  EXPECT_TRUE(outcome.messages.back()[1].contains("timestamp"));
}

TEST_F(ExecutorTest, InterruptBetweenProgressSteps) {
  runs_.interrupt_at_step = &interrupt_;
  Recorder sink;
  ExecutionOutcome outcome = run(base(), "p", sink);
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(sink.types().back(), "execution_interrupted");
  EXPECT_FALSE(interrupt_.load());
  runs_.interrupt_at_step = nullptr;
  Recorder again;
  EXPECT_TRUE(run(base(), "q", again).success);
  EXPECT_EQ(again.events[1][1]["nodes"], Json::parse(R"(["4","5","6","7"])"));
}

TEST_F(ExecutorTest, InterruptSentWhileIdleIsLost) {
  interrupt_.store(true);
  Recorder sink;
  EXPECT_TRUE(run(base(), "p", sink).success);
}

TEST_F(ExecutorTest, CycleInUnvalidatedPrompt) {
  Json prompt = Json::parse(R"({
    "1": {"class_type": "TestAny", "inputs": {"value": ["2", 0]}},
    "2": {"class_type": "TestAny", "inputs": {"value": ["1", 0]}},
    "3": {"class_type": "TestWidgets", "inputs": {"flag": true, "text": "", "image": ["1", 0]}}})");
  Result<Prompt> parsed = Prompt::parse(prompt);
  ASSERT_TRUE(parsed.is_ok());
  ValidatedPrompt vp{std::move(parsed).value(), {"3"}, Json::object(), Json(), PromptAnalysis()};
  Recorder sink;
  ExecutionOutcome outcome = executor_.execute(vp, "p", Json::object(), sink, interrupt_);
  EXPECT_FALSE(outcome.success);
  const Json& last = sink.events.back();
  ASSERT_EQ(last[0], "execution_error");
  EXPECT_EQ(last[1]["exception_message"], "Dependency cycle detected");
  EXPECT_EQ(last[1]["exception_type"], "graph.DependencyCycleError");
  EXPECT_EQ(last[1]["current_inputs"], Json::array());
}

struct Counter : NodeImpl {
  explicit Counter(std::string* fp) : fp_(fp) {}
  Result<std::vector<Value>> run(NodeContext& ctx, const NodeInputs& in) override {
    ++runs;
    ctx.set_ui_output({{"text", {in.get_string("path")}}});
    return std::vector<Value>{};
  }
  std::optional<std::string> fingerprint(const NodeInputs& in) override { return *fp_ + in.get_string("path"); }
  std::string* fp_;
  inline static int runs = 0;
};

TEST_F(ExecutorTest, FingerprintJoinsTheCacheKey) {
  NodeRegistry registry;
  NodeSchema schema;
  schema.class_type = "LoadFile";
  schema.output_node = true;
  schema.required = {string_input("path")};
  schema.hidden = {{"prompt", "PROMPT"}};
  std::string fp = "v1";
  registry.add(schema, [&fp] { return std::make_unique<Counter>(&fp); });
  Executor executor(registry);
  Json prompt = {{"1", {{"class_type", "LoadFile"}, {"inputs", {{"path", "a.png"}}}}}};
  ValidationResult v = validate_prompt(prompt, registry);
  ASSERT_TRUE(v.ok());
  Counter::runs = 0;
  Recorder sink;
  executor.execute(*v.validated, "p", Json::object(), sink, interrupt_);
  executor.execute(*v.validated, "q", Json::object(), sink, interrupt_);
  EXPECT_EQ(Counter::runs, 1);
  fp = "v2";
  executor.execute(*v.validated, "r", Json::object(), sink, interrupt_);
  EXPECT_EQ(Counter::runs, 2);
}

TEST_F(ExecutorTest, ResetDropsCaches) {
  Recorder sink;
  run(base(), "a", sink);
  EXPECT_GT(executor_.cached_output_count(), 0u);
  executor_.reset();
  EXPECT_EQ(executor_.cached_output_count(), 0u);
  run(base(), "b", sink);
  EXPECT_EQ(runs_.total(), 14);
}

}  // namespace
}  // namespace netdist::graph
