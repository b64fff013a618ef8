// Shared pieces of the ramjet Python extension: Status -> exception, dtype mapping, the engine
// and context state that Python objects share, and array-protocol parsing (arrays.cc).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ramjet/engine.h"
#include "ramjet/graph.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace py = pybind11;

namespace ramjet::python {

// Thrown inside the binding and translated into the ramjet.errors class for its StatusCode.
struct StatusError {
  Status status;
};

[[noreturn]] inline void throwStatus(const Status& s) { throw StatusError{s}; }
inline void check(const Status& s) {
  if (!s.ok()) throwStatus(s);
}
template <typename T>
T unwrap(Result<T>&& r) {
  if (!r.ok()) throwStatus(r.status());
  return std::move(r).value();
}
template <typename... Args>
[[noreturn]] void fail(StatusCode code, Args&&... parts) {
  throwStatus(makeError(code, std::forward<Args>(parts)...));
}

// ---- dtypes ----
py::dtype numpyDtype(DataType t);          // raises for dtypes numpy cannot hold
DataType fromNumpyDtype(const py::dtype& d);  // kUndefined when ramjet has no such dtype
// "<f4"-style array-interface type strings.
DataType fromTypestr(const std::string& s);
std::string typestrOf(DataType t);

// ---- engine / context state shared between Python objects ----
// Engine.close() destroys every context (waiting for calls in flight) and then the engine;
// device buffers handed to Python keep the engine (their allocator) alive until they are freed.
struct EngineState {
  std::unique_ptr<Engine> engine;
  std::mutex mu;
  bool closed = false;
  bool cuda = false;
  int device_index = 0;
  std::vector<std::weak_ptr<struct ContextState>> contexts;
  std::atomic<int> live_buffers{0};
  ~EngineState();
  // Destroys the engine once it is closed and no buffer needs it. Caller holds `mu`.
  void maybeDestroyLocked();
};

struct ContextState {
  std::shared_ptr<EngineState> eng;
  std::unique_ptr<ExecutionContext> ctx;
  std::mutex mu;  // one call at a time per context (ExecutionContext is not thread-safe)
};

// Device (or host, for CPU engines) memory from Engine::allocate, freed when the last owner goes.
struct Buffer {
  std::shared_ptr<EngineState> eng;
  void* ptr = nullptr;
  size_t bytes = 0;
  ~Buffer();
};

// A tensor in engine memory returned to Python; exports __cuda_array_interface__ and DLPack.
struct DeviceArray {
  std::shared_ptr<Buffer> buf;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> shape;
  bool cuda = true;
  int device_id = 0;
  uintptr_t stream = 0;  // where it was produced (0: legacy default stream)
};

// ---- array protocols ----
struct ArrayView {
  void* ptr = nullptr;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> shape;
  bool device = false;  // CUDA memory
  int device_id = 0;
  bool readonly = false;
  py::object keepalive;  // the object (or DLPack capsule owner) that owns the memory
  py::object source;     // the object as passed
};

// Reads a CUDA array (an object with __cuda_array_interface__ or __dlpack__ on a CUDA device)
// without copying. Returns false when `obj` is not a CUDA array. `what` names it in errors.
bool viewDeviceArray(py::handle obj, uintptr_t consumer_stream, const std::string& what,
                     ArrayView* out);
// True for CUDA arrays (torch CUDA tensors, DeviceArrays, __cuda_array_interface__, CUDA DLPack).
bool isDeviceArray(py::handle obj);
// A CUDA stream from None, an int handle, or an object with __cuda_stream__ / .cuda_stream / .ptr.
uintptr_t parseStream(py::handle s);

void bindArrays(py::module_& m);  // DeviceArray

}  // namespace ramjet::python
