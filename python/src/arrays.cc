// dtype mapping, __cuda_array_interface__ / DLPack import and export, CUDA stream handles.
#include <cstring>
#include <map>

#include "common.h"

namespace ramjet::python {

// ---- DLPack (the legacy, unversioned ABI every producer still offers) ----
namespace {
enum DLDeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
enum DLTypeCode : uint8_t { kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6 };
struct DLDataType {
  uint8_t code, bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

bool fromDl(DLDataType t, DataType* out) {
  if (t.lanes != 1) return false;
  switch (t.code) {
    case kDLFloat:
      *out = t.bits == 16 ? DataType::kFloat16 : t.bits == 32 ? DataType::kFloat32
           : t.bits == 64 ? DataType::kFloat64 : DataType::kUndefined;
      break;
    case kDLBfloat: *out = t.bits == 16 ? DataType::kBFloat16 : DataType::kUndefined; break;
    case kDLInt:
      *out = t.bits == 8 ? DataType::kInt8 : t.bits == 16 ? DataType::kInt16 : t.bits == 32 ? DataType::kInt32
           : t.bits == 64 ? DataType::kInt64 : DataType::kUndefined;
      break;
    case kDLUInt:
      *out = t.bits == 8 ? DataType::kUInt8 : t.bits == 16 ? DataType::kUInt16 : t.bits == 32 ? DataType::kUInt32
           : t.bits == 64 ? DataType::kUInt64 : DataType::kUndefined;
      break;
    case kDLBool: *out = t.bits == 8 ? DataType::kBool : DataType::kUndefined; break;
    default: return false;
  }
  return *out != DataType::kUndefined;
}

DLDataType toDl(DataType t) {
  uint8_t bits = static_cast<uint8_t>(dataTypeSize(t) * 8);
  switch (t) {
    case DataType::kFloat16: case DataType::kFloat32: case DataType::kFloat64: return {kDLFloat, bits, 1};
    case DataType::kBFloat16: return {kDLBfloat, 16, 1};
    case DataType::kInt8: case DataType::kInt16: case DataType::kInt32: case DataType::kInt64: return {kDLInt, bits, 1};
    case DataType::kBool: return {kDLBool, 8, 1};
    default: return {kDLUInt, bits, 1};
  }
}

// An exported DeviceArray: the capsule's DLManagedTensor owns a reference to the buffer
// (a C++ shared_ptr, so the consumer may free it from any thread without the GIL).
struct ExportCtx {
  std::shared_ptr<Buffer> buf;
  std::vector<int64_t> shape;
};
void exportDeleter(DLManagedTensor* m) {
  delete static_cast<ExportCtx*>(m->manager_ctx);
  delete m;
}

bool cContiguous(const std::vector<int64_t>& shape, const int64_t* strides_elems) {
  if (!strides_elems) return true;
  int64_t expect = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides_elems[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}
}  // namespace

py::dtype numpyDtype(DataType t) {
  switch (t) {
    case DataType::kFloat32: return py::dtype("float32");
    case DataType::kFloat16: return py::dtype("float16");
    case DataType::kFloat64: return py::dtype("float64");
    case DataType::kInt8: return py::dtype("int8");
    case DataType::kUInt8: return py::dtype("uint8");
    case DataType::kInt16: return py::dtype("int16");
    case DataType::kUInt16: return py::dtype("uint16");
    case DataType::kInt32: return py::dtype("int32");
    case DataType::kUInt32: return py::dtype("uint32");
    case DataType::kInt64: return py::dtype("int64");
    case DataType::kUInt64: return py::dtype("uint64");
    case DataType::kBool: return py::dtype("bool");
    case DataType::kBFloat16: {
      py::object ml;
      try {
        ml = py::module_::import("ml_dtypes");
      } catch (py::error_already_set&) {
        fail(StatusCode::kUnsupported, "bfloat16 tensors need the ml_dtypes package (pip install ml_dtypes)");
      }
      return py::dtype::from_args(ml.attr("bfloat16"));
    }
    default: fail(StatusCode::kUnsupported, "no numpy dtype for ramjet dtype ", dataTypeName(t));
  }
}

DataType fromNumpyDtype(const py::dtype& d) {
  char kind = d.kind();
  size_t n = static_cast<size_t>(d.itemsize());
  if (kind == 'f') return n == 2 ? DataType::kFloat16 : n == 4 ? DataType::kFloat32 : n == 8 ? DataType::kFloat64 : DataType::kUndefined;
  if (kind == 'i') return n == 1 ? DataType::kInt8 : n == 2 ? DataType::kInt16 : n == 4 ? DataType::kInt32 : n == 8 ? DataType::kInt64 : DataType::kUndefined;
  if (kind == 'u') return n == 1 ? DataType::kUInt8 : n == 2 ? DataType::kUInt16 : n == 4 ? DataType::kUInt32 : n == 8 ? DataType::kUInt64 : DataType::kUndefined;
  if (kind == 'b') return n == 1 ? DataType::kBool : DataType::kUndefined;
  if (n == 2 && py::str(d).cast<std::string>() == "bfloat16") return DataType::kBFloat16;
  return DataType::kUndefined;
}

DataType fromTypestr(const std::string& s) {
  if (s.size() < 3 || s[0] == '>') return DataType::kUndefined;
  char kind = s[1];
  int n = std::atoi(s.c_str() + 2);
  if (kind == 'f') return n == 2 ? DataType::kFloat16 : n == 4 ? DataType::kFloat32 : n == 8 ? DataType::kFloat64 : DataType::kUndefined;
  if (kind == 'i') return n == 1 ? DataType::kInt8 : n == 2 ? DataType::kInt16 : n == 4 ? DataType::kInt32 : n == 8 ? DataType::kInt64 : DataType::kUndefined;
  if (kind == 'u') return n == 1 ? DataType::kUInt8 : n == 2 ? DataType::kUInt16 : n == 4 ? DataType::kUInt32 : n == 8 ? DataType::kUInt64 : DataType::kUndefined;
  if (kind == 'b') return n == 1 ? DataType::kBool : DataType::kUndefined;
  return DataType::kUndefined;
}

std::string typestrOf(DataType t) {
  size_t n = dataTypeSize(t);
  switch (t) {
    case DataType::kFloat16: case DataType::kFloat32: case DataType::kFloat64: return "<f" + std::to_string(n);
    case DataType::kInt8: return "|i1";
    case DataType::kUInt8: return "|u1";
    case DataType::kBool: return "|b1";
    case DataType::kInt16: case DataType::kInt32: case DataType::kInt64: return "<i" + std::to_string(n);
    case DataType::kUInt16: case DataType::kUInt32: case DataType::kUInt64: return "<u" + std::to_string(n);
    default: fail(StatusCode::kUnsupported, "dtype ", dataTypeName(t), " has no __cuda_array_interface__ type string (use DLPack)");
  }
}

uintptr_t parseStream(py::handle s) {
  if (s.is_none()) return 0;
  if (py::isinstance<py::bool_>(s))
    fail(StatusCode::kInvalidArgument, "stream must be an int handle or a stream object, not a bool");
  if (py::isinstance<py::int_>(s)) {
    auto v = s.cast<long long>();
    if (v < 0) fail(StatusCode::kInvalidArgument, "stream handle must be >= 0, got ", v);
    return static_cast<uintptr_t>(v);
  }
  if (py::hasattr(s, "__cuda_stream__")) {
    py::object r = s.attr("__cuda_stream__")();
    py::tuple t = r.cast<py::tuple>();
    if (t.size() != 2) fail(StatusCode::kInvalidArgument, "__cuda_stream__() must return (version, handle)");
    return t[1].cast<uintptr_t>();
  }
  if (py::hasattr(s, "cuda_stream")) return s.attr("cuda_stream").cast<uintptr_t>();  // torch
  if (py::hasattr(s, "ptr")) return s.attr("ptr").cast<uintptr_t>();                  // cupy
  fail(StatusCode::kInvalidArgument, "stream must be None, an int cudaStream_t handle, or an object with "
       "__cuda_stream__, .cuda_stream or .ptr; got ", py::str(py::type::of(s)).cast<std::string>());
}

namespace {
// PyTorch fast path: the same facts __cuda_array_interface__ gives, read with C-level calls
// (torch builds that dict in Python, ~10 us a tensor, which would dominate the per-call cost).
struct TorchTypes {
  py::object tensor_type;
  std::map<PyObject*, DataType> dtypes;
};
TorchTypes* torchTypes() {
  static TorchTypes* t = nullptr;
  if (t) return t;
  py::dict modules = py::module_::import("sys").attr("modules");
  if (!modules.contains("torch")) return nullptr;  // torch not imported: no torch tensors exist
  py::object torch = modules["torch"];
  auto* tt = new TorchTypes();  // lives as long as the process (torch is never unloaded)
  tt->tensor_type = torch.attr("Tensor");
  const std::pair<const char*, DataType> names[] = {
      {"float32", DataType::kFloat32}, {"float16", DataType::kFloat16}, {"bfloat16", DataType::kBFloat16},
      {"float64", DataType::kFloat64}, {"int8", DataType::kInt8},       {"uint8", DataType::kUInt8},
      {"int16", DataType::kInt16},     {"int32", DataType::kInt32},     {"int64", DataType::kInt64},
      {"bool", DataType::kBool}};
  for (const auto& [n, dt] : names)
    if (py::hasattr(torch, n)) tt->dtypes[torch.attr(n).ptr()] = dt;
  t = tt;
  return t;
}

const py::str& leakedStr(const char* s) { return *new py::str(s); }

bool viewTorch(py::handle obj, const std::string& what, ArrayView* out) {
  TorchTypes* tt = torchTypes();
  if (!tt || !PyObject_IsInstance(obj.ptr(), tt->tensor_type.ptr())) return false;
  // Interned once and never released: a static py::str would be destroyed by the C++ runtime at
  // exit, after the interpreter is gone (that was the segfault at interpreter exit).
  static const py::str &kIsCuda = leakedStr("is_cuda"), &kContig = leakedStr("is_contiguous"),
                       &kPtr = leakedStr("data_ptr"), &kDtype = leakedStr("dtype"), &kShape = leakedStr("shape"),
                       &kDev = leakedStr("get_device");
  if (!obj.attr(kIsCuda).cast<bool>()) return false;
  py::object dt = obj.attr(kDtype);
  auto it = tt->dtypes.find(dt.ptr());
  if (it == tt->dtypes.end())
    fail(StatusCode::kInvalidArgument, what, ": unsupported torch dtype ", py::str(dt).cast<std::string>());
  if (!obj.attr(kContig)().cast<bool>())
    fail(StatusCode::kInvalidArgument, what, ": the tensor is not C-contiguous (call .contiguous() first)");
  out->dtype = it->second;
  out->ptr = reinterpret_cast<void*>(obj.attr(kPtr)().cast<uintptr_t>());
  out->shape.clear();
  for (auto v : obj.attr(kShape)) out->shape.push_back(v.cast<int64_t>());
  out->device = true;
  out->device_id = obj.attr(kDev)().cast<int>();
  out->readonly = false;
  out->source = py::reinterpret_borrow<py::object>(obj);
  out->keepalive = out->source;
  return true;
}
}  // namespace

bool viewDeviceArray(py::handle obj, uintptr_t consumer_stream, const std::string& what, ArrayView* out) {
  if (viewTorch(obj, what, out)) return true;
  if (py::isinstance<DeviceArray>(obj)) {
    const DeviceArray& a = obj.cast<const DeviceArray&>();
    if (!a.cuda) return false;
    out->ptr = a.buf->ptr;
    out->dtype = a.dtype;
    out->shape = a.shape;
    out->device = true;
    out->device_id = a.device_id;
    out->readonly = false;
    out->source = py::reinterpret_borrow<py::object>(obj);
    out->keepalive = out->source;
    return true;
  }
  static const py::str& kCai = leakedStr("__cuda_array_interface__");
  if (py::hasattr(obj, kCai)) {
    py::dict d = obj.attr(kCai).cast<py::dict>();
    out->source = py::reinterpret_borrow<py::object>(obj);
    out->keepalive = out->source;
    out->device = true;
    py::tuple data = d["data"].cast<py::tuple>();
    out->ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
    out->readonly = data[1].cast<bool>();
    std::string ts = d["typestr"].cast<std::string>();
    out->dtype = fromTypestr(ts);
    if (out->dtype == DataType::kUndefined)
      fail(StatusCode::kInvalidArgument, what, ": unsupported __cuda_array_interface__ typestr '", ts, "'");
    out->shape.clear();
    for (auto v : d["shape"].cast<py::tuple>()) out->shape.push_back(v.cast<int64_t>());
    if (d.contains("strides") && !d["strides"].is_none()) {
      std::vector<int64_t> st;
      int64_t es = static_cast<int64_t>(dataTypeSize(out->dtype));
      for (auto v : d["strides"].cast<py::tuple>()) {
        int64_t b = v.cast<int64_t>();
        if (b % es) fail(StatusCode::kInvalidArgument, what, ": strides are not multiples of the element size");
        st.push_back(b / es);
      }
      if (!cContiguous(out->shape, st.data()))
        fail(StatusCode::kInvalidArgument, what, ": the array is not C-contiguous (call .contiguous() / cupy.ascontiguousarray first)");
    }
    out->device_id = -1;  // the interface does not say; the pointer's device is the engine's or it fails
    return true;
  }
  static const py::str &kDl = leakedStr("__dlpack__"), &kDlDev = leakedStr("__dlpack_device__");
  if (py::hasattr(obj, kDl) && py::hasattr(obj, kDlDev)) {
    py::tuple dev = obj.attr(kDlDev)().cast<py::tuple>();
    int type = dev[0].cast<int>();
    if (type != kDLCUDA && type != kDLCUDAManaged) return false;
    // Per the DLPack protocol the producer makes the data ready on the consumer's stream
    // (1 means the legacy default stream, which 0 names in CUDA).
    py::object cap = obj.attr(kDl)(py::arg("stream") = consumer_stream == 0 ? 1 : consumer_stream);
    if (!PyCapsule_IsValid(cap.ptr(), "dltensor"))
      fail(StatusCode::kInvalidArgument, what, ": __dlpack__ did not return a 'dltensor' capsule");
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
    // Consume the capsule: from here on we own `m` and must call its deleter exactly once.
    PyCapsule_SetName(cap.ptr(), "used_dltensor");
    py::capsule owner(m, [](void* p) {
      auto* mt = static_cast<DLManagedTensor*>(p);
      if (mt->deleter) mt->deleter(mt);
    });
    const DLTensor& t = m->dl_tensor;
    out->source = py::reinterpret_borrow<py::object>(obj);
    out->keepalive = owner;
    out->device = true;
    out->device_id = t.device.device_id;
    out->ptr = static_cast<uint8_t*>(t.data) + t.byte_offset;
    out->readonly = false;
    if (!fromDl(t.dtype, &out->dtype))
      fail(StatusCode::kInvalidArgument, what, ": unsupported DLPack dtype (code ", int(t.dtype.code), ", ",
           int(t.dtype.bits), " bits, ", t.dtype.lanes, " lanes)");
    out->shape.assign(t.shape, t.shape + t.ndim);
    if (!cContiguous(out->shape, t.strides))
      fail(StatusCode::kInvalidArgument, what, ": the DLPack tensor is not C-contiguous (call .contiguous() first)");
    return true;
  }
  return false;
}

bool isDeviceArray(py::handle obj) {
  if (py::isinstance<py::array>(obj)) return false;
  if (TorchTypes* tt = torchTypes(); tt && PyObject_IsInstance(obj.ptr(), tt->tensor_type.ptr()))
    return obj.attr("is_cuda").cast<bool>();
  if (py::isinstance<DeviceArray>(obj)) return obj.cast<const DeviceArray&>().cuda;
  if (py::hasattr(obj, "__cuda_array_interface__")) return true;
  if (py::hasattr(obj, "__dlpack_device__")) {
    int type = obj.attr("__dlpack_device__")().cast<py::tuple>()[0].cast<int>();
    return type == kDLCUDA || type == kDLCUDAManaged;
  }
  return false;
}

EngineState::~EngineState() {
  for (auto& w : contexts)
    if (auto c = w.lock()) c->ctx.reset();
  engine.reset();
}

void EngineState::maybeDestroyLocked() {
  if (closed && live_buffers.load() == 0) engine.reset();
}

Buffer::~Buffer() {
  if (!eng) return;
  std::lock_guard<std::mutex> lock(eng->mu);
  if (eng->engine && ptr) eng->engine->release(ptr);
  eng->live_buffers.fetch_sub(1);
  eng->maybeDestroyLocked();
}

void bindArrays(py::module_& m) {
  py::class_<DeviceArray>(m, "DeviceArray", R"doc(
A tensor in memory that ramjet allocated (GPU memory for CUDA engines).

Returned by ExecutionContext.infer() for device inputs that are neither PyTorch nor CuPy
tensors. It exports ``__cuda_array_interface__`` and DLPack, so ``torch.from_dlpack(a)`` and
``cupy.asarray(a)`` view it without a copy; ``a.numpy()`` copies it to the host. The memory is
freed when the last view of it is gone.)doc")
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape)); },
                             "Dimensions as a tuple of ints.")
      .def_property_readonly("dtype", [](const DeviceArray& a) { return numpyDtype(a.dtype); }, "numpy dtype.")
      .def_property_readonly("nbytes", [](const DeviceArray& a) { return a.buf->bytes; })
      .def_property_readonly("ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.buf->ptr); },
                             "Device address as an int.")
      .def_property_readonly("__cuda_array_interface__", [](const DeviceArray& a) {
        if (!a.cuda) throw py::attribute_error("a host DeviceArray has no __cuda_array_interface__");
        py::dict d;
        d["shape"] = py::tuple(py::cast(a.shape));
        d["typestr"] = typestrOf(a.dtype);
        d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(a.buf->ptr), false);
        d["version"] = 3;
        d["strides"] = py::none();
        d["stream"] = a.stream == 0 ? py::int_(1) : py::int_(a.stream);
        return d;
      })
      .def("__dlpack_device__", [](const DeviceArray& a) {
        return py::make_tuple(a.cuda ? int(kDLCUDA) : int(kDLCPU), a.cuda ? a.device_id : 0);
      })
      .def("__dlpack__", [](const DeviceArray& a, py::object stream, py::object max_version, py::object dl_device,
                            py::object copy) {
        if (!copy.is_none() && copy.cast<bool>())
          fail(StatusCode::kUnsupported, "DeviceArray.__dlpack__: copy=True is not supported");
        if (a.cuda && !stream.is_none()) {
          uintptr_t s = stream.cast<uintptr_t>();
          if (s == 1) s = 0;  // DLPack's "legacy default stream"
          if (s != a.stream) {  // the consumer's stream is not ordered after ours: wait for the data
            std::lock_guard<std::mutex> lock(a.buf->eng->mu);
            if (a.buf->eng->engine) check(a.buf->eng->engine->synchronize(reinterpret_cast<void*>(a.stream)));
          }
        }
        auto* ctx = new ExportCtx{a.buf, a.shape};
        auto* mt = new DLManagedTensor{};
        mt->dl_tensor.data = a.buf->ptr;
        mt->dl_tensor.device = {a.cuda ? int32_t(kDLCUDA) : int32_t(kDLCPU), a.cuda ? a.device_id : 0};
        mt->dl_tensor.ndim = static_cast<int32_t>(a.shape.size());
        mt->dl_tensor.dtype = toDl(a.dtype);
        mt->dl_tensor.shape = ctx->shape.data();
        mt->dl_tensor.strides = nullptr;
        mt->dl_tensor.byte_offset = 0;
        mt->manager_ctx = ctx;
        mt->deleter = exportDeleter;
        PyObject* cap = PyCapsule_New(mt, "dltensor", [](PyObject* c) {
          // Only an unconsumed capsule still owns the tensor.
          if (PyCapsule_IsValid(c, "dltensor")) {
            auto* p = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
            if (p && p->deleter) p->deleter(p);
          }
        });
        if (!cap) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(cap);
      }, py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
         py::arg("dl_device") = py::none(), py::arg("copy") = py::none(),
         "DLPack export (legacy capsule). Waits for the producing stream when `stream` differs.")
      .def("numpy", [](const DeviceArray& a) {
        py::array out(numpyDtype(a.dtype), a.shape);
        void* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> lock(a.buf->eng->mu);
          Engine* e = a.buf->eng->engine.get();
          if (!e) fail(StatusCode::kInvalidArgument, "the engine of this DeviceArray is gone");
          void* s = reinterpret_cast<void*>(a.stream);
          check(e->copyToHost(dst, a.buf->ptr, a.buf->bytes, s));
          check(e->synchronize(s));
        }
        return out;
      }, "Copies the tensor to a new numpy array (waits for the stream that produced it).")
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + dimsToString(a.shape) + ", dtype=" + dataTypeName(a.dtype) +
               (a.cuda ? ", device=cuda:" + std::to_string(a.device_id) : std::string(", device=cpu")) + ")";
      });
}

}  // namespace ramjet::python
