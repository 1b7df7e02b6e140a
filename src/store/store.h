// The coordinator's durable state: one SQLite database, DATA_DIR/netdist.db (WAL, synchronous=FULL: a
// committed call has reached the disk before it returns, so a prompt the client was told about survives a
// crash or power loss). It keeps accepted prompts (id, number, prompt JSON, extra_data, client_id, the
// outputs to execute, state pending / running / done, attempts), history entries (the queue item, outputs,
// status, meta) and the output files each prompt wrote (path, committed or not).
//
// Every failure is a Status whose message names the database file and what SQLite said: a file that is
// not a database or fails PRAGMA quick_check is kCorruption, a schema newer than this binary's
// (kSchemaVersion) is kUnsupported, a directory or file that cannot be created or written is kIoError, and
// so is a full disk (SQLITE_FULL, the message says "disk full"). The store never deletes, truncates or
// recreates a database it could not read.
//
// The schema is versioned by PRAGMA user_version; migrations() lists the steps, migration i takes the
// schema from version i to i+1, and open() applies the missing ones in order, each in its own transaction.
//
// Thread-safety: every member function may be called from any thread; calls are serialised on one
// connection (SQLITE_OPEN_FULLMUTEX plus the store's own lock around multi-statement transactions).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

struct sqlite3;

namespace netdist::store {

inline constexpr int kSchemaVersion = 3;
inline constexpr const char* kDatabaseFileName = "netdist.db";

struct Migration {
  int to_version = 0;
  const char* sql = "";  // one or more statements
};
// The schema's history: migrations()[i] takes version i to i + 1 (index 0 creates the v1 tables).
const std::vector<Migration>& migrations();

enum class PromptState { kPending, kRunning, kDone };
const char* prompt_state_name(PromptState state);

// One accepted prompt. JSON fields are stored as their JSON text (compact dump).
struct StoredPrompt {
  std::string prompt_id;
  std::string number_json;              // the queue number as JSON (an integer or a float)
  std::string prompt_json;
  std::string extra_data_json;          // without the sensitive keys: those are never written to disk
  std::string client_id;                // empty when none
  std::string outputs_to_execute_json = "[]";
  PromptState state = PromptState::kPending;
  int64_t attempts = 0;                 // how many times it was taken to run (restarts included)
};

struct StoredHistory {
  std::string prompt_id;
  std::string item_json;     // the queue item, as GET /history shows it under "prompt"
  std::string outputs_json;
  std::string status_json;
  std::string meta_json;
  std::string netdist_json = "null";  // netdist's own record of the run (the entry's "netdist": its plan)
};

class Store {
 public:
  // Opens (creating when missing) DATA_DIR and DATA_DIR/netdist.db, checks it (quick_check) and migrates it to
  // kSchemaVersion. Errors as in the file comment, each naming the file.
  static Result<std::unique_ptr<Store>> open(const std::string& data_dir);
  // The same, but migrates only up to `version` (<= kSchemaVersion): tests build older schemas with it.
  static Result<std::unique_ptr<Store>> open_at_version(const std::string& data_dir, int version);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  Result<int> schema_version();

  // Records an accepted prompt as pending; a prompt id already stored is replaced (state pending again,
  // as a client that re-submits an id replaces it). Returns only once committed.
  Status put_prompt(const StoredPrompt& prompt);
  // pending → running, attempts + 1.
  Status mark_running(const std::string& prompt_id);
  // Forgets a prompt that will not run (deleted from the queue, /queue clear) and its uncommitted files rows.
  Status delete_prompt(const std::string& prompt_id);
  // In one transaction: the history entry (replacing one with the same id), state done, and every output file
  // row of the prompt marked committed. A prompt whose completion committed is never re-run.
  Status complete(const StoredHistory& entry);
  // Prompts in state pending or running, in acceptance order.
  Result<std::vector<StoredPrompt>> unfinished_prompts();
  Result<StoredPrompt> get_prompt(const std::string& prompt_id);
  // The largest magnitude of a stored queue number, as an integer (-1 when no prompt is stored): the next
  // take_number continues after it.
  Result<int64_t> max_number();

  // History, in completion order.
  Result<std::vector<StoredHistory>> history();
  Status delete_history(const std::string& prompt_id);
  Status wipe_history();

  // Output files. record_output is called before a file is written (its final path, absolute), so that a crash
  // between the write and complete() leaves a row naming it. discard_uncommitted_outputs removes, for one
  // prompt, every uncommitted file (and the temporary files `PATH.tmp-*` an interrupted write left beside it)
  // and their rows: what the queue does before it re-runs a prompt that did not complete.
  Status record_output(const std::string& prompt_id, const std::string& path);
  Result<std::vector<std::string>> output_files(const std::string& prompt_id, bool committed);
  Status discard_uncommitted_outputs(const std::string& prompt_id);

 private:
  Store(std::string path, sqlite3* db);
  // Runs statements without results; errors name the file and `what`.
  Status exec(const std::string& sql, const std::string& what);
  Status migrate(int target);

  const std::string path_;
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

}  // namespace netdist::store
