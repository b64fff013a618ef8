// Device discovery and version strings for the CUDA kernel library.
#include <cublasLt.h>
#include <cudnn.h>

#include <sstream>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_ops.h"

namespace ramjet::cuda {

bool deviceAvailable() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return n > 0;
}

std::string deviceDescription() {
  std::ostringstream os;
  int dev = 0;
  cudaDeviceProp prop{};
  if (!deviceAvailable() || cudaGetDevice(&dev) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    os << "no CUDA device";
  } else {
    os << prop.name << " (sm_" << prop.major << prop.minor << ", " << prop.multiProcessorCount << " SMs)";
  }
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  os << ", CUDA runtime " << rt << ", driver " << drv << ", cuDNN " << cudnnGetVersion()
     << ", cuBLASLt " << cublasLtGetVersion();
  return os.str();
}

}  // namespace ramjet::cuda
