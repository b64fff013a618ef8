// The gRPC front end lives in a plugin (libramjet_grpc.so, built with RAMJET_GRPC where Debian's
// libgrpc++ is found) that `ramjet serve --grpc-port` loads at run time, so the ramjet binary
// itself never depends on gRPC's shared libraries (it must run on machines without them).
#pragma once

#include <memory>
#include <string>

#include "ramjet/serve.h"

namespace ramjet::serve {

class GrpcFrontend {
 public:
  virtual ~GrpcFrontend() = default;
  virtual int port() const = 0;
  // Stops taking calls, waits for the ones in flight.
  virtual void shutdown() = 0;
};

// The plugin's one entry point (extern "C"): returns nullptr and fills *error on failure.
using GrpcStartFn = GrpcFrontend* (*)(ModelHub* hub, const char* host, int port, std::string* error);
constexpr const char* kGrpcStartSymbol = "ramjet_grpc_start";
constexpr const char* kGrpcPluginName = "libramjet_grpc.so";

// Loads the plugin from $RAMJET_GRPC_PLUGIN, else beside the executable (and ../lib), and starts it.
Result<std::unique_ptr<GrpcFrontend>> startGrpcFrontend(ModelHub& hub, const std::string& host, int port);

}  // namespace ramjet::serve
