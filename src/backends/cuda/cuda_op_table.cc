#include "backends/cuda/cuda_op_table.h"

namespace ramjet::cuda {

const CudaOpTable& cudaOpTable() {
  static const CudaOpTable table = [] {
    CudaOpTable t;
    // One line per family file (declared in cuda_op_table.h). Later lines override earlier ones.
    registerMoreOps(t);
    registerTransformerOps(t);
    registerFusedConvOps(t);
    registerInt8Ops(t);
    return t;
  }();
  return table;
}

}  // namespace ramjet::cuda
