// Probe (issue #6, session 8): which cuDNN 9 graph forms run an int8 NHWC convolution with the
// INT8 epilogue (rescale, bias, activation, requantize), how fast, and what runtime compilation
// and dynamic-shape kernel caches cost. The figures in docs/PERFORMANCE.md "Session 8" (Probe)
// came from this program. Not part of the build; on a machine with cuDNN 9 and the PyPI
// nvidia-cudnn-frontend headers:
//   FE=$(python3 -c "import sysconfig;print(sysconfig.get_paths()['purelib'])")/include
//   g++ -std=c++20 -O1 -I/usr/local/cuda/include -I$FE bench/cudnn_int8_probe.cc -o probe
//       -L/usr/local/cuda/lib64 -lcudnn -lcudart -ldl -lnvrtc       (one command line)
//   ./probe 2>/dev/null      (stderr: cuDNN's per-candidate "Deselecting" lines)
#include <cudnn.h>
#include <cudnn_frontend.h>
#include <cuda_runtime.h>
#include <chrono>
#include <cstdio>
#include <vector>
namespace fe = cudnn_frontend;
using TA = fe::graph::Tensor_attributes;
static std::vector<int64_t> nhwc(const std::vector<int64_t>& d) { return {d[1]*d[2]*d[3], 1, d[3]*d[1], d[1]}; }
struct Shape { int64_t n,c,h,w,k,r,s,st,pad; };
double now(){ return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::shared_ptr<fe::KernelCache> g_cache;
bool g_dyn=false;
void probe(cudnnHandle_t h, const Shape& S, int variant, bool rtc, fe::DataType_t io) {
  const bool i8 = io == fe::DataType_t::INT8;
  fe::graph::Graph g;
  if (g_dyn) { g.set_dynamic_shape_enabled(true); if (g_cache) g.set_kernel_cache(g_cache); }
  g.set_io_data_type(io).set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(fe::DataType_t::FLOAT);
  int64_t oh=(S.h+2*S.pad-S.r)/S.st+1, ow=(S.w+2*S.pad-S.s)/S.st+1;
  std::vector<int64_t> xd={S.n,S.c,S.h,S.w}, wd={S.k,S.c,S.r,S.s}, yd={S.n,S.k,oh,ow}, cd={1,S.k,1,1};
  auto x=g.tensor(TA().set_name("x").set_dim(xd).set_stride(nhwc(xd)).set_data_type(io));
  auto w=g.tensor(TA().set_name("w").set_dim(wd).set_stride(nhwc(wd)).set_data_type(io));
  auto conv=g.conv_fprop(x,w,fe::graph::Conv_fprop_attributes().set_padding({S.pad,S.pad}).set_stride({S.st,S.st}).set_dilation({1,1})
     .set_compute_data_type(i8?fe::DataType_t::INT32:fe::DataType_t::FLOAT));
  auto pw=[](fe::PointwiseMode_t m){return fe::graph::Pointwise_attributes().set_mode(m).set_compute_data_type(fe::DataType_t::FLOAT);};
  std::shared_ptr<TA> y=conv, mul, bias;
  fe::DataType_t yt = io;
  if (variant == 0) { // conv only, int32/float out
    yt = i8 ? fe::DataType_t::INT32 : io;
  } else if (variant == 1) { // conv only, float out
    yt = fe::DataType_t::FLOAT;
  } else { // full epilogue -> io
    conv->set_data_type(fe::DataType_t::FLOAT);
    mul=g.tensor(TA().set_name("mul").set_dim(cd).set_stride(nhwc(cd)).set_data_type(fe::DataType_t::FLOAT));
    bias=g.tensor(TA().set_name("bias").set_dim(cd).set_stride(nhwc(cd)).set_data_type(fe::DataType_t::FLOAT));
    y=g.pointwise(conv,mul,pw(fe::PointwiseMode_t::MUL));
    y=g.pointwise(y,bias,pw(fe::PointwiseMode_t::ADD));
    y=g.pointwise(y,pw(fe::PointwiseMode_t::RELU_FWD));
    if (variant==3) y=g.pointwise(y,g.tensor(0.05f, fe::graph::ScalarType::COMPILE_TIME_CONST),pw(fe::PointwiseMode_t::DIV));
    if (variant==4) y=g.pointwise(y,mul,pw(fe::PointwiseMode_t::MUL));
  }
  y->set_output(true).set_data_type(yt).set_dim(yd).set_stride(nhwc(yd));
  double t0=now();
  auto e=g.validate(); if(e.is_bad()){printf("  v%d rtc%d: validate: %s\n",variant,rtc,e.get_message().c_str());return;}
  e=g.build_operation_graph(h); if(e.is_bad()){printf("  v%d rtc%d: opgraph: %s\n",variant,rtc,e.get_message().c_str());return;}
  e=g.create_execution_plans({fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}); if(e.is_bad()){printf("  v%d rtc%d: heur: %s\n",variant,rtc,e.get_message().c_str());return;}
  if(!rtc) g.deselect_behavior_notes({fe::BehaviorNote_t::RUNTIME_COMPILATION});
  e=g.check_support(); if(e.is_bad()){printf("  v%d rtc%d: support: %s\n",variant,rtc,e.get_message().c_str());return;}
  int64_t cnt=g.get_execution_plan_count();
  e=g.build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE); if(e.is_bad()){printf("  v%d rtc%d: build: %s (%lld cands)\n",variant,rtc,e.get_message().c_str(),(long long)cnt);return;}
  double tb=now()-t0;
  int64_t ws=0; if(g.get_workspace_size(ws).is_bad()) ws=0;
  size_t esz = i8?1:2;
  void *px,*pw_,*py,*pm,*pb,*pws;
  cudaMalloc(&px,S.n*S.c*S.h*S.w*esz); cudaMalloc(&pw_,S.k*S.c*S.r*S.s*esz); cudaMalloc(&py,S.n*S.k*oh*ow*4); cudaMalloc(&pm,S.k*4); cudaMalloc(&pb,S.k*4); cudaMalloc(&pws,ws+1);
  cudaMemset(px,1,S.n*S.c*S.h*S.w*esz); cudaMemset(pw_,1,S.k*S.c*S.r*S.s*esz); cudaMemset(pm,0,S.k*4); cudaMemset(pb,0,S.k*4);
  std::unordered_map<std::shared_ptr<TA>,void*> pack={{x,px},{w,pw_},{y,py}};
  if(mul){pack[mul]=pm;pack[bias]=pb;}
  for(int i=0;i<3;i++) e=g.execute(h,pack,pws);  // warm-up
  cudaEvent_t a,b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a); for(int i=0;i<20;i++) e=g.execute(h,pack,pws); cudaEventRecord(b); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms,a,b);
  printf("  v%d rtc%d %s: %lld candidates, build %.2f s, ws %lld, run %.4f ms  %s\n",variant,rtc,i8?"int8":"fp16",(long long)cnt,tb,(long long)ws,ms/20,e.is_bad()?e.get_message().c_str():"");
  cudaFree(px);cudaFree(pw_);cudaFree(py);cudaFree(pm);cudaFree(pb);cudaFree(pws);
}
int main(int argc, char** argv) {
  cudnnHandle_t h;
  cudnnCreate(&h);
  printf("cudnn %zu\n", cudnnGetVersion());
  // Study 1: which graph forms have engines, with and without runtime compilation (rtc), and
  // their speed. Variants: 0 conv only (int32 out), 1 conv only (float out), 2 conv + x mul[k]
  // + bias[k] + ReLU -> io type, 3 = 2 + a compile-time-constant divide, 4 = 2 + x tensor.
  Shape shapes[] = {{256, 64, 56, 56, 64, 3, 3, 1, 1}, {256, 64, 56, 56, 256, 1, 1, 1, 0},
                    {1, 64, 56, 56, 64, 3, 3, 1, 1}, {256, 512, 7, 7, 512, 3, 3, 1, 1}};
  for (auto& S : shapes) {
    printf("shape n%lld c%lld %lldx%lld k%lld %lldx%lld s%lld\n", (long long)S.n, (long long)S.c, (long long)S.h,
           (long long)S.w, (long long)S.k, (long long)S.r, (long long)S.s, (long long)S.st);
    probe(h, S, 2, false, fe::DataType_t::HALF);
    for (int v : {0, 1, 2, 3, 4})
      for (bool rtc : {false, true}) probe(h, S, v, rtc, fe::DataType_t::INT8);
  }
  // Study 2: dynamic shapes + a shared kernel cache (one compile for all batch sizes) vs static.
  for (int mode = 0; mode < 2; ++mode) {
    g_dyn = mode == 1;
    g_cache = g_dyn ? std::make_shared<fe::KernelCache>() : nullptr;
    printf("== %s\n", g_dyn ? "dynamic shapes + kernel cache" : "static");
    for (int64_t n : {1, 2, 3, 8, 32, 64, 256}) {
      Shape S{n, 64, 56, 56, 64, 3, 3, 1, 1};
      printf("n=%lld", (long long)n);
      probe(h, S, 4, true, fe::DataType_t::INT8);
    }
  }
  (void)argc, (void)argv;
}
