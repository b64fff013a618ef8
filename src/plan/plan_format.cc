#include "plan/plan_format.h"

#include <cstring>
#include <limits>
#include <map>
#include <set>

namespace ramjet::plan {

// ---------------------------------------------------------------------------------------------
// XXH64 (Yann Collet's public algorithm): fast enough (~10 GB/s) to check a whole plan at load.
namespace {
constexpr uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
                   P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2CA63ULL,
                   P5 = 0x27D4EB2F165667C5ULL;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t rd64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline uint32_t rd32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t round1(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
inline uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round1(0, v)) * P1 + P4; }
}  // namespace

uint64_t xxh64(const void* data, size_t len, uint64_t seed) {
  // Counts, not pointer arithmetic: `data` may be null when len is 0 (a plan without weights),
  // and null + 8 is undefined behaviour (UBSan, 2026-11-26).
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t rem = len;
  uint64_t h;
  if (rem >= 32) {
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    do {
      v1 = round1(v1, rd64(p)); v2 = round1(v2, rd64(p + 8));
      v3 = round1(v3, rd64(p + 16)); v4 = round1(v4, rd64(p + 24));
      p += 32;
      rem -= 32;
    } while (rem >= 32);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4);
  } else {
    h = seed + P5;
  }
  h += static_cast<uint64_t>(len);
  for (; rem >= 8; rem -= 8, p += 8) { h ^= round1(0, rd64(p)); h = rotl(h, 27) * P1 + P4; }
  if (rem >= 4) { h ^= static_cast<uint64_t>(rd32(p)) * P1; h = rotl(h, 23) * P2 + P3; p += 4; rem -= 4; }
  for (; rem > 0; --rem, ++p) { h ^= (*p) * P5; h = rotl(h, 11) * P1; }
  h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
  return h;
}

// ---------------------------------------------------------------------------------------------
namespace {

class Writer {
 public:
  std::vector<uint8_t> buf;
  void raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  }
  void u8(uint8_t v) { buf.push_back(v); }
  void u32(uint32_t v) { raw(&v, 4); }
  void i32(int32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void f64(double v) { raw(&v, 8); }
  void str(const std::string& s) { u32(static_cast<uint32_t>(s.size())); raw(s.data(), s.size()); }
  void dims(const std::vector<int64_t>& d) { u32(static_cast<uint32_t>(d.size())); for (auto x : d) i64(x); }
};

// Sticky-failure reader: the first out-of-bounds read records an error; later reads return
// zeros, and counts are validated against the bytes left so loops stay bounded.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, std::string what) : p_(p), n_(n), what_(std::move(what)) {}
  bool ok() const { return err_.empty(); }
  Status status() const {
    return ok() ? Status::Ok() : Status(StatusCode::kInvalidPlan, what_ + ": " + err_);
  }
  void fail(const std::string& e) {
    if (err_.empty()) err_ = e + " (at meta byte " + std::to_string(pos_) + ")";
  }
  bool take(void* out, size_t k) {
    if (!ok() || k > n_ - pos_) {
      fail("unexpected end of the meta section");
      std::memset(out, 0, k);
      return false;
    }
    std::memcpy(out, p_ + pos_, k);
    pos_ += k;
    return true;
  }
  uint8_t u8() { uint8_t v; take(&v, 1); return v; }
  uint32_t u32() { uint32_t v; take(&v, 4); return v; }
  int32_t i32() { int32_t v; take(&v, 4); return v; }
  uint64_t u64() { uint64_t v; take(&v, 8); return v; }
  int64_t i64() { int64_t v; take(&v, 8); return v; }
  float f32() { float v; take(&v, 4); return v; }
  double f64() { double v; take(&v, 8); return v; }
  // A count of elements each at least `min_bytes` long: more than the bytes left is corruption.
  uint32_t count(size_t min_bytes, const char* what) {
    uint32_t c = u32();
    if (ok() && static_cast<uint64_t>(c) * std::max<size_t>(min_bytes, 1) > n_ - pos_) {
      fail(std::string("count of ") + what + " (" + std::to_string(c) + ") exceeds the section");
      return 0;
    }
    return ok() ? c : 0;
  }
  std::string str() {
    uint32_t c = count(1, "string bytes");
    std::string s(c, '\0');
    if (c) take(s.data(), c);
    return s;
  }
  std::vector<int64_t> dims() {
    uint32_t c = count(8, "dims");
    if (c > 64) { fail("tensor rank " + std::to_string(c) + " is above 64"); return {}; }
    std::vector<int64_t> d(c);
    for (auto& x : d) x = i64();
    return d;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  std::string what_, err_;
};

// ---- graph encoding ----
class GraphEncoder {
 public:
  GraphEncoder(Writer* meta, std::vector<uint8_t>* weights) : w_(*meta), weights_(*weights) {}

  void tensorInline(const Tensor& t) {
    w_.i32(static_cast<int32_t>(t.dtype()));
    w_.dims(t.dims());
    w_.u64(t.nbytes());
    if (t.nbytes()) w_.raw(t.raw(), t.nbytes());
  }
  uint64_t weightOffset(const Tensor& t) {
    auto key = std::make_pair(t.raw(), t.nbytes());
    auto it = dedup_.find(key);
    if (it != dedup_.end() && t.nbytes()) return it->second;
    size_t off = (weights_.size() + kWeightAlign - 1) / kWeightAlign * kWeightAlign;
    weights_.resize(off + t.nbytes());
    if (t.nbytes()) std::memcpy(weights_.data() + off, t.raw(), t.nbytes());
    dedup_[key] = off;
    return off;
  }
  void attribute(const Attribute& a) {
    w_.u8(static_cast<uint8_t>(a.kind));
    switch (a.kind) {
      case Attribute::Kind::kInt: w_.i64(a.i); break;
      case Attribute::Kind::kFloat: w_.f32(a.f); break;
      case Attribute::Kind::kString: w_.str(a.s); break;
      case Attribute::Kind::kTensor: tensorInline(a.t); break;
      case Attribute::Kind::kGraph: graph(*a.g); break;
      case Attribute::Kind::kInts: w_.dims(a.ints); break;
      case Attribute::Kind::kFloats:
        w_.u32(static_cast<uint32_t>(a.floats.size()));
        for (float f : a.floats) w_.f32(f);
        break;
      case Attribute::Kind::kStrings:
        w_.u32(static_cast<uint32_t>(a.strings.size()));
        for (const auto& s : a.strings) w_.str(s);
        break;
    }
  }
  void type(const TensorType& t) {
    w_.i32(static_cast<int32_t>(t.dtype));
    w_.u8(t.shape.rank_known ? 1 : 0);
    w_.u32(static_cast<uint32_t>(t.shape.dims.size()));
    for (const Dim& d : t.shape.dims) { w_.i64(d.value); w_.str(d.symbol); }
  }
  void graph(const Graph& g) {
    std::map<const Value*, uint32_t> idx;
    for (const auto& v : g.values()) idx[v.get()] = static_cast<uint32_t>(idx.size());
    w_.str(g.name);
    w_.u32(static_cast<uint32_t>(g.metadata.size()));
    for (const auto& [k, v] : g.metadata) { w_.str(k); w_.str(v); }
    w_.u32(static_cast<uint32_t>(g.opsets.size()));
    for (const auto& [k, v] : g.opsets) { w_.str(k); w_.i64(v); }
    w_.u32(static_cast<uint32_t>(g.values().size()));
    for (const auto& vp : g.values()) {
      const Value& v = *vp;
      w_.str(v.name);
      type(v.type);
      w_.u8((v.is_graph_input ? 1 : 0) | (v.is_graph_output ? 2 : 0) | (v.is_outer_scope ? 4 : 0) |
            (v.constant ? 8 : 0));
      if (v.constant) {
        w_.i32(static_cast<int32_t>(v.constant->dtype()));
        w_.dims(v.constant->dims());
        w_.u64(weightOffset(*v.constant));
        w_.u64(v.constant->nbytes());
      }
    }
    w_.u32(static_cast<uint32_t>(g.inputs.size()));
    for (Value* v : g.inputs) w_.u32(idx.at(v));
    w_.u32(static_cast<uint32_t>(g.outputs.size()));
    for (Value* v : g.outputs) w_.u32(idx.at(v));
    w_.u32(static_cast<uint32_t>(g.nodes().size()));
    for (const auto& np : g.nodes()) {
      const Node& n = *np;
      w_.str(n.op_type);
      w_.str(n.domain);
      w_.str(n.name);
      w_.u32(static_cast<uint32_t>(n.inputs.size()));
      for (Value* v : n.inputs) w_.u32(v ? idx.at(v) + 1 : 0);
      w_.u32(static_cast<uint32_t>(n.outputs.size()));
      for (Value* v : n.outputs) w_.u32(v ? idx.at(v) + 1 : 0);
      w_.u32(static_cast<uint32_t>(n.attrs.size()));
      for (const auto& [k, a] : n.attrs) { w_.str(k); attribute(a); }
    }
  }

 private:
  Writer& w_;
  std::vector<uint8_t>& weights_;
  std::map<std::pair<const void*, size_t>, uint64_t> dedup_;
};

bool validDataType(int32_t v, DataType* out) {
  DataType dt = static_cast<DataType>(v);
  if (!isSupportedDataType(dt) && dt != DataType::kUndefined) return false;
  *out = dt;
  return true;
}

// Element count and byte size of dims, false on negative dims or overflow.
bool checkedBytes(const std::vector<int64_t>& dims, DataType dt, uint64_t* bytes) {
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (d != 0 && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) return false;
    n *= static_cast<uint64_t>(d);
  }
  uint64_t es = dataTypeSize(dt);
  if (es == 0 || n > (uint64_t{1} << 62) / es) return false;
  *bytes = n * es;
  return true;
}

class GraphDecoder {
 public:
  GraphDecoder(Reader* r, const uint8_t* weights, size_t weights_size, std::shared_ptr<void> keep)
      : r_(*r), weights_(weights), weights_size_(weights_size), keep_(std::move(keep)) {}

  Result<Tensor> tensorInline() {
    DataType dt;
    if (!validDataType(r_.i32(), &dt) || dt == DataType::kUndefined) r_.fail("bad tensor attribute dtype");
    std::vector<int64_t> dims = r_.dims();
    uint64_t nbytes = r_.u64(), expect = 0;
    RJ_RETURN_IF_ERROR(r_.status());
    if (!checkedBytes(dims, dt, &expect) || expect != nbytes || nbytes > r_.left())
      return makeError(StatusCode::kInvalidPlan, "tensor attribute of ", dimsToString(dims), " has ", nbytes,
                       " bytes, which does not match its shape or the section");
    Tensor t(dt, dims);
    if (nbytes) r_.take(t.raw(), nbytes);
    return t;
  }

  Result<Attribute> attribute(int depth) {
    Attribute a;
    uint8_t kind = r_.u8();
    if (kind > static_cast<uint8_t>(Attribute::Kind::kStrings)) r_.fail("bad attribute kind " + std::to_string(kind));
    RJ_RETURN_IF_ERROR(r_.status());
    a.kind = static_cast<Attribute::Kind>(kind);
    switch (a.kind) {
      case Attribute::Kind::kInt: a.i = r_.i64(); break;
      case Attribute::Kind::kFloat: a.f = r_.f32(); break;
      case Attribute::Kind::kString: a.s = r_.str(); break;
      case Attribute::Kind::kTensor: { RJ_ASSIGN_OR_RETURN(a.t, tensorInline()); break; }
      case Attribute::Kind::kGraph: {
        RJ_ASSIGN_OR_RETURN(auto g, graph(depth + 1));
        a.g = std::shared_ptr<Graph>(std::move(g));
        break;
      }
      case Attribute::Kind::kInts: {
        uint32_t c = r_.count(8, "ints");
        a.ints.resize(c);
        for (auto& x : a.ints) x = r_.i64();
        break;
      }
      case Attribute::Kind::kFloats: {
        uint32_t c = r_.count(4, "floats");
        a.floats.resize(c);
        for (auto& x : a.floats) x = r_.f32();
        break;
      }
      case Attribute::Kind::kStrings: {
        uint32_t c = r_.count(4, "strings");
        a.strings.resize(c);
        for (auto& x : a.strings) x = r_.str();
        break;
      }
    }
    RJ_RETURN_IF_ERROR(r_.status());
    return a;
  }

  Result<std::unique_ptr<Graph>> graph(int depth) {
    if (depth > 16) return Status(StatusCode::kInvalidPlan, "subgraphs nested more than 16 deep");
    auto g = std::make_unique<Graph>();
    g->name = r_.str();
    uint32_t nm = r_.count(8, "metadata");
    for (uint32_t i = 0; i < nm; ++i) { std::string k = r_.str(); g->metadata[k] = r_.str(); }
    uint32_t no = r_.count(12, "opsets");
    for (uint32_t i = 0; i < no; ++i) { std::string k = r_.str(); g->opsets[k] = r_.i64(); }
    uint32_t nv = r_.count(14, "values");
    RJ_RETURN_IF_ERROR(r_.status());
    std::vector<Value*> values;
    values.reserve(nv);
    for (uint32_t i = 0; i < nv; ++i) {
      std::string name = r_.str();
      RJ_RETURN_IF_ERROR(r_.status());
      if (g->findValue(name))
        return makeError(StatusCode::kInvalidPlan, "value name '", name, "' appears twice in graph '", g->name, "'");
      Value* v = g->addValue(name);
      values.push_back(v);
      DataType dt = DataType::kUndefined;
      if (!validDataType(r_.i32(), &dt)) r_.fail("value '" + name + "' has a bad dtype");
      v->type.dtype = dt;
      v->type.shape.rank_known = r_.u8() != 0;
      uint32_t rank = r_.count(12, "dims");
      if (rank > 64) r_.fail("value '" + name + "' has rank above 64");
      for (uint32_t k = 0; k < rank && r_.ok(); ++k) {
        Dim d;
        d.value = r_.i64();
        d.symbol = r_.str();
        if (d.value < -1 || (d.value == -1) == d.symbol.empty()) r_.fail("value '" + name + "' has a bad dim");
        v->type.shape.dims.push_back(d);
      }
      uint8_t flags = r_.u8();
      if (flags & ~15) r_.fail("value '" + name + "' has unknown flags");
      v->is_graph_input = flags & 1;
      v->is_graph_output = flags & 2;
      v->is_outer_scope = flags & 4;
      if (flags & 8) {
        DataType cdt;
        if (!validDataType(r_.i32(), &cdt) || cdt == DataType::kUndefined)
          r_.fail("constant '" + name + "' has a bad dtype");
        std::vector<int64_t> dims = r_.dims();
        uint64_t off = r_.u64(), nbytes = r_.u64(), expect = 0;
        RJ_RETURN_IF_ERROR(r_.status());
        if (!checkedBytes(dims, cdt, &expect) || expect != nbytes)
          return makeError(StatusCode::kInvalidPlan, "constant '", name, "' ", dimsToString(dims), " claims ", nbytes,
                           " bytes, which does not match its shape");
        if (off % kWeightAlign || off > weights_size_ || nbytes > weights_size_ - off)
          return makeError(StatusCode::kInvalidPlan, "constant '", name, "' lies outside the weights section (offset ",
                           off, ", ", nbytes, " bytes, section ", weights_size_, ")");
        uint8_t* p = const_cast<uint8_t*>(weights_) + off;
        std::shared_ptr<uint8_t> storage(keep_, p);
        v->constant = std::make_shared<Tensor>(cdt, dims, storage);
      }
    }
    auto valueAt = [&](uint32_t i, bool optional) -> Value* {
      if (optional) {
        if (i == 0) return nullptr;
        --i;
      }
      if (i >= values.size()) {
        r_.fail("value index " + std::to_string(i) + " out of range");
        return nullptr;
      }
      return values[i];
    };
    uint32_t ni = r_.count(4, "inputs");
    for (uint32_t i = 0; i < ni; ++i) if (Value* v = valueAt(r_.u32(), false)) g->inputs.push_back(v);
    uint32_t nout = r_.count(4, "outputs");
    for (uint32_t i = 0; i < nout; ++i) if (Value* v = valueAt(r_.u32(), false)) g->outputs.push_back(v);
    uint32_t nn = r_.count(20, "nodes");
    RJ_RETURN_IF_ERROR(r_.status());
    for (uint32_t i = 0; i < nn; ++i) {
      std::string op = r_.str(), domain = r_.str(), name = r_.str();
      std::vector<Value*> ins, outs;
      uint32_t nin = r_.count(4, "node inputs");
      for (uint32_t k = 0; k < nin; ++k) ins.push_back(valueAt(r_.u32(), true));
      uint32_t nou = r_.count(4, "node outputs");
      for (uint32_t k = 0; k < nou; ++k) outs.push_back(valueAt(r_.u32(), true));
      RJ_RETURN_IF_ERROR(r_.status());
      for (Value* v : outs)
        if (v && (v->producer || v->constant || v->is_graph_input))
          return makeError(StatusCode::kInvalidPlan, "node '", name, "' output '", v->name, "' is already defined");
      std::set<Value*> seen;
      for (Value* v : outs)
        if (v && !seen.insert(v).second)
          return makeError(StatusCode::kInvalidPlan, "node '", name, "' lists output '", v->name, "' twice");
      Node* n = g->addNode(op, name, ins, outs);
      n->domain = domain;
      uint32_t na = r_.count(5, "attributes");
      for (uint32_t k = 0; k < na; ++k) {
        std::string key = r_.str();
        RJ_ASSIGN_OR_RETURN(Attribute a, attribute(depth));
        n->attrs[key] = std::move(a);
      }
      RJ_RETURN_IF_ERROR(r_.status());
    }
    RJ_RETURN_IF_ERROR(r_.status());
    return g;
  }

 private:
  Reader& r_;
  const uint8_t* weights_;
  size_t weights_size_;
  std::shared_ptr<void> keep_;
};

void putU32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
void putU64(std::vector<uint8_t>& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
uint32_t getU32(const uint8_t* p, size_t off) { uint32_t v; std::memcpy(&v, p + off, 4); return v; }
uint64_t getU64(const uint8_t* p, size_t off) { uint64_t v; std::memcpy(&v, p + off, 8); return v; }

void encodeMeta(Writer& w, const BuildMeta& m) {
  w.str(m.ramjet_version);
  w.i32(static_cast<int32_t>(m.device));
  w.i32(static_cast<int32_t>(m.precision));
  w.str(m.device_info.name);
  w.i32(m.device_info.cc_major);
  w.i32(m.device_info.cc_minor);
  w.i32(m.device_info.cuda_runtime_version);
  w.i32(m.device_info.cudnn_version);
  w.i32(m.device_info.cublas_version);
  w.u64(m.device_info.total_memory);
  w.u32(static_cast<uint32_t>(m.profiles.size()));
  for (const auto& p : m.profiles) { w.str(p.input); w.dims(p.min); w.dims(p.opt); w.dims(p.max); }
  w.u8(m.allow_cpu_fallback ? 1 : 0);
  w.i64(m.created_unix);
}

Status decodeMeta(Reader& r, BuildMeta* m) {
  m->ramjet_version = r.str();
  int32_t dev = r.i32(), prec = r.i32();
  if (r.ok() && (dev < 0 || dev > 1)) r.fail("unknown device kind " + std::to_string(dev));
  if (r.ok() && (prec < 0 || prec > static_cast<int32_t>(Precision::kFP8))) r.fail("unknown precision " + std::to_string(prec));
  m->device = static_cast<DeviceKind>(dev);
  m->precision = static_cast<Precision>(prec);
  m->device_info.name = r.str();
  m->device_info.cc_major = r.i32();
  m->device_info.cc_minor = r.i32();
  m->device_info.cuda_runtime_version = r.i32();
  m->device_info.cudnn_version = r.i32();
  m->device_info.cublas_version = r.i32();
  m->device_info.total_memory = r.u64();
  uint32_t np = r.count(16, "profiles");
  for (uint32_t i = 0; i < np; ++i) {
    ShapeProfile p;
    p.input = r.str();
    p.min = r.dims();
    p.opt = r.dims();
    p.max = r.dims();
    m->profiles.push_back(std::move(p));
  }
  m->allow_cpu_fallback = r.u8() != 0;
  m->created_unix = r.i64();
  return r.status();
}

}  // namespace

std::vector<uint8_t> encode(const PlanContents& plan) {
  Writer meta;
  std::vector<uint8_t> weights;
  encodeMeta(meta, plan.meta);
  GraphEncoder(&meta, &weights).graph(*plan.graph);
  meta.u32(static_cast<uint32_t>(plan.exec.size()));
  for (const auto& e : plan.exec) {
    meta.u32(e.node_index);
    meta.u8(static_cast<uint8_t>(e.placement));
    meta.str(e.tactic.name);
    meta.i32(e.tactic.id);
    meta.dims(e.tactic.tuned_dims);
    meta.f64(e.time_ms);
  }
  const MemoryReport& mr = plan.memory.report;
  for (size_t v : {mr.arena_bytes, mr.sum_tensor_bytes, mr.peak_live_bytes, mr.num_tensors, mr.num_aliases,
                   mr.workspace_bytes})
    meta.u64(v);
  meta.dims(plan.memory.value_offsets);

  size_t meta_off = kHeaderSize;
  size_t weights_off = (meta_off + meta.buf.size() + kWeightAlign - 1) / kWeightAlign * kWeightAlign;
  size_t total = weights_off + weights.size();
  std::vector<uint8_t> out(total, 0);
  std::memcpy(out.data(), kMagic, 8);
  putU32(out, 8, kFormatVersion);
  putU32(out, 12, kHeaderSize);
  putU64(out, 16, total);
  putU64(out, 24, meta_off);
  putU64(out, 32, meta.buf.size());
  putU64(out, 40, weights_off);
  putU64(out, 48, weights.size());
  putU64(out, 56, xxh64(meta.buf.data(), meta.buf.size()));
  putU64(out, 64, xxh64(weights.data(), weights.size()));
  putU64(out, 72, 0);
  putU64(out, 80, 0);
  putU64(out, 88, xxh64(out.data(), 88));
  std::memcpy(out.data() + meta_off, meta.buf.data(), meta.buf.size());
  if (!weights.empty()) std::memcpy(out.data() + weights_off, weights.data(), weights.size());
  return out;
}

Result<PlanContents> decode(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive,
                            const std::string& what) {
  auto bad = [&](auto&&... parts) { return makeError(StatusCode::kInvalidPlan, what, ": ", parts...); };
  if (size < 8 || std::memcmp(data, kMagic, 8) != 0) {
    if (size >= 4 && std::memcmp(data, "\x08", 1) == 0)
      return bad("not a ramjet plan (no 'RJPLAN' magic; it looks like an ONNX model: build it with `ramjet build`)");
    return bad("not a ramjet plan (the file does not start with the 'RJPLAN' magic bytes)");
  }
  if (size < kHeaderSize) return bad("truncated: ", size, " bytes, but a plan header alone is ", kHeaderSize);
  uint32_t version = getU32(data, 8);
  if (version != kFormatVersion)
    return bad("plan format version ", version, ", but this ramjet (", RAMJET_VERSION, ") reads version ",
               kFormatVersion, version > kFormatVersion ? ": the plan is from a newer ramjet" : ": rebuild the plan",
               " (run `ramjet build` again)");
  if (getU64(data, 88) != xxh64(data, 88)) return bad("header checksum mismatch: the file is corrupted");
  if (getU32(data, 12) != kHeaderSize) return bad("header size ", getU32(data, 12), " is not ", kHeaderSize);
  uint64_t file_size = getU64(data, 16);
  if (size < file_size) return bad("truncated: ", size, " bytes, but the header says ", file_size);
  if (size > file_size) return bad(size - file_size, " unexpected bytes after the end of the plan");
  uint64_t meta_off = getU64(data, 24), meta_size = getU64(data, 32);
  uint64_t w_off = getU64(data, 40), w_size = getU64(data, 48);
  if (meta_off != kHeaderSize || meta_size > size - meta_off || w_off % kWeightAlign || w_off < meta_off + meta_size ||
      w_off > size || w_size != size - w_off)
    return bad("section table is inconsistent (meta ", meta_off, "+", meta_size, ", weights ", w_off, "+", w_size,
               ", file ", size, ")");
  if (xxh64(data + meta_off, meta_size) != getU64(data, 56))
    return bad("checksum mismatch in the meta section (graph and build info): the file is corrupted");
  if (xxh64(data + w_off, w_size) != getU64(data, 64))
    return bad("checksum mismatch in the weights section: the file is corrupted");

  PlanContents pc;
  pc.file_bytes = size;
  pc.weight_bytes = w_size;
  Reader r(data + meta_off, meta_size, what);
  RJ_RETURN_IF_ERROR(decodeMeta(r, &pc.meta));
  GraphDecoder gd(&r, data + w_off, w_size, keepalive);
  RJ_ASSIGN_OR_RETURN(pc.graph, gd.graph(0));
  uint32_t ne = r.count(25, "exec records");
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < ne && r.ok(); ++i) {
    NodeExec e;
    e.node_index = r.u32();
    uint8_t pl = r.u8();
    e.tactic.name = r.str();
    e.tactic.id = r.i32();
    e.tactic.tuned_dims = r.dims();
    e.time_ms = r.f64();
    if (!r.ok()) break;
    if (pl > 3) return bad("node record ", i, " has unknown placement ", static_cast<int>(pl));
    if (e.node_index >= pc.graph->nodes().size() || !seen.insert(e.node_index).second)
      return bad("node record ", i, " refers to node ", e.node_index, " (the graph has ",
                 pc.graph->nodes().size(), " nodes, each listed once)");
    e.placement = static_cast<backend::Placement>(pl);
    pc.exec.push_back(std::move(e));
  }
  MemoryReport& mr = pc.memory.report;
  for (size_t* v : {&mr.arena_bytes, &mr.sum_tensor_bytes, &mr.peak_live_bytes, &mr.num_tensors, &mr.num_aliases,
                    &mr.workspace_bytes})
    *v = r.u64();
  {
    uint32_t c = r.count(8, "memory offsets");
    pc.memory.value_offsets.resize(c);
    for (auto& x : pc.memory.value_offsets) x = r.i64();
  }
  RJ_RETURN_IF_ERROR(r.status());
  if (r.left() != 0) return bad(r.left(), " unexpected bytes at the end of the meta section");
  if (pc.exec.size() != pc.graph->nodes().size())
    return bad("the plan lists ", pc.exec.size(), " node records for ", pc.graph->nodes().size(), " nodes");
  Status v = pc.graph->verify();
  if (!v.ok()) return bad("the stored graph is invalid: ", v.message());
  return pc;
}

Result<std::unique_ptr<Graph>> cloneGraph(const Graph& g) {
  Writer w;
  auto weights = std::make_shared<std::vector<uint8_t>>();
  GraphEncoder(&w, weights.get()).graph(g);
  // The clone's constants alias this one weights buffer (kept alive by their shared_ptrs).
  std::shared_ptr<void> keep(weights, weights.get());
  auto storage = std::shared_ptr<uint8_t>(weights, weights->data());
  Reader r(w.buf.data(), w.buf.size(), "graph copy");
  GraphDecoder gd(&r, weights->data(), weights->size(), std::static_pointer_cast<void>(storage));
  return gd.graph(0);
}

bool isMultiProfile(const uint8_t* data, size_t size) {
  return size >= 8 && std::memcmp(data, kMultiMagic, 8) == 0;
}

std::vector<uint8_t> encodeMultiProfile(const std::vector<std::vector<uint8_t>>& plans) {
  const size_t header = 24 + 16 * plans.size() + 8;
  std::vector<std::pair<size_t, size_t>> where;
  size_t off = (header + kMultiAlign - 1) / kMultiAlign * kMultiAlign;
  for (const auto& p : plans) {
    where.push_back({off, p.size()});
    off = (off + p.size() + kMultiAlign - 1) / kMultiAlign * kMultiAlign;
  }
  const size_t total = where.empty() ? header : where.back().first + where.back().second;
  std::vector<uint8_t> out(total, 0);
  std::memcpy(out.data(), kMultiMagic, 8);
  putU32(out, 8, 1);
  putU32(out, 12, static_cast<uint32_t>(plans.size()));
  putU64(out, 16, total);
  for (size_t i = 0; i < plans.size(); ++i) {
    putU64(out, 24 + 16 * i, where[i].first);
    putU64(out, 32 + 16 * i, where[i].second);
    std::memcpy(out.data() + where[i].first, plans[i].data(), plans[i].size());
  }
  putU64(out, header - 8, xxh64(out.data(), header - 8));
  return out;
}

Result<std::vector<std::pair<size_t, size_t>>> decodeMultiProfile(const uint8_t* data, size_t size,
                                                                  const std::string& what) {
  auto bad = [&](auto&&... parts) { return makeError(StatusCode::kInvalidPlan, what, ": ", parts...); };
  if (!isMultiProfile(data, size)) return bad("not a multi-profile plan");
  if (size < 24) return bad("truncated multi-profile header (", size, " bytes)");
  const uint32_t version = getU32(data, 8), count = getU32(data, 12);
  if (version != 1) return bad("multi-profile container version ", version, " (this ramjet reads 1): rebuild the plan");
  if (count < 1 || count > kMaxProfiles) return bad("multi-profile container lists ", count, " profiles (1..", kMaxProfiles, ")");
  const size_t header = 24 + 16 * static_cast<size_t>(count) + 8;
  if (size < header) return bad("truncated multi-profile header (", size, " bytes, needs ", header, ")");
  if (getU64(data, header - 8) != xxh64(data, header - 8))
    return bad("multi-profile header checksum mismatch: the file is corrupted");
  const uint64_t total = getU64(data, 16);
  if (size < total) return bad("truncated: ", size, " bytes, but the header says ", total);
  if (size > total) return bad(size - total, " unexpected bytes after the end of the plan");
  std::vector<std::pair<size_t, size_t>> where;
  uint64_t prev_end = header;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t off = getU64(data, 24 + 16 * i), len = getU64(data, 32 + 16 * i);
    if (off % kMultiAlign || off < prev_end || off > size || len > size - off || len == 0)
      return bad("profile ", i, " lies outside the file or overlaps another (offset ", off, ", size ", len, ")");
    where.push_back({static_cast<size_t>(off), static_cast<size_t>(len)});
    prev_end = off + len;
  }
  return where;
}

}  // namespace ramjet::plan
