// Reference kernels for the sequence, optional, string and signal (DFT, STFT) ops. Sequence/optional values are
// Tensors with kind() kSequence / kOptional (see include/ramjet/tensor.h); their elements share
// storage with the tensors they were made from, which is safe because values are immutable.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/dispatch.h"
#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

Result<const Tensor*> seqInput(const KernelContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return ctx.error("input ", i, " (a sequence) is missing");
  const Tensor& t = ctx.input(i);
  if (t.kind() != TypeKind::kSequence) return ctx.error("input ", i, " must be a sequence, got ", t.type().toString());
  return &t;
}

Result<const Tensor*> tensorIn(const KernelContext& ctx, size_t i, const char* what) {
  if (!ctx.hasInput(i)) return ctx.error(what, " is missing");
  const Tensor& t = ctx.input(i);
  if (!t.isTensor()) return ctx.error(what, " must be a tensor, got ", t.type().toString());
  return &t;
}

// A position input: one int32/int64 value, normalized against [-n, n - 1 + extra].
Result<int64_t> position(const KernelContext& ctx, size_t i, int64_t n, int64_t extra) {
  RJ_ASSIGN_OR_RETURN(const Tensor* p, tensorIn(ctx, i, "position"));
  if (p->numel() != 1 || (p->dtype() != DataType::kInt32 && p->dtype() != DataType::kInt64))
    return ctx.error("position must be one int32/int64 value, got ", p->type().toString());
  int64_t v = p->getInt(0);
  if (v < -n || v > n - 1 + extra)
    return ctx.error("position ", v, " is out of range for a sequence of ", n, " element(s)");
  return v < 0 ? v + n : v;
}

TensorType elemType(const Tensor& seq) {
  TensorType t = seq.type();
  return t.elem ? *t.elem : TensorType(seq.dtype(), Shape::unknownRank());
}

// Copies `count` elements between (possibly string) tensors of the same dtype.
void copyElems(Tensor& dst, int64_t dst_off, const Tensor& src, int64_t src_off, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == DataType::kString) {
    std::copy(src.strings() + src_off, src.strings() + src_off + count, dst.strings() + dst_off);
    return;
  }
  const size_t es = dataTypeSize(src.dtype());
  std::memcpy(static_cast<uint8_t*>(dst.raw()) + dst_off * es, static_cast<const uint8_t*>(src.raw()) + src_off * es,
              static_cast<size_t>(count) * es);
}

}  // namespace

Status refSequenceConstruct(KernelContext& ctx) {
  std::vector<Tensor> elems;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    RJ_ASSIGN_OR_RETURN(const Tensor* t, tensorIn(ctx, i, "every input"));
    if (t->dtype() != ctx.input(0).dtype())
      return ctx.error("input ", i, " is ", dataTypeName(t->dtype()), " but input 0 is ", dataTypeName(ctx.input(0).dtype()));
    elems.push_back(*t);
  }
  ctx.outputs[0] = Tensor::sequence(TensorType(ctx.input(0).dtype(), Shape::unknownRank()), std::move(elems));
  return Status::Ok();
}

Status refSequenceEmpty(KernelContext& ctx) {
  DataType dt = DataType::kFloat32;
  if (ctx.node.hasAttr("dtype") && !dataTypeFromOnnx(static_cast<int32_t>(ctx.node.attrInt("dtype", 1)), &dt))
    return ctx.error("attribute dtype is not a known ONNX type");
  ctx.outputs[0] = Tensor::sequence(TensorType(dt, Shape::unknownRank()), {});
  return Status::Ok();
}

Status refSequenceInsert(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* seq, seqInput(ctx, 0));
  RJ_ASSIGN_OR_RETURN(const Tensor* t, tensorIn(ctx, 1, "tensor"));
  if (t->dtype() != seq->dtype())
    return ctx.error("cannot insert a ", dataTypeName(t->dtype()), " tensor into a sequence of ", dataTypeName(seq->dtype()));
  std::vector<Tensor> elems = seq->elements();
  const int64_t n = static_cast<int64_t>(elems.size());
  int64_t pos = n;
  if (ctx.hasInput(2)) { RJ_ASSIGN_OR_RETURN(pos, position(ctx, 2, n, 1)); }
  elems.insert(elems.begin() + pos, *t);
  ctx.outputs[0] = Tensor::sequence(elemType(*seq), std::move(elems));
  return Status::Ok();
}

Status refSequenceErase(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* seq, seqInput(ctx, 0));
  std::vector<Tensor> elems = seq->elements();
  const int64_t n = static_cast<int64_t>(elems.size());
  if (n == 0) return ctx.error("cannot erase from an empty sequence");
  int64_t pos = n - 1;
  if (ctx.hasInput(1)) { RJ_ASSIGN_OR_RETURN(pos, position(ctx, 1, n, 0)); }
  elems.erase(elems.begin() + pos);
  ctx.outputs[0] = Tensor::sequence(elemType(*seq), std::move(elems));
  return Status::Ok();
}

Status refSequenceAt(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* seq, seqInput(ctx, 0));
  const int64_t n = static_cast<int64_t>(seq->elements().size());
  RJ_ASSIGN_OR_RETURN(int64_t pos, position(ctx, 1, n, 0));
  ctx.outputs[0] = seq->elements()[pos];
  return Status::Ok();
}

Status refSequenceLength(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* seq, seqInput(ctx, 0));
  ctx.outputs[0] = Tensor::scalar<int64_t>(static_cast<int64_t>(seq->elements().size()));
  return Status::Ok();
}

Status refConcatFromSequence(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* seq, seqInput(ctx, 0));
  const auto& elems = seq->elements();
  if (elems.empty()) return ctx.error("cannot concatenate an empty sequence (its shape is unknown)");
  const bool new_axis = ctx.node.attrInt("new_axis", 0) != 0;
  const Tensor& first = elems[0];
  const int64_t r = static_cast<int64_t>(first.rank());
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, r + (new_axis ? 1 : 0), ctx.node));
  // With new_axis every element gets a size-1 axis at `axis`; then it is a plain concat.
  std::vector<int64_t> out_dims = first.dims();
  if (new_axis) out_dims.insert(out_dims.begin() + axis, 0);
  else out_dims[axis] = 0;
  for (size_t k = 0; k < elems.size(); ++k) {
    const Tensor& e = elems[k];
    if (e.dtype() != first.dtype() || e.rank() != first.rank())
      return ctx.error("element ", k, " is ", e.type().toString(), " but element 0 is ", first.type().toString());
    for (int64_t d = 0; d < r; ++d)
      if ((new_axis || d != axis) && e.dims()[d] != first.dims()[d])
        return ctx.error("element ", k, " has shape ", dimsToString(e.dims()), ", incompatible with element 0's ",
                         dimsToString(first.dims()), " for concatenation along axis ", axis);
    out_dims[axis] += new_axis ? 1 : e.dims()[axis];
  }
  Tensor out(first.dtype(), out_dims);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_dims[d];
  int64_t off = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor& e : elems) {
      const int64_t chunk = outer ? e.numel() / std::max<int64_t>(outer, 1) : 0;
      copyElems(out, off, e, o * chunk, chunk);
      off += chunk;
    }
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

Status refSplitToSequence(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* x, tensorIn(ctx, 0, "input"));
  const int64_t r = static_cast<int64_t>(x->rank());
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, r, ctx.node));
  if (r == 0) return ctx.error("cannot split a scalar");
  const int64_t len = x->dims()[axis];
  std::vector<int64_t> sizes;
  bool squeeze = false;
  if (!ctx.hasInput(1)) {
    sizes.assign(static_cast<size_t>(len), 1);
    squeeze = ctx.node.attrInt("keepdims", 1) == 0;
  } else {
    const Tensor& s = ctx.input(1);
    if (s.rank() == 0) {
      int64_t chunk = s.getInt(0);
      if (chunk <= 0) return ctx.error("split must be positive, got ", chunk);
      for (int64_t left = len; left > 0; left -= chunk) sizes.push_back(std::min(chunk, left));
    } else if (s.rank() == 1) {
      int64_t sum = 0;
      for (int64_t v : s.toInt64Vector()) {
        if (v < 0) return ctx.error("split holds a negative size ", v);
        sizes.push_back(v);
        sum += v;
      }
      if (sum != len) return ctx.error("split sizes sum to ", sum, " but the axis has length ", len);
    } else {
      return ctx.error("split must be a scalar or 1-D, got ", s.type().toString());
    }
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x->dims()[d];
  for (int64_t d = axis + 1; d < r; ++d) inner *= x->dims()[d];
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t sz : sizes) {
    std::vector<int64_t> dims = x->dims();
    dims[axis] = sz;
    Tensor p(x->dtype(), dims);
    for (int64_t o = 0; o < outer; ++o) copyElems(p, o * sz * inner, *x, (o * len + start) * inner, sz * inner);
    if (squeeze) {
      dims.erase(dims.begin() + axis);
      p = p.reshaped(dims);
    }
    parts.push_back(std::move(p));
    start += sz;
  }
  ctx.outputs[0] = Tensor::sequence(TensorType(x->dtype(), Shape::unknownRank()), std::move(parts));
  return Status::Ok();
}

Status refSequenceMap(KernelContext& ctx) {
  if (!ctx.subgraphs) return makeError(StatusCode::kInternal, ctx.node.describe(), ": no subgraph runner");
  const Graph* body = ctx.node.attrGraph("body");
  if (!body) return ctx.error("attribute 'body' is missing");
  RJ_ASSIGN_OR_RETURN(const Tensor* seq0, seqInput(ctx, 0));
  const size_t n = seq0->elements().size();
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    const Tensor& t = ctx.input(i);
    if (t.kind() == TypeKind::kSequence && t.elements().size() != n)
      return ctx.error("input ", i, " has ", t.elements().size(), " elements but input 0 has ", n);
    if (t.kind() == TypeKind::kOptional) return ctx.error("input ", i, " is an optional; SequenceMap takes sequences and tensors");
  }
  std::vector<std::vector<Tensor>> outs(ctx.outputs.size());
  for (size_t k = 0; k < n; ++k) {
    std::vector<Tensor> in;
    for (size_t i = 0; i < ctx.inputs.size(); ++i) {
      const Tensor& t = ctx.input(i);
      in.push_back(t.kind() == TypeKind::kSequence ? t.elements()[k] : t);
    }
    auto r = ctx.subgraphs->run(*body, in);
    if (!r.ok()) return r.status().withContext(ctx.node.describe() + " body, element " + std::to_string(k));
    if (r->size() != outs.size()) return ctx.error("body produced ", r->size(), " outputs, expected ", outs.size());
    for (size_t j = 0; j < outs.size(); ++j) {
      if (!(*r)[j].isTensor()) return ctx.unsupported("body output ", j, " is not a tensor");
      outs[j].push_back(std::move((*r)[j]));
    }
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    DataType dt = outs[j].empty() ? misc::bodyOutputType(*body, j).dtype : outs[j][0].dtype();
    if (dt == DataType::kUndefined) return ctx.error("cannot tell the element type of output ", j, " of an empty map");
    for (const Tensor& t : outs[j])
      if (t.dtype() != dt) return ctx.error("body output ", j, " changes type between elements");
    ctx.outputs[j] = Tensor::sequence(TensorType(dt, Shape::unknownRank()), std::move(outs[j]));
  }
  return Status::Ok();
}

Status refOptional(KernelContext& ctx) {
  if (ctx.hasInput(0)) {
    if (ctx.input(0).kind() == TypeKind::kOptional) return ctx.error("input is already an optional");
    ctx.outputs[0] = Tensor::optional(ctx.input(0));
    return Status::Ok();
  }
  const Tensor* ex = ctx.node.attrTensor("type");
  if (!ex) return ctx.error("needs an input or a 'type' attribute");
  ctx.outputs[0] = Tensor::optionalNone(ex->isTensor() ? TensorType(ex->dtype(), Shape::unknownRank()) : ex->type());
  return Status::Ok();
}

Status refOptionalHasElement(KernelContext& ctx) {
  bool has = false;
  if (ctx.hasInput(0)) {
    const Tensor& t = ctx.input(0);
    has = t.kind() == TypeKind::kOptional ? t.hasElement() : true;  // opset 18: tensors/sequences are "present"
  }
  ctx.outputs[0] = Tensor::scalar<bool>(has);
  return Status::Ok();
}

Status refOptionalGetElement(KernelContext& ctx) {
  const Tensor& t = ctx.input(0);
  if (t.kind() != TypeKind::kOptional) {
    ctx.outputs[0] = t;
    return Status::Ok();
  }
  if (!t.hasElement()) return ctx.error("the optional input is empty (none)");
  ctx.outputs[0] = t.elements()[0];
  return Status::Ok();
}

namespace {

std::string changeCase(std::string s, const std::string& mode) {
  if (mode == "LOWER") for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (mode == "UPPER") for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ASCII case mapping only; `locale` is accepted but not applied.
Status refStringNormalizer(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* x, tensorIn(ctx, 0, "X"));
  if (x->dtype() != DataType::kString) return ctx.error("X must be a string tensor, got ", dataTypeName(x->dtype()));
  if (!(x->rank() == 1 || (x->rank() == 2 && x->dims()[0] == 1)))
    return ctx.error("X must have shape [C] or [1, C], got ", dimsToString(x->dims()));
  const std::string mode = ctx.node.attrString("case_change_action", "NONE");
  if (mode != "NONE" && mode != "LOWER" && mode != "UPPER")
    return ctx.error("case_change_action must be NONE, LOWER or UPPER, got '", mode, "'");
  const bool sensitive = ctx.node.attrInt("is_case_sensitive", 0) != 0;
  std::set<std::string> stops;
  auto it = ctx.node.attrs.find("stopwords");
  if (it != ctx.node.attrs.end())
    for (const auto& w : it->second.strings) stops.insert(sensitive ? w : changeCase(w, "LOWER"));
  std::vector<std::string> kept;
  for (int64_t i = 0; i < x->numel(); ++i) {
    const std::string& s = x->strings()[i];
    if (stops.count(sensitive ? s : changeCase(s, "LOWER"))) continue;
    kept.push_back(changeCase(s, mode));
  }
  if (kept.empty()) kept.push_back("");  // ONNX: all removed gives one empty string
  const int64_t c = static_cast<int64_t>(kept.size());
  Tensor out(DataType::kString, x->rank() == 1 ? std::vector<int64_t>{c} : std::vector<int64_t>{1, c});
  std::copy(kept.begin(), kept.end(), out.strings());
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

Status refTfIdfVectorizer(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* x, tensorIn(ctx, 0, "X"));
  const Node& n = ctx.node;
  const std::string mode = n.attrString("mode", "");
  if (mode != "TF" && mode != "IDF" && mode != "TFIDF") return ctx.error("mode must be TF, IDF or TFIDF, got '", mode, "'");
  const int64_t min_n = n.attrInt("min_gram_length", 0), max_n = n.attrInt("max_gram_length", 0);
  const int64_t max_skip = n.attrInt("max_skip_count", 0);
  if (min_n < 1 || max_n < min_n) return ctx.error("need 1 <= min_gram_length <= max_gram_length, got ", min_n, " and ", max_n);
  if (max_skip < 0) return ctx.error("max_skip_count must be >= 0, got ", max_skip);
  const std::vector<int64_t> counts = n.attrInts("ngram_counts"), indexes = n.attrInts("ngram_indexes");
  const std::vector<float> weights = n.attrFloats("weights");
  // The pool as strings either way: integers are compared through their decimal form.
  std::vector<std::string> pool;
  const bool str_pool = n.hasAttr("pool_strings");
  if (str_pool) pool = n.attrs.at("pool_strings").strings;
  else for (int64_t v : n.attrInts("pool_int64s")) pool.push_back(std::to_string(v));
  if (str_pool != (x->dtype() == DataType::kString))
    return ctx.error(str_pool ? "pool_strings needs a string input" : "pool_int64s needs an integer input, got ", dataTypeName(x->dtype()));
  if (static_cast<int64_t>(counts.size()) < max_n) return ctx.error("ngram_counts has ", counts.size(), " entries, max_gram_length is ", max_n);
  std::map<std::vector<std::string>, size_t> ids;  // n-gram -> its position in ngram_indexes
  size_t id = 0;
  for (size_t g = 0; g < counts.size(); ++g) {
    const size_t begin = static_cast<size_t>(counts[g]);
    const size_t end = g + 1 < counts.size() ? static_cast<size_t>(counts[g + 1]) : pool.size();
    const size_t len = g + 1;
    if (begin > end || end > pool.size() || (end - begin) % len)
      return ctx.error("ngram_counts[", g, "] = ", counts[g], " does not split the pool into ", len, "-grams");
    for (size_t p = begin; p < end; p += len) ids[std::vector<std::string>(pool.begin() + p, pool.begin() + p + len)] = id++;
  }
  if (indexes.size() != id) return ctx.error("ngram_indexes has ", indexes.size(), " entries for ", id, " n-grams in the pool");
  if (!weights.empty() && weights.size() != id) return ctx.error("weights has ", weights.size(), " entries for ", id, " n-grams");
  int64_t width = 0;
  for (int64_t v : indexes) width = std::max(width, v + 1);
  if (x->rank() != 1 && x->rank() != 2) return ctx.error("X must have rank 1 or 2, got ", dimsToString(x->dims()));
  const int64_t rows = x->rank() == 1 ? 1 : x->dims()[0];
  const int64_t cols = x->rank() == 1 ? x->dims()[0] : x->dims()[1];
  auto token = [&](int64_t i) { return x->dtype() == DataType::kString ? x->strings()[i] : std::to_string(x->getInt(i)); };
  Tensor out(DataType::kFloat32, x->rank() == 1 ? std::vector<int64_t>{width} : std::vector<int64_t>{rows, width});
  float* o = out.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> freq(id, 0);
    // Like onnxruntime: every skip distance 1..max_skip+1 for n >= 2, unigrams counted once.
    int64_t start_n = min_n;
    for (int64_t dist = 1; dist <= max_skip + 1; ++dist) {
      for (int64_t s = 0; s < cols; ++s) {
        if (s + dist * (start_n - 1) >= cols) break;
        std::vector<std::string> gram;
        for (int64_t k = 0; k < max_n && s + k * dist < cols; ++k) {
          gram.push_back(token(r * cols + s + k * dist));
          if (k + 1 < start_n) continue;
          auto f = ids.find(gram);
          if (f != ids.end()) ++freq[f->second];
        }
      }
      if (start_n == 1) {
        if (++start_n > max_n) break;
      }
    }
    for (size_t g = 0; g < id; ++g) {
      if (!freq[g]) continue;
      float w = weights.empty() ? 1.f : weights[g];
      float v = mode == "TF" ? static_cast<float>(freq[g]) : mode == "IDF" ? w : static_cast<float>(freq[g]) * w;
      o[r * width + indexes[g]] = v;
    }
  }
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

}  // namespace ramjet::ops

// ---- signal ops: DFT and STFT, naive O(n^2) transforms in double ----

namespace ramjet::ops {
namespace {

Result<int64_t> scalarIn(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (!isIntegerType(t.dtype()) || t.numel() != 1) return ctx.error(what, " must be one integer, got ", t.type().toString());
  return t.getInt(0);
}

// out[k] = sum_j in[j] * exp(-+2 pi i j k / n) for k < bins; `in` holds `have` complex values
// (zero padded / truncated to n).
void dft(const std::vector<double>& re, const std::vector<double>& im, int64_t n, int64_t bins, bool inverse,
         std::vector<double>* ore, std::vector<double>* oim) {
  const int64_t have = std::min<int64_t>(n, static_cast<int64_t>(re.size()));
  const double sign = inverse ? 1.0 : -1.0;
  ore->assign(bins, 0.0);
  oim->assign(bins, 0.0);
  for (int64_t k = 0; k < bins; ++k) {
    double sr = 0, si = 0;
    for (int64_t j = 0; j < have; ++j) {
      const double a = sign * 2.0 * M_PI * static_cast<double>((j * k) % n) / static_cast<double>(n);
      const double c = std::cos(a), s = std::sin(a);
      sr += re[j] * c - im[j] * s;
      si += re[j] * s + im[j] * c;
    }
    (*ore)[k] = inverse ? sr / n : sr;
    (*oim)[k] = inverse ? si / n : si;
  }
}

void storeDouble(Tensor& t, int64_t i, double v) {
  visitFloatType(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    t.data<T>()[i] = static_cast<T>(static_cast<typename AccType<T>::type>(v));
  });
}

}  // namespace

Status refDFT(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* x, tensorIn(ctx, 0, "input"));
  if (!isFloatType(x->dtype())) return ctx.error("input must be a float tensor, got ", dataTypeName(x->dtype()));
  const int64_t r = static_cast<int64_t>(x->rank());
  if (r < 2 || (x->dims()[r - 1] != 1 && x->dims()[r - 1] != 2))
    return ctx.error("input must be [batch, signal..., 1 or 2], got ", dimsToString(x->dims()));
  int64_t axis = ctx.node.attrInt("axis", 1);
  if (ctx.hasInput(2)) { RJ_ASSIGN_OR_RETURN(axis, scalarIn(ctx, 2, "axis")); }
  if (axis < 0) axis += r;
  if (axis < 1 || axis >= r - 1) return ctx.error("axis ", axis, " must name a signal dim (1..", r - 2, ")");
  const int64_t len = x->dims()[axis];
  int64_t n = len;
  if (ctx.hasInput(1)) { RJ_ASSIGN_OR_RETURN(n, scalarIn(ctx, 1, "dft_length")); }
  if (n <= 0) return ctx.error("dft_length must be positive, got ", n);
  const bool inverse = ctx.node.attrInt("inverse", 0) != 0;
  const bool onesided = ctx.node.attrInt("onesided", 0) != 0;
  const bool complex_in = x->dims()[r - 1] == 2;
  if (onesided && inverse) return ctx.unsupported("onesided inverse DFT is not supported");
  const int64_t bins = onesided ? n / 2 + 1 : n;
  std::vector<int64_t> od = x->dims();
  od[axis] = bins;
  od[r - 1] = 2;
  Tensor out(x->dtype(), od);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= od[d];
  for (int64_t d = axis + 1; d < r - 1; ++d) inner *= od[d];
  const int64_t cin = complex_in ? 2 : 1;
  std::vector<double> re, im, ore, oim;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      re.assign(std::min(len, n), 0.0);
      im.assign(std::min(len, n), 0.0);
      for (int64_t j = 0; j < std::min(len, n); ++j) {
        const int64_t base = ((o * len + j) * inner + in) * cin;
        re[j] = x->getDouble(base);
        if (complex_in) im[j] = x->getDouble(base + 1);
      }
      dft(re, im, n, bins, inverse, &ore, &oim);
      for (int64_t k = 0; k < bins; ++k) {
        const int64_t base = ((o * bins + k) * inner + in) * 2;
        storeDouble(out, base, ore[k]);
        storeDouble(out, base + 1, oim[k]);
      }
    }
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

Status refSTFT(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(const Tensor* x, tensorIn(ctx, 0, "signal"));
  if (!isFloatType(x->dtype())) return ctx.error("signal must be a float tensor, got ", dataTypeName(x->dtype()));
  if (x->rank() != 3 || (x->dims()[2] != 1 && x->dims()[2] != 2))
    return ctx.error("signal must be [batch, length, 1 or 2], got ", dimsToString(x->dims()));
  RJ_ASSIGN_OR_RETURN(int64_t step, scalarIn(ctx, 1, "frame_step"));
  if (step <= 0) return ctx.error("frame_step must be positive, got ", step);
  const Tensor* window = ctx.hasInput(2) ? &ctx.input(2) : nullptr;
  if (window && window->rank() != 1) return ctx.error("window must be 1-D, got ", dimsToString(window->dims()));
  int64_t fl = window ? window->dims()[0] : -1;
  if (ctx.hasInput(3)) {
    RJ_ASSIGN_OR_RETURN(int64_t f, scalarIn(ctx, 3, "frame_length"));
    if (window && f != fl) return ctx.error("frame_length ", f, " differs from the window length ", fl);
    fl = f;
  }
  if (fl <= 0) return ctx.error(fl < 0 ? "needs a window or a frame_length" : "frame_length must be positive");
  const int64_t batch = x->dims()[0], len = x->dims()[1];
  if (len < fl) return ctx.error("signal length ", len, " is shorter than one frame (", fl, ")");
  const bool complex_in = x->dims()[2] == 2;
  const bool onesided = ctx.node.attrInt("onesided", 1) != 0;
  if (onesided && complex_in) return ctx.error("onesided output needs a real signal");
  const int64_t frames = (len - fl) / step + 1, bins = onesided ? fl / 2 + 1 : fl;
  const int64_t cin = complex_in ? 2 : 1;
  Tensor out(x->dtype(), {batch, frames, bins, 2});
  std::vector<double> re(fl), im(fl), ore, oim;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t f = 0; f < frames; ++f) {
      for (int64_t j = 0; j < fl; ++j) {
        const int64_t base = (b * len + f * step + j) * cin;
        const double w = window ? window->getDouble(j) : 1.0;
        re[j] = x->getDouble(base) * w;
        im[j] = complex_in ? x->getDouble(base + 1) * w : 0.0;
      }
      dft(re, im, fl, bins, false, &ore, &oim);
      for (int64_t k = 0; k < bins; ++k) {
        storeDouble(out, ((b * frames + f) * bins + k) * 2, ore[k]);
        storeDouble(out, ((b * frames + f) * bins + k) * 2 + 1, oim[k]);
      }
    }
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

}  // namespace ramjet::ops
