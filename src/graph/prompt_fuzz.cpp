// libFuzzer target: JSON text → parse → validate → execute with fake nodes. Seeds: tests/data/fuzz/prompt_fuzz/.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/executor.h"
#include "graph/fake_nodes.h"
#include "graph/prompt.h"
#include "graph/validate.h"

namespace {

struct NullSink : netdist::graph::EventSink {
  void event(const std::string&, netdist::graph::Json data) override { (void)data.dump(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netdist::graph;
  static NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    fake::register_core_nodes(*r, nullptr);
    return r;
  }();
  static Executor* executor = new Executor(*registry);
  Json prompt = Json::parse(data, data + size, nullptr, false);
  if (prompt.is_discarded()) return 0;
  (void)Prompt::parse(prompt);
  ValidationResult result = validate_prompt(prompt, *registry);
  if (!result.ok()) {
    (void)result.error_body.dump();
    return 0;
  }
  (void)result.validated->node_errors.dump();
  NullSink sink;
  std::atomic<bool> interrupt{false};
  ExecutionOutcome outcome = executor->execute(*result.validated, "fuzz", Json::object(), sink, interrupt);
  (void)outcome.outputs.dump();
  return 0;
}
