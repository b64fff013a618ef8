// libFuzzer target for the server's request parsing (src/serve): the HTTP/1.1 request parser
// on raw bytes, then -- for a complete request -- the KServe v2 infer body parser with the
// Inference-Header-Content-Length the client sent. Every input gives a request or a clean
// error (with a message and a 4xx/5xx status), never a crash, hang or sanitizer report.
// The body parser is also fed the whole input directly, so JSON mutations reach it without
// needing a valid HTTP framing first.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ramjet/serve.h"
#include "serve/http.h"

namespace {

constexpr size_t kMaxHeader = 16 << 10, kMaxBody = 1 << 20;
constexpr int64_t kMaxElements = 1 << 16;

void checkBody(std::string_view body, int64_t json_length) {
  auto r = ramjet::serve::parseInferRequestJson(body, json_length, kMaxElements);
  if (!r.ok()) {
    if (r.status().message().empty()) std::abort();
    return;
  }
  for (const auto& in : r->inputs) {
    // Accepted tensors are self-consistent: touch every byte (ASan sees a size mismatch).
    const auto* p = static_cast<const uint8_t*>(in.tensor.raw());
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < in.tensor.nbytes(); ++i) sink = static_cast<uint8_t>(sink ^ p[i]);
    if (in.tensor.numel() > kMaxElements) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  ramjet::serve::HttpRequest rq;
  auto pr = ramjet::serve::parseHttpRequest(buf, kMaxHeader, kMaxBody, &rq);
  if (pr.state == ramjet::serve::ParseState::kError) {
    if (pr.error.empty() || pr.error_status < 400 || pr.error_status > 599) std::abort();
  } else if (pr.state == ramjet::serve::ParseState::kDone) {
    if (pr.consumed == 0 || pr.consumed > size || rq.body.size() > kMaxBody) std::abort();
    int64_t json_length = -1;
    if (const std::string* h = rq.header("inference-header-content-length")) {
      char* end = nullptr;
      long long v = std::strtoll(h->c_str(), &end, 10);
      json_length = (end && *end == '\0' && !h->empty()) ? v : -2;  // -2: garbage, must be refused
    }
    checkBody(rq.body, json_length);
    // The server's in-place parse must agree: same state, same consumed bytes, the body a view
    // of exactly the copied bytes inside `buf`.
    ramjet::serve::HttpRequest view;
    auto pv = ramjet::serve::parseHttpRequest(buf, kMaxHeader, kMaxBody, &view, /*copy_body=*/false);
    if (pv.state != pr.state || pv.consumed != pr.consumed || !view.body.empty() || view.bodyView() != rq.body)
      std::abort();
    if (!view.bodyView().empty() &&
        (view.bodyView().data() < buf.data() || view.bodyView().data() + view.bodyView().size() > buf.data() + size))
      std::abort();
  } else if (pr.total != 0 && (pr.total <= size || pr.total > kMaxHeader + kMaxBody + 4)) {
    std::abort();  // headers complete, body pending: the total must exceed what is here
  }
  checkBody(buf, -1);
  if (size > 8) checkBody(buf, static_cast<int64_t>(data[0]) | (static_cast<int64_t>(data[1]) << 8));
  return 0;
}
