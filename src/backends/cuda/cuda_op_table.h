// Extension table of the CUDA backend: op families that live in their own files (fused
// convolution, attention, INT8, NMS, ...) register a handler here instead of growing the
// dispatch in cuda_backend.cc. The backend consults this table first, for every node; an op
// found here is handled by its entry alone.
//
// Adding a family: write src/backends/cuda/<family>.cc with
//   void registerXxxOps(CudaOpTable& t) { t.add("MyOp", {...}); }
// declare it below and call it from registerAllCudaOps() in cuda_op_table.cc (one line).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cudnn_conv.h"

namespace ramjet::cuda {

// Library handles shared by every kernel of one backend (one per device).
struct Handles {
  std::unique_ptr<CudnnHandle> cudnn;
  std::unique_ptr<CublasLtHandle> lt;
  std::mutex cudnn_mu;  // one cuDNN handle: its stream is set per run
  int cc_major = 0, cc_minor = 0;
  // Per-backend caches of op handlers (e.g. compiled cuDNN graphs), by name; dropped with the
  // handles they were built against.
  std::mutex caches_mu;
  std::map<std::string, std::shared_ptr<void>> caches;
};

struct CudaOpHandler {
  // Required: Ok when the node can run (input/output types, attributes); kUnsupported otherwise.
  std::function<Status(const Node&, const std::vector<TensorType>& in, const std::vector<TensorType>& out)> supports;
  // Optional: candidate tactics, best guess first (default: one tactic "cuda.<op>" id 0).
  std::function<std::vector<backend::Tactic>(const Node&, const std::vector<TensorType>& in,
                                             const std::vector<TensorType>& out, Handles& h)>
      tactics;
  // Required: the kernel for a chosen tactic. `node` outlives the kernel.
  std::function<Result<std::unique_ptr<backend::Kernel>>(const Node&, const backend::Tactic&, Handles& h)> create;
  // Optional: input i is read only through TensorRef::host.
  std::function<bool(const Node&, size_t i)> reads_on_host;
};

class CudaOpTable {
 public:
  void add(const std::string& op_type, CudaOpHandler h) { ops_[op_type] = std::move(h); }
  const CudaOpHandler* find(const std::string& op_type) const {
    auto it = ops_.find(op_type);
    return it == ops_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, CudaOpHandler> ops_;
};

// The table with every registered family (built once, thread-safe).
const CudaOpTable& cudaOpTable();

// One function per family file; declare it here and call it in cuda_op_table.cc.
void registerInt8Ops(CudaOpTable& t);  // int8_ops.cc: Int8Quantize/Dequantize, QConv, QGemm
void registerFusedConvOps(CudaOpTable& t);  // cudnn_fused_conv.cc: FusedConv, PoolNhwc
void registerTransformerOps(CudaOpTable& t);  // transformer_ops.cc: Attention, MultiHeadAttention, FusedGemm, FusedElementwise, LayerNormalization
void registerMoreOps(CudaOpTable& t);  // more_ops.cc: the long tail of ONNX ops

}  // namespace ramjet::cuda
