// ONNX protobuf -> ramjet::Graph. Every field read from the file is validated; problems are
// collected and returned together as one error.
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "onnx/import_context.h"
#include "onnx/onnx_proto.h"
#include "ops/op_registry.h"
#include "ramjet/graph.h"

namespace ramjet {
namespace {

using onnx_import::ImportContext;
using onnx_import::Problems;

constexpr int64_t kMaxOpset = 21;  // newest ai.onnx opset whose forms the importer knows

std::string dirOf(const std::string& path) {
  auto p = path.find_last_of('/');
  return p == std::string::npos ? "." : path.substr(0, p);
}

Status tensorError(const std::string& where, const std::string& why) {
  return makeError(StatusCode::kInvalidModel, "tensor '", where, "': ", why);
}

// Reads the bytes of an external-data tensor, checking the location stays inside base_dir.
Status readExternal(const onnx::TensorProto& tp, const std::string& base_dir, size_t need,
                    std::vector<uint8_t>* out) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::strtoll(kv.value().c_str(), nullptr, 10);
    else if (kv.key() == "length") length = std::strtoll(kv.value().c_str(), nullptr, 10);
  }
  if (location.empty()) return tensorError(tp.name(), "external data has no 'location'");
  if (location[0] == '/' || location.find("..") != std::string::npos)
    return tensorError(tp.name(), "external data location '" + location + "' must be a relative path inside the model's folder");
  if (offset < 0) return tensorError(tp.name(), "negative external data offset");
  if (base_dir.empty()) return tensorError(tp.name(), "uses external data but the model was loaded from memory with no external_data_dir");
  std::string path = base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "tensor '", tp.name(), "': external data file '", path, "' cannot be opened");
  f.seekg(0, std::ios::end);
  int64_t fsize = f.tellg();
  if (length < 0) length = static_cast<int64_t>(need);
  if (static_cast<size_t>(length) != need)
    return tensorError(tp.name(), "external data length " + std::to_string(length) + " != " + std::to_string(need) + " bytes the shape needs");
  if (offset > fsize || length > fsize - offset)  // (no offset + length: it could overflow)
    return tensorError(tp.name(), "external data [" + std::to_string(offset) + ", +" + std::to_string(length) + ") runs past the end of '" + path + "' (" + std::to_string(fsize) + " bytes)");
  out->resize(need);
  f.seekg(offset);
  f.read(reinterpret_cast<char*>(out->data()), static_cast<std::streamsize>(need));
  if (!f) return makeError(StatusCode::kIoError, "tensor '", tp.name(), "': short read from '", path, "'");
  return Status::Ok();
}

template <typename Dst, typename Src>
void copyField(Tensor& t, const Src& field) {
  Dst* d = t.data<Dst>();
  for (int i = 0; i < field.size(); ++i) d[i] = static_cast<Dst>(field.Get(i));
}

Result<Tensor> convertTensor(const onnx::TensorProto& tp, const std::string& base_dir) {
  const std::string where = tp.name().empty() ? "<unnamed>" : tp.name();
  DataType dt;
  if (!dataTypeFromOnnx(tp.data_type(), &dt))
    return makeError(StatusCode::kUnsupported, "tensor '", where, "': data type ", tp.data_type(), " is not supported");
  if (tp.has_segment()) return makeError(StatusCode::kUnsupported, "tensor '", where, "': segmented tensors are not supported");
  std::vector<int64_t> dims;
  unsigned __int128 count = 1;
  for (auto d : tp.dims()) {
    if (d < 0) return tensorError(where, "negative dimension " + std::to_string(d));
    dims.push_back(d);
    count *= static_cast<unsigned __int128>(d);
    if (count > (static_cast<unsigned __int128>(1) << 40)) return tensorError(where, "absurdly large shape");
  }
  const size_t n = static_cast<size_t>(count);
  if (dt == DataType::kString) {
    if (tp.data_location() == onnx::TensorProto::EXTERNAL || tp.has_raw_data())
      return makeError(StatusCode::kUnsupported, "tensor '", where, "': string tensors must use string_data");
    if (static_cast<size_t>(tp.string_data_size()) != n)
      return tensorError(where, "has " + std::to_string(tp.string_data_size()) + " strings, shape " + dimsToString(dims) + " needs " + std::to_string(n));
    Tensor t(dt, dims);
    std::string* d = t.strings();
    for (size_t i = 0; i < n; ++i) d[i] = tp.string_data(static_cast<int>(i));
    return t;
  }
  const size_t need = n * dataTypeSize(dt);
  // Storage is allocated only after the data's size is checked against the declared shape, so
  // a huge declared shape with little data is an error, not a giant allocation.
  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    std::vector<uint8_t> buf;
    RJ_RETURN_IF_ERROR(readExternal(tp, base_dir, need, &buf));
    Tensor t(dt, dims);
    if (need) std::memcpy(t.raw(), buf.data(), need);
    return t;
  }
  if (tp.has_raw_data()) {
    if (tp.raw_data().size() != need)
      return tensorError(where, "raw_data has " + std::to_string(tp.raw_data().size()) + " bytes, shape " + dimsToString(dims) + " of " + dataTypeName(dt) + " needs " + std::to_string(need));
    Tensor t(dt, dims);
    if (need) std::memcpy(t.raw(), tp.raw_data().data(), need);
    // Bool bytes other than 0/1 are not valid C++ bools (UB when read): nonzero is true.
    if (dt == DataType::kBool)
      for (auto* b = static_cast<uint8_t*>(t.raw()), *e = b + need; b != e; ++b) *b = *b != 0;
    return t;
  }
  auto check = [&](int have) -> Status {
    if (static_cast<size_t>(have) != n)
      return tensorError(where, "has " + std::to_string(have) + " values, shape " + dimsToString(dims) + " needs " + std::to_string(n));
    return Status::Ok();
  };
  int typed = 0;
  switch (dt) {
    case DataType::kFloat32: typed = tp.float_data_size(); break;
    case DataType::kFloat64: typed = tp.double_data_size(); break;
    case DataType::kInt64: typed = tp.int64_data_size(); break;
    case DataType::kUInt32: case DataType::kUInt64: typed = tp.uint64_data_size(); break;
    default: typed = tp.int32_data_size(); break;
  }
  RJ_RETURN_IF_ERROR(check(typed));
  Tensor t(dt, dims);
  switch (dt) {
    case DataType::kFloat32: RJ_RETURN_IF_ERROR(check(tp.float_data_size())); copyField<float>(t, tp.float_data()); break;
    case DataType::kFloat64: RJ_RETURN_IF_ERROR(check(tp.double_data_size())); copyField<double>(t, tp.double_data()); break;
    case DataType::kInt64: RJ_RETURN_IF_ERROR(check(tp.int64_data_size())); copyField<int64_t>(t, tp.int64_data()); break;
    case DataType::kUInt32: case DataType::kUInt64:
      RJ_RETURN_IF_ERROR(check(tp.uint64_data_size()));
      if (dt == DataType::kUInt32) copyField<uint32_t>(t, tp.uint64_data()); else copyField<uint64_t>(t, tp.uint64_data());
      break;
    case DataType::kInt32: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<int32_t>(t, tp.int32_data()); break;
    case DataType::kInt8: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<int8_t>(t, tp.int32_data()); break;
    case DataType::kUInt8: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<uint8_t>(t, tp.int32_data()); break;
    case DataType::kInt16: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<int16_t>(t, tp.int32_data()); break;
    case DataType::kUInt16: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<uint16_t>(t, tp.int32_data()); break;
    case DataType::kBool: RJ_RETURN_IF_ERROR(check(tp.int32_data_size())); copyField<bool>(t, tp.int32_data()); break;
    case DataType::kFloat16: case DataType::kBFloat16: {
      // 16-bit floats travel as their bit patterns in int32_data.
      RJ_RETURN_IF_ERROR(check(tp.int32_data_size()));
      auto* d = static_cast<uint16_t*>(t.raw());
      for (int i = 0; i < tp.int32_data_size(); ++i) d[i] = static_cast<uint16_t>(tp.int32_data(i));
      break;
    }
    default: return makeError(StatusCode::kUnsupported, "tensor '", where, "': data type not supported");
  }
  return t;
}

TensorType convertType(const onnx::TypeProto& tp, const std::string& where, const std::string& dim_prefix,
                       int* unnamed, Problems* problems) {
  TensorType t;
  if (tp.has_sequence_type() || tp.has_optional_type()) {
    const bool seq = tp.has_sequence_type();
    const bool has_elem = seq ? tp.sequence_type().has_elem_type() : tp.optional_type().has_elem_type();
    TensorType e;
    if (has_elem)
      e = convertType(seq ? tp.sequence_type().elem_type() : tp.optional_type().elem_type(), where, dim_prefix,
                      unnamed, problems);
    if (!seq && e.kind == TypeKind::kOptional)
      problems->malformed.push_back("value '" + where + "': an optional cannot hold an optional");
    return seq ? TensorType::sequenceOf(std::move(e)) : TensorType::optionalOf(std::move(e));
  }
  if (tp.value_case() == onnx::TypeProto::VALUE_NOT_SET) return t;  // no type given: inferred later
  if (!tp.has_tensor_type()) {
    problems->unsupported.push_back("value '" + where + "': only tensor, sequence and optional types are supported (map and sparse types are not)");
    return t;
  }
  const auto& tt = tp.tensor_type();
  if (tt.has_elem_type() && !dataTypeFromOnnx(tt.elem_type(), &t.dtype)) {
    problems->unsupported.push_back("value '" + where + "': element type " + std::to_string(tt.elem_type()) + " is not supported");
    t.dtype = DataType::kUndefined;
  }
  if (!tt.has_shape()) {
    t.shape = Shape::unknownRank();
    return t;
  }
  t.shape = Shape();
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      if (d.dim_value() < 0) {
        problems->malformed.push_back("value '" + where + "': negative dim_value " + std::to_string(d.dim_value()));
        t.shape.dims.push_back(Dim::symbolic(dim_prefix + std::to_string((*unnamed)++)));
      } else {
        t.shape.dims.emplace_back(d.dim_value());
      }
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      t.shape.dims.push_back(Dim::symbolic(d.dim_param()));
    } else {
      t.shape.dims.push_back(Dim::symbolic(dim_prefix + std::to_string((*unnamed)++)));
    }
  }
  return t;
}

class Importer {
 public:
  Importer(const ImportOptions& opts, std::string base_dir) : opts_(opts), base_dir_(std::move(base_dir)) {}

  Result<Graph> importModel(const onnx::ModelProto& m) {
    Graph g;
    for (const auto& os : m.opset_import()) {
      std::string domain = os.domain() == "ai.onnx" ? "" : os.domain();
      g.opsets[domain] = os.version();
    }
    if (m.opset_import_size() == 0) g.opsets[""] = 1;  // IR v1-2 models carry no opset_import
    opset_ = g.opsets.count("") ? g.opsets[""] : 1;
    if (opset_ > kMaxOpset)
      problems_.unsupported.push_back("model uses ai.onnx opset " + std::to_string(opset_) +
                                      ", newer than the newest ramjet knows (" + std::to_string(kMaxOpset) + ")");
    if (!m.has_graph()) {
      problems_.malformed.push_back("model has no graph");
      return finish(std::move(g));
    }
    if (!m.producer_name().empty()) g.metadata["producer"] = m.producer_name() + " " + m.producer_version();
    if (!m.doc_string().empty()) g.metadata["doc_string"] = m.doc_string();
    g.metadata["ir_version"] = std::to_string(m.ir_version());
    for (const auto& kv : m.metadata_props()) g.metadata[kv.key()] = kv.value();
    importGraph(m.graph(), &g, nullptr);
    return finish(std::move(g));
  }

 private:
  Result<Graph> finish(Graph g) {
    if (!problems_.empty()) {
      std::ostringstream os;
      os << "the model cannot be imported (" << problems_.unsupported.size() << " unsupported, "
         << problems_.malformed.size() << " malformed):";
      for (const auto& u : problems_.unsupported) os << "\n  unsupported: " << u;
      for (const auto& u : problems_.malformed) os << "\n  malformed: " << u;
      return Status(problems_.unsupported.empty() ? StatusCode::kInvalidModel : StatusCode::kUnsupported, os.str());
    }
    Status st = g.verify();
    if (!st.ok()) return st;
    st = g.inferShapes();
    if (!st.ok()) return st;
    return g;
  }

  Value* resolveInput(Graph* g, const std::string& name, const std::string& node_desc) {
    if (Value* v = g->findValue(name)) return v;
    // Look in enclosing scopes: create an outer-scope reference carrying the type.
    for (Graph* p = g->parent; p; p = p->parent) {
      if (Value* outer = p->findValue(name)) {
        Value* v = g->addValue(name);
        v->is_outer_scope = true;
        v->type = outer->type;
        v->constant = outer->constant;
        return v;
      }
    }
    // Not yet defined: may be produced by a later node (unsorted graph). Create it now; the
    // verifier reports it if nothing produces it.
    (void)node_desc;
    return g->addValue(name);
  }

  void importGraph(const onnx::GraphProto& gp, Graph* g, Graph* parent) {
    g->parent = parent;
    g->name = gp.name();
    ImportContext ctx{g, opset_, &problems_};
    std::set<std::string> init_names;
    for (const auto& init : gp.initializer()) {
      if (init.name().empty()) { problems_.malformed.push_back("graph '" + gp.name() + "': an initializer has no name"); continue; }
      if (g->findValue(init.name())) { problems_.malformed.push_back("initializer '" + init.name() + "' is defined twice"); continue; }
      auto t = convertTensor(init, base_dir_);
      if (!t.ok()) { addTensorProblem(t.status()); continue; }
      Value* v = g->addValue(init.name());
      v->type = t->type();
      v->constant = std::make_shared<Tensor>(std::move(*t));
      init_names.insert(init.name());
    }
    if (gp.sparse_initializer_size() > 0)
      problems_.unsupported.push_back("graph '" + gp.name() + "': sparse initializers are not supported");
    for (const auto& in : gp.input()) {
      if (init_names.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
      if (in.name().empty()) { problems_.malformed.push_back("graph '" + gp.name() + "': an input has no name"); continue; }
      if (g->findValue(in.name())) { problems_.malformed.push_back("graph input '" + in.name() + "' is defined twice"); continue; }
      Value* v = g->addValue(in.name());
      v->type = convertType(in.type(), in.name(), opts_.unnamed_dim_prefix, &unnamed_, &problems_);
      v->is_graph_input = true;
      g->inputs.push_back(v);
    }
    std::map<std::string, TensorType> declared;
    for (const auto& vi : gp.value_info())
      declared[vi.name()] = convertType(vi.type(), vi.name(), opts_.unnamed_dim_prefix, &unnamed_, &problems_);

    int auto_name = 0;
    std::set<std::string> node_names;
    for (const auto& np : gp.node()) {
      std::string nname = np.name();
      if (nname.empty() || node_names.count(nname)) {
        std::string base = np.op_type() + "_" + std::to_string(auto_name++);
        while (node_names.count(base)) base = np.op_type() + "_" + std::to_string(auto_name++);
        nname = base;
      }
      node_names.insert(nname);
      importNode(np, nname, g, ctx);
    }
    for (const auto& out : gp.output()) {
      Value* v = g->findValue(out.name());
      if (!v) {
        problems_.malformed.push_back("graph '" + gp.name() + "': output '" + out.name() + "' is produced by nothing");
        continue;
      }
      TensorType t = convertType(out.type(), out.name(), opts_.unnamed_dim_prefix, &unnamed_, &problems_);
      if (v->type.dtype == DataType::kUndefined) v->type = t;
      v->is_graph_output = true;
      g->outputs.push_back(v);
    }
    for (auto& [name, t] : declared) {
      Value* v = g->findValue(name);
      if (v && v->type.dtype == DataType::kUndefined) v->type = t;
    }
  }

  void addTensorProblem(const Status& st) {
    if (st.code() == StatusCode::kUnsupported) problems_.unsupported.push_back(st.message());
    else problems_.malformed.push_back(st.message());
  }

  // Constant nodes become constant values; everything else becomes a Node.
  void importNode(const onnx::NodeProto& np, const std::string& nname, Graph* g, ImportContext& ctx) {
    std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    if (np.op_type() == "Constant" && domain.empty()) {
      importConstant(np, nname, g);
      return;
    }
    if (!domain.empty() || (!ops::findOp(np.op_type()) && !onnx_import::isRenamedLegacyOp(np.op_type()))) {
      int64_t ver = g->opsets.count(domain) ? g->opsets[domain] : opset_;
      if (!domain.empty()) {
        Graph* root = g;
        while (root->parent) root = root->parent;
        ver = root->opsets.count(domain) ? root->opsets[domain] : 0;
      }
      problems_.unsupported.push_back("op " + (domain.empty() ? "" : domain + ".") + np.op_type() +
                                      " (opset " + std::to_string(ver) + ") at node '" + nname + "'");
      return;
    }
    std::vector<Value*> ins, outs;
    for (const auto& in : np.input()) ins.push_back(in.empty() ? nullptr : resolveInput(g, in, nname));
    for (const auto& out : np.output()) {
      if (out.empty()) { outs.push_back(nullptr); continue; }
      Value* v = g->findValue(out);
      if (v && (v->producer || v->is_graph_input || v->constant)) {
        problems_.malformed.push_back("node '" + nname + "': output '" + out + "' is already defined");
        outs.push_back(nullptr);
        continue;
      }
      outs.push_back(v ? v : g->addValue(out));
    }
    Node* node = g->addNode(np.op_type(), nname, ins, outs);
    node->domain = domain;
    for (const auto& ap : np.attribute()) {
      Attribute a;
      if (!convertAttribute(ap, node, g, &a)) continue;
      node->attrs[ap.name()] = std::move(a);
    }
    onnx_import::upgradeNode(ctx, node);
  }

  bool convertAttribute(const onnx::AttributeProto& ap, Node* node, Graph* g, Attribute* a) {
    const std::string where = "node '" + node->name + "' attribute '" + ap.name() + "'";
    if (!ap.ref_attr_name().empty()) {
      problems_.unsupported.push_back(where + ": attribute references (functions) are not supported");
      return false;
    }
    using AP = onnx::AttributeProto;
    AP::AttributeType type = ap.type();
    if (type == AP::UNDEFINED) {  // very old models: infer from which field is set
      if (ap.has_f()) type = AP::FLOAT;
      else if (ap.has_i()) type = AP::INT;
      else if (ap.has_s()) type = AP::STRING;
      else if (ap.has_t()) type = AP::TENSOR;
      else if (ap.has_g()) type = AP::GRAPH;
      else if (ap.floats_size()) type = AP::FLOATS;
      else if (ap.ints_size()) type = AP::INTS;
      else if (ap.strings_size()) type = AP::STRINGS;
    }
    switch (type) {
      case AP::INT: *a = Attribute::fromInt(ap.i()); return true;
      case AP::FLOAT: *a = Attribute::fromFloat(ap.f()); return true;
      case AP::STRING: *a = Attribute::fromString(ap.s()); return true;
      case AP::INTS: *a = Attribute::fromInts({ap.ints().begin(), ap.ints().end()}); return true;
      case AP::FLOATS: *a = Attribute::fromFloats({ap.floats().begin(), ap.floats().end()}); return true;
      case AP::STRINGS:
        a->kind = Attribute::Kind::kStrings;
        a->strings.assign(ap.strings().begin(), ap.strings().end());
        return true;
      case AP::TENSOR: {
        auto t = convertTensor(ap.t(), base_dir_);
        if (!t.ok()) { addTensorProblem(Status(t.status().code(), where + ": " + t.status().message())); return false; }
        *a = Attribute::fromTensor(std::move(*t));
        return true;
      }
      case AP::GRAPH: {
        a->kind = Attribute::Kind::kGraph;
        a->g = std::make_shared<Graph>();
        a->g->opsets = g->opsets;
        importGraph(ap.g(), a->g.get(), g);
        Status st = a->g->verify();
        if (!st.ok()) problems_.malformed.push_back(where + ": " + st.message());
        return true;
      }
      case AP::TYPE_PROTO: {
        // ramjet's Attribute has no type field; a type attribute (Optional's `type`) is kept as
        // an exemplar value of that type: an empty sequence, a none optional or a [0] tensor.
        TensorType tt = convertType(ap.tp(), where, opts_.unnamed_dim_prefix, &unnamed_, &problems_);
        if (tt.dtype == DataType::kUndefined) {
          problems_.unsupported.push_back(where + ": type attribute without an element type");
          return false;
        }
        Tensor ex;
        if (tt.kind == TypeKind::kSequence) ex = Tensor::sequence(*tt.elem, {});
        else if (tt.kind == TypeKind::kOptional) ex = Tensor::optionalNone(*tt.elem);
        else ex = Tensor(tt.dtype, {0});
        *a = Attribute::fromTensor(std::move(ex));
        return true;
      }
      default:
        problems_.unsupported.push_back(where + ": attribute type " + std::to_string(type) + " is not supported");
        return false;
    }
  }

  void importConstant(const onnx::NodeProto& np, const std::string& nname, Graph* g) {
    if (np.output_size() != 1 || np.output(0).empty()) {
      problems_.malformed.push_back("node '" + nname + "' (Constant): must have exactly one output");
      return;
    }
    if (np.attribute_size() != 1) {
      problems_.malformed.push_back("node '" + nname + "' (Constant): must have exactly one value attribute");
      return;
    }
    const auto& ap = np.attribute(0);
    Tensor t;
    const std::string& k = ap.name();
    if (k == "value") {
      auto r = convertTensor(ap.t(), base_dir_);
      if (!r.ok()) { addTensorProblem(Status(r.status().code(), "node '" + nname + "' (Constant): " + r.status().message())); return; }
      t = std::move(*r);
    } else if (k == "value_float") {
      t = Tensor::scalar<float>(ap.f());
    } else if (k == "value_floats") {
      t = Tensor::fromVector<float>({ap.floats().begin(), ap.floats().end()}, {ap.floats_size()});
    } else if (k == "value_int") {
      t = Tensor::scalar<int64_t>(ap.i());
    } else if (k == "value_ints") {
      t = Tensor::fromVector<int64_t>({ap.ints().begin(), ap.ints().end()}, {ap.ints_size()});
    } else {
      problems_.unsupported.push_back("node '" + nname + "' (Constant): attribute '" + k + "' is not supported");
      return;
    }
    if (Value* existing = g->findValue(np.output(0)); existing && (existing->producer || existing->constant || existing->is_graph_input)) {
      problems_.malformed.push_back("node '" + nname + "' (Constant): output '" + np.output(0) + "' is already defined");
      return;
    }
    Value* v = g->findValue(np.output(0));
    if (!v) v = g->addValue(np.output(0));
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(std::move(t));
  }

  const ImportOptions& opts_;
  std::string base_dir_;
  int64_t opset_ = 1;
  int unnamed_ = 0;
  Problems problems_;
};

}  // namespace

Result<Graph> importOnnxFromMemory(const void* data, size_t size, const ImportOptions& opts) {
  if (size > static_cast<size_t>(INT32_MAX))
    return makeError(StatusCode::kUnsupported, "model is larger than 2 GiB; store its weights as external data");
  onnx::ModelProto m;
  if (!m.ParseFromArray(data, static_cast<int>(size)))
    return makeError(StatusCode::kInvalidModel, "the bytes are not a valid ONNX ModelProto (protobuf parse failed; truncated or not an ONNX file?)");
  Importer imp(opts, opts.external_data_dir);
  return imp.importModel(m);
}

Result<Graph> importOnnx(const std::string& path, const ImportOptions& opts) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return makeError(StatusCode::kNotFound, "model file '", path, "' does not exist");
  if (S_ISDIR(st.st_mode)) return makeError(StatusCode::kInvalidArgument, "model path '", path, "' is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kIoError, "cannot open model file '", path, "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (buf.empty()) return makeError(StatusCode::kInvalidModel, "model file '", path, "' is empty");
  ImportOptions o = opts;
  if (o.external_data_dir.empty()) o.external_data_dir = dirOf(path);
  auto g = importOnnxFromMemory(buf.data(), buf.size(), o);
  if (!g.ok()) return Status(g.status().code(), "'" + path + "': " + g.status().message());
  return g;
}

Result<Tensor> parseOnnxTensor(const void* data, size_t size, const std::string& base_dir) {
  onnx::TensorProto tp;
  if (size > static_cast<size_t>(INT32_MAX) || !tp.ParseFromArray(data, static_cast<int>(size)))
    return makeError(StatusCode::kInvalidArgument, "not a valid ONNX TensorProto");
  return convertTensor(tp, base_dir);
}

Result<Tensor> readOnnxTensorFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open tensor file '", path, "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto t = parseOnnxTensor(buf.data(), buf.size(), dirOf(path));
  if (!t.ok()) return Status(t.status().code(), "'" + path + "': " + t.status().message());
  return t;
}

}  // namespace ramjet
