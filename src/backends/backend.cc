#include "backends/backend.h"

#include <chrono>
#include <map>
#include <mutex>

namespace ramjet::backend {

const char* placementName(Placement p) {
  switch (p) {
    case Placement::kDevice: return "device";
    case Placement::kHost: return "host";
    case Placement::kCpuFallback: return "cpu-fallback";
    case Placement::kAlias: return "alias";
  }
  return "?";
}

bool isAliasOp(const std::string& op) {
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity";
}

Result<double> Backend::timeMs(const std::function<Status(void*)>& fn, int iterations, void* stream) {
  RJ_RETURN_IF_ERROR(fn(stream));
  RJ_RETURN_IF_ERROR(synchronize(stream));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) RJ_RETURN_IF_ERROR(fn(stream));
  RJ_RETURN_IF_ERROR(synchronize(stream));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return ms / std::max(iterations, 1);
}

namespace {
std::mutex& registryMutex() {
  static std::mutex m;
  return m;
}
std::map<DeviceKind, BackendFactory>& registry() {
  static std::map<DeviceKind, BackendFactory> r;
  return r;
}
}  // namespace

void registerBackendFactory(DeviceKind kind, BackendFactory factory) {
  std::lock_guard<std::mutex> lock(registryMutex());
  registry()[kind] = std::move(factory);
}

Result<std::unique_ptr<Backend>> createBackend(DeviceKind kind, int device_index) {
  if (kind == DeviceKind::kCpu) return createCpuBackend();
  BackendFactory f;
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    auto it = registry().find(kind);
    if (it != registry().end()) f = it->second;
  }
  if (!f)
    return makeError(StatusCode::kUnsupported, "no ", deviceKindName(kind),
                     " backend in this program: ramjet was built without CUDA, or the program did "
                     "not call ramjet::registerCudaBackend()");
  return f(device_index);
}

}  // namespace ramjet::backend
