// The CPU backend's fast tactic ("cpu.fast"): float32 kernels for the ops that carry CNN
// inference on a CPU — FusedConv (im2col + the shared packed GEMM + one parallel, vectorized
// bias/residual/activation epilogue), MaxPool, Softmax and nearest Resize — next to the reference kernels
// ("cpu.reference"), which stay the plain-formula oracle. Each is tested against its reference
// (tests/unit/test_cpu_fast.cc) and chosen by the builder like any other tactic.
#pragma once

#include <memory>
#include <vector>

#include "backends/backend.h"

namespace ramjet::backend::cpufast {

// True when `node` with these types has a fast kernel (float32 everywhere, NCHW, 2-D windows).
bool applies(const Node& node, const std::vector<TensorType>& inputs, const std::vector<TensorType>& outputs);
Result<std::unique_ptr<Kernel>> create(const Node& node);

// Vectorizable float helpers (exposed for tests): exp with |rel error| < 3e-7 on [-87, 88],
// 0 below (exp(-inf) = 0), exp(88) above, NaN kept; and the logistic sigmoid built on it.
void expInPlace(float* x, int64_t n);
void sigmoidInPlace(float* x, int64_t n);

}  // namespace ramjet::backend::cpufast
