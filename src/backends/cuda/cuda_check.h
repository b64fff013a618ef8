// Checked CUDA / cuDNN / cuBLASLt calls: a failure becomes a kDeviceError Status naming the call,
// the library's error string, file and line. Host code only.
#pragma once

#include <cuda_runtime_api.h>

#include <sstream>
#include <string>

#include "ramjet/status.h"

namespace ramjet::cuda {

inline Status cudaError(cudaError_t e, const char* call, const char* file, int line) {
  std::ostringstream os;
  os << call << " failed: " << cudaGetErrorName(e) << " (" << cudaGetErrorString(e) << ") at "
     << file << ":" << line;
  return Status(StatusCode::kDeviceError, os.str());
}

inline Status libError(const char* lib, int code, const char* what, const char* call,
                       const char* file, int line) {
  std::ostringstream os;
  os << call << " failed: " << lib << " status " << code << " (" << what << ") at " << file << ":"
     << line;
  return Status(StatusCode::kDeviceError, os.str());
}

}  // namespace ramjet::cuda

#define RJ_CUDA_CHECK(call)                                                          \
  do {                                                                               \
    cudaError_t rj_cuda_err_ = (call);                                               \
    if (rj_cuda_err_ != cudaSuccess)                                                 \
      return ::ramjet::cuda::cudaError(rj_cuda_err_, #call, __FILE__, __LINE__);     \
  } while (0)

// After a kernel launch: reports a bad launch configuration or a sticky earlier fault.
#define RJ_CUDA_CHECK_LAUNCH(what)                                                   \
  do {                                                                               \
    cudaError_t rj_cuda_err_ = cudaGetLastError();                                   \
    if (rj_cuda_err_ != cudaSuccess)                                                 \
      return ::ramjet::cuda::cudaError(rj_cuda_err_, what, __FILE__, __LINE__);      \
  } while (0)

// cuDNN: include <cudnn.h> before using.
#define RJ_CUDNN_CHECK(call)                                                                 \
  do {                                                                                       \
    cudnnStatus_t rj_cudnn_st_ = (call);                                                     \
    if (rj_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                                \
      return ::ramjet::cuda::libError("cuDNN", static_cast<int>(rj_cudnn_st_),               \
                                      cudnnGetErrorString(rj_cudnn_st_), #call, __FILE__,    \
                                      __LINE__);                                             \
  } while (0)

// cuBLAS / cuBLASLt: include <cublasLt.h> before using.
#define RJ_CUBLAS_CHECK(call)                                                                \
  do {                                                                                       \
    cublasStatus_t rj_cublas_st_ = (call);                                                   \
    if (rj_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                              \
      return ::ramjet::cuda::libError("cuBLAS", static_cast<int>(rj_cublas_st_),            \
                                      cublasLtGetStatusString(rj_cublas_st_), #call,         \
                                      __FILE__, __LINE__);                                   \
  } while (0)
