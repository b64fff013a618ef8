// The CUDA backend: lowers graph nodes onto the kernel library (cuda_ops.h, cuDNN convolution,
// cuBLASLt GEMM), owns the library handles, device memory, streams and CUDA-graph recordings.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace ramjet::cuda {

Result<std::unique_ptr<backend::Backend>> createCudaBackend(int device_index);

}  // namespace ramjet::cuda
