// store::Store against real SQLite files in a scratch folder: create, round trips, the v1 → v2 migration,
// and the failure paths (garbage bytes, a damaged page, a newer schema, an unwritable folder, a full disk).
#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/skip_test_util.h"
#include "store/store_test_util.h"

namespace netdist::store {
namespace {

namespace fs = std::filesystem;

fs::path scratch() { return scratch_path("netdist_store_test"); }

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

StoredPrompt prompt(const std::string& id, const std::string& number = "1") {
  StoredPrompt p;
  p.prompt_id = id;
  p.number_json = number;
  p.prompt_json = R"({"1":{"class_type":"X","inputs":{}}})";
  p.extra_data_json = R"({"client_id":"c1"})";
  p.client_id = "c1";
  p.outputs_to_execute_json = R"(["1"])";
  return p;
}

// Runs SQL on the file with a connection of the test's own (not the store's).
void raw_sql(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(h);
}

TEST(Store, CreatesTheDatabaseAtTheCurrentSchemaInWalMode) {
  const fs::path dir = scratch() / "nested" / "data";
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  EXPECT_EQ((*store)->path(), (dir / kDatabaseFileName).string());
  EXPECT_TRUE(fs::exists(dir / kDatabaseFileName));
  auto version = (*store)->schema_version();
  ASSERT_TRUE(version.is_ok());
  EXPECT_EQ(*version, kSchemaVersion);
  EXPECT_EQ(int(migrations().size()), kSchemaVersion);
  EXPECT_EQ((*store)->max_number().value(), -1);
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open((dir / kDatabaseFileName).c_str(), &h), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(h);
}

TEST(Store, PromptLifecycleRoundTripsAndSurvivesReopening) {
  const fs::path dir = scratch();
  {
    auto store = Store::open(dir.string());
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    Store& s = **store;
    ASSERT_TRUE(s.put_prompt(prompt("a", "3")).is_ok());
    ASSERT_TRUE(s.put_prompt(prompt("b", "-7")).is_ok());
    ASSERT_TRUE(s.put_prompt(prompt("c", "5.5")).is_ok());
    ASSERT_TRUE(s.mark_running("a").is_ok());
    ASSERT_TRUE(s.record_output("a", (dir / "a_00001_.png").string()).is_ok());
    ASSERT_TRUE(s.complete({"a", R"([3,"a",{},{},["1"]])", R"({"1":{"images":[]}})", R"({"status_str":"success"})", "{}",
                            R"({"plan":{"mode":"rows"}})"})
                    .is_ok());
    ASSERT_TRUE(s.mark_running("b").is_ok());
  }
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  Store& s = **store;
  auto unfinished = s.unfinished_prompts();
  ASSERT_TRUE(unfinished.is_ok());
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].prompt_id, "b");  // acceptance order
  EXPECT_EQ((*unfinished)[0].state, PromptState::kRunning);
  EXPECT_EQ((*unfinished)[0].attempts, 1);
  EXPECT_EQ((*unfinished)[0].number_json, "-7");
  EXPECT_EQ((*unfinished)[1].prompt_id, "c");
  EXPECT_EQ((*unfinished)[1].state, PromptState::kPending);
  EXPECT_EQ((*unfinished)[1].prompt_json, prompt("c").prompt_json);
  EXPECT_EQ((*unfinished)[1].extra_data_json, prompt("c").extra_data_json);
  EXPECT_EQ((*unfinished)[1].client_id, "c1");
  EXPECT_EQ((*unfinished)[1].outputs_to_execute_json, R"(["1"])");
  auto a = s.get_prompt("a");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->state, PromptState::kDone);
  auto history = s.history();
  ASSERT_TRUE(history.is_ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].prompt_id, "a");
  EXPECT_EQ((*history)[0].outputs_json, R"({"1":{"images":[]}})");
  EXPECT_EQ((*history)[0].status_json, R"({"status_str":"success"})");
  EXPECT_EQ((*history)[0].netdist_json, R"({"plan":{"mode":"rows"}})");
  auto committed = s.output_files("a", true);
  ASSERT_TRUE(committed.is_ok());
  EXPECT_EQ(*committed, std::vector<std::string>{(dir / "a_00001_.png").string()});
  auto max = s.max_number();
  ASSERT_TRUE(max.is_ok());
  EXPECT_EQ(*max, 7);
  EXPECT_EQ(s.get_prompt("nope").status().code(), StatusCode::kNotFound);
}

TEST(Store, ResubmittedIdIsPendingAgainAndDeletesForgetOnlyUnfinishedPrompts) {
  const fs::path dir = scratch();
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.is_ok());
  Store& s = **store;
  ASSERT_TRUE(s.put_prompt(prompt("a")).is_ok());
  ASSERT_TRUE(s.mark_running("a").is_ok());
  ASSERT_TRUE(s.complete({"a", "[]", "{}", "{}", "{}"}).is_ok());
  ASSERT_TRUE(s.put_prompt(prompt("a", "9")).is_ok());
  auto a = s.get_prompt("a");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->state, PromptState::kPending);
  EXPECT_EQ(a->number_json, "9");
  EXPECT_EQ(a->attempts, 0);
  ASSERT_TRUE(s.put_prompt(prompt("b")).is_ok());
  ASSERT_TRUE(s.delete_prompt("b").is_ok());
  EXPECT_EQ(s.get_prompt("b").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(s.delete_history("a").is_ok());
  EXPECT_TRUE(s.history()->empty());
}

TEST(Store, DiscardRemovesOnlyUncommittedFilesAndTheirTemporaries) {
  const fs::path dir = scratch();
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.is_ok());
  Store& s = **store;
  const fs::path out = dir / "out";
  fs::create_directories(out);
  for (const char* name : {"done_00001_.png", "half_00002_.png", "half_00002_.png.tmp-123", "half_00003_.png.tmp-9",
                           "other_00001_.png"})
    std::ofstream(out / name) << "x";
  ASSERT_TRUE(s.put_prompt(prompt("done")).is_ok());
  ASSERT_TRUE(s.record_output("done", (out / "done_00001_.png").string()).is_ok());
  ASSERT_TRUE(s.complete({"done", "[]", "{}", "{}", "{}"}).is_ok());
  ASSERT_TRUE(s.put_prompt(prompt("half")).is_ok());
  ASSERT_TRUE(s.record_output("half", (out / "half_00002_.png").string()).is_ok());
  ASSERT_TRUE(s.record_output("half", (out / "half_00003_.png").string()).is_ok());  // crashed before the rename
  ASSERT_TRUE(s.discard_uncommitted_outputs("half").is_ok());
  EXPECT_TRUE(fs::exists(out / "done_00001_.png"));
  EXPECT_TRUE(fs::exists(out / "other_00001_.png"));
  EXPECT_FALSE(fs::exists(out / "half_00002_.png"));
  EXPECT_FALSE(fs::exists(out / "half_00002_.png.tmp-123"));
  EXPECT_FALSE(fs::exists(out / "half_00003_.png.tmp-9"));
  EXPECT_TRUE(s.output_files("half", false)->empty());
  ASSERT_TRUE(s.discard_uncommitted_outputs("done").is_ok());
  EXPECT_TRUE(fs::exists(out / "done_00001_.png"));
}

TEST(Store, MigratesAVersion1DatabaseToTheCurrentSchema) {
  const fs::path dir = scratch();
  {
    auto v1 = Store::open_at_version(dir.string(), 1);
    ASSERT_TRUE(v1.is_ok()) << v1.status().to_string();
    EXPECT_EQ((*v1)->schema_version().value(), 1);
  }
  // A prompt as a version-1 netdist wrote it: no outputs_to_execute, no attempts.
  raw_sql(dir / kDatabaseFileName,
          "INSERT INTO prompts (prompt_id, number, prompt, extra_data, client_id, state, accepted) VALUES "
          "('old', '4', '{}', '{}', 'c', 'running', 1)");
  raw_sql(dir / kDatabaseFileName,
          "INSERT INTO history (prompt_id, item, outputs, status, meta, completed) VALUES "
          "('h', '[]', '{}', '{}', '{}', 1)");
  auto store = Store::open(dir.string());
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  EXPECT_EQ((*store)->schema_version().value(), kSchemaVersion);
  auto old = (*store)->get_prompt("old");
  ASSERT_TRUE(old.is_ok()) << old.status().to_string();
  EXPECT_EQ(old->state, PromptState::kRunning);
  EXPECT_EQ(old->outputs_to_execute_json, "[]");
  EXPECT_EQ(old->attempts, 0);
  EXPECT_TRUE((*store)->mark_running("old").is_ok());
  EXPECT_EQ((*store)->get_prompt("old")->attempts, 1);
  // v3: a history row written by a version-1 netdist reads as one without a plan.
  auto history = (*store)->history();
  ASSERT_TRUE(history.is_ok()) << history.status().to_string();
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].netdist_json, "null");
}

TEST(Store, GarbageFileIsAnErrorNamingItAndIsLeftUntouched) {
  const fs::path dir = scratch();
  fs::create_directories(dir);
  const fs::path db = dir / kDatabaseFileName;
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(char((i * 131 + 7) & 0xff));
  std::ofstream(db, std::ios::binary) << garbage;
  auto store = Store::open(dir.string());
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find(db.string()), std::string::npos) << store.status().message();
  EXPECT_NE(store.status().message().find("not a database"), std::string::npos) << store.status().message();
  EXPECT_EQ(file_bytes(db), garbage);
}

TEST(Store, DamagedPageIsAnErrorNamingTheFile) {
  const fs::path dir = scratch();
  const fs::path db = dir / kDatabaseFileName;
  {
    auto store = Store::open(dir.string());
    ASSERT_TRUE(store.is_ok());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE((*store)->put_prompt(prompt("p" + std::to_string(i))).is_ok());
  }
  std::string bytes = file_bytes(db);
  ASSERT_GT(bytes.size(), 3u * 4096u);
  for (size_t i = 4096; i < 3 * 4096; ++i) bytes[i] = char((i * 77 + 3) & 0xff);  // pages 2 and 3
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  auto store = Store::open(dir.string());
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption) << store.status().to_string();
  EXPECT_NE(store.status().message().find(db.string()), std::string::npos) << store.status().message();
  EXPECT_EQ(file_bytes(db), bytes);
}

TEST(Store, NewerSchemaVersionIsRefused) {
  const fs::path dir = scratch();
  { ASSERT_TRUE(Store::open(dir.string()).is_ok()); }
  raw_sql(dir / kDatabaseFileName, "PRAGMA user_version=" + std::to_string(kSchemaVersion + 7));
  auto store = Store::open(dir.string());
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(store.status().message().find("schema version " + std::to_string(kSchemaVersion + 7) + " is newer"),
            std::string::npos)
      << store.status().message();
  EXPECT_NE(store.status().message().find((dir / kDatabaseFileName).string()), std::string::npos);
}

TEST(Store, DataDirThatCannotBeCreatedIsAnError) {
  const fs::path dir = scratch();
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "x";
  auto store = Store::open((dir / "file" / "data").string());
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError);
  EXPECT_NE(store.status().message().find((dir / "file" / "data").string()), std::string::npos);
}

TEST(Store, FullDiskIsAnErrorThatSaysSo) {
  TmpfsMount disk(scratch() / "disk", 256 * 1024);
  if (!disk.mounted()) ND_SKIP_NEEDS_ROOT("cannot mount a tmpfs here (" << disk.error() << ")");
  auto store = Store::open(disk.path().string());
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  StoredPrompt big = prompt("x");
  big.prompt_json = "\"" + std::string(32 * 1024, 'z') + "\"";
  Status last;
  int accepted = 0;
  for (; accepted < 64; ++accepted) {
    big.prompt_id = "p" + std::to_string(accepted);
    last = (*store)->put_prompt(big);
    if (!last.is_ok()) break;
  }
  ASSERT_FALSE(last.is_ok()) << "256 KiB never filled up";
  EXPECT_GT(accepted, 0);
  EXPECT_EQ(last.code(), StatusCode::kIoError);
  EXPECT_NE(last.message().find("disk full"), std::string::npos) << last.message();
  EXPECT_NE(last.message().find((*store)->path()), std::string::npos) << last.message();
  // What was committed before stays readable.
  auto unfinished = (*store)->unfinished_prompts();
  ASSERT_TRUE(unfinished.is_ok()) << unfinished.status().to_string();
  EXPECT_EQ(int(unfinished->size()), accepted);
}

}  // namespace
}  // namespace netdist::store
