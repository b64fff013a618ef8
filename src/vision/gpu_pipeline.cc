#include "vision/gpu_pipeline.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "vision/gpu_kernels.h"

namespace ramjet::vision {

namespace {

static_assert(sizeof(gpu::Box) == sizeof(Detection), "gpu::Box mirrors Detection");

size_t align256(size_t v) { return (v + 255) & ~size_t(255); }

gpu::NormParams normParams(const PreprocessOptions& opt) {
  gpu::NormParams n;
  for (int c = 0; c < 3; ++c) {
    n.mul[c] = 1.f / (255.f * opt.std[c]);  // the same expressions as preprocess.cc
    n.add[c] = -opt.mean[c] / opt.std[c];
  }
  n.pad_value = opt.pad_value;
  return n;
}

// Where a frame goes in the input, as preprocess.cc's fill() computes it.
gpu::FrameDesc frameDesc(const Image& img, const PreprocessOptions& opt, const uint8_t* d_data, Letterbox* lb_out) {
  Letterbox lb = computeLetterbox(img.width, img.height, opt);
  gpu::FrameDesc d;
  d.data = d_data;
  d.width = img.width;
  d.height = img.height;
  d.pitch = img.width * 3;
  d.src_c[0] = opt.bgr ? 2 : 0;
  d.src_c[1] = 1;
  d.src_c[2] = opt.bgr ? 0 : 2;
  d.scale_x = lb.scale_x;
  d.scale_y = lb.scale_y;
  d.pad_x = int(lb.pad_x);
  d.pad_y = int(lb.pad_y);
  d.rw = std::min(int(std::lround(img.width * lb.scale_x)), opt.width - d.pad_x);
  d.rh = std::min(int(std::lround(img.height * lb.scale_y)), opt.height - d.pad_y);
  if (lb_out) *lb_out = lb;
  return d;
}

gpu::Placement placementOf(const Letterbox& lb) {
  return {lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y, float(lb.frame_width), float(lb.frame_height)};
}

Status checkPre(const PreprocessOptions& opt) {
  if (opt.width <= 0 || opt.height <= 0 || opt.width > kMaxImageSide || opt.height > kMaxImageSide)
    return makeError(StatusCode::kInvalidArgument, "gpu preprocess: network input size ", opt.width, "x", opt.height,
                     " is outside 1..", kMaxImageSide);
  for (int c = 0; c < 3; ++c)
    if (!(opt.std[c] != 0.f) || !std::isfinite(opt.std[c]) || !std::isfinite(opt.mean[c]))
      return makeError(StatusCode::kInvalidArgument, "gpu preprocess: std must be finite and non-zero, mean finite");
  return Status::Ok();
}

Result<gpu::RawFormat> rawFormat(YoloFormat f) {
  switch (f) {
    case YoloFormat::kV5: return gpu::RawFormat::kV5;
    case YoloFormat::kV8: return gpu::RawFormat::kV8;
    case YoloFormat::kE2E: return gpu::RawFormat::kE2E;
    default: break;
  }
  return makeError(StatusCode::kInvalidArgument, "gpu decode: the output format must be known (v5, v8 or e2e)");
}

std::vector<uint8_t> wantedFlags(const std::vector<int>& classes) {
  std::vector<uint8_t> w;
  for (int c : classes) {
    if (c < 0) continue;
    if (size_t(c) >= w.size()) w.resize(c + 1, 0);
    w[c] = 1;
  }
  if (!classes.empty() && w.empty()) w.push_back(0);  // only negative ids: nothing wanted
  return w;
}

// A device buffer that grows; freed on destruction.
struct DevBuf {
  void* p = nullptr;
  size_t cap = 0;
  Status reserve(size_t bytes) {
    if (bytes <= cap) return Status::Ok();
    if (p) cudaFree(p);
    p = nullptr;
    cap = 0;
    RJ_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 256)));
    cap = bytes;
    return Status::Ok();
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

struct HostBuf {  // pinned
  void* p = nullptr;
  size_t cap = 0;
  Status reserve(size_t bytes) {
    if (bytes <= cap) return Status::Ok();
    if (p) cudaFreeHost(p);
    p = nullptr;
    cap = 0;
    RJ_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 256)));
    cap = bytes;
    return Status::Ok();
  }
  ~HostBuf() {
    if (p) cudaFreeHost(p);
  }
};

// Post-processing buffers for one PostParams shape.
struct PostState {
  DevBuf scratch, out, count, wanted, place;
  HostBuf h_out, h_count;
  Status prepare(const gpu::PostParams& p, int max_n) {
    RJ_RETURN_IF_ERROR(scratch.reserve(gpu::postprocessScratchBytes(p)));
    RJ_RETURN_IF_ERROR(out.reserve(size_t(max_n) * p.max_det * sizeof(gpu::Box)));
    RJ_RETURN_IF_ERROR(count.reserve(size_t(max_n) * sizeof(int)));
    RJ_RETURN_IF_ERROR(place.reserve(size_t(max_n) * sizeof(gpu::Placement)));
    RJ_RETURN_IF_ERROR(h_out.reserve(size_t(max_n) * p.max_det * sizeof(gpu::Box)));
    RJ_RETURN_IF_ERROR(h_count.reserve(size_t(max_n) * sizeof(int)));
    return Status::Ok();
  }
  gpu::PostBuffers buffers() const {
    gpu::PostBuffers b;
    b.scratch = scratch.p;
    b.scratch_bytes = scratch.cap;
    b.d_out = static_cast<gpu::Box*>(out.p);
    b.d_count = static_cast<int*>(count.p);
    return b;
  }
  // After the stream finished: per-image lists from the pinned copies.
  std::vector<std::vector<Detection>> results(int n, int max_det) const {
    std::vector<std::vector<Detection>> r(n);
    const int* cnt = static_cast<const int*>(h_count.p);
    const Detection* boxes = static_cast<const Detection*>(h_out.p);
    for (int i = 0; i < n; ++i) r[i].assign(boxes + size_t(i) * max_det, boxes + size_t(i) * max_det + cnt[i]);
    return r;
  }
  Status enqueueCopyBack(int n, int max_det, cudaStream_t s) {
    RJ_CUDA_CHECK(cudaMemcpyAsync(h_count.p, count.p, size_t(n) * sizeof(int), cudaMemcpyDeviceToHost, s));
    RJ_CUDA_CHECK(cudaMemcpyAsync(h_out.p, out.p, size_t(n) * max_det * sizeof(gpu::Box), cudaMemcpyDeviceToHost, s));
    return Status::Ok();
  }
};

gpu::PostParams postParams(gpu::RawFormat f, const std::vector<int64_t>& dims, bool fp16, const DecodeOptions& d,
                           const NmsOptions& nms) {
  gpu::PostParams p;
  p.format = f;
  p.n = int(dims[0]);
  p.d1 = int(dims[1]);
  p.d2 = int(dims[2]);
  p.fp16 = fp16;
  p.conf = d.conf_threshold;
  p.max_candidates = d.max_candidates;
  p.iou = nms.iou_threshold;
  p.agnostic = nms.agnostic;
  int cand = gpu::candidatesPerImage(p);
  p.max_det = nms.max_detections > 0 ? std::min(nms.max_detections, std::max(cand, 1)) : std::max(cand, 1);
  return p;
}

Status checkOutputDims(const std::vector<int64_t>& d, const std::string& what) {
  if (d.size() != 3 || d[0] < 1 || d[1] < 1 || d[2] < 1 || d[1] * d[2] >= (int64_t(1) << 31))
    return makeError(StatusCode::kInvalidModel, what, ": output dims are not a detector's [N, a, b]");
  return Status::Ok();
}

double elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  return ms;
}

class GpuPipeline final : public DevicePipeline {
 public:
  ~GpuPipeline() override {
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& e : ev_)
      if (e) cudaEventDestroy(e);
    if (d_input_) cfg_.engine->release(d_input_);
    if (d_output_) cfg_.engine->release(d_output_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "gpu"; }

  Status init(const DevicePipelineConfig& cfg) {
    cfg_ = cfg;
    RJ_RETURN_IF_ERROR(checkPre(cfg.pre));
    RJ_ASSIGN_OR_RETURN(fmt_, rawFormat(cfg.format));
    const Engine& e = *cfg.engine;
    DataType in_t = DataType::kUndefined, out_t = DataType::kUndefined;
    for (const auto& t : e.inputs())
      if (t.name == cfg.input_name) in_t = t.dtype;
    for (const auto& t : e.outputs())
      if (t.name == cfg.output_name) out_t = t.dtype;
    if ((in_t != DataType::kFloat32 && in_t != DataType::kFloat16) ||
        (out_t != DataType::kFloat32 && out_t != DataType::kFloat16))
      return makeError(StatusCode::kInvalidModel, "gpu pipeline: input '", cfg.input_name, "' and output '",
                       cfg.output_name, "' must be float32 or float16");
    in_fp16_ = in_t == DataType::kFloat16;
    out_fp16_ = out_t == DataType::kFloat16;
    cfg_.pre.fp16 = in_fp16_;
    norm_ = normParams(cfg_.pre);
    RJ_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    for (auto& ev : ev_) RJ_CUDA_CHECK(cudaEventCreate(&ev));
    // Buffers for the largest batch.
    const int B = cfg.max_batch;
    RJ_RETURN_IF_ERROR(setBatch(B));
    const size_t in_bytes = size_t(B) * 3 * cfg.pre.width * cfg.pre.height * (in_fp16_ ? 2 : 4);
    RJ_ASSIGN_OR_RETURN(d_input_, cfg_.engine->allocate(in_bytes));
    RJ_ASSIGN_OR_RETURN(auto od, cfg.ctx->tensorShape(cfg.output_name));
    RJ_RETURN_IF_ERROR(checkOutputDims(od, "output '" + cfg.output_name + "'"));
    out_elems_per_image_ = size_t(od[1]) * od[2];
    RJ_ASSIGN_OR_RETURN(d_output_, cfg_.engine->allocate(size_t(B) * out_elems_per_image_ * (out_fp16_ ? 2 : 4)));
    RJ_RETURN_IF_ERROR(cfg.ctx->setTensorAddress(cfg.input_name, d_input_));
    RJ_RETURN_IF_ERROR(cfg.ctx->setTensorAddress(cfg.output_name, d_output_));
    for (const auto& t : e.outputs())
      if (t.name != cfg.output_name) {
        // Other outputs (e.g. auxiliary heads) need somewhere to go too.
        RJ_ASSIGN_OR_RETURN(auto d, cfg.ctx->tensorShape(t.name));
        int64_t n = 1;
        for (auto v : d) n *= std::max<int64_t>(v, 1);
        extra_.emplace_back();
        RJ_RETURN_IF_ERROR(extra_.back().reserve(size_t(n) * dataTypeSize(t.dtype)));
        RJ_RETURN_IF_ERROR(cfg.ctx->setTensorAddress(t.name, extra_.back().p));
      }
    auto wanted = wantedFlags(cfg.decode.classes);
    if (!wanted.empty()) {
      RJ_RETURN_IF_ERROR(post_.wanted.reserve(wanted.size()));
      RJ_CUDA_CHECK(cudaMemcpy(post_.wanted.p, wanted.data(), wanted.size(), cudaMemcpyHostToDevice));
      wanted_size_ = int(wanted.size());
    }
    RJ_RETURN_IF_ERROR(h_descs_.reserve(sizeof(gpu::FrameDesc) * B + sizeof(gpu::Placement) * B));
    RJ_RETURN_IF_ERROR(d_descs_.reserve(sizeof(gpu::FrameDesc) * B));
    gpu::PostParams p = params(B);
    RJ_RETURN_IF_ERROR(post_.prepare(p, B));
    return Status::Ok();
  }

  Result<std::vector<std::vector<Detection>>> run(const std::vector<const Image*>& frames, StageTimes* times) override {
    const int n = int(frames.size());
    if (n < 1 || n > cfg_.max_batch)
      return makeError(StatusCode::kInvalidArgument, "gpu pipeline: ", n, " frames; it takes 1..", cfg_.max_batch);
    auto t0 = std::chrono::steady_clock::now();
    // Frames into pinned memory, one upload.
    size_t total = 0;
    std::vector<size_t> off(n);
    for (int i = 0; i < n; ++i) {
      off[i] = total;
      total += align256(frames[i]->pixels.size());
    }
    RJ_RETURN_IF_ERROR(h_frames_.reserve(total));
    RJ_RETURN_IF_ERROR(d_frames_.reserve(total));
    auto* hd = static_cast<gpu::FrameDesc*>(h_descs_.p);
    auto* hp = reinterpret_cast<gpu::Placement*>(static_cast<char*>(h_descs_.p) + sizeof(gpu::FrameDesc) * cfg_.max_batch);
    // A batch of decoded frames is tens of MB (32 at 640x384: 24 MB): one thread copying it into
    // the pinned buffer took longer than the network itself, so big batches are copied by up to
    // 8 threads, frames dealt round-robin.
    auto copy_frame = [&](int i) {
      std::memcpy(static_cast<uint8_t*>(h_frames_.p) + off[i], frames[i]->pixels.data(), frames[i]->pixels.size());
    };
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const int workers = total >= (size_t{4} << 20) ? std::min(n, static_cast<int>(std::min(8u, hw))) : 1;
    if (workers <= 1) {
      for (int i = 0; i < n; ++i) copy_frame(i);
    } else {
      std::vector<std::thread> th;
      for (int w = 0; w < workers; ++w)
        th.emplace_back([&, w] {
          for (int i = w; i < n; i += workers) copy_frame(i);
        });
      for (auto& t : th) t.join();
    }
    for (int i = 0; i < n; ++i) {
      Letterbox lb;
      hd[i] = frameDesc(*frames[i], cfg_.pre, static_cast<const uint8_t*>(d_frames_.p) + off[i], &lb);
      hp[i] = placementOf(lb);
    }
    double host_pre = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    RJ_CUDA_CHECK(cudaEventRecord(ev_[0], stream_));
    RJ_CUDA_CHECK(cudaMemcpyAsync(d_frames_.p, h_frames_.p, total, cudaMemcpyHostToDevice, stream_));
    RJ_CUDA_CHECK(cudaMemcpyAsync(d_descs_.p, hd, sizeof(gpu::FrameDesc) * n, cudaMemcpyHostToDevice, stream_));
    RJ_CUDA_CHECK(cudaMemcpyAsync(post_.place.p, hp, sizeof(gpu::Placement) * n, cudaMemcpyHostToDevice, stream_));
    RJ_RETURN_IF_ERROR(gpu::letterbox(static_cast<const gpu::FrameDesc*>(d_descs_.p), n, cfg_.pre.width,
                                      cfg_.pre.height, in_fp16_, norm_, d_input_, stream_));
    RJ_CUDA_CHECK(cudaEventRecord(ev_[1], stream_));
    RJ_RETURN_IF_ERROR(setBatch(n));
    RJ_RETURN_IF_ERROR(cfg_.ctx->enqueue(stream_));
    RJ_CUDA_CHECK(cudaEventRecord(ev_[2], stream_));
    gpu::PostParams p = params(n);
    p.d_place = static_cast<const gpu::Placement*>(post_.place.p);
    if (gpu::postprocessScratchBytes(p) > post_.scratch.cap) {
      RJ_CUDA_CHECK(cudaStreamSynchronize(stream_));
      RJ_RETURN_IF_ERROR(post_.scratch.reserve(gpu::postprocessScratchBytes(p)));
    }
    RJ_RETURN_IF_ERROR(gpu::postprocess(d_output_, p, post_.buffers(), stream_));
    RJ_RETURN_IF_ERROR(post_.enqueueCopyBack(n, p.max_det, stream_));
    RJ_CUDA_CHECK(cudaEventRecord(ev_[3], stream_));
    RJ_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (times) *times = {host_pre + elapsed(ev_[0], ev_[1]), elapsed(ev_[1], ev_[2]), elapsed(ev_[2], ev_[3])};
    return post_.results(n, p.max_det);
  }

 private:
  gpu::PostParams params(int n) const {
    gpu::PostParams p = postParams(fmt_, {n, out_dims_[1], out_dims_[2]}, out_fp16_, cfg_.decode, cfg_.nms);
    p.d_wanted = static_cast<const uint8_t*>(post_.wanted.p);
    p.wanted_size = wanted_size_;
    if (cfg_.decode.classes.empty()) p.d_wanted = nullptr;
    return p;
  }
  Status setBatch(int n) {
    if (n == batch_) return Status::Ok();
    RJ_RETURN_IF_ERROR(cfg_.ctx->setInputShape(cfg_.input_name, {n, 3, cfg_.pre.height, cfg_.pre.width}));
    RJ_ASSIGN_OR_RETURN(out_dims_, cfg_.ctx->tensorShape(cfg_.output_name));
    RJ_RETURN_IF_ERROR(checkOutputDims(out_dims_, "output '" + cfg_.output_name + "'"));
    if (out_dims_[0] != n)
      return makeError(StatusCode::kInvalidModel, "gpu pipeline: output '", cfg_.output_name, "' has batch ",
                       out_dims_[0], " for ", n, " input frames");
    if (out_elems_per_image_ && size_t(out_dims_[1]) * out_dims_[2] != out_elems_per_image_)
      return makeError(StatusCode::kInvalidModel, "gpu pipeline: output '", cfg_.output_name,
                       "' changes its per-image size with the batch");
    batch_ = n;
    return Status::Ok();
  }

  DevicePipelineConfig cfg_;
  gpu::RawFormat fmt_ = gpu::RawFormat::kV8;
  gpu::NormParams norm_ = normParams(PreprocessOptions{});
  bool in_fp16_ = false, out_fp16_ = false;
  int batch_ = 0, wanted_size_ = 0;
  std::vector<int64_t> out_dims_;
  size_t out_elems_per_image_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ev_[4] = {nullptr, nullptr, nullptr, nullptr};
  void *d_input_ = nullptr, *d_output_ = nullptr;
  HostBuf h_frames_, h_descs_;
  DevBuf d_frames_, d_descs_;
  std::vector<DevBuf> extra_;
  PostState post_;
};

}  // namespace

Result<std::unique_ptr<DevicePipeline>> createGpuPipeline(const DevicePipelineConfig& config) {
  if (!config.engine || !config.ctx) return makeError(StatusCode::kInvalidArgument, "gpu pipeline: no engine/context");
  auto p = std::make_unique<GpuPipeline>();
  Status st = p->init(config);
  if (!st.ok()) return st.withContext("setting up the GPU detection pipeline");
  return std::unique_ptr<DevicePipeline>(std::move(p));
}

void registerGpuPipeline() { setDevicePipelineFactory(DeviceKind::kCuda, &createGpuPipeline); }

Result<Tensor> gpuPreprocess(const std::vector<const Image*>& images, const PreprocessOptions& opt) {
  RJ_RETURN_IF_ERROR(checkPre(opt));
  const int n = int(images.size());
  if (n < 1) return makeError(StatusCode::kInvalidArgument, "gpuPreprocess: no images");
  size_t total = 0;
  std::vector<size_t> off(n);
  for (int i = 0; i < n; ++i) {
    if (!images[i] || images[i]->empty() || images[i]->pixels.size() != size_t(images[i]->width) * images[i]->height * 3)
      return makeError(StatusCode::kInvalidArgument, "gpuPreprocess: image ", i, " is empty or inconsistent");
    off[i] = total;
    total += align256(images[i]->pixels.size());
  }
  DevBuf frames, descs, out;
  RJ_RETURN_IF_ERROR(frames.reserve(total));
  RJ_RETURN_IF_ERROR(descs.reserve(sizeof(gpu::FrameDesc) * n));
  Tensor t(opt.fp16 ? DataType::kFloat16 : DataType::kFloat32, {n, 3, opt.height, opt.width});
  RJ_RETURN_IF_ERROR(out.reserve(t.nbytes()));
  std::vector<gpu::FrameDesc> hd(n);
  for (int i = 0; i < n; ++i) {
    RJ_CUDA_CHECK(cudaMemcpy(static_cast<uint8_t*>(frames.p) + off[i], images[i]->pixels.data(),
                             images[i]->pixels.size(), cudaMemcpyHostToDevice));
    hd[i] = frameDesc(*images[i], opt, static_cast<const uint8_t*>(frames.p) + off[i], nullptr);
  }
  RJ_CUDA_CHECK(cudaMemcpy(descs.p, hd.data(), sizeof(gpu::FrameDesc) * n, cudaMemcpyHostToDevice));
  RJ_RETURN_IF_ERROR(gpu::letterbox(static_cast<const gpu::FrameDesc*>(descs.p), n, opt.width, opt.height, opt.fp16,
                                    normParams(opt), out.p, nullptr));
  RJ_CUDA_CHECK(cudaDeviceSynchronize());
  RJ_CUDA_CHECK(cudaMemcpy(t.raw(), out.p, t.nbytes(), cudaMemcpyDeviceToHost));
  return t;
}

Result<std::vector<std::vector<Detection>>> gpuDecodeNms(const Tensor& output, YoloFormat format,
                                                         const DecodeOptions& decode, const NmsOptions& nms,
                                                         const std::vector<Letterbox>* placements) {
  if (!output.isTensor() || (output.dtype() != DataType::kFloat32 && output.dtype() != DataType::kFloat16))
    return makeError(StatusCode::kInvalidArgument, "gpuDecodeNms: output must be float32 or float16");
  RJ_RETURN_IF_ERROR(checkOutputDims(output.dims(), "gpuDecodeNms"));
  if (format == YoloFormat::kAuto) {
    RJ_ASSIGN_OR_RETURN(format, detectYoloFormat(output.dims(), "output"));
  }
  RJ_ASSIGN_OR_RETURN(auto f, rawFormat(format));
  gpu::PostParams p = postParams(f, output.dims(), output.dtype() == DataType::kFloat16, decode, nms);
  PostState st;
  RJ_RETURN_IF_ERROR(st.prepare(p, p.n));
  DevBuf raw;
  RJ_RETURN_IF_ERROR(raw.reserve(output.nbytes()));
  RJ_CUDA_CHECK(cudaMemcpy(raw.p, output.raw(), output.nbytes(), cudaMemcpyHostToDevice));
  auto wanted = wantedFlags(decode.classes);
  if (!wanted.empty()) {
    RJ_RETURN_IF_ERROR(st.wanted.reserve(wanted.size()));
    RJ_CUDA_CHECK(cudaMemcpy(st.wanted.p, wanted.data(), wanted.size(), cudaMemcpyHostToDevice));
    p.d_wanted = static_cast<const uint8_t*>(st.wanted.p);
    p.wanted_size = int(wanted.size());
  }
  if (placements) {
    if (placements->size() != size_t(p.n))
      return makeError(StatusCode::kInvalidArgument, "gpuDecodeNms: ", placements->size(), " placements for ", p.n,
                       " images");
    std::vector<gpu::Placement> hp;
    for (const auto& lb : *placements) hp.push_back(placementOf(lb));
    RJ_CUDA_CHECK(cudaMemcpy(st.place.p, hp.data(), sizeof(gpu::Placement) * hp.size(), cudaMemcpyHostToDevice));
    p.d_place = static_cast<const gpu::Placement*>(st.place.p);
  }
  RJ_RETURN_IF_ERROR(gpu::postprocess(raw.p, p, st.buffers(), nullptr));
  RJ_RETURN_IF_ERROR(st.enqueueCopyBack(p.n, p.max_det, nullptr));
  RJ_CUDA_CHECK(cudaDeviceSynchronize());
  return st.results(p.n, p.max_det);
}

}  // namespace ramjet::vision
