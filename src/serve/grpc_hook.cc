#include "serve/grpc_hook.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace ramjet::serve {

Result<std::unique_ptr<GrpcFrontend>> startGrpcFrontend(ModelHub& hub, const std::string& host, int port) {
  if (port < 0 || port > 65535) return makeError(StatusCode::kInvalidArgument, "gRPC port must be in 0..65535, got ", port);
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("RAMJET_GRPC_PLUGIN"); env && *env) candidates.emplace_back(env);
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    candidates.push_back(dir + "/" + kGrpcPluginName);
    candidates.push_back(dir + "/../lib/" + kGrpcPluginName);
  }
  std::string errors;
  for (const std::string& path : candidates) {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      errors += "\n  " + path + ": " + (e ? e : "cannot load");
      continue;
    }
    auto fn = reinterpret_cast<GrpcStartFn>(::dlsym(h, kGrpcStartSymbol));
    if (!fn) {
      errors += "\n  " + path + ": no symbol " + kGrpcStartSymbol;
      continue;
    }
    std::string err;
    GrpcFrontend* f = fn(&hub, host.c_str(), port, &err);
    if (!f) return makeError(StatusCode::kIoError, "gRPC front end on ", host, ":", port, ": ", err);
    return std::unique_ptr<GrpcFrontend>(f);  // the plugin stays loaded for the process's life
  }
  return makeError(StatusCode::kUnsupported,
                   "the gRPC front end is not available (build with RAMJET_GRPC, which needs libgrpc++-dev and "
                   "protobuf-compiler-grpc, and keep ", kGrpcPluginName, " beside the ramjet binary):", errors);
}

}  // namespace ramjet::serve
