// The single prompt worker (ComfyUI main.py prompt_worker): takes the first pending prompt, runs it through
// the Backend while routing its events, writes its history entry, broadcasts status, then tells the
// prompt's client `executing {node: null}`. A backend error or exception still ends the prompt in history
// (status "error", with an execution_error message); an accepted prompt is never lost. Between prompts it
// applies POST /free flags.
// Thread-safety: start/stop from one owning thread; the worker thread is the only caller of
// Backend::execute and Backend::free_memory.
#pragma once

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

  ServerState& state_;
  std::thread thread_;
};

}  // namespace netdist::server
