// Shared steps of the project's cuDNN graph-API kernels (cudnn_fused_conv.cc, int8_cudnn_conv.cc):
// tensor strides for channels-first/-last layouts, finalizing a graph into engine candidates, and
// building one candidate's plan. Include only where cudnn_frontend.h is available.
#pragma once

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "ramjet/status.h"

namespace ramjet::cuda {

// Strides of logical [N, C, D...] dims stored channels-first or channels-last.
inline std::vector<int64_t> cudnnStrides(const std::vector<int64_t>& d, bool channels_last) {
  const size_t r = d.size();
  std::vector<int64_t> s(r, 1);
  if (!channels_last) {
    for (int i = static_cast<int>(r) - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
    return s;
  }
  int64_t acc = d[1];
  s[1] = 1;
  for (int i = static_cast<int>(r) - 1; i >= 2; --i) {
    s[i] = acc;
    acc *= d[i];
  }
  s[0] = acc;
  return s;
}

// validate -> operation graph -> heuristics (A, then FALLBACK) -> support check; the number of
// engine candidates in *plan_count. Runtime-compiled (NVRTC) engines are dropped unless
// `runtime_compilation`. kUnsupported naming `who` and the failing step otherwise.
inline Status finalizeCudnnGraph(cudnn_frontend::graph::Graph& g, cudnnHandle_t handle, const std::string& who,
                                 bool runtime_compilation, int64_t* plan_count) {
  namespace fe = cudnn_frontend;
  auto chk = [&](fe::error_t e, const char* what) -> Status {
    if (e.is_bad()) return makeError(StatusCode::kUnsupported, who, ": cuDNN graph ", what, ": ", e.get_message());
    return Status::Ok();
  };
  RJ_RETURN_IF_ERROR(chk(g.validate(), "validate"));
  RJ_RETURN_IF_ERROR(chk(g.build_operation_graph(handle), "operation graph"));
  RJ_RETURN_IF_ERROR(chk(g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}), "heuristics"));
  if (!runtime_compilation) g.deselect_behavior_notes({fe::BehaviorNote_t::RUNTIME_COMPILATION});
  RJ_RETURN_IF_ERROR(chk(g.check_support(), "support"));
  *plan_count = g.get_execution_plan_count();
  if (*plan_count <= 0) return makeError(StatusCode::kUnsupported, who, ": cuDNN graph: no engine");
  return Status::Ok();
}

// Builds candidate *index (falling back to the heuristics' first when that one fails; *index is
// updated) and returns its workspace size; kUnsupported when neither builds.
inline Result<size_t> buildCudnnPlan(cudnn_frontend::graph::Graph& g, int64_t* index, const std::string& who) {
  namespace fe = cudnn_frontend;
  fe::error_t st;
  try {
    st = g.build_plan_at_index(*index);
    if (st.is_bad() && *index != 0) st = g.build_plan_at_index(*index = 0);
  } catch (const std::exception& ex) {
    st = fe::error_t{fe::error_code_t::GRAPH_EXECUTION_PLAN_CREATION_FAILED, ex.what()};
  }
  int64_t ws = 0;
  if (st.is_bad() || g.get_workspace_size_plan_at_index(*index, ws).is_bad() || ws < 0)
    return makeError(StatusCode::kUnsupported, who, ": cuDNN plan ", *index, ": ", st.get_message());
  return static_cast<size_t>(ws);
}

}  // namespace ramjet::cuda
