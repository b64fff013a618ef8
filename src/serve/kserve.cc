// KServe v2 / Open Inference Protocol bodies: infer request parsing (JSON tensors and the binary
// tensor data extension) and response encoding. Every malformed field is an error naming it.
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ramjet/serve.h"

namespace ramjet::serve {

using json = nlohmann::json;

bool dataTypeFromKServe(std::string_view n, DataType* out) {
  static const std::pair<const char*, DataType> kTable[] = {
      {"BOOL", DataType::kBool},     {"UINT8", DataType::kUInt8},     {"UINT16", DataType::kUInt16},
      {"UINT32", DataType::kUInt32}, {"UINT64", DataType::kUInt64},   {"INT8", DataType::kInt8},
      {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},     {"INT64", DataType::kInt64},
      {"FP16", DataType::kFloat16},  {"FP32", DataType::kFloat32},    {"FP64", DataType::kFloat64},
      {"BF16", DataType::kBFloat16},
  };
  for (const auto& [name, t] : kTable)
    if (n == name) {
      *out = t;
      return true;
    }
  return false;
}

const char* kserveDataTypeName(DataType t) {
  switch (t) {
    case DataType::kBool: return "BOOL";
    case DataType::kUInt8: return "UINT8";
    case DataType::kUInt16: return "UINT16";
    case DataType::kUInt32: return "UINT32";
    case DataType::kUInt64: return "UINT64";
    case DataType::kInt8: return "INT8";
    case DataType::kInt16: return "INT16";
    case DataType::kInt32: return "INT32";
    case DataType::kInt64: return "INT64";
    case DataType::kFloat16: return "FP16";
    case DataType::kFloat32: return "FP32";
    case DataType::kFloat64: return "FP64";
    case DataType::kBFloat16: return "BF16";
    default: return "";
  }
}

namespace {

Status bad(const std::string& what) { return Status(StatusCode::kInvalidArgument, what); }

// nlohmann's parser is iterative, but destroying a deeply nested value and our own flattening
// recurse: refuse nesting deeper than any tensor needs before parsing.
Status checkNesting(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return bad("the JSON nests deeper than " + std::to_string(max_depth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return Status::Ok();
}

template <typename T>
bool storeNumber(const json& v, T* dst) {
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) *dst = v.get<bool>();
    else if (v.is_number_integer()) *dst = v.get<int64_t>() != 0;
    else return false;
  } else if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    if (!v.is_number()) return false;
    if constexpr (std::is_same_v<T, double>) *dst = v.get<double>();
    else *dst = T(static_cast<float>(v.get<double>()));
  } else {
    if (!v.is_number_integer()) return false;
    if constexpr (std::is_unsigned_v<T>) {
      if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > std::numeric_limits<T>::max()) return false;
        *dst = static_cast<T>(u);
      } else {
        int64_t x = v.get<int64_t>();
        if (x < 0 || static_cast<uint64_t>(x) > std::numeric_limits<T>::max()) return false;
        *dst = static_cast<T>(x);
      }
    } else {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return false;
      int64_t x = v.get<int64_t>();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) return false;
      *dst = static_cast<T>(x);
    }
  }
  return true;
}

template <typename T>
Status fillFromJson(const json& data, T* dst, int64_t n, const std::string& name) {
  int64_t k = 0;
  // Flattens nested arrays in row-major order (depth bounded by checkNesting).
  std::function<Status(const json&)> walk = [&](const json& v) -> Status {
    if (v.is_array()) {
      for (const auto& e : v) RJ_RETURN_IF_ERROR(walk(e));
      return Status::Ok();
    }
    if (k >= n) return Status::Ok();  // counted below
    if (!storeNumber(v, dst + k))
      return bad("input '" + name + "': element " + std::to_string(k) + " (" + v.dump() +
                 ") is not a valid value of the declared datatype");
    ++k;
    return Status::Ok();
  };
  // Count first so an oversized array is reported with its size.
  std::function<int64_t(const json&)> count = [&](const json& v) -> int64_t {
    if (!v.is_array()) return 1;
    int64_t c = 0;
    for (const auto& e : v) c += count(e);
    return c;
  };
  int64_t have = count(data);
  if (have != n)
    return bad("input '" + name + "': 'data' has " + std::to_string(have) + " elements, the shape needs " +
               std::to_string(n));
  return walk(data);
}

Status fillTensorFromJson(const json& data, Tensor* t, const std::string& name) {
  int64_t n = t->numel();
  switch (t->dtype()) {
    case DataType::kBool: return fillFromJson(data, t->data<bool>(), n, name);
    case DataType::kUInt8: return fillFromJson(data, t->data<uint8_t>(), n, name);
    case DataType::kUInt16: return fillFromJson(data, t->data<uint16_t>(), n, name);
    case DataType::kUInt32: return fillFromJson(data, t->data<uint32_t>(), n, name);
    case DataType::kUInt64: return fillFromJson(data, t->data<uint64_t>(), n, name);
    case DataType::kInt8: return fillFromJson(data, t->data<int8_t>(), n, name);
    case DataType::kInt16: return fillFromJson(data, t->data<int16_t>(), n, name);
    case DataType::kInt32: return fillFromJson(data, t->data<int32_t>(), n, name);
    case DataType::kInt64: return fillFromJson(data, t->data<int64_t>(), n, name);
    case DataType::kFloat16: return fillFromJson(data, t->data<Half>(), n, name);
    case DataType::kBFloat16: return fillFromJson(data, t->data<BFloat16>(), n, name);
    case DataType::kFloat32: return fillFromJson(data, t->data<float>(), n, name);
    case DataType::kFloat64: return fillFromJson(data, t->data<double>(), n, name);
    default: return bad("input '" + name + "': unsupported datatype");
  }
}

template <typename T>
void appendJsonData(const Tensor& t, json* arr) {
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) arr->push_back(static_cast<float>(p[i]));
    else arr->push_back(p[i]);
  }
}

json tensorJsonData(const Tensor& t) {
  json arr = json::array();
  switch (t.dtype()) {
    case DataType::kBool: appendJsonData<bool>(t, &arr); break;
    case DataType::kUInt8: appendJsonData<uint8_t>(t, &arr); break;
    case DataType::kUInt16: appendJsonData<uint16_t>(t, &arr); break;
    case DataType::kUInt32: appendJsonData<uint32_t>(t, &arr); break;
    case DataType::kUInt64: appendJsonData<uint64_t>(t, &arr); break;
    case DataType::kInt8: appendJsonData<int8_t>(t, &arr); break;
    case DataType::kInt16: appendJsonData<int16_t>(t, &arr); break;
    case DataType::kInt32: appendJsonData<int32_t>(t, &arr); break;
    case DataType::kInt64: appendJsonData<int64_t>(t, &arr); break;
    case DataType::kFloat16: appendJsonData<Half>(t, &arr); break;
    case DataType::kBFloat16: appendJsonData<BFloat16>(t, &arr); break;
    case DataType::kFloat32: appendJsonData<float>(t, &arr); break;
    case DataType::kFloat64: appendJsonData<double>(t, &arr); break;
    default: break;
  }
  return arr;
}

// Reads parameters.<key> as bool; absent = `def`.
Result<bool> boolParam(const json& obj, const char* key, bool def, const std::string& where) {
  auto pit = obj.find("parameters");
  if (pit == obj.end()) return def;
  if (!pit->is_object()) return bad(where + ": 'parameters' must be an object");
  auto it = pit->find(key);
  if (it == pit->end()) return def;
  if (!it->is_boolean()) return bad(where + ": parameters." + key + " must be a boolean");
  return it->get<bool>();
}

Result<InferRequestMessage> parseImpl(std::string_view body, int64_t json_length, int64_t max_elements,
                                      const TensorAllocator* alloc) {
  if (json_length < -1) return bad("Inference-Header-Content-Length must not be negative");
  if (json_length >= 0 && static_cast<uint64_t>(json_length) > body.size())
    return bad("Inference-Header-Content-Length " + std::to_string(json_length) + " exceeds the body size " +
               std::to_string(body.size()));
  std::string_view js = json_length >= 0 ? body.substr(0, static_cast<size_t>(json_length)) : body;
  std::string_view bin = json_length >= 0 ? body.substr(static_cast<size_t>(json_length)) : std::string_view();
  RJ_RETURN_IF_ERROR(checkNesting(js, 32));
  json doc = json::parse(js.begin(), js.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    try {
      json again = json::parse(js.begin(), js.end());  // throws with the position and reason
      (void)again;
    } catch (const json::exception& e) {
      return bad(std::string("the request body is not valid JSON: ") + e.what());
    }
    return bad("the request body is not valid JSON");
  }
  if (!doc.is_object()) return bad("the request body must be a JSON object");
  InferRequestMessage m;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string()) return bad("'id' must be a string");
    m.id = it->get<std::string>();
  }
  RJ_ASSIGN_OR_RETURN(m.binary_output_default, boolParam(doc, "binary_data_output", false, "request"));
  if (auto pit = doc.find("parameters"); pit != doc.end()) {
    if (auto t = pit->find("timeout"); t != pit->end()) {
      if (!t->is_number_integer() || t->get<int64_t>() < 0)
        return bad("parameters.timeout must be a non-negative integer (microseconds)");
      m.timeout_us = t->get<int64_t>();
    }
    if (pit->contains("classification")) return bad("the classification extension is not supported");
  }
  auto ins = doc.find("inputs");
  if (ins == doc.end() || !ins->is_array()) return bad("'inputs' must be an array of tensors");
  if (ins->empty()) return bad("'inputs' is empty");
  size_t bin_off = 0;
  for (size_t i = 0; i < ins->size(); ++i) {
    const json& in = (*ins)[i];
    std::string where = "inputs[" + std::to_string(i) + "]";
    if (!in.is_object()) return bad(where + " must be an object");
    auto nit = in.find("name");
    if (nit == in.end() || !nit->is_string() || nit->get<std::string>().empty())
      return bad(where + ": 'name' must be a non-empty string");
    std::string name = nit->get<std::string>();
    where = "input '" + name + "'";
    for (const auto& prev : m.inputs)
      if (prev.name == name) return bad(where + " appears twice");
    auto dit = in.find("datatype");
    if (dit == in.end() || !dit->is_string()) return bad(where + ": 'datatype' must be a string such as \"FP32\"");
    DataType dt;
    if (!dataTypeFromKServe(dit->get<std::string>(), &dt))
      return bad(where + ": datatype '" + dit->get<std::string>() + "' is not supported (BYTES is not)");
    auto sit = in.find("shape");
    if (sit == in.end() || !sit->is_array()) return bad(where + ": 'shape' must be an array of integers");
    if (sit->size() > 8) return bad(where + ": 'shape' has more than 8 dims");
    std::vector<int64_t> dims;
    int64_t numel = 1;
    for (const auto& d : *sit) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        return bad(where + ": 'shape' entries must be non-negative integers, got " + d.dump());
      int64_t v = d.get<int64_t>();
      if (v > max_elements || (v > 0 && numel > max_elements / v))
        return bad(where + ": the shape has more than " + std::to_string(max_elements) + " elements");
      numel *= v;
      dims.push_back(v);
    }
    // Bound the allocation by what the body can carry before making the tensor.
    uint64_t nbytes = static_cast<uint64_t>(numel) * dataTypeSize(dt);
    auto pit = in.find("parameters");
    bool binary = false;
    int64_t bin_size = 0;
    if (pit != in.end()) {
      if (!pit->is_object()) return bad(where + ": 'parameters' must be an object");
      if (auto b = pit->find("binary_data_size"); b != pit->end()) {
        if (!b->is_number_integer() || b->get<int64_t>() < 0)
          return bad(where + ": parameters.binary_data_size must be a non-negative integer");
        binary = true;
        bin_size = b->get<int64_t>();
      }
    }
    auto data = in.find("data");
    if (binary && data != in.end()) return bad(where + ": has both 'data' and parameters.binary_data_size");
    if (binary && json_length < 0)
      return bad(where + ": binary_data_size is set but the request has no Inference-Header-Content-Length");
    if (binary ? nbytes > bin.size() - bin_off : static_cast<uint64_t>(numel) > js.size())
      return bad(where + ": the shape " + sit->dump() + " needs more data than the request carries");
    // Binary data overwrites every byte: no zero fill first (JSON data starts zeroed).
    Tensor t = binary ? (alloc ? (*alloc)(dt, dims) : Tensor::uninitialized(dt, dims)) : Tensor(dt, dims);
    if (binary) {
      if (static_cast<uint64_t>(bin_size) != t.nbytes())
        return bad(where + ": binary_data_size " + std::to_string(bin_size) + " does not match the shape and datatype (" +
                   std::to_string(t.nbytes()) + " bytes)");
      if (bin.size() - bin_off < t.nbytes())
        return bad(where + ": the binary section has " + std::to_string(bin.size() - bin_off) + " bytes left, " +
                   std::to_string(t.nbytes()) + " needed");
      if (t.nbytes()) std::memcpy(t.raw(), bin.data() + bin_off, t.nbytes());
      bin_off += t.nbytes();
    } else {
      if (data == in.end()) return bad(where + ": no 'data' and no parameters.binary_data_size");
      RJ_RETURN_IF_ERROR(fillTensorFromJson(*data, &t, name));
    }
    m.inputs.push_back({name, std::move(t)});
  }
  if (bin_off != bin.size())
    return bad("the binary section has " + std::to_string(bin.size() - bin_off) +
               " bytes that no input's binary_data_size accounts for");
  if (auto outs = doc.find("outputs"); outs != doc.end()) {
    if (!outs->is_array()) return bad("'outputs' must be an array");
    for (size_t i = 0; i < outs->size(); ++i) {
      const json& o = (*outs)[i];
      std::string where = "outputs[" + std::to_string(i) + "]";
      if (!o.is_object()) return bad(where + " must be an object");
      auto nit = o.find("name");
      if (nit == o.end() || !nit->is_string()) return bad(where + ": 'name' must be a string");
      RequestedOutput ro;
      ro.name = nit->get<std::string>();
      RJ_ASSIGN_OR_RETURN(ro.binary, boolParam(o, "binary_data", m.binary_output_default, "output '" + ro.name + "'"));
      if (auto pit = o.find("parameters"); pit != o.end() && pit->contains("classification"))
        return bad("output '" + ro.name + "': the classification extension is not supported");
      m.outputs.push_back(ro);
    }
  }
  return m;
}

}  // namespace

Result<InferRequestMessage> parseInferRequestJson(std::string_view body, int64_t json_length, int64_t max_elements,
                                                  const TensorAllocator* alloc) {
  try {
    return parseImpl(body, json_length, max_elements, alloc);
  } catch (const std::exception& e) {  // nlohmann type errors the checks above missed
    return bad(std::string("malformed infer request: ") + e.what());
  }
}

std::string encodeInferResponse(const std::string& model, const std::string& version, const std::string& id,
                                const std::vector<OutputTensor>& outputs, int64_t* json_length) {
  json doc;
  doc["model_name"] = model;
  doc["model_version"] = version;
  if (!id.empty()) doc["id"] = id;
  json outs = json::array();
  bool any_binary = false;
  for (const auto& o : outputs) {
    json j;
    j["name"] = o.name;
    j["datatype"] = kserveDataTypeName(o.tensor->dtype());
    j["shape"] = o.tensor->dims();
    if (o.binary) {
      j["parameters"] = {{"binary_data_size", o.tensor->nbytes()}};
      any_binary = true;
    } else {
      j["data"] = tensorJsonData(*o.tensor);
    }
    outs.push_back(std::move(j));
  }
  doc["outputs"] = std::move(outs);
  std::string body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!any_binary) {
    *json_length = -1;
    return body;
  }
  *json_length = static_cast<int64_t>(body.size());
  for (const auto& o : outputs)
    if (o.binary) body.append(static_cast<const char*>(o.tensor->raw()), o.tensor->nbytes());
  return body;
}

}  // namespace ramjet::serve
