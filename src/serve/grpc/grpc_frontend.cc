// The KServe v2 gRPC front end (plugin libramjet_grpc.so, see serve/grpc_hook.h): converts
// gRPC messages to the protocol-neutral InferRequestMessage and back; the ModelHub does the rest.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <mutex>

#include "kserve_v2.grpc.pb.h"
#include "serve/grpc_hook.h"

namespace ramjet::serve {
namespace {

namespace pb = ::inference;

grpc::Status invalid(const std::string& m) { return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, m); }

grpc::StatusCode grpcCode(Outcome o, const Status& st) {
  switch (o) {
    case Outcome::kOk: return grpc::StatusCode::OK;
    case Outcome::kInvalid:
      return st.code() == StatusCode::kNotFound ? grpc::StatusCode::NOT_FOUND : grpc::StatusCode::INVALID_ARGUMENT;
    case Outcome::kQueueFull: return grpc::StatusCode::UNAVAILABLE;
    case Outcome::kTimedOut: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Outcome::kCancelled: return grpc::StatusCode::CANCELLED;
    case Outcome::kShuttingDown: return grpc::StatusCode::UNAVAILABLE;
    case Outcome::kFailed: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

template <typename T, typename Rep>
grpc::Status copyTyped(const Rep& src, Tensor* t, const std::string& name) {
  if (static_cast<int64_t>(src.size()) != t->numel())
    return invalid("input '" + name + "': contents has " + std::to_string(src.size()) + " elements, the shape needs " +
                   std::to_string(t->numel()));
  T* dst = t->data<T>();
  for (int i = 0; i < src.size(); ++i) {
    auto v = src.Get(i);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (v < static_cast<decltype(v)>(std::numeric_limits<T>::min()) ||
          v > static_cast<decltype(v)>(std::numeric_limits<T>::max()))
        return invalid("input '" + name + "': element " + std::to_string(i) + " is out of range for its datatype");
    }
    dst[i] = static_cast<T>(v);
  }
  return grpc::Status::OK;
}

grpc::Status fillContents(const pb::InferTensorContents& c, Tensor* t, const std::string& name) {
  switch (t->dtype()) {
    case DataType::kBool: return copyTyped<bool>(c.bool_contents(), t, name);
    case DataType::kInt8: return copyTyped<int8_t>(c.int_contents(), t, name);
    case DataType::kInt16: return copyTyped<int16_t>(c.int_contents(), t, name);
    case DataType::kInt32: return copyTyped<int32_t>(c.int_contents(), t, name);
    case DataType::kInt64: return copyTyped<int64_t>(c.int64_contents(), t, name);
    case DataType::kUInt8: return copyTyped<uint8_t>(c.uint_contents(), t, name);
    case DataType::kUInt16: return copyTyped<uint16_t>(c.uint_contents(), t, name);
    case DataType::kUInt32: return copyTyped<uint32_t>(c.uint_contents(), t, name);
    case DataType::kUInt64: return copyTyped<uint64_t>(c.uint64_contents(), t, name);
    case DataType::kFloat32: return copyTyped<float>(c.fp32_contents(), t, name);
    case DataType::kFloat64: return copyTyped<double>(c.fp64_contents(), t, name);
    default: return invalid("input '" + name + "': FP16/BF16 need raw_input_contents");
  }
}

// `b` (the model, when found) makes raw inputs' tensors in its page-locked staging memory.
grpc::Status toMessage(const pb::ModelInferRequest& rq, InferRequestMessage* m, Batcher* b) {
  m->id = rq.id();
  if (rq.inputs_size() == 0) return invalid("the request has no inputs");
  bool raw = rq.raw_input_contents_size() > 0;
  if (raw && rq.raw_input_contents_size() != rq.inputs_size())
    return invalid("raw_input_contents has " + std::to_string(rq.raw_input_contents_size()) + " entries for " +
                   std::to_string(rq.inputs_size()) + " inputs");
  if (auto it = rq.parameters().find("timeout"); it != rq.parameters().end()) {
    if (it->second.parameter_choice_case() != pb::InferParameter::kInt64Param || it->second.int64_param() < 0)
      return invalid("parameter 'timeout' must be a non-negative int64 (microseconds)");
    m->timeout_us = it->second.int64_param();
  }
  for (int i = 0; i < rq.inputs_size(); ++i) {
    const auto& in = rq.inputs(i);
    DataType dt;
    if (!dataTypeFromKServe(in.datatype(), &dt))
      return invalid("input '" + in.name() + "': datatype '" + in.datatype() + "' is not supported");
    if (in.shape_size() > 8) return invalid("input '" + in.name() + "': more than 8 dims");
    std::vector<int64_t> dims;
    int64_t numel = 1;
    for (int64_t d : in.shape()) {
      if (d < 0 || (d > 0 && numel > (int64_t{1} << 31) / d))
        return invalid("input '" + in.name() + "': bad or too large shape");
      numel *= d;
      dims.push_back(d);
    }
    uint64_t nbytes = static_cast<uint64_t>(numel) * dataTypeSize(dt);
    if (raw && rq.raw_input_contents(i).size() != nbytes)
      return invalid("input '" + in.name() + "': raw_input_contents has " +
                     std::to_string(rq.raw_input_contents(i).size()) + " bytes, the shape and datatype need " +
                     std::to_string(nbytes));
    if (!raw && !in.has_contents()) return invalid("input '" + in.name() + "': no contents and no raw_input_contents");
    if (!raw && numel > 64 * static_cast<int64_t>(in.contents().ByteSizeLong() + 1))
      return invalid("input '" + in.name() + "': contents are smaller than the shape");
    Tensor t = raw && b ? b->hostTensor(dt, dims) : Tensor(dt, dims);
    if (raw) {
      if (nbytes) std::memcpy(t.raw(), rq.raw_input_contents(i).data(), nbytes);
    } else {
      grpc::Status st = fillContents(in.contents(), &t, in.name());
      if (!st.ok()) return st;
    }
    m->inputs.push_back({in.name(), std::move(t)});
  }
  for (const auto& o : rq.outputs()) m->outputs.push_back({o.name(), true});
  return grpc::Status::OK;
}

void fillTensorMetadata(const std::vector<TensorInfo>& ts,
                        google::protobuf::RepeatedPtrField<pb::ModelMetadataResponse::TensorMetadata>* out) {
  for (const auto& t : ts) {
    auto* m = out->Add();
    m->set_name(t.name);
    m->set_datatype(kserveDataTypeName(t.dtype));
    for (const Dim& d : t.shape.dims) m->add_shape(d.known() ? d.value : -1);
  }
}

class Service final : public pb::GRPCInferenceService::Service {
 public:
  explicit Service(ModelHub* hub) : hub_(hub) {}

  grpc::Status ServerLive(grpc::ServerContext*, const pb::ServerLiveRequest*, pb::ServerLiveResponse* r) override {
    r->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerReady(grpc::ServerContext*, const pb::ServerReadyRequest*, pb::ServerReadyResponse* r) override {
    r->set_ready(hub_->ready());
    return grpc::Status::OK;
  }
  grpc::Status ModelReady(grpc::ServerContext*, const pb::ModelReadyRequest* rq, pb::ModelReadyResponse* r) override {
    if (!hub_->find(rq->name(), rq->version()))
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model '" + rq->name() + "'");
    r->set_ready(hub_->ready());
    return grpc::Status::OK;
  }
  grpc::Status ServerMetadata(grpc::ServerContext*, const pb::ServerMetadataRequest*,
                              pb::ServerMetadataResponse* r) override {
    r->set_name("ramjet");
    r->set_version(RAMJET_VERSION);
    r->add_extensions("binary_tensor_data");
    return grpc::Status::OK;
  }
  grpc::Status ModelMetadata(grpc::ServerContext*, const pb::ModelMetadataRequest* rq,
                             pb::ModelMetadataResponse* r) override {
    Batcher* b = hub_->find(rq->name(), rq->version());
    if (!b) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model '" + rq->name() + "'");
    r->set_name(rq->name());
    r->add_versions("1");
    r->set_platform(std::string("ramjet_") + deviceKindName(b->engine().info().device));
    fillTensorMetadata(b->engine().inputs(), r->mutable_inputs());
    fillTensorMetadata(b->engine().outputs(), r->mutable_outputs());
    return grpc::Status::OK;
  }
  grpc::Status ModelInfer(grpc::ServerContext*, const pb::ModelInferRequest* rq, pb::ModelInferResponse* r) override {
    InferRequestMessage m;
    grpc::Status st = toMessage(*rq, &m, hub_->find(rq->model_name(), rq->model_version()));
    if (!st.ok()) return st;
    std::string id = m.id;
    ModelHub::InferResult res = hub_->infer(rq->model_name(), rq->model_version(), std::move(m));
    if (res.outcome != Outcome::kOk) return grpc::Status(grpcCode(res.outcome, res.status), res.status.message());
    r->set_model_name(rq->model_name());
    r->set_model_version("1");
    r->set_id(id);
    for (const auto& o : res.outputs) {
      auto* t = r->add_outputs();
      t->set_name(o.name);
      t->set_datatype(kserveDataTypeName(o.tensor->dtype()));
      for (int64_t d : o.tensor->dims()) t->add_shape(d);
      r->add_raw_output_contents(static_cast<const char*>(o.tensor->raw()), o.tensor->nbytes());
    }
    return grpc::Status::OK;
  }

 private:
  ModelHub* hub_;
};

class Frontend final : public GrpcFrontend {
 public:
  Frontend(ModelHub* hub) : service_(hub) {}
  bool start(const std::string& host, int port, std::string* err) {
    grpc::ServerBuilder b;
    std::string addr = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    b.AddListeningPort(addr, grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    b.SetMaxReceiveMessageSize(256 << 20);
    b.SetMaxSendMessageSize(256 << 20);
    grpc::ResourceQuota q("ramjet");
    q.SetMaxThreads(256);  // calls block while their batch runs: allow many in flight
    b.SetResourceQuota(q);
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) {
      *err = "cannot listen on " + addr;
      return false;
    }
    return true;
  }
  int port() const override { return port_; }
  void shutdown() override {
    std::lock_guard<std::mutex> lk(mu_);
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
      server_->Wait();
      server_.reset();
    }
  }
  ~Frontend() override { shutdown(); }

 private:
  Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex mu_;
};

}  // namespace
}  // namespace ramjet::serve

extern "C" __attribute__((visibility("default"))) ramjet::serve::GrpcFrontend* ramjet_grpc_start(
    ramjet::serve::ModelHub* hub, const char* host, int port, std::string* error) {
  auto f = std::make_unique<ramjet::serve::Frontend>(hub);
  if (!f->start(host, port, error)) return nullptr;
  return f.release();
}
