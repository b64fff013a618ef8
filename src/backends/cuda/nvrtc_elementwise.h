// FusedElementwise through NVRTC: CUDA C generated for one program + element type + operand
// broadcast kinds, compiled to a CUBIN for the device's architecture on the host (at kernel
// creation / first shape, never inside CUDA-graph capture), cached by source text in memory
// and on disk ($XDG_CACHE_HOME/ramjet/nvrtc, else ~/.cache/ramjet/nvrtc; RAMJET_NVRTC_CACHE=0
// disables the disk cache), loaded with cudaLibraryLoadData and launched with cudaLaunchKernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/elementwise_program.h"
#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet::cuda {

// How one input maps onto the output: same dims (index i), one element, or general broadcast.
enum class EwOperandKind { kDense = 0, kScalar = 1, kStrided = 2 };

struct EwKernelKey {
  ops::EwProgram program;
  DataType dtype = DataType::kFloat32;
  std::vector<EwOperandKind> kinds;
  int rank = 1;
};

// The CUDA C source for a key (exposed for tests and --explain).
std::string ewGenerateSource(const EwKernelKey& key);

class EwCompiledKernel {
 public:
  // Compiles (or finds in the caches) the kernel for `key` on the current device.
  static Result<const EwCompiledKernel*> get(const EwKernelKey& key);
  Status launch(const std::vector<const void*>& inputs, const std::vector<std::vector<int64_t>>& in_dims,
                void* out, const std::vector<int64_t>& out_dims, cudaStream_t stream) const;
  bool from_disk_cache = false;
  std::string source_hash;

  void* kernel = nullptr;  // cudaKernel_t
};

// Kinds of `in_dims` against `out_dims`.
std::vector<EwOperandKind> ewOperandKinds(const std::vector<std::vector<int64_t>>& in_dims,
                                          const std::vector<int64_t>& out_dims);

}  // namespace ramjet::cuda
