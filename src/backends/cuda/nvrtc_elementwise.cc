#include "backends/cuda/nvrtc_elementwise.h"

#include <cuda_runtime.h>
#include <nvrtc.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include <unistd.h>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_ops.h"

namespace ramjet::cuda {
namespace {

constexpr int kMaxIn = 8;

// Kernel arguments (one struct, passed by value).
struct EwArgs {
  const void* in[kMaxIn];
  void* out;
  long long n;
  long long dims[kMaxRank];
  long long strides[kMaxIn][kMaxRank];
};

const char* kPrelude = R"(
typedef unsigned short rj_half;
__device__ __forceinline__ float rj_h2f(rj_half h) { float f; asm("{cvt.f32.f16 %0, %1;}" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ rj_half rj_f2h(float f) { rj_half h; asm("{cvt.rn.f16.f32 %0, %1;}" : "=h"(h) : "f"(f)); return h; }
struct EwArgs {
  const void* in[8];
  void* out;
  long long n;
  long long dims[8];
  long long strides[8][8];
};
)";

std::string floatLiteral(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  char buf[48];
  std::snprintf(buf, sizeof buf, "__int_as_float(0x%08x)", bits);
  return buf;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string cacheDir() {
  const char* off = std::getenv("RAMJET_NVRTC_CACHE");
  if (off && std::string(off) == "0") return "";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/ramjet/nvrtc";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/ramjet/nvrtc";
  return "";
}

Result<std::string> compileCubin(const std::string& src, int major, int minor) {
  nvrtcProgram prog = nullptr;
  nvrtcResult r = nvrtcCreateProgram(&prog, src.c_str(), "ramjet_fused_elementwise.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return makeError(StatusCode::kDeviceError, "nvrtcCreateProgram: ", nvrtcGetErrorString(r));
  const std::string arch = "--gpu-architecture=sm_" + std::to_string(major * 10 + minor);
  const char* opts[] = {arch.c_str(), "--std=c++17", "-default-device"};
  r = nvrtcCompileProgram(prog, 3, opts);
  if (r != NVRTC_SUCCESS) {
    size_t n = 0;
    nvrtcGetProgramLogSize(prog, &n);
    std::string log(n, '\0');
    if (n) nvrtcGetProgramLog(prog, log.data());
    nvrtcDestroyProgram(&prog);
    return makeError(StatusCode::kDeviceError, "nvrtcCompileProgram: ", nvrtcGetErrorString(r), ": ", log);
  }
  size_t n = 0;
  r = nvrtcGetCUBINSize(prog, &n);
  std::string cubin(n, '\0');
  if (r == NVRTC_SUCCESS) r = nvrtcGetCUBIN(prog, cubin.data());
  nvrtcDestroyProgram(&prog);
  if (r != NVRTC_SUCCESS || n == 0) return makeError(StatusCode::kDeviceError, "nvrtcGetCUBIN: ", nvrtcGetErrorString(r));
  return cubin;
}

std::mutex g_mu;
std::map<std::string, std::unique_ptr<EwCompiledKernel>>& cache() {
  static auto* m = new std::map<std::string, std::unique_ptr<EwCompiledKernel>>();
  return *m;
}

}  // namespace

std::vector<EwOperandKind> ewOperandKinds(const std::vector<std::vector<int64_t>>& in_dims,
                                          const std::vector<int64_t>& out_dims) {
  std::vector<EwOperandKind> k;
  for (const auto& d : in_dims) {
    const int64_t n = numElements(d);
    // Leading 1s do not change the layout: [1,N] vs [N] is dense.
    std::vector<int64_t> a = d, b = out_dims;
    while (!a.empty() && a.front() == 1) a.erase(a.begin());
    while (!b.empty() && b.front() == 1) b.erase(b.begin());
    k.push_back(a == b ? EwOperandKind::kDense : n == 1 ? EwOperandKind::kScalar : EwOperandKind::kStrided);
  }
  return k;
}

std::string ewGenerateSource(const EwKernelKey& key) {
  const bool half = key.dtype == DataType::kFloat16;
  const auto& p = key.program;
  std::ostringstream os;
  os << "// ramjet FusedElementwise: " << p.toString() << " (" << dataTypeName(key.dtype) << ")\n";
  os << kPrelude;
  // RJ_EW_QUAL is not a host macro, so it survives stringification and is defined here.
  os << "#define RJ_EW_QUAL __device__ __forceinline__\n" << RJ_EW_STR(RJ_EW_APPLY_BODY(RJ_EW_QUAL)) << "\n";
  const char* T = half ? "rj_half" : "float";
  os << "extern \"C\" __global__ void rj_fused_ew(const EwArgs a) {\n";
  os << "  for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < a.n;"
        " e += (long long)blockDim.x * gridDim.x) {\n";
  for (int i = 0; i < p.num_inputs; ++i) {
    const EwOperandKind k = key.kinds[static_cast<size_t>(i)];
    std::string idx;
    if (k == EwOperandKind::kDense) {
      idx = "e";
    } else if (k == EwOperandKind::kScalar) {
      idx = "0";
    } else {
      os << "    long long o" << i << " = 0;\n    { long long rem = e;\n";
      os << "      #pragma unroll\n      for (int d = " << key.rank - 1 << "; d >= 0; --d) {"
         << " long long q = rem / a.dims[d]; o" << i << " += (rem - q * a.dims[d]) * a.strides[" << i
         << "][d]; rem = q; }\n    }\n";
      idx = "o" + std::to_string(i);
    }
    const std::string load = std::string("((const ") + T + "*)a.in[" + std::to_string(i) + "])[" + idx + "]";
    os << "    const float x" << i << " = " << (half ? "rj_h2f(" + load + ")" : load) << ";\n";
  }
  auto operand = [&](int32_t c) {
    if (c < 0) return std::string("0.f");
    return c < p.num_inputs ? "x" + std::to_string(c) : "r" + std::to_string(c - p.num_inputs);
  };
  for (size_t j = 0; j < p.code.size(); ++j) {
    const auto& in = p.code[j];
    os << "    const float r" << j << " = rjEwApply(" << static_cast<int>(in.op) << ", " << operand(in.a) << ", "
       << operand(in.b) << ", " << floatLiteral(in.p0) << ", " << floatLiteral(in.p1) << ");  // "
       << ops::ewOpName(in.op) << "\n";
  }
  const std::string res = "r" + std::to_string(p.code.size() - 1);
  os << "    ((" << T << "*)a.out)[e] = " << (half ? "rj_f2h(" + res + ")" : res) << ";\n  }\n}\n";
  return os.str();
}

Result<const EwCompiledKernel*> EwCompiledKernel::get(const EwKernelKey& key) {
  if (key.dtype != DataType::kFloat32 && key.dtype != DataType::kFloat16)
    return makeError(StatusCode::kUnsupported, "FusedElementwise (NVRTC): element type ", dataTypeName(key.dtype));
  if (key.program.num_inputs > kMaxIn || key.rank > kMaxRank || key.program.code.empty())
    return makeError(StatusCode::kUnsupported, "FusedElementwise (NVRTC): too many inputs or dims");
  int dev = 0;
  RJ_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  RJ_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  const std::string src = ewGenerateSource(key);
  const std::string cache_key = std::to_string(dev) + "\n" + src;
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = cache().find(cache_key);
  if (it != cache().end()) return it->second.get();
  auto k = std::make_unique<EwCompiledKernel>();
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(src)));
  k->source_hash = hash;
  const std::string dir = cacheDir();
  const std::string file =
      dir.empty() ? "" : dir + "/" + hash + "_sm" + std::to_string(prop.major * 10 + prop.minor) + ".cubin";
  std::string cubin;
  if (!file.empty()) {
    // The file holds the source followed by the CUBIN, so a hash collision is detected.
    std::ifstream in(file, std::ios::binary);
    if (in) {
      std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (all.size() > src.size() + 1 && all.compare(0, src.size(), src) == 0 && all[src.size()] == '\0') {
        cubin = all.substr(src.size() + 1);
        k->from_disk_cache = true;
      }
    }
  }
  if (cubin.empty()) {
    RJ_ASSIGN_OR_RETURN(cubin, compileCubin(src, prop.major, prop.minor));
    if (!file.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      const std::string tmp = file + ".tmp" + std::to_string(::getpid());
      std::ofstream out(tmp, std::ios::binary);
      if (out) {
        out.write(src.data(), static_cast<std::streamsize>(src.size()));
        out.put('\0');
        out.write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
        out.close();
        std::filesystem::rename(tmp, file, ec);  // best effort: a cache, not a requirement
      }
    }
  }
  cudaLibrary_t lib = nullptr;
  RJ_CUDA_CHECK(cudaLibraryLoadData(&lib, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  cudaKernel_t kern = nullptr;
  RJ_CUDA_CHECK(cudaLibraryGetKernel(&kern, lib, "rj_fused_ew"));
  k->kernel = reinterpret_cast<void*>(kern);  // the library stays loaded for the process
  const EwCompiledKernel* raw = k.get();
  cache()[cache_key] = std::move(k);
  return raw;
}

Status EwCompiledKernel::launch(const std::vector<const void*>& inputs,
                                const std::vector<std::vector<int64_t>>& in_dims, void* out,
                                const std::vector<int64_t>& out_dims, cudaStream_t stream) const {
  EwArgs a{};
  const int64_t n = numElements(out_dims);
  if (n == 0) return Status::Ok();
  if (inputs.size() > static_cast<size_t>(kMaxIn) || out_dims.size() > static_cast<size_t>(kMaxRank))
    return makeError(StatusCode::kUnsupported, "FusedElementwise: too many inputs or dims");
  for (size_t i = 0; i < inputs.size(); ++i) {
    a.in[i] = inputs[i];
    // Right-aligned broadcast strides (0 on broadcast dims).
    const auto& d = in_dims[i];
    const size_t off = out_dims.size() - d.size();
    long long s = 1;
    for (size_t j = d.size(); j-- > 0;) {
      a.strides[i][off + j] = d[j] == 1 ? 0 : s;
      s *= d[j];
    }
  }
  for (size_t j = 0; j < out_dims.size(); ++j) a.dims[j] = out_dims[j];
  a.out = out;
  a.n = n;
  const long long blocks = std::min<long long>((n + 255) / 256, 65535LL * 8);
  void* params[] = {&a};
  RJ_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(static_cast<unsigned>(blocks)),
                                 dim3(256), params, 0, stream));
  return Status::Ok();
}

}  // namespace ramjet::cuda
