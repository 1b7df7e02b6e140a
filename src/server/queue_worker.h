// The prompt worker (ComfyUI main.py prompt_worker): takes the first pending prompt, runs it through the
// Backend while routing its events to the prompt's client, writes its history entry, broadcasts status,
// then tells the prompt's client `executing {node: null, prompt_id}`. A backend error or exception still
// ends the prompt in history (status "error", with an execution_error message); an accepted prompt is never
// lost and ends in history exactly once. Between prompts it applies POST /free flags.
// Concurrency: one worker thread takes prompts in queue order. A prompt the backend runs_concurrently is
// handed to a thread of its own and the worker takes the next one, as long as fewer than
// Backend::max_concurrent_prompts such prompts run (it waits for a slot before taking a prompt); any other
// prompt runs on the worker thread itself, one at a time. History entries are written in completion order.
// Thread-safety: start/stop from one owning thread; Backend::execute of a non-concurrent prompt and
// Backend::free_memory are called only from the worker thread.
#pragma once

#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include "server/server_state.h"

namespace netdist::server {

class QueueWorker {
 public:
  explicit QueueWorker(ServerState& state);
  ~QueueWorker();
  QueueWorker(const QueueWorker&) = delete;
  QueueWorker& operator=(const QueueWorker&) = delete;

  void start();
  // Finishes the running prompt (after setting the interrupt flag) and joins. Pending prompts stay queued.
  void stop();

 private:
  void run();
  void run_one(PromptQueue::Running running);
  void apply_flags();
  // Joins the concurrent prompts' threads that finished; with `all`, waits for every one.
  void reap(bool all);

  ServerState& state_;
  std::thread thread_;
  std::mutex concurrent_mutex_;
  std::condition_variable concurrent_cv_;
  int concurrent_running_ = 0;
  struct Concurrent {
    std::thread thread;
    bool done = false;
  };
  std::list<Concurrent> concurrent_;
};

}  // namespace netdist::server
