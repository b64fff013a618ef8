// Engines with several optimization profiles: the plan is a container of complete plans (one
// per profile, src/plan/plan_format.h), loaded as one engine each; this wrapper presents them
// as one Engine whose contexts route every call to the selected profile's context.
#include "runtime/multi_profile.h"

#include <set>
#include <sstream>

namespace ramjet::runtime {
namespace {

bool fits(const ShapeProfile& p, const std::vector<int64_t>& dims) {
  if (dims.size() != p.min.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] < p.min[i] || dims[i] > p.max[i]) return false;
  return true;
}

// Does profile set `set` accept `dims` for input `name` (an input it does not list is static:
// any profile takes it)?
bool accepts(const std::vector<ShapeProfile>& set, const std::string& name, const std::vector<int64_t>& dims) {
  for (const auto& p : set)
    if (p.input == name) return fits(p, dims);
  return true;
}

std::string rangesOf(const std::vector<std::vector<ShapeProfile>>& sets, const std::string& name) {
  std::ostringstream os;
  for (size_t i = 0; i < sets.size(); ++i)
    for (const auto& p : sets[i])
      if (p.input == name) os << (os.tellp() > 0 ? "; " : "") << "profile " << i << ": " << dimsToString(p.min) << ".." << dimsToString(p.max);
  return os.str();
}

class MultiProfileEngine;

class MultiProfileContext final : public ExecutionContext {
 public:
  explicit MultiProfileContext(MultiProfileEngine* e) : e_(e) {}

  Status setOptimizationProfile(int index) override;
  int optimizationProfile() const override { return active_; }

  Status setInputShape(const std::string& name, const std::vector<int64_t>& dims) override;
  Result<std::vector<int64_t>> tensorShape(const std::string& name) override {
    RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
    return c->tensorShape(name);
  }
  Status setTensorAddress(const std::string& name, void* address) override {
    RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
    RJ_RETURN_IF_ERROR(c->setTensorAddress(name, address));
    addresses_[name] = address;
    return Status::Ok();
  }
  Status enqueue(void* stream) override {
    RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
    return c->enqueue(stream);
  }
  Result<std::vector<Tensor>> infer(const std::map<std::string, Tensor>& inputs) override;
  Timing lastTiming() const override {
    return active_ < static_cast<int>(ctxs_.size()) && ctxs_[active_] ? ctxs_[active_]->lastTiming() : Timing{};
  }
  Result<std::vector<KernelTiming>> profile(void* stream, int iterations) override {
    RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
    return c->profile(stream, iterations);
  }

 private:
  Result<ExecutionContext*> current();

  MultiProfileEngine* e_;
  std::vector<std::unique_ptr<ExecutionContext>> ctxs_;  // created on first use
  int active_ = 0;
  std::map<std::string, void*> addresses_;
};

class MultiProfileEngine final : public Engine {
 public:
  explicit MultiProfileEngine(std::vector<std::unique_ptr<Engine>> subs) : subs_(std::move(subs)) {
    info_ = subs_[0]->info();
    // Inputs/outputs: a dim that differs between profiles (fixed per profile) is symbolic here.
    inputs_ = mergeInfos([](const Engine& e) -> const std::vector<TensorInfo>& { return e.inputs(); });
    outputs_ = mergeInfos([](const Engine& e) -> const std::vector<TensorInfo>& { return e.outputs(); });
    info_.file_bytes = info_.weight_bytes = 0;
    for (const auto& s : subs_) {
      sets_.push_back(s->info().profiles);
      info_.file_bytes += s->info().file_bytes;
      info_.weight_bytes += s->info().weight_bytes;
    }
  }

  Result<std::unique_ptr<ExecutionContext>> createContext() override {
    return std::unique_ptr<ExecutionContext>(new MultiProfileContext(this));
  }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }
  const PlanInfo& info() const override { return info_; }
  Result<void*> allocate(size_t bytes) override { return subs_[0]->allocate(bytes); }
  void release(void* ptr) override { subs_[0]->release(ptr); }
  Result<void*> allocateHost(size_t bytes) override { return subs_[0]->allocateHost(bytes); }
  void releaseHost(void* ptr) override { subs_[0]->releaseHost(ptr); }
  Status copyToDevice(void* dst, const void* src, size_t bytes, void* stream) override {
    return subs_[0]->copyToDevice(dst, src, bytes, stream);
  }
  Status copyToHost(void* dst, const void* src, size_t bytes, void* stream) override {
    return subs_[0]->copyToHost(dst, src, bytes, stream);
  }
  Status synchronize(void* stream) override { return subs_[0]->synchronize(stream); }
  Result<void*> createStream() override { return subs_[0]->createStream(); }
  void destroyStream(void* stream) override { subs_[0]->destroyStream(stream); }
  std::vector<std::vector<ShapeProfile>> optimizationProfiles() const override { return sets_; }

  Engine& sub(int i) { return *subs_[i]; }
  int count() const { return static_cast<int>(subs_.size()); }
  const std::vector<std::vector<ShapeProfile>>& sets() const { return sets_; }
  size_t dynamicInputs() const {
    std::set<std::string> names;
    for (const auto& set : sets_)
      for (const auto& p : set) names.insert(p.input);
    return names.size();
  }

 private:
  template <typename Get>
  std::vector<TensorInfo> mergeInfos(Get get) const {
    std::vector<TensorInfo> out = get(*subs_[0]);
    for (size_t k = 1; k < subs_.size(); ++k) {
      const auto& other = get(*subs_[k]);
      for (size_t i = 0; i < out.size() && i < other.size(); ++i) {
        Shape& s = out[i].shape;
        if (!s.rank_known || !other[i].shape.rank_known || s.rank() != other[i].shape.rank()) continue;
        for (size_t d = 0; d < s.rank(); ++d)
          if (s.dims[d] != other[i].shape.dims[d])
            s.dims[d] = !s.dims[d].known() ? s.dims[d]
                        : !other[i].shape.dims[d].known() ? other[i].shape.dims[d]
                                                          : Dim::symbolic(out[i].name + "_d" + std::to_string(d));
      }
    }
    return out;
  }

  std::vector<std::unique_ptr<Engine>> subs_;
  std::vector<TensorInfo> inputs_, outputs_;
  PlanInfo info_;
  std::vector<std::vector<ShapeProfile>> sets_;
};

Result<ExecutionContext*> MultiProfileContext::current() {
  if (ctxs_.empty()) ctxs_.resize(static_cast<size_t>(e_->count()));
  auto& c = ctxs_[active_];
  if (!c) {
    RJ_ASSIGN_OR_RETURN(c, e_->sub(active_).createContext());
    for (const auto& [name, addr] : addresses_) RJ_RETURN_IF_ERROR(c->setTensorAddress(name, addr));
  }
  return c.get();
}

Status MultiProfileContext::setOptimizationProfile(int index) {
  if (index < 0 || index >= e_->count())
    return makeError(StatusCode::kInvalidArgument, "optimization profile ", index, " does not exist: this engine has ",
                     e_->count(), " (0..", e_->count() - 1, ")");
  active_ = index;
  RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
  for (const auto& [name, addr] : addresses_) RJ_RETURN_IF_ERROR(c->setTensorAddress(name, addr));
  return Status::Ok();
}

Status MultiProfileContext::setInputShape(const std::string& name, const std::vector<int64_t>& dims) {
  RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
  Status st = c->setInputShape(name, dims);
  if (st.ok() || st.code() == StatusCode::kNotFound) return st;
  // Another profile that accepts these dims: switch by itself when the engine has one dynamic
  // input (nothing else to re-set), else say which.
  for (int j = 0; j < e_->count(); ++j) {
    if (j == active_ || !accepts(e_->sets()[j], name, dims)) continue;
    if (e_->dynamicInputs() <= 1) {
      RJ_RETURN_IF_ERROR(setOptimizationProfile(j));
      RJ_ASSIGN_OR_RETURN(ExecutionContext * n, current());
      return n->setInputShape(name, dims);
    }
    return makeError(StatusCode::kInvalidArgument, st.message(), "; optimization profile ", j, " accepts ",
                     dimsToString(dims), ": select it with setOptimizationProfile(", j, ") and set the shapes again");
  }
  return makeError(StatusCode::kInvalidArgument, st.message(), " (every optimization profile: ", rangesOf(e_->sets(), name), ")");
}

Result<std::vector<Tensor>> MultiProfileContext::infer(const std::map<std::string, Tensor>& inputs) {
  // The active profile when it takes every input, else the first one that does.
  auto takes = [&](int j) {
    for (const auto& [name, t] : inputs)
      if (!accepts(e_->sets()[j], name, t.dims())) return false;
    return true;
  };
  int pick = takes(active_) ? active_ : -1;
  for (int j = 0; j < e_->count() && pick < 0; ++j)
    if (takes(j)) pick = j;
  if (pick < 0) {
    std::string why;
    for (const auto& [name, t] : inputs) why += (why.empty() ? "" : ", ") + name + " " + dimsToString(t.dims());
    std::string ranges;
    for (const auto& [name, t] : inputs) {
      std::string r = rangesOf(e_->sets(), name);
      if (!r.empty()) ranges += (ranges.empty() ? "" : "; ") + name + ": " + r;
    }
    return makeError(StatusCode::kInvalidArgument, "no optimization profile accepts the inputs (", why, "); ", ranges);
  }
  if (pick != active_) RJ_RETURN_IF_ERROR(setOptimizationProfile(pick));
  RJ_ASSIGN_OR_RETURN(ExecutionContext * c, current());
  return c->infer(inputs);
}

}  // namespace

std::unique_ptr<Engine> makeMultiProfileEngine(std::vector<std::unique_ptr<Engine>> engines) {
  return std::unique_ptr<Engine>(new MultiProfileEngine(std::move(engines)));
}

}  // namespace ramjet::runtime
