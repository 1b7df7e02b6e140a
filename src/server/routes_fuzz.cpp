// libFuzzer target: the server's route table (handle_request) and its WebSocket message handler
// (websocket_text_reply) with type-confused and mutated input, through the Backend interface with the
// test FakeBackend (the target is the server's request parsing, not a graph).
//
// Every route (method + path, with and without /api) has a valid request template. On the first input every field
// of every template's JSON body, every query parameter and every multipart part is replaced, recursively,
// by every JSON type (null, bool, 0, negative, huge, float, string, array, object) or by hostile strings
// (path escapes, NUL, invalid UTF-8, CRLF), and the field is also dropped: an exhaustive sweep that runs on
// every start. Then libFuzzer's inputs pick a template and either apply a few such replacements chosen by
// the input bytes or send the input's raw bytes as the body, a query value or a WebSocket message.
//
// Fails (abort) when: the process crashes or a sanitizer fires; a response status is outside 100–599; the
// response does not serialize to a well-formed HTTP/1.1 message that parses back with the same header
// count; an error response with a JSON Content-Type is not JSON; or a route threw (handle_request's
// last-resort barrier answered 500 "internal_error"): input must be answered by the route itself.
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "io/png.h"
#include "server/fake_backend_test_util.h"
#include "server/routes.h"

namespace {

using netdist::server::FakeBackend;
using netdist::server::Request;
using netdist::server::Response;
using netdist::server::ServerOptions;
using netdist::server::ServerState;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

struct Part {
  std::string name;
  std::optional<std::string> filename;
  std::string data;
  bool is_json = false;  // data is JSON text (original_ref): type-confused like a body
};

struct Template {
  std::string method, path;
  std::vector<std::pair<std::string, std::string>> query;
  std::optional<json> body;  // a JSON body
  std::vector<Part> parts;   // a multipart/form-data body (when non-empty)
};

std::string png_bytes(int channels) {
  netdist::io::Image8 image{8, 8, channels, std::vector<uint8_t>(size_t(8) * 8 * channels, 90)};
  return netdist::io::encode_png(image, {}, 1).value();
}

json valid_prompt() {
  return {{"1", {{"class_type", "FakeLoader"}, {"inputs", {{"ckpt_name", "model.safetensors"}}}}},
          {"2", {{"class_type", "FakeSampler"}, {"inputs", {{"seed", 1}, {"steps", 2}, {"model", json::array({"1", 0})}}}}},
          {"3", {{"class_type", "SaveImage"}, {"inputs", {{"images", json::array({"2", 0})}, {"filename_prefix", "fz"}}}}}};
}

std::vector<Template> templates() {
  std::vector<Template> t;
  const auto get = [&](const std::string& path, std::vector<std::pair<std::string, std::string>> query = {}) {
    t.push_back({"GET", path, std::move(query), std::nullopt, {}});
  };
  const auto post = [&](const std::string& path, json body) { t.push_back({"POST", path, {}, std::move(body), {}}); };
  get("/prompt");
  post("/prompt", {{"prompt", valid_prompt()}, {"client_id", "c1"}, {"prompt_id", "p1"},
                   {"extra_data", {{"netdist", {{"priority", 1}, {"policy", "fifo"}}}, {"extra_pnginfo", {{"w", 1}}}}},
                   {"front", true}});
  post("/prompt", {{"prompt", valid_prompt()}, {"number", 3.5}});
  get("/queue");
  post("/queue", {{"clear", false}, {"delete", json::array({"p1", "p2"})}});
  get("/history", {{"max_items", "2"}, {"offset", "0"}});
  post("/history", {{"clear", false}, {"delete", json::array({"p1"})}});
  get("/history/p1");
  post("/interrupt", {{"prompt_id", "p1"}});
  post("/free", {{"unload_models", true}, {"free_memory", true}});
  get("/view", {{"filename", "fixture.png"}, {"type", "input"}, {"subfolder", ""}});
  get("/view", {{"filename", "fixture.png [output]"}});
  t.push_back({"POST", "/upload/image", {}, std::nullopt,
               {{"image", "up.png", png_bytes(3)}, {"type", {}, "input"}, {"subfolder", {}, "sub"}, {"overwrite", {}, "true"}}});
  t.push_back({"POST", "/upload/mask", {}, std::nullopt,
               {{"image", "mask.png", png_bytes(4)}, {"type", {}, "input"}, {"subfolder", {}, ""},
                {"original_ref", {}, R"({"filename": "fixture.png", "subfolder": "", "type": "input"})", true}}});
  for (const char* p : {"/object_info", "/object_info/FakeSampler", "/system_stats", "/embeddings", "/extensions",
                        "/features", "/models", "/models/checkpoints"})
    get(p);
  return t;
}

// The values every field is replaced by.
std::vector<json> json_values() {
  return {nullptr,
          true,
          false,
          0,
          -1,
          std::numeric_limits<int64_t>::min(),
          std::numeric_limits<uint64_t>::max(),
          1e308,
          -0.5,
          "",
          "x",
          "../../etc/passwd",
          std::string(300, 'a'),
          json::array(),
          json::array({1, "a", nullptr}),
          json::object(),
          json({{"a", 1}, {"type", 1}})};
}

// Hostile strings for query values, multipart fields and file names.
std::vector<std::string> string_values() {
  return {"", "-1", "99999999999999999999", "1e999", "abc", "..", "../../etc/passwd", "/etc/passwd", "a/../../b",
          std::string("a\0b", 3), "\xff\xfe", "a\r\nX-Injected: 1", "fixture.png", "output", "temp",
          std::string(5000, 'z'), "null", "[1]", "{\"a\": 1}"};
}

// Every path (keys and array indices) inside a JSON value, parents before children.
void collect_paths(const json& value, std::vector<json::json_pointer>& out, const json::json_pointer& at) {
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      out.push_back(at / it.key());
      collect_paths(it.value(), out, at / it.key());
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      out.push_back(at / i);
      collect_paths(value[i], out, at / i);
    }
  }
}

std::vector<json::json_pointer> paths_of(const json& value) {
  std::vector<json::json_pointer> out;
  collect_paths(value, out, json::json_pointer());
  return out;
}

// Replaces (or, with nullopt, removes) the value at `p`.
json replaced(json value, const json::json_pointer& p, const std::optional<json>& with) {
  if (with) {
    value[p] = *with;
  } else {
    json& parent = value[p.parent_pointer()];
    if (parent.is_object()) parent.erase(p.back());
    else if (parent.is_array()) parent.erase(parent.begin() + std::stoll(p.back()));
  }
  return value;
}

struct Env {
  fs::path root;
  std::unique_ptr<FakeBackend> backend;
  std::unique_ptr<ServerState> state;
  std::vector<Template> templates;
  uint64_t calls = 0;
};

void reset_files(const Env& e) {
  std::error_code ec;
  for (const char* d : {"input", "output", "temp"}) {
    fs::remove_all(e.root / d, ec);
    fs::create_directories(e.root / d, ec);
  }
  fs::create_directories(e.root / "models" / "checkpoints", ec);
  fs::create_directories(e.root / "models" / "embeddings", ec);
  (void)netdist::io::write_file_atomic((e.root / "models" / "checkpoints" / "model.safetensors").string(), "x");
  (void)netdist::io::write_file_atomic((e.root / "models" / "embeddings" / "e.pt").string(), "x");
  for (const char* d : {"input", "output"})
    (void)netdist::io::write_file_atomic((e.root / d / "fixture.png").string(), png_bytes(3));
}

Env& env() {
  static Env* e = [] {
    auto* made = new Env;
    char dir[] = "/tmp/netdist_routes_fuzz_XXXXXX";
    if (!mkdtemp(dir)) abort();
    made->root = dir;
    std::atexit([] { std::error_code ec; fs::remove_all(env().root, ec); });
    ServerOptions o;
    o.output_dir = (made->root / "output").string();
    o.input_dir = (made->root / "input").string();
    o.temp_dir = (made->root / "temp").string();
    o.models_dir = (made->root / "models").string();
    made->backend = std::make_unique<FakeBackend>(o.output_dir);
    made->state = std::make_unique<ServerState>(o, *made->backend);
    made->templates = templates();
    reset_files(*made);
    return made;
  }();
  return *e;
}

[[noreturn]] void fail(const Request& r, const std::string& why, const std::string& detail) {
  std::fprintf(stderr, "routes_fuzz: %s %s: %s\n%s\nrequest body (%zu bytes): %.300s\n", r.method.c_str(),
               r.path.c_str(), why.c_str(), detail.substr(0, 2000).c_str(), r.body.size(), r.body.c_str());
  abort();
}

// The answer must be a well-formed HTTP message: serialized as HttpSession::write does, it parses back.
void check_response(const Request& request, const Response& r) {
  if (r.status < 100 || r.status > 599) fail(request, "status " + std::to_string(r.status), r.body);
  if (r.status == 500 && r.body.find("\"internal_error\"") != std::string::npos)
    fail(request, "a route threw (the last-resort barrier answered)", r.body);
  const bool json_type = r.content_type.rfind("application/json", 0) == 0;
  if (json_type && r.status >= 400 && !json::accept(r.body)) fail(request, "error body is not JSON", r.body);
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  res.set(http::field::server, "netdist");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.body() = r.body;
  res.prepare_payload();
  std::ostringstream text;
  text << res;
  const std::string wire = text.str();
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(wire.size() + 1);
  boost::beast::error_code ec;
  size_t used = parser.put(boost::asio::buffer(wire), ec);
  if (!ec && !parser.is_done()) {
    parser.put_eof(ec);
  }
  if (ec || !parser.is_done() || used != wire.size())
    fail(request, "response does not parse back: " + ec.message(), wire.substr(0, 500));
  const auto& back = parser.get();
  if (std::distance(back.begin(), back.end()) != std::distance(res.begin(), res.end()) || back.body() != r.body)
    fail(request, "response headers or body changed on the wire (header injection?)", wire.substr(0, 500));
}

std::string multipart_body(const std::vector<Part>& parts, const std::string& boundary) {
  std::string body;
  for (const Part& p : parts) {
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + p.name + "\"";
    if (p.filename) body += "; filename=\"" + *p.filename + "\"";
    body += "\r\n";
    if (p.filename) body += "Content-Type: image/png\r\n";
    body += "\r\n" + p.data + "\r\n";
  }
  return body + "--" + boundary + "--\r\n";
}

void send(Env& e, Request request) {
  if (++e.calls % 128 == 0) {
    e.state->queue().wipe_queue();
    reset_files(e);
  }
  Response r = netdist::server::handle_request(*e.state, request);
  check_response(request, r);
  if (r.deferred) check_response(request, r.deferred());
}

Request make_request(const Template& t, bool api_prefix) {
  Request r;
  r.method = t.method;
  r.path = (api_prefix ? "/api" : "") + t.path;
  r.query = t.query;
  r.headers["host"] = "127.0.0.1:8188";
  if (t.body) {
    r.headers["content-type"] = "application/json";
    r.body = t.body->dump();
  } else if (!t.parts.empty()) {
    r.headers["content-type"] = "multipart/form-data; boundary=fuzzb";
    r.body = multipart_body(t.parts, "fuzzb");
  }
  return r;
}

void send_ws(Env& e, const std::string& message) {
  const auto reply = netdist::server::websocket_text_reply(*e.state, message, true);
  if (reply && !json::accept(*reply)) {
    std::fprintf(stderr, "routes_fuzz: WebSocket reply is not JSON: %s\n", reply->c_str());
    abort();
  }
  (void)netdist::server::websocket_text_reply(*e.state, message, false);
}

const json kWsTemplate = {{"type", "feature_flags"}, {"data", {{"supports_preview_metadata", true}, {"x", json::array({1})}}}};

// Every field of every template by every value, once.
void sweep(Env& e) {
  const std::vector<json> values = json_values();
  const std::vector<std::string> strings = string_values();
  for (const Template& t : e.templates) {
    send(e, make_request(t, false));
    send(e, make_request(t, true));
    for (const char* method : {"OPTIONS", "PUT", "DELETE", "HEAD"}) {
      Template other = t;
      other.method = method;
      send(e, make_request(other, false));
    }
    if (t.body) {
      for (const auto& p : paths_of(*t.body)) {
        Template m = t;
        m.body = replaced(*t.body, p, std::nullopt);
        send(e, make_request(m, false));
        for (const json& v : values) {
          m.body = replaced(*t.body, p, v);
          send(e, make_request(m, false));
        }
      }
      for (const json& v : values) {  // the whole body
        Template m = t;
        m.body = v;
        send(e, make_request(m, false));
      }
    }
    for (size_t q = 0; q < t.query.size(); ++q) {
      Template m = t;
      m.query.erase(m.query.begin() + q);
      send(e, make_request(m, false));
      for (const std::string& s : strings) {
        m = t;
        m.query[q].second = s;
        send(e, make_request(m, false));
      }
    }
    for (size_t i = 0; i < t.parts.size(); ++i) {
      Template m = t;
      m.parts.erase(m.parts.begin() + i);
      send(e, make_request(m, false));
      for (const std::string& s : strings) {
        m = t;
        m.parts[i].data = s;
        send(e, make_request(m, false));
        if (t.parts[i].filename) {
          m = t;
          m.parts[i].filename = s;
          send(e, make_request(m, false));
        }
      }
      if (t.parts[i].is_json) {
        const json ref = json::parse(t.parts[i].data);
        for (const auto& p : paths_of(ref)) {
          for (const json& v : values) {
            m = t;
            m.parts[i].data = replaced(ref, p, v).dump();
            send(e, make_request(m, false));
          }
        }
        for (const json& v : values) {
          m = t;
          m.parts[i].data = v.dump();
          send(e, make_request(m, false));
        }
      }
    }
  }
  for (const auto& p : paths_of(kWsTemplate)) {
    send_ws(e, replaced(kWsTemplate, p, std::nullopt).dump());
    for (const json& v : values) send_ws(e, replaced(kWsTemplate, p, v).dump());
  }
  for (const json& v : values) send_ws(e, v.dump());
  for (const std::string& s : strings) send_ws(e, s);
}

// Reads small numbers from the front of the fuzz input.
struct Bytes {
  const uint8_t* data;
  size_t size;
  uint8_t next() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  std::string rest() { return std::string(reinterpret_cast<const char*>(data), size); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env& e = env();
  // The sweep runs inside the first input (not LLVMFuzzerInitialize), so that libFuzzer's -timeout also
  // reports a request that hangs in it.
  static const bool swept = (sweep(e), true);
  (void)swept;
  Bytes in{data, size};
  const size_t pick = in.next();
  const uint8_t mode = in.next() % 6;
  if (pick == 255) {  // the WebSocket handler
    if (mode % 2 == 0) {
      send_ws(e, in.rest());
    } else {
      const auto paths = paths_of(kWsTemplate);
      const std::vector<json> values = json_values();
      send_ws(e, replaced(kWsTemplate, paths[in.next() % paths.size()], values[in.next() % values.size()]).dump());
    }
    return 0;
  }
  Template t = e.templates[pick % e.templates.size()];
  const bool api = in.next() & 1;
  switch (mode) {
    case 0: {  // raw body bytes (multipart templates keep their Content-Type)
      Request r = make_request(t, api);
      r.body = in.rest();
      send(e, std::move(r));
      break;
    }
    case 1: {  // raw query value or header value
      Request r = make_request(t, api);
      const uint8_t which = in.next();
      const std::string value = in.rest();
      if (!r.query.empty() && which % 3 == 0) r.query[which % r.query.size()].second = value;
      else if (which % 3 == 1) r.headers["origin"] = value;
      else r.headers["content-type"] = value;
      send(e, std::move(r));
      break;
    }
    case 2: {  // raw multipart part data / file name, or raw path tail
      if (t.parts.empty()) {
        Request r = make_request(t, api);
        r.path += in.rest();
        send(e, std::move(r));
        break;
      }
      const size_t i = in.next() % t.parts.size();
      if (in.next() & 1 && t.parts[i].filename) t.parts[i].filename = in.rest();
      else t.parts[i].data = in.rest();
      send(e, make_request(t, api));
      break;
    }
    default: {  // up to four type confusions chosen by the input
      const std::vector<json> values = json_values();
      const std::vector<std::string> strings = string_values();
      const int n = 1 + in.next() % 4;
      for (int k = 0; k < n; ++k) {
        if (t.body) {
          const auto paths = paths_of(*t.body);
          if (paths.empty()) break;
          t.body = replaced(*t.body, paths[in.next() % paths.size()], values[in.next() % values.size()]);
        } else if (!t.parts.empty()) {
          const size_t i = in.next() % t.parts.size();
          if (t.parts[i].is_json) {
            json ref = json::parse(t.parts[i].data, nullptr, false);
            const auto paths = paths_of(ref);
            if (!paths.empty()) t.parts[i].data = replaced(ref, paths[in.next() % paths.size()], values[in.next() % values.size()]).dump();
          } else {
            t.parts[i].data = strings[in.next() % strings.size()];
          }
        } else if (!t.query.empty()) {
          t.query[in.next() % t.query.size()].second = strings[in.next() % strings.size()];
        }
      }
      send(e, make_request(t, api));
      break;
    }
  }
  return 0;
}
