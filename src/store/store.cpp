#include "store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

namespace netdist::store {

namespace fs = std::filesystem;

namespace {

// Status for a failed SQLite call: the file, what was being done, SQLite's message and code name.
Status sqlite_error(const std::string& path, sqlite3* db, int rc, const std::string& what) {
  const int primary = rc & 0xff;
  const std::string detail = std::string(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + " (" + sqlite3_errstr(rc) + ")";
  const std::string message = path + ": " + what + ": " + detail;
  switch (primary) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::corruption(message + "; the file is left as it is: move it away or restore a backup");
    case SQLITE_FULL:
      return Status::io_error(path + ": disk full: " + what + ": " + detail);
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_PERM:
      return Status::io_error(message);
    default:
      return Status::internal(message);
  }
}

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path) : db_(db), path_(path) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Status prepare(const char* sql, const std::string& what) {
    what_ = what;
    const int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
    return rc == SQLITE_OK ? Status::ok() : sqlite_error(path_, db_, rc, what_);
  }
  void bind(int i, const std::string& text) { sqlite3_bind_text(stmt_, i, text.data(), int(text.size()), SQLITE_TRANSIENT); }
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  // SQLITE_ROW → true, SQLITE_DONE → false, anything else an error.
  Result<bool> step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_error(path_, db_, rc, what_);
  }
  Status run() {
    ND_ASSIGN_OR_RETURN(bool row, step());
    (void)row;
    return Status::ok();
  }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string what_;
};

Result<PromptState> parse_state(const std::string& path, const std::string& text) {
  if (text == "pending") return PromptState::kPending;
  if (text == "running") return PromptState::kRunning;
  if (text == "done") return PromptState::kDone;
  return Status::corruption(path + ": prompt state '" + text + "' is not pending, running or done");
}

int fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc;
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list = {
      {1,
       "CREATE TABLE prompts ("
       "  prompt_id TEXT PRIMARY KEY,"
       "  number TEXT NOT NULL,"
       "  prompt TEXT NOT NULL,"
       "  extra_data TEXT NOT NULL,"
       "  client_id TEXT NOT NULL DEFAULT '',"
       "  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done')),"
       "  accepted INTEGER NOT NULL);"
       "CREATE INDEX prompts_unfinished ON prompts(state, accepted);"
       "CREATE TABLE history ("
       "  prompt_id TEXT PRIMARY KEY,"
       "  item TEXT NOT NULL,"
       "  outputs TEXT NOT NULL,"
       "  status TEXT NOT NULL,"
       "  meta TEXT NOT NULL,"
       "  completed INTEGER NOT NULL);"
       "CREATE TABLE output_files ("
       "  path TEXT PRIMARY KEY,"
       "  prompt_id TEXT NOT NULL,"
       "  committed INTEGER NOT NULL DEFAULT 0);"
       "CREATE INDEX output_files_prompt ON output_files(prompt_id);"},
      // v2: a re-queued prompt needs the output nodes POST /prompt chose (validation's outputs_to_execute), and
      // the number of attempts tells an operator which prompts were re-run after a crash.
      {2,
       "ALTER TABLE prompts ADD COLUMN outputs_to_execute TEXT NOT NULL DEFAULT '[]';"
       "ALTER TABLE prompts ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"},
      // v3: the history entry's "netdist" member (the plan the coordinator ran), so that an entry reads the same
      // after a restart.
      {3, "ALTER TABLE history ADD COLUMN netdist TEXT NOT NULL DEFAULT 'null';"},
  };
  return list;
}

const char* prompt_state_name(PromptState state) {
  switch (state) {
    case PromptState::kPending: return "pending";
    case PromptState::kRunning: return "running";
    case PromptState::kDone: return "done";
  }
  return "pending";
}

Store::Store(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

Store::~Store() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Store>> Store::open(const std::string& data_dir) { return open_at_version(data_dir, kSchemaVersion); }

Result<std::unique_ptr<Store>> Store::open_at_version(const std::string& data_dir, int version) {
  ND_ASSERT(version >= 0 && version <= kSchemaVersion, "schema version out of range: " + std::to_string(version));
  if (data_dir.empty()) return Status::invalid_argument("--data-dir: empty path");
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return Status::io_error(data_dir + ": cannot create the data directory: " + ec.message());
  if (!fs::is_directory(data_dir, ec)) return Status::io_error(data_dir + ": not a directory");
  if (::access(data_dir.c_str(), W_OK | X_OK) != 0)
    return Status::io_error(data_dir + ": the data directory is not writable: " + std::strerror(errno));
  const std::string path = (fs::path(data_dir) / kDatabaseFileName).string();

  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    Status s = sqlite_error(path, db, rc, "cannot open the database");
    sqlite3_close_v2(db);
    return s;
  }
  std::unique_ptr<Store> store(new Store(path, db));
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  // Reading the header first: a file that is not a database fails here, before anything is written to it.
  {
    Statement check(db, store->path_);
    ND_RETURN_IF_ERROR(check.prepare("PRAGMA quick_check", "checking the database (PRAGMA quick_check)"));
    ND_ASSIGN_OR_RETURN(bool row, check.step());
    const std::string verdict = row ? check.text(0) : "no answer";
    if (verdict != "ok")
      return Status::corruption(path + ": the database is damaged (PRAGMA quick_check: " + verdict +
                                "); the file is left as it is: move it away or restore a backup");
  }
  ND_ASSIGN_OR_RETURN(int current, store->schema_version());
  if (current > kSchemaVersion)
    return Status::unsupported(path + ": schema version " + std::to_string(current) +
                               " is newer than this netdist knows (" + std::to_string(kSchemaVersion) +
                               "); use a newer netdist or another --data-dir");
  // WAL: readers never block the writer, and a commit is one append plus fsync. synchronous=FULL fsyncs the
  // WAL at every commit, so a prompt acknowledged to its client survives power loss, not just a crash
  // (NORMAL would keep it through a process crash but could lose the last commits on power loss).
  ND_RETURN_IF_ERROR(store->exec("PRAGMA journal_mode=WAL", "switching to WAL mode"));
  ND_RETURN_IF_ERROR(store->exec("PRAGMA synchronous=FULL", "setting synchronous=FULL"));
  ND_RETURN_IF_ERROR(store->exec("PRAGMA foreign_keys=ON", "enabling foreign keys"));
  ND_RETURN_IF_ERROR(store->migrate(version));
  if (fsync_directory(data_dir) != 0)
    return Status::io_error(data_dir + ": fsync of the data directory failed: " + std::strerror(errno));
  return store;
}

Status Store::exec(const std::string& sql, const std::string& what) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::ok();
  sqlite3_free(error);
  return sqlite_error(path_, db_, rc, what);
}

Result<int> Store::schema_version() {
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("PRAGMA user_version", "reading the schema version"));
  ND_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? int(s.integer(0)) : 0;
}

Status Store::migrate(int target) {
  ND_ASSIGN_OR_RETURN(int current, schema_version());
  for (const Migration& m : migrations()) {
    if (m.to_version <= current || m.to_version > target) continue;
    ND_ASSERT(m.to_version == current + 1, "migrations must be listed in order: " + std::to_string(m.to_version));
    const std::string what = "migrating the schema from version " + std::to_string(current) + " to " +
                             std::to_string(m.to_version);
    ND_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE", what));
    Status s = exec(m.sql, what);
    if (s.is_ok()) s = exec("PRAGMA user_version=" + std::to_string(m.to_version), what);
    if (s.is_ok()) s = exec("COMMIT", what);
    if (!s.is_ok()) {
      (void)exec("ROLLBACK", what);
      return s;
    }
    current = m.to_version;
  }
  return Status::ok();
}

Status Store::put_prompt(const StoredPrompt& p) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare(
      "INSERT INTO prompts (prompt_id, number, prompt, extra_data, client_id, outputs_to_execute, state, accepted,"
      " attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', (SELECT COALESCE(MAX(accepted), 0) + 1 FROM prompts), 0)"
      " ON CONFLICT(prompt_id) DO UPDATE SET number = excluded.number, prompt = excluded.prompt,"
      " extra_data = excluded.extra_data, client_id = excluded.client_id,"
      " outputs_to_execute = excluded.outputs_to_execute, state = 'pending', accepted = excluded.accepted,"
      " attempts = 0",
      "recording prompt " + p.prompt_id));
  s.bind(1, p.prompt_id);
  s.bind(2, p.number_json);
  s.bind(3, p.prompt_json);
  s.bind(4, p.extra_data_json);
  s.bind(5, p.client_id);
  s.bind(6, p.outputs_to_execute_json);
  return s.run();
}

Status Store::mark_running(const std::string& prompt_id) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("UPDATE prompts SET state = 'running', attempts = attempts + 1 WHERE prompt_id = ?1",
                               "marking prompt " + prompt_id + " running"));
  s.bind(1, prompt_id);
  return s.run();
}

Status Store::delete_prompt(const std::string& prompt_id) {
  std::lock_guard lock(mutex_);
  const std::string what = "deleting prompt " + prompt_id;
  ND_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE", what));
  Status st;
  for (const char* sql : {"DELETE FROM prompts WHERE prompt_id = ?1 AND state != 'done'",
                          "DELETE FROM output_files WHERE prompt_id = ?1 AND committed = 0"}) {
    Statement s(db_, path_);
    st = s.prepare(sql, what);
    if (!st.is_ok()) break;
    s.bind(1, prompt_id);
    st = s.run();
    if (!st.is_ok()) break;
  }
  if (st.is_ok()) st = exec("COMMIT", what);
  if (!st.is_ok()) (void)exec("ROLLBACK", what);
  return st;
}

Status Store::complete(const StoredHistory& e) {
  std::lock_guard lock(mutex_);
  const std::string what = "recording the history of prompt " + e.prompt_id;
  ND_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE", what));
  Status st = [&]() -> Status {
    {
      Statement s(db_, path_);
      ND_RETURN_IF_ERROR(s.prepare(
          "INSERT OR REPLACE INTO history (prompt_id, item, outputs, status, meta, netdist, completed) VALUES"
          " (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(completed), 0) + 1 FROM history))",
          what));
      s.bind(1, e.prompt_id);
      s.bind(2, e.item_json);
      s.bind(3, e.outputs_json);
      s.bind(4, e.status_json);
      s.bind(5, e.meta_json);
      s.bind(6, e.netdist_json);
      ND_RETURN_IF_ERROR(s.run());
    }
    for (const char* sql : {"UPDATE prompts SET state = 'done' WHERE prompt_id = ?1",
                            "UPDATE output_files SET committed = 1 WHERE prompt_id = ?1"}) {
      Statement s(db_, path_);
      ND_RETURN_IF_ERROR(s.prepare(sql, what));
      s.bind(1, e.prompt_id);
      ND_RETURN_IF_ERROR(s.run());
    }
    return exec("COMMIT", what);
  }();
  if (!st.is_ok()) (void)exec("ROLLBACK", what);
  return st;
}

namespace {

const char* const kPromptColumns =
    "SELECT prompt_id, number, prompt, extra_data, client_id, outputs_to_execute, state, attempts FROM prompts";

Result<StoredPrompt> read_prompt(const Statement& s, const std::string& path) {
  StoredPrompt p;
  p.prompt_id = s.text(0);
  p.number_json = s.text(1);
  p.prompt_json = s.text(2);
  p.extra_data_json = s.text(3);
  p.client_id = s.text(4);
  p.outputs_to_execute_json = s.text(5);
  ND_ASSIGN_OR_RETURN(p.state, parse_state(path, s.text(6)));
  p.attempts = s.integer(7);
  return p;
}

}  // namespace

Result<std::vector<StoredPrompt>> Store::unfinished_prompts() {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  const std::string sql = std::string(kPromptColumns) + " WHERE state != 'done' ORDER BY accepted";
  ND_RETURN_IF_ERROR(s.prepare(sql.c_str(), "reading the unfinished prompts"));
  std::vector<StoredPrompt> out;
  while (true) {
    ND_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    ND_ASSIGN_OR_RETURN(StoredPrompt p, read_prompt(s, path_));
    out.push_back(std::move(p));
  }
  return out;
}

Result<StoredPrompt> Store::get_prompt(const std::string& prompt_id) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  const std::string sql = std::string(kPromptColumns) + " WHERE prompt_id = ?1";
  ND_RETURN_IF_ERROR(s.prepare(sql.c_str(), "reading prompt " + prompt_id));
  s.bind(1, prompt_id);
  ND_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return Status::not_found(path_ + ": no prompt " + prompt_id);
  return read_prompt(s, path_);
}

Result<int64_t> Store::max_number() {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("SELECT COALESCE(MAX(ABS(CAST(number AS INTEGER))), -1) FROM prompts", "reading the queue numbers"));
  ND_ASSIGN_OR_RETURN(bool row, s.step());
  return row ? s.integer(0) : int64_t{-1};
}

Result<std::vector<StoredHistory>> Store::history() {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(
      s.prepare("SELECT prompt_id, item, outputs, status, meta, netdist FROM history ORDER BY completed",
                "reading the history"));
  std::vector<StoredHistory> out;
  while (true) {
    ND_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5)});
  }
  return out;
}

Status Store::delete_history(const std::string& prompt_id) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("DELETE FROM history WHERE prompt_id = ?1", "deleting the history of prompt " + prompt_id));
  s.bind(1, prompt_id);
  return s.run();
}

Status Store::wipe_history() {
  std::lock_guard lock(mutex_);
  return exec("DELETE FROM history", "clearing the history");
}

Status Store::record_output(const std::string& prompt_id, const std::string& path) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("INSERT OR REPLACE INTO output_files (path, prompt_id, committed) VALUES (?1, ?2, 0)",
                               "recording output file " + path + " of prompt " + prompt_id));
  s.bind(1, path);
  s.bind(2, prompt_id);
  return s.run();
}

Result<std::vector<std::string>> Store::output_files(const std::string& prompt_id, bool committed) {
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("SELECT path FROM output_files WHERE prompt_id = ?1 AND committed = ?2 ORDER BY path",
                               "reading the output files of prompt " + prompt_id));
  s.bind(1, prompt_id);
  s.bind(2, int64_t{committed ? 1 : 0});
  std::vector<std::string> out;
  while (true) {
    ND_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(s.text(0));
  }
  return out;
}

Status Store::discard_uncommitted_outputs(const std::string& prompt_id) {
  ND_ASSIGN_OR_RETURN(std::vector<std::string> files, output_files(prompt_id, false));
  for (const std::string& file : files) {
    const fs::path p(file);
    std::error_code ec;
    fs::remove(p, ec);
    if (ec) return Status::io_error(file + ": cannot remove the uncommitted output of prompt " + prompt_id + ": " + ec.message());
    const std::string tmp_prefix = p.filename().string() + ".tmp-";
    for (fs::directory_iterator it(p.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().rfind(tmp_prefix, 0) == 0) fs::remove(it->path(), ec);
    }
    if (fsync_directory(p.parent_path()) != 0 && errno != ENOENT)
      return Status::io_error(p.parent_path().string() + ": fsync failed: " + std::strerror(errno));
  }
  std::lock_guard lock(mutex_);
  Statement s(db_, path_);
  ND_RETURN_IF_ERROR(s.prepare("DELETE FROM output_files WHERE prompt_id = ?1 AND committed = 0",
                               "forgetting the uncommitted output files of prompt " + prompt_id));
  s.bind(1, prompt_id);
  return s.run();
}

}  // namespace netdist::store
