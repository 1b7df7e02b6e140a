// The server's PromptQueue over a Store: what a restart gets back (history, re-queued prompts with their
// ids and numbers, the number counter), and POST /prompt on a full disk (507, nothing queued).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/skip_test_util.h"
#include "graph/validate.h"
#include "server/prompt_queue.h"
#include "server/server_fixture_test_util.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace netdist::store {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using server::PromptQueue;
using server::QueueItem;

fs::path queue_scratch() { return scratch_path("netdist_store_queue_test"); }

QueueItem queue_item(json number, const std::string& id) {
  QueueItem it;
  it.number = std::move(number);
  it.prompt_id = id;
  it.prompt = {{"1", {{"class_type", "X"}, {"inputs", {{"seed", 3}}}}}};
  it.extra_data = {{"client_id", "c"}};
  it.outputs_to_execute = json::array({"1"});
  it.sensitive = {{"api_key_comfy_org", "secret"}};
  return it;
}

std::shared_ptr<Store> open_store(const fs::path& dir) {
  auto s = Store::open(dir.string());
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? std::shared_ptr<Store>(std::move(*s)) : nullptr;
}

TEST(StoreQueue, RestartRestoresHistoryAndRequeuesUnfinishedPromptsWithTheirNumbers) {
  const fs::path dir = queue_scratch();
  const fs::path out = dir / "out";
  fs::create_directories(out);
  {
    PromptQueue q;
    ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
    for (const char* id : {"first", "second", "third"}) ASSERT_TRUE(q.accept(queue_item(q.take_number(false), id)).is_ok());
    auto done = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(done);
    q.task_done(done->task_id, {{"1", {{"images", json::array()}}}}, json::object(), {"success", true, json::array()});
    auto running = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(running);
    EXPECT_EQ(running->item.prompt_id, "second");
    // "second" wrote a file and the process died before it completed.
    std::ofstream(out / "second_00001_.png") << "half";
    ASSERT_TRUE(q.has_store());
  }
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s->record_output("second", (out / "second_00001_.png").string()).is_ok());
  }
  PromptQueue q;
  ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
  const json history = q.get_history(std::nullopt, 0);
  ASSERT_EQ(history.size(), 1u);
  ASSERT_TRUE(history.contains("first"));
  EXPECT_EQ(history["first"]["status"]["status_str"], "success");
  EXPECT_EQ(history["first"]["prompt"][1], "first");
  EXPECT_EQ(history["first"]["prompt"][0], 0);
  EXPECT_EQ(history["first"]["outputs"], json({{"1", {{"images", json::array()}}}}));
  const json queue = q.queue_json();
  ASSERT_EQ(queue["queue_pending"].size(), 2u);
  EXPECT_EQ(queue["queue_pending"][0], queue_item(1, "second").to_json());
  EXPECT_EQ(queue["queue_pending"][1], queue_item(2, "third").to_json());
  EXPECT_FALSE(fs::exists(out / "second_00001_.png")) << "the interrupted run's file was not removed";
  EXPECT_EQ(q.take_number(false), 3);
  auto again = q.get(std::chrono::milliseconds(0));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->item.prompt_id, "second");
  EXPECT_TRUE(again->item.sensitive.empty()) << "sensitive keys are never written to disk";
}

TEST(StoreQueue, DeletedQueueItemsAndHistoryStayDeletedAfterARestart) {
  const fs::path dir = queue_scratch();
  {
    PromptQueue q;
    ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
    for (const char* id : {"a", "b", "c", "d"}) ASSERT_TRUE(q.accept(queue_item(q.take_number(false), id)).is_ok());
    auto a = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(a);
    q.task_done(a->task_id, json::object(), json::object(), {"success", true, json::array()});
    EXPECT_TRUE(q.delete_queue_item("b"));
    q.delete_history_item("a");
    q.wipe_queue();
  }
  PromptQueue q;
  ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
  EXPECT_EQ(q.tasks_remaining(), 0);
  EXPECT_EQ(q.history_size(), 0u);
}

TEST(StoreQueue, APromptStoppedByShutdownRunsAgainAfterARestart) {
  const fs::path dir = queue_scratch();
  {
    PromptQueue q;
    ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
    ASSERT_TRUE(q.accept(queue_item(q.take_number(false), "failed")).is_ok());
    ASSERT_TRUE(q.accept(queue_item(q.take_number(false), "stopped")).is_ok());
    auto failed = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->item.prompt_id, "failed");
    q.task_done(failed->task_id, json::object(), json::object(), {"error", false, json::array()});
    auto stopped = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(stopped);
    q.shutdown();
    q.task_done(stopped->task_id, json::object(), json::object(), {"error", false, json::array()});
    EXPECT_EQ(q.history_size(), 2u);
  }
  PromptQueue q;
  ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
  const json history = q.get_history(std::nullopt, 0);
  EXPECT_EQ(history.size(), 1u);
  EXPECT_TRUE(history.contains("failed")) << "an error before the shutdown is a real result";
  const json queue = q.queue_json();
  ASSERT_EQ(queue["queue_pending"].size(), 1u);
  EXPECT_EQ(queue["queue_pending"][0][1], "stopped");
}

// Prompts restored after a restart are validated as they are loaded (the node set may have changed): the
// validated form travels with a prompt that still validates, one that does not carries its error.
TEST(StoreQueue, RestoredPromptsAreValidatedWhenLoaded) {
  const fs::path dir = queue_scratch();
  {
    PromptQueue q;
    ASSERT_TRUE(q.attach_store(open_store(dir)).is_ok());
    for (const char* id : {"good", "stale"}) ASSERT_TRUE(q.accept(queue_item(q.take_number(false), id)).is_ok());
  }
  std::vector<std::string> validated;
  auto validate = [&](const QueueItem& item) {
    validated.push_back(item.prompt_id);
    EXPECT_EQ(item.outputs_to_execute, json::array({"1"})) << "validated for its stored outputs";
    server::ValidationOutcome out;
    if (item.prompt_id == "stale") {
      out.error_body = {{"error", {{"type", "invalid_prompt"}, {"message", "node X does not exist"}}}};
      return out;
    }
    auto parsed = graph::Prompt::parse(item.prompt);
    EXPECT_TRUE(parsed.is_ok());
    graph::PromptAnalysis analysis = graph::PromptAnalysis::analyze(*parsed);
    out.ok = true;
    out.outputs = {"1"};
    out.validated = std::make_shared<const graph::ValidatedPrompt>(
        graph::ValidatedPrompt{std::move(*parsed), {"1"}, json::object(), json(), std::move(analysis)});
    return out;
  };
  PromptQueue q;
  ASSERT_TRUE(q.attach_store(open_store(dir), validate).is_ok());
  EXPECT_EQ(validated, (std::vector<std::string>{"good", "stale"}));
  auto good = q.get(std::chrono::milliseconds(0));
  ASSERT_TRUE(good);
  EXPECT_EQ(good->item.prompt_id, "good");
  ASSERT_NE(good->item.validated, nullptr);
  EXPECT_EQ(good->item.validated->prompt.json(), good->item.prompt);
  EXPECT_TRUE(good->item.restore_error.is_null());
  auto stale = q.get(std::chrono::milliseconds(0));
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->item.validated, nullptr);
  EXPECT_EQ(stale->item.restore_error["error"]["message"], "node X does not exist");
  EXPECT_EQ(stale->item.prompt, queue_item(0, "x").prompt) << "the stored JSON is kept as it was";
}

class RestartedServer : public server::ServerFixture {
 protected:
  void customize(server::ServerOptions& options) override {
    const fs::path dir = queue_scratch();
    PromptQueue q;
    EXPECT_TRUE(q.attach_store(open_store(dir)).is_ok());
    QueueItem good = queue_item(1, "good");
    good.prompt = prompt(5);
    good.outputs_to_execute = json::array({"9"});
    EXPECT_TRUE(q.accept(good).is_ok());
    EXPECT_TRUE(q.accept(queue_item(2, "stale")).is_ok());  // class "X": FakeBackend has no such node
    options.store = open_store(dir);
  }
};

TEST_F(RestartedServer, APromptThatNoLongerValidatesEndsInHistoryWithTheError) {
  const json good = wait_history("good");
  EXPECT_EQ(good["status"]["status_str"], "success") << good.dump();
  const json stale = wait_history("stale");
  EXPECT_EQ(stale["status"]["status_str"], "error") << stale.dump();
  const std::string text = stale["status"]["messages"].dump();
  EXPECT_NE(text.find("no longer validates"), std::string::npos) << text;
  EXPECT_NE(text.find("X does not exist"), std::string::npos) << text;
}

TEST(StoreQueue, CorruptStoredJsonIsAnErrorNamingTheDatabase) {
  const fs::path dir = queue_scratch();
  {
    auto s = open_store(dir);
    StoredPrompt p;
    p.prompt_id = "bad";
    p.number_json = "1";
    p.prompt_json = "{not json";
    p.extra_data_json = "{}";
    ASSERT_TRUE(s->put_prompt(p).is_ok());
  }
  PromptQueue q;
  Status st = q.attach_store(open_store(dir));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find((dir / kDatabaseFileName).string()), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("prompt bad"), std::string::npos) << st.message();
}

class FullDiskServer : public server::ServerFixture {
 protected:
  void customize(server::ServerOptions& options) override {
    disk_ = std::make_unique<TmpfsMount>(queue_scratch(), 512 * 1024);
    if (!disk_->mounted()) return;
    options.store = open_store(disk_->path() / "data");
  }
  void TearDown() override {
    server::ServerFixture::TearDown();
    disk_.reset();
  }
  std::unique_ptr<TmpfsMount> disk_;
};

TEST_F(FullDiskServer, PostPromptOnAFullDiskIs507AndQueuesNothing) {
  if (!disk_->mounted()) ND_SKIP_NEEDS_ROOT("cannot mount a tmpfs here (" << disk_->error() << ")");
  const std::string first = submit(prompt(1));
  wait_history(first);
  // Fill what is left of the disk.
  const fs::path filler = disk_->path() / "filler";
  {
    FILE* f = std::fopen(filler.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::string block(4096, 'f');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  const server::HttpReply r = post("/prompt", json{{"prompt", prompt(2)}}.dump());
  EXPECT_EQ(r.status, 507) << r.body;
  const std::string message = r.json()["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("disk full"), std::string::npos) << message;
  EXPECT_NE(message.find((disk_->path() / "data" / kDatabaseFileName).string()), std::string::npos) << message;
  const json queue = get("/queue").json();
  EXPECT_TRUE(queue["queue_pending"].empty() && queue["queue_running"].empty()) << queue.dump();
  // Room again: prompts are accepted again.
  fs::remove(filler);
  wait_history(submit(prompt(3)));
}

}  // namespace
}  // namespace netdist::store
