#include "serve/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

namespace ramjet::serve {

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

const char* httpReason(int s) {
  switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParseResult err(int status, std::string why) {
  ParseResult r;
  r.state = ParseState::kError;
  r.error_status = status;
  r.error = std::move(why);
  return r;
}

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

}  // namespace

ParseResult parseHttpRequest(std::string_view buf, size_t max_header_bytes, size_t max_body_bytes, HttpRequest* out,
                             bool copy_body) {
  size_t hend = buf.find("\r\n\r\n");
  if (hend == std::string_view::npos) {
    if (buf.size() > max_header_bytes)
      return err(431, "the request headers exceed " + std::to_string(max_header_bytes) + " bytes");
    return ParseResult{};
  }
  if (hend + 4 > max_header_bytes)
    return err(431, "the request headers exceed " + std::to_string(max_header_bytes) + " bytes");
  std::string_view head = buf.substr(0, hend);
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // Request line: METHOD SP target SP HTTP/1.x
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return err(400, "malformed request line");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), isTokenChar))
    return err(400, "malformed request method");
  if (target.empty() || target[0] != '/') return err(400, "the request target must be an absolute path");
  if (target.size() > 8192) return err(414, "the request target is longer than 8192 bytes");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return err(400, "control character in the request target");
  if (version == "HTTP/1.1") out->minor_version = 1;
  else if (version == "HTTP/1.0") out->minor_version = 0;
  else return err(505, "only HTTP/1.0 and HTTP/1.1 are supported");
  out->method = std::string(method);
  size_t q = target.find('?');
  out->path = std::string(target.substr(0, q));
  out->query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  out->headers.clear();
  out->body.clear();
  out->body_view = {};
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  int64_t content_length = -1;
  bool chunked = false, conn_close = false, conn_keep = false, expect_continue = false;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view h = head.substr(pos, e - pos);
    pos = e + 2;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return err(400, "malformed header line");
    std::string_view name = h.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), isTokenChar)) return err(400, "malformed header name");
    std::string key = lower(name);
    std::string value(trim(h.substr(colon + 1)));
    if (out->headers.size() >= 100) return err(431, "more than 100 headers");
    if (key == "content-length") {
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), ::isdigit))
        return err(400, "Content-Length must be a decimal number");
      int64_t v = std::stoll(value);
      if (content_length >= 0 && v != content_length) return err(400, "conflicting Content-Length headers");
      content_length = v;
    } else if (key == "transfer-encoding") {
      if (lower(value) != "identity") chunked = true;
    } else if (key == "connection") {
      std::string v = lower(value);
      if (v.find("close") != std::string::npos) conn_close = true;
      if (v.find("keep-alive") != std::string::npos) conn_keep = true;
    } else if (key == "expect") {
      if (lower(value) == "100-continue") expect_continue = true;
    }
    out->headers.emplace_back(std::move(key), std::move(value));
  }
  if (chunked) return err(411, "chunked request bodies are not supported: send Content-Length");
  out->keep_alive = out->minor_version == 1 ? !conn_close : conn_keep;
  size_t body_len = content_length < 0 ? 0 : static_cast<size_t>(content_length);
  if (body_len > max_body_bytes)
    return err(413, "the body has " + std::to_string(body_len) + " bytes, more than the limit " +
                        std::to_string(max_body_bytes));
  size_t total = hend + 4 + body_len;
  if (buf.size() < total) {
    ParseResult r;
    r.expects_continue = expect_continue;
    r.total = total;
    return r;
  }
  if (copy_body) out->body = std::string(buf.substr(hend + 4, body_len));
  else out->body_view = buf.substr(hend + 4, body_len);
  ParseResult r;
  r.state = ParseState::kDone;
  r.consumed = total;
  return r;
}

std::string serializeHttpResponse(const HttpResponse& r, bool keep_alive) {
  std::string s;
  s.reserve(r.body.size() + 256);
  s += "HTTP/1.1 " + std::to_string(r.status) + " " + httpReason(r.status) + "\r\n";
  if (!r.content_type.empty()) s += "Content-Type: " + r.content_type + "\r\n";
  for (const auto& [k, v] : r.headers) s += k + ": " + v + "\r\n";
  s += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  s += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  s += r.body;
  return s;
}

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::string buf;
  Clock::time_point last;
};

bool sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // EPIPE, ECONNRESET, or SO_SNDTIMEO expired
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(HttpServerOptions o, HttpHandler h) : opt_(std::move(o)), handler_(std::move(h)) {}
  ~HttpServerImpl() override { shutdown(); }

  Status listenAndStart() {
    if (opt_.threads < 1 || opt_.threads > 4096)
      return makeError(StatusCode::kInvalidArgument, "HTTP threads must be in 1..4096, got ", opt_.threads);
    if (opt_.port < 0 || opt_.port > 65535)
      return makeError(StatusCode::kInvalidArgument, "HTTP port must be in 0..65535, got ", opt_.port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(opt_.port);
    int rc = ::getaddrinfo(opt_.host.empty() ? nullptr : opt_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0)
      return makeError(StatusCode::kInvalidArgument, "cannot resolve host '", opt_.host, "': ", gai_strerror(rc));
    std::string last_err = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (opt_.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        last_err = std::string("SO_REUSEPORT: ") + std::strerror(errno);
        ::close(fd);
        continue;
      }
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
        listen_fd_ = fd;
        break;
      }
      last_err = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    if (listen_fd_ < 0)
      return makeError(StatusCode::kIoError, "cannot listen on ", opt_.host, ":", opt_.port, ": ", last_err);
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &sl);
    port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
      return makeError(StatusCode::kIoError, "pipe: ", std::strerror(errno));
    for (int i = 0; i < opt_.threads; ++i) workers_.emplace_back([this] { workerLoop(); });
    poller_ = std::thread([this] { pollLoop(); });
    return Status::Ok();
  }

  int port() const override { return port_; }

  void shutdown() override {
    std::lock_guard<std::mutex> jl(join_mu_);
    if (done_) return;
    done_ = true;
    stopping_ = true;
    wake();
    if (poller_.joinable()) poller_.join();
    // Connections already readable are still served (and then closed) by the workers.
    {
      std::lock_guard<std::mutex> lk(mu_);
      work_cv_.notify_all();
    }
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    for (auto& c : ready_) ::close(c.fd);
    ready_.clear();
    for (auto& c : returned_) ::close(c.fd);
    returned_.clear();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    for (int& f : wake_)
      if (f >= 0) {
        ::close(f);
        f = -1;
      }
  }

 private:
  void wake() {
    char c = 1;
    if (wake_[1] >= 0) {
      ssize_t n = ::write(wake_[1], &c, 1);
      (void)n;  // a full pipe already guarantees a wake-up
    }
  }

  void pollLoop() {
    std::vector<Conn> idle;
    std::vector<pollfd> fds;
    while (!stopping_) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto& c : returned_) idle.push_back(std::move(c));
        returned_.clear();
      }
      auto now = Clock::now();
      // Close connections idle past the timeout.
      for (size_t i = 0; i < idle.size();) {
        if (now - idle[i].last > std::chrono::milliseconds(opt_.idle_timeout_ms)) {
          closeConn(idle[i].fd);
          idle[i] = std::move(idle.back());
          idle.pop_back();
        } else {
          ++i;
        }
      }
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const auto& c : idle) fds.push_back({c.fd, POLLIN, 0});
      int n = ::poll(fds.data(), fds.size(), 1000);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0].revents & POLLIN) {
        char tmp[256];
        while (::read(wake_[0], tmp, sizeof tmp) > 0) {
        }
      }
      if (stopping_) break;
      if (fds[1].revents & POLLIN) acceptOne(&idle);  // new connections wait in poll() for bytes
      std::vector<Conn> readable;
      for (size_t i = fds.size(); i-- > 2;) {
        if (!fds[i].revents) continue;
        size_t k = i - 2;
        readable.push_back(std::move(idle[k]));
        idle[k] = std::move(idle.back());
        idle.pop_back();
      }
      if (!readable.empty()) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          for (auto& c : readable) ready_.push_back(std::move(c));
        }
        // One waiting worker per connection: notify_all woke all 128 workers for each (the
        // wake-ups and the mutex they then fought over were a quarter of a loaded server's CPU).
        for (size_t k = 0; k < readable.size(); ++k) work_cv_.notify_one();
      }
    }
    // New connection attempts are refused from now on instead of waiting in the backlog.
    ::close(listen_fd_);
    listen_fd_ = -1;
    // Graceful: requests already sent on open connections (or arriving within 100 ms on
    // connections just accepted) are still served, then those connections close.
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& c : returned_) idle.push_back(std::move(c));
      returned_.clear();
    }
    auto until = Clock::now() + std::chrono::milliseconds(100);
    while (!idle.empty() && Clock::now() < until) {
      fds.clear();
      for (const auto& c : idle) fds.push_back({c.fd, POLLIN, 0});
      int n = ::poll(fds.data(), fds.size(), 20);
      if (n <= 0) continue;
      std::lock_guard<std::mutex> lk(mu_);
      for (size_t i = fds.size(); i-- > 0;) {
        if (!fds[i].revents) continue;
        ready_.push_back(std::move(idle[i]));
        idle[i] = std::move(idle.back());
        idle.pop_back();
      }
      work_cv_.notify_all();
    }
    for (auto& c : idle) closeConn(c.fd);
    {
      std::lock_guard<std::mutex> lk(mu_);
      poller_done_ = true;
      work_cv_.notify_all();
    }
  }

  void closeConn(int fd) {
    ::close(fd);
    --open_conns_;
  }

  void acceptOne(std::vector<Conn>* idle) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{opt_.io_timeout_ms / 1000, (opt_.io_timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (open_conns_.load() >= opt_.max_connections) {
      HttpResponse r;
      r.status = 503;
      r.body = R"({"error":"too many connections"})";
      sendAll(fd, serializeHttpResponse(r, false));
      ::close(fd);
      return;
    }
    ++open_conns_;
    Conn c;
    c.fd = fd;
    c.last = Clock::now();
    idle->push_back(std::move(c));
  }

  void workerLoop() {
    while (true) {
      Conn c;
      {
        std::unique_lock<std::mutex> lk(mu_);
        work_cv_.wait(lk, [&] { return poller_done_ || !ready_.empty(); });
        if (ready_.empty()) return;  // stopped and nothing left
        c = std::move(ready_.front());
        ready_.pop_front();
      }
      if (serve(&c)) {
        c.last = Clock::now();
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) {
          closeConn(c.fd);
        } else {
          returned_.push_back(std::move(c));
          wake();
        }
      } else {
        closeConn(c.fd);
      }
    }
  }

  // Serves requests on a readable connection until it would block between requests. Returns
  // true to keep the connection (hand it back to the poller), false to close it.
  bool serve(Conn* c) {
    char tmp[64 << 10];
    bool sent_continue = false;
    while (true) {
      HttpRequest rq;
      // The body is read in place: c->buf stays untouched until the handler has returned.
      ParseResult pr = parseHttpRequest(c->buf, opt_.max_header_bytes, opt_.max_body_bytes, &rq, /*copy_body=*/false);
      if (pr.state == ParseState::kError) {
        HttpResponse r;
        r.status = pr.error_status;
        r.body = std::string(R"({"error":)") + quote(pr.error) + "}";
        sendAll(c->fd, serializeHttpResponse(r, false));
        return false;
      }
      if (pr.state == ParseState::kDone) {
        sent_continue = false;
        HttpResponse resp = handler_(rq);
        rq.body_view = {};
        c->buf.erase(0, pr.consumed);
        bool keep = rq.keep_alive && !stopping_;
        if (!sendAll(c->fd, serializeHttpResponse(resp, keep)) || !keep) return false;
        if (!c->buf.empty()) continue;  // pipelined request already buffered
        // Anything more already waiting? Otherwise hand the connection back to the poller.
        ssize_t n = ::recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
          c->buf.append(tmp, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) return false;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      }
      if (pr.expects_continue && !sent_continue) {
        if (!sendAll(c->fd, "HTTP/1.1 100 Continue\r\n\r\n")) return false;
        sent_continue = true;
      }
      // Need more bytes: the connection was readable, so block (bounded by SO_RCVTIMEO). With
      // the headers parsed, the whole request is read before parsing again, into a buffer
      // reserved for it (a 602 KB tensor body arrives in ~10 reads: no regrowth, no re-parse).
      // The reservation trusts Content-Length only up to 16 MB: headers alone must not make the
      // server set aside max_body_bytes per connection; past that the buffer grows with the data.
      const size_t want = std::min(pr.total, std::max(c->buf.size(), size_t{16} << 20));
      if (want > c->buf.capacity()) c->buf.reserve(want);
      ssize_t n;
      do {
        n = ::recv(c->fd, tmp, sizeof tmp, 0);
        if (n > 0) c->buf.append(tmp, static_cast<size_t>(n));
      } while (n > 0 && c->buf.size() < pr.total);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && !c->buf.empty() && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        HttpResponse r;
        r.status = 408;
        r.body = R"({"error":"the request did not arrive in time"})";
        sendAll(c->fd, serializeHttpResponse(r, false));
      }
      return false;  // closed by the peer, timed out, or failed
    }
  }

  static std::string quote(const std::string& s) {
    std::string o = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') o += '\\', o += ch;
      else if (static_cast<unsigned char>(ch) < 0x20) o += ' ';
      else o += ch;
    }
    return o + "\"";
  }

  HttpServerOptions opt_;
  HttpHandler handler_;
  int listen_fd_ = -1, port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_conns_{0};
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Conn> ready_;
  std::vector<Conn> returned_;
  bool poller_done_ = false;  // under mu_: the poller hands out no more connections
  std::vector<std::thread> workers_;
  std::thread poller_;
  std::mutex join_mu_;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& o, HttpHandler handler) {
  auto s = std::make_unique<HttpServerImpl>(o, std::move(handler));
  Status st = s->listenAndStart();
  if (!st.ok()) return st;
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace ramjet::serve
