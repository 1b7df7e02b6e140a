// The coordinator's side of step-group rendezvous (group_protocol.h): one key-value store per group the
// coordinator runs now, served by POST /netdist/v1/group/kv behind the server's bearer token. A group is
// open from the moment its tasks are queued until its prompt ends (close drops its keys and wakes waiters).
// Thread-safety: every member may be called from any thread.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "cluster/group_protocol.h"

namespace netdist::cluster {

class GroupKv {
 public:
  void open(const std::string& group_id);
  void close(const std::string& group_id);
  bool is_open(const std::string& group_id);
  // The reply body of `r` (group_protocol.h); not_found naming the group when it is not open (or closes
  // while a get/wait waits). get and wait block up to r.wait_ms.
  Result<protocol::Json> apply(const protocol::GroupKvRequest& r);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::map<std::string, std::string>> groups_;
};

}  // namespace netdist::cluster
