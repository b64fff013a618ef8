// A small HTTP/1.1 server on POSIX sockets: keep-alive, a poll() thread that watches idle
// connections, and a pool of worker threads that each serve one request at a time. No TLS, no
// chunked request bodies (411), bodies bounded by max_body_bytes (413).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ramjet/status.h"

namespace ramjet::serve {

struct HttpRequest {
  std::string method, path, query;  // path without the query string
  int minor_version = 1;            // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // Set instead of `body` when parseHttpRequest ran with copy_body = false: the body inside the
  // caller's buffer, valid while that buffer is unchanged (the server keeps it until the handler
  // returns). bodyView() reads whichever is set.
  std::string_view body_view;
  std::string_view bodyView() const { return body_view.data() ? body_view : std::string_view(body); }
  bool keep_alive = true;
  // Value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Incremental request parsing, for the server and for fuzzers.
enum class ParseState { kNeedMore, kDone, kError };
struct ParseResult {
  ParseState state = ParseState::kNeedMore;
  size_t consumed = 0;          // bytes of `buf` the request used (kDone)
  int error_status = 400;       // kError: the HTTP status to answer with
  std::string error;            // kError: why
  bool expects_continue = false;  // headers complete, body pending, client sent Expect: 100-continue
  size_t total = 0;               // kNeedMore with the headers complete: bytes of the whole request
};
ParseResult parseHttpRequest(std::string_view buf, size_t max_header_bytes, size_t max_body_bytes, HttpRequest* out,
                             bool copy_body = true);

const char* httpReason(int status);
std::string serializeHttpResponse(const HttpResponse& r, bool keep_alive);

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port
  int threads = 128;
  size_t max_body_bytes = size_t{256} << 20;
  size_t max_header_bytes = 64 << 10;
  int idle_timeout_ms = 60000;
  int io_timeout_ms = 30000;  // a started request must arrive / a response must drain within this
  size_t max_connections = 1024;
  bool reuse_port = false;  // SO_REUSEPORT: processes sharing the port split the connections
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& o, HttpHandler handler);
  virtual ~HttpServer() = default;
  virtual int port() const = 0;
  // Stops accepting, lets requests being served finish (answered with Connection: close),
  // closes idle connections, joins every thread.
  virtual void shutdown() = 0;
};

}  // namespace ramjet::serve
