// `ramjet inspect model.onnx`: the imported graph, shapes inferred, as readable text.
// `ramjet inspect model.plan [--json]`: the plan's build info and every kernel in execution
// order with the ONNX nodes it absorbed (fused_from), placement, tactic (and its build-time
// timing), precision, input/output shapes and arena offsets. A plan is recognised by its magic
// bytes, not its file name. Reading a plan needs no GPU (nothing is loaded on a device).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "backends/backend.h"
#include "commands.h"
#include "plan/plan_format.h"
#include "ramjet/graph.h"

namespace ramjet::cli {
namespace {

std::string jsonStr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o + "\"";
}

std::string precisionOf(const Node& n) {
  // The element type the kernel computes in: its first float output (else its first output).
  for (const Value* v : n.outputs)
    if (v && isFloatType(v->type.dtype)) return dataTypeName(v->type.dtype);
  for (const Value* v : n.outputs)
    if (v) return dataTypeName(v->type.dtype);
  return "-";
}

int inspectPlan(const std::string& path, const std::vector<uint8_t>& bytes, bool json, bool all) {
  std::shared_ptr<void> keep(std::aligned_alloc(64, std::max<size_t>(64, (bytes.size() + 63) / 64 * 64)),
                             [](void* p) { std::free(p); });
  if (!keep) {
    std::cerr << "error: out of memory reading '" << path << "'\n";
    return 1;
  }
  std::memcpy(keep.get(), bytes.data(), bytes.size());
  auto pc = plan::decode(static_cast<const uint8_t*>(keep.get()), bytes.size(), keep, "plan '" + path + "'");
  if (!pc.ok()) {
    std::cerr << "error: " << pc.status().message() << "\n";
    return 1;
  }
  const Graph& g = *pc->graph;
  const plan::BuildMeta& m = pc->meta;
  std::map<const Value*, size_t> vindex;
  for (size_t i = 0; i < g.values().size(); ++i) vindex[g.values()[i].get()] = i;
  auto offsetOf = [&](const Value* v) -> int64_t {
    auto it = vindex.find(v);
    if (it == vindex.end() || it->second >= pc->memory.value_offsets.size()) return -1;
    return pc->memory.value_offsets[it->second];
  };
  const MemoryReport& mem = pc->memory.report;
  std::ostringstream js;
  size_t kernels = 0, fused = 0;
  if (json) {
    js << "{\"plan\":" << jsonStr(path) << ",\"format_version\":" << plan::kFormatVersion
       << ",\"ramjet_version\":" << jsonStr(m.ramjet_version) << ",\"device\":" << jsonStr(deviceKindName(m.device))
       << ",\"gpu\":" << jsonStr(m.device_info.name) << ",\"sm\":" << m.device_info.cc_major * 10 + m.device_info.cc_minor
       << ",\"cuda_runtime\":" << m.device_info.cuda_runtime_version << ",\"cudnn\":" << m.device_info.cudnn_version
       << ",\"cublas\":" << m.device_info.cublas_version << ",\"precision\":" << jsonStr(precisionName(m.precision))
       << ",\"weights_bytes\":" << pc->weight_bytes << ",\"file_bytes\":" << pc->file_bytes
       << ",\"arena_bytes\":" << mem.arena_bytes << ",\"peak_live_bytes\":" << mem.peak_live_bytes
       << ",\"workspace_bytes\":" << mem.workspace_bytes << ",\"kernels\":[";
  } else {
    std::cout << "plan " << path << ": format " << plan::kFormatVersion << ", ramjet " << m.ramjet_version << ", "
              << deviceKindName(m.device);
    if (m.device == DeviceKind::kCuda)
      std::cout << " (" << m.device_info.name << ", sm_" << m.device_info.cc_major << m.device_info.cc_minor
                << ", CUDA runtime " << m.device_info.cuda_runtime_version << ", cuDNN " << m.device_info.cudnn_version
                << ", cuBLASLt " << m.device_info.cublas_version << ")";
    std::cout << ", " << precisionName(m.precision) << (m.allow_cpu_fallback ? ", CPU fallback allowed" : "") << "\n";
    for (const auto& p : m.profiles)
      std::cout << "profile " << p.input << ": min " << dimsToString(p.min) << " opt " << dimsToString(p.opt) << " max "
                << dimsToString(p.max) << "\n";
    std::cout << "weights " << pc->weight_bytes << " bytes, file " << pc->file_bytes << " bytes; arena "
              << mem.arena_bytes << " bytes (peak live " << mem.peak_live_bytes << ", sum " << mem.sum_tensor_bytes
              << "), workspace " << mem.workspace_bytes << " bytes (one buffer shared by all kernels)\n";
    std::cout << "  #    placement     op                    precision tactic                   build_ms  node [fused from]\n";
  }
  bool first = true;
  for (size_t pos = 0; pos < pc->exec.size(); ++pos) {
    const plan::NodeExec& ex = pc->exec[pos];
    if (ex.node_index >= g.nodes().size()) continue;
    const Node& n = *g.nodes()[ex.node_index];
    bool runs = ex.placement == backend::Placement::kDevice || ex.placement == backend::Placement::kCpuFallback;
    if (runs) ++kernels;
    std::vector<std::string> from;
    auto f = n.attrs.find("fused_from");
    if (f != n.attrs.end()) from = f->second.strings;
    if (!from.empty()) ++fused;
    if (!runs && !all && !json) continue;
    std::string tactic = ex.tactic.name + (runs ? "#" + std::to_string(ex.tactic.id) : "");
    if (json) {
      js << (first ? "" : ",") << "{\"position\":" << pos << ",\"node\":" << jsonStr(n.name) << ",\"op\":"
         << jsonStr(n.op_type) << ",\"placement\":" << jsonStr(backend::placementName(ex.placement))
         << ",\"tactic\":" << jsonStr(ex.tactic.name) << ",\"tactic_id\":" << ex.tactic.id
         << ",\"build_time_ms\":" << ex.time_ms << ",\"precision\":" << jsonStr(precisionOf(n)) << ",\"fused_from\":[";
      for (size_t i = 0; i < from.size(); ++i) js << (i ? "," : "") << jsonStr(from[i]);
      js << "],\"inputs\":[";
      bool fi = true;
      for (const Value* v : n.inputs) {
        if (!v) continue;
        js << (fi ? "" : ",") << "{\"name\":" << jsonStr(v->name) << ",\"type\":" << jsonStr(v->type.toString())
           << ",\"constant\":" << (v->constant ? "true" : "false") << "}";
        fi = false;
      }
      js << "],\"outputs\":[";
      fi = true;
      for (const Value* v : n.outputs) {
        if (!v) continue;
        js << (fi ? "" : ",") << "{\"name\":" << jsonStr(v->name) << ",\"type\":" << jsonStr(v->type.toString())
           << ",\"arena_offset\":" << offsetOf(v) << "}";
        fi = false;
      }
      js << "]}";
      first = false;
      continue;
    }
    char buf[512];
    char tm[32] = "-";
    if (ex.time_ms >= 0) std::snprintf(tm, sizeof(tm), "%.4f", ex.time_ms);
    std::snprintf(buf, sizeof(buf), "  %-4zu %-13s %-21s %-9s %-24s %8s  %s", pos, backend::placementName(ex.placement),
                  n.op_type.c_str(), precisionOf(n).c_str(), tactic.c_str(), tm, n.name.c_str());
    std::cout << buf;
    if (!from.empty()) {
      std::cout << " [";
      for (size_t i = 0; i < from.size(); ++i) std::cout << (i ? ", " : "") << from[i];
      std::cout << "]";
    }
    std::cout << "\n       in:";
    for (const Value* v : n.inputs)
      if (v) std::cout << " " << v->name << (v->constant ? "(const)" : "") << ":" << v->type.toString();
    std::cout << "\n       out:";
    for (const Value* v : n.outputs) {
      if (!v) continue;
      std::cout << " " << v->name << ":" << v->type.toString();
      int64_t off = offsetOf(v);
      if (off >= 0) std::cout << "@arena+" << off;
      else if (v->is_graph_output) std::cout << "@bound-output";
    }
    std::cout << "\n";
  }
  if (json) {
    js << "],\"num_kernels\":" << kernels << ",\"num_fused\":" << fused << "}";
    std::cout << js.str() << "\n";
  } else {
    std::cout << kernels << " kernels (" << fused << " fused from several ONNX nodes), " << pc->exec.size()
              << " nodes in the plan" << (all ? "" : "; --all also lists host shape nodes and aliases") << "\n";
  }
  return 0;
}

}  // namespace

void addInspectCommand(CLI::App& app, Action* action) {
  auto* cmd = app.add_subcommand(
      "inspect", "Print a model's graph (ONNX) or a plan's kernels: fused origins, tactics, precision, shapes");
  auto model = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto all = std::make_shared<bool>(false);
  cmd->add_option("model", *model, "ONNX model or plan file")->required();
  cmd->add_flag("--json", *json, "plans: print as JSON");
  cmd->add_flag("--all", *all, "plans: also list host shape nodes and aliases (nothing runs for them)");
  cmd->callback([=] {
    *action = [=] {
      std::ifstream f(*model, std::ios::binary);
      if (!f) {
        std::cerr << "error: cannot open '" << *model << "'\n";
        return 1;
      }
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (bytes.size() >= sizeof(plan::kMagic) && std::memcmp(bytes.data(), plan::kMagic, sizeof(plan::kMagic)) == 0)
        return inspectPlan(*model, bytes, *json, *all);
      if (plan::isMultiProfile(bytes.data(), bytes.size())) {
        // One plan per optimization profile: each inspected in turn.
        auto parts = plan::decodeMultiProfile(bytes.data(), bytes.size(), "plan '" + *model + "'");
        if (!parts.ok()) {
          std::cerr << "error: " << parts.status().message() << "\n";
          return 1;
        }
        if (*json) std::cout << "{\"optimization_profiles\":[";
        else std::cout << "multi-profile plan " << *model << ": " << parts->size() << " optimization profiles\n";
        for (size_t i = 0; i < parts->size(); ++i) {
          std::vector<uint8_t> sub(bytes.begin() + (*parts)[i].first, bytes.begin() + (*parts)[i].first + (*parts)[i].second);
          if (*json) std::cout << (i ? "," : "");
          else std::cout << "\n== optimization profile " << i << "\n";
          int rc = inspectPlan(*model + " (optimization profile " + std::to_string(i) + ")", sub, *json, *all);
          if (rc != 0) return rc;
        }
        if (*json) std::cout << "]}\n";
        return 0;
      }
      if (*json) {
        std::cerr << "error: --json is for plan files; '" << *model << "' is not a plan\n";
        return 1;
      }
      auto g = importOnnx(*model);
      if (!g.ok()) {
        std::cerr << "error: " << g.status().message() << "\n";
        return 1;
      }
      std::cout << g->dump();
      return 0;
    };
  });
}

}  // namespace ramjet::cli
