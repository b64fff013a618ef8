// ramjet._ramjet: the Python extension, thin over include/ramjet (no second implementation).
// The pure-Python layer (python/ramjet/__init__.py) adds BuildOptions, Calibrator, the error
// classes and logging setup; everything that runs per call lives here.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>

#include "common.h"

#ifdef RAMJET_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ramjet::python {
namespace {

std::atomic<bool> g_finalizing{false};

// Native crash report: Python's faulthandler is off by the time C++ statics are torn down, so a
// crash there would leave no trace. With RAMJET_CRASH_BACKTRACE=1 the module prints a raw
// backtrace (module+offset, for addr2line) and chains to the previous handler.
struct sigaction g_prev_segv, g_prev_bus;
void onFatalSignal(int sig) {
  const char head[] = "\nramjet python module: fatal signal, native backtrace:\n";
  (void)!write(2, head, sizeof(head) - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  sigaction(sig, sig == SIGSEGV ? &g_prev_segv : &g_prev_bus, nullptr);
  raise(sig);
}
void installCrashBacktrace() {
  const char* e = std::getenv("RAMJET_CRASH_BACKTRACE");
  if (!e || e[0] != '1') return;
  static bool installed = false;  // re-arming at exit must not chain the handler to itself
  struct sigaction cur {};
  sigaction(SIGSEGV, nullptr, &cur);
  if (installed && cur.sa_handler == onFatalSignal) return;
  struct sigaction sa {};
  sa.sa_handler = onFatalSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction ignored_segv {}, ignored_bus {};
  // The first install remembers the previous handlers; a re-arm keeps those (not our own).
  sigaction(SIGSEGV, &sa, installed ? &ignored_segv : &g_prev_segv);
  sigaction(SIGBUS, &sa, installed ? &ignored_bus : &g_prev_bus);
  installed = true;
}

// ---- logging: ramjet's Logger -> Python's logging.getLogger("ramjet") ----
class PyLogger final : public Logger {
 public:
  void log(Severity s, const std::string& msg) override {
    if (g_finalizing.load() || !Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    try {
      int level = s == Severity::kError ? 40 : s == Severity::kWarning ? 30 : s == Severity::kInfo ? 20 : 10;
      py::module_::import("logging").attr("getLogger")("ramjet").attr("log")(level, msg);
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("ramjet logger");
    }
  }
};
PyLogger* pyLogger() {
  static PyLogger* l = new PyLogger();  // never destroyed: engines may log until exit
  return l;
}

// ---- metadata helpers ----
py::object tensorInfoType() {
  return py::module_::import("ramjet._types").attr("TensorInfo");
}
py::object shapeToPy(const Shape& s) {
  if (!s.rank_known) return py::none();
  py::tuple t(s.dims.size());
  for (size_t i = 0; i < s.dims.size(); ++i) {
    const Dim& d = s.dims[i];
    if (d.known()) t[i] = py::int_(d.value);
    else if (d.symbol.empty() || d.symbol == "?") t[i] = py::none();
    else t[i] = py::str(d.symbol);
  }
  return t;
}
py::object dtypeOrName(DataType t) {
  try {
    return numpyDtype(t);
  } catch (StatusError&) {
    return py::str(dataTypeName(t));
  }
}
py::list infoList(const std::vector<TensorInfo>& v) {
  py::object T = tensorInfoType();
  py::list out;
  for (const auto& i : v) out.append(T(i.name, dtypeOrName(i.dtype), shapeToPy(i.shape)));
  return out;
}
py::list valueInfoList(const std::vector<Value*>& v) {
  py::object T = tensorInfoType();
  py::list out;
  for (const Value* x : v) out.append(T(x->name, dtypeOrName(x->type.dtype), shapeToPy(x->type.shape)));
  return out;
}
py::dict memoryDict(const MemoryReport& m) {
  py::dict d;
  d["arena_bytes"] = m.arena_bytes;
  d["sum_tensor_bytes"] = m.sum_tensor_bytes;
  d["peak_live_bytes"] = m.peak_live_bytes;
  d["num_tensors"] = m.num_tensors;
  d["num_aliases"] = m.num_aliases;
  d["workspace_bytes"] = m.workspace_bytes;
  return d;
}

std::vector<int64_t> toDims(py::handle shape, const std::string& what) {
  std::vector<int64_t> dims;
  if (py::isinstance<py::str>(shape)) fail(StatusCode::kInvalidArgument, what, ": shape must be a sequence of ints");
  try {
    for (auto v : shape.cast<py::sequence>()) {
      if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v))
        fail(StatusCode::kInvalidArgument, what, ": shape entries must be ints, got ",
             py::str(py::type::of(v)).cast<std::string>());
      int64_t d = v.cast<int64_t>();
      if (d < 0) fail(StatusCode::kInvalidArgument, what, ": negative dimension ", d);
      dims.push_back(d);
    }
  } catch (py::cast_error&) {
    fail(StatusCode::kInvalidArgument, what, ": shape must be a sequence of ints");
  }
  return dims;
}

// ---- Graph ----
struct PyGraph {
  std::shared_ptr<Graph> g;
};

// ---- Plan ----
struct PyPlan {
  std::shared_ptr<Plan> plan;
};

// ---- Calibrator bridge: calls the Python object's get_batch() under the GIL ----
// Bound to the C++ API when it has one (see issue #6); the feeds are validated here so a
// Python mistake names the batch and the input.
[[maybe_unused]] std::map<std::string, Tensor> feedsFromPy(py::handle batch, const std::string& what);

Tensor tensorFromNumpy(py::handle obj, const std::string& what, DataType expect) {
  if (!py::isinstance<py::array>(obj)) {
    if (isDeviceArray(obj))
      fail(StatusCode::kInvalidArgument, what, ": a device array cannot be mixed with host arrays in one call");
    py::module_ np = py::module_::import("numpy");
    py::object arr;
    if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj) || py::isinstance<py::int_>(obj) ||
        py::isinstance<py::float_>(obj)) {
      // Plain Python numbers/lists take the input's dtype (arrays must match exactly).
      if (expect == DataType::kUndefined) fail(StatusCode::kInvalidArgument, what, ": expected a numpy array");
      arr = np.attr("asarray")(obj, numpyDtype(expect));
    } else if (py::hasattr(obj, "__array__") || PyObject_CheckBuffer(obj.ptr())) {
      arr = np.attr("asarray")(obj);  // e.g. a CPU torch tensor, a memoryview
    } else {
      fail(StatusCode::kInvalidArgument, what, ": expected a numpy array, got ",
           py::str(py::type::of(obj)).cast<std::string>());
    }
    return tensorFromNumpy(arr, what, expect);
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  DataType dt = fromNumpyDtype(a.dtype());
  if (dt == DataType::kUndefined)
    fail(StatusCode::kInvalidArgument, what, ": numpy dtype ", py::str(a.dtype()).cast<std::string>(),
         " is not supported by ramjet");
  if (expect != DataType::kUndefined && dt != expect)
    fail(StatusCode::kInvalidArgument, what, " must be ", py::str(numpyDtype(expect)).cast<std::string>(), ", got ",
         py::str(a.dtype()).cast<std::string>(), " (convert with .astype())");
  std::vector<int64_t> dims(a.shape(), a.shape() + a.ndim());
  Tensor t(dt, dims);
  if (t.nbytes()) {
    py::array c = py::array::ensure(a, py::array::c_style);
    std::memcpy(t.raw(), c.data(), t.nbytes());
  }
  return t;
}

py::array numpyFromTensor(const Tensor& t, const std::string& name) {
  if (!t.isTensor() || t.dtype() == DataType::kString)
    fail(StatusCode::kUnsupported, "output '", name, "' is not a numeric tensor (", t.type().toString(),
         "); the Python API returns numeric tensors only");
  auto* keep = new Tensor(t);
  py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(t.dims().begin(), t.dims().end());
  return py::array(numpyDtype(t.dtype()), shape, keep->raw(), owner);
}

[[maybe_unused]] std::map<std::string, Tensor> feedsFromPy(py::handle batch, const std::string& what) {
  if (!py::isinstance<py::dict>(batch))
    fail(StatusCode::kInvalidArgument, what, ": get_batch() must return a dict {input name: numpy array} or None, got ",
         py::str(py::type::of(batch)).cast<std::string>());
  std::map<std::string, Tensor> feeds;
  for (auto kv : batch.cast<py::dict>()) {
    std::string name = py::str(kv.first).cast<std::string>();
    feeds[name] = tensorFromNumpy(kv.second, what + " input '" + name + "'", DataType::kUndefined);
  }
  return feeds;
}

// ---- Engine / Context ----
struct PyEngine {
  std::shared_ptr<EngineState> st;
  py::list inputs, outputs;
  py::dict info;
};

struct ContextHandle {
  std::shared_ptr<ContextState> st;
  std::map<std::string, py::object> bound;  // keeps set_tensor_address objects alive (GIL-guarded)
  std::map<std::string, DataType> in_dtype, out_dtype;
  std::vector<std::string> in_names, out_names;
};

PyEngine makeEngine(std::unique_ptr<Engine> e) {
  PyEngine pe;
  pe.st = std::make_shared<EngineState>();
  const PlanInfo& pi = e->info();
  pe.st->cuda = pi.device == DeviceKind::kCuda;
  pe.inputs = infoList(e->inputs());
  pe.outputs = infoList(e->outputs());
  py::dict d;
  d["format_version"] = pi.format_version;
  d["ramjet_version"] = pi.ramjet_version;
  d["device"] = deviceKindName(pi.device);
  d["precision"] = precisionName(pi.precision);
  d["gpu_name"] = pi.gpu_name;
  d["compute_capability"] = py::make_tuple(pi.cc_major, pi.cc_minor);
  d["cuda_runtime_version"] = pi.cuda_runtime_version;
  d["cudnn_version"] = pi.cudnn_version;
  d["cublas_version"] = pi.cublas_version;
  py::dict prof;
  for (const auto& p : pi.profiles) prof[py::str(p.input)] = py::make_tuple(py::tuple(py::cast(p.min)), py::tuple(py::cast(p.opt)), py::tuple(py::cast(p.max)));
  d["profiles"] = prof;
  d["num_nodes"] = pi.num_nodes;
  d["weight_bytes"] = pi.weight_bytes;
  d["file_bytes"] = pi.file_bytes;
  d["memory"] = memoryDict(pi.memory);
  d["tactics"] = py::cast(pi.tactics);
  d["summary"] = pi.toString();
  pe.info = d;
  pe.st->engine = std::move(e);
  return pe;
}

void requireOpen(const PyEngine& e) {
  if (!e.st || e.st->closed) fail(StatusCode::kInvalidArgument, "the engine is closed");
}

// Locks a context for one call; fails when it or its engine was closed. The GIL must be released.
std::unique_lock<std::mutex> lockContext(ContextState& c) {
  std::unique_lock<std::mutex> lock(c.mu);
  if (!c.ctx) fail(StatusCode::kInvalidArgument, "the execution context is closed (its engine was closed)");
  return lock;
}

std::string ioNames(const ContextHandle& c) {
  std::string s;
  for (const auto& n : c.in_names) s += (s.empty() ? "" : ", ") + n;
  s += " -> ";
  bool first = true;
  for (const auto& n : c.out_names) s += (first ? "" : ", ") + n, first = false;
  return s;
}

py::object allocLike(py::handle like, const std::vector<int64_t>& dims, DataType dt) {
  // Outputs of PyTorch / CuPy inputs are allocated by the same library (its caching allocator),
  // so callers get their own tensor type back; anything else gets a ramjet DeviceArray.
  std::string mod = py::str(py::type::of(like).attr("__module__")).cast<std::string>();
  if (mod.rfind("torch", 0) == 0) {
    py::module_ torch = py::module_::import("torch");
    static const std::map<DataType, const char*> names = {
        {DataType::kFloat32, "float32"}, {DataType::kFloat16, "float16"}, {DataType::kBFloat16, "bfloat16"},
        {DataType::kFloat64, "float64"}, {DataType::kInt8, "int8"},       {DataType::kUInt8, "uint8"},
        {DataType::kInt16, "int16"},     {DataType::kInt32, "int32"},     {DataType::kInt64, "int64"},
        {DataType::kBool, "bool"}};
    auto it = names.find(dt);
    if (it != names.end())
      return torch.attr("empty")(py::tuple(py::cast(dims)), py::arg("dtype") = torch.attr(it->second),
                                 py::arg("device") = like.attr("device"));
  }
  if (mod.rfind("cupy", 0) == 0 && dt != DataType::kBFloat16) {
    py::module_ cupy = py::module_::import("cupy");
    return cupy.attr("empty")(py::tuple(py::cast(dims)), py::arg("dtype") = numpyDtype(dt));
  }
  return py::none();
}

py::dict inferDevice(ContextHandle& c, py::dict inputs, py::object outputs, uintptr_t stream) {
  ContextState& cs = *c.st;
  std::vector<ArrayView> in_views(c.in_names.size());
  py::handle like;
  for (size_t i = 0; i < c.in_names.size(); ++i) {
    const std::string& name = c.in_names[i];
    py::str key(name);
    if (!inputs.contains(key)) fail(StatusCode::kInvalidArgument, "missing input '", name, "' (", ioNames(c), ")");
    py::handle obj = inputs[key];
    if (!viewDeviceArray(obj, stream, "input '" + name + "'", &in_views[i]))
      fail(StatusCode::kInvalidArgument, "input '", name, "': a host array cannot be mixed with device arrays in one call");
    if (in_views[i].dtype != c.in_dtype[name])
      fail(StatusCode::kInvalidArgument, "input '", name, "' must be ", dataTypeName(c.in_dtype[name]), ", got ",
           dataTypeName(in_views[i].dtype));
    if (!like) like = obj;
  }
  py::dict out_objs;
  if (!outputs.is_none()) {
    if (!py::isinstance<py::dict>(outputs)) fail(StatusCode::kInvalidArgument, "outputs must be a dict {name: device array}");
    for (auto kv : outputs.cast<py::dict>()) {
      std::string n = py::str(kv.first).cast<std::string>();
      if (!c.out_dtype.count(n)) fail(StatusCode::kNotFound, "outputs: the engine has no output '", n, "' (", ioNames(c), ")");
      out_objs[kv.first] = kv.second;
    }
  }
  std::vector<ArrayView> out_views(c.out_names.size());
  std::vector<std::shared_ptr<Buffer>> new_bufs(c.out_names.size());
  std::vector<std::vector<int64_t>> out_dims(c.out_names.size());
  {
    py::gil_scoped_release nogil;
    auto lock = lockContext(cs);
    for (size_t i = 0; i < c.in_names.size(); ++i) {
      Status s = cs.ctx->setInputShape(c.in_names[i], in_views[i].shape);
      if (!s.ok()) throwStatus(s);
      check(cs.ctx->setTensorAddress(c.in_names[i], in_views[i].ptr));
    }
    for (size_t o = 0; o < c.out_names.size(); ++o) out_dims[o] = unwrap(cs.ctx->tensorShape(c.out_names[o]));
  }
  // The input addresses are bound now: keep their owners alive until they are replaced.
  for (size_t i = 0; i < c.in_names.size(); ++i) c.bound[c.in_names[i]] = in_views[i].keepalive;
  // Outputs: the caller's arrays, or new ones from the input's library, or DeviceArrays.
  py::dict result;
  for (size_t o = 0; o < c.out_names.size(); ++o) {
    const std::string& name = c.out_names[o];
    DataType dt = c.out_dtype[name];
    py::str key(name);
    py::object obj;
    if (out_objs.contains(key)) obj = out_objs[key];
    else obj = allocLike(like, out_dims[o], dt);
    if (!obj.is_none()) {
      if (!viewDeviceArray(obj, stream, "output '" + name + "'", &out_views[o]))
        fail(StatusCode::kInvalidArgument, "output '", name, "' must be a CUDA array");
      if (out_views[o].dtype != dt)
        fail(StatusCode::kInvalidArgument, "output '", name, "' must be ", dataTypeName(dt), ", got ", dataTypeName(out_views[o].dtype));
      if (out_views[o].shape != out_dims[o])
        fail(StatusCode::kInvalidArgument, "output '", name, "' must have shape ", dimsToString(out_dims[o]), ", got ",
             dimsToString(out_views[o].shape));
      if (out_views[o].readonly) fail(StatusCode::kInvalidArgument, "output '", name, "' is read-only");
      result[key] = obj;
    } else {
      auto buf = std::make_shared<Buffer>();
      size_t bytes = static_cast<size_t>(numElements(out_dims[o])) * dataTypeSize(dt);
      {
        py::gil_scoped_release nogil;
        auto lock = lockContext(cs);
        buf->ptr = unwrap(cs.eng->engine->allocate(std::max<size_t>(bytes, 1)));
      }
      buf->eng = cs.eng;
      buf->bytes = bytes;
      cs.eng->live_buffers.fetch_add(1);
      DeviceArray a;
      a.buf = buf;
      a.dtype = dt;
      a.shape = out_dims[o];
      a.cuda = true;
      a.device_id = cs.eng->device_index;
      a.stream = stream;
      out_views[o].ptr = buf->ptr;
      result[key] = py::cast(std::move(a));
    }
  }
  {
    py::gil_scoped_release nogil;
    auto lock = lockContext(cs);
    for (size_t o = 0; o < c.out_names.size(); ++o) check(cs.ctx->setTensorAddress(c.out_names[o], out_views[o].ptr));
    check(cs.ctx->enqueue(reinterpret_cast<void*>(stream)));
  }
  for (size_t o = 0; o < c.out_names.size(); ++o) c.bound[c.out_names[o]] = result[py::str(c.out_names[o])];
  return result;
}

py::dict inferHost(ContextHandle& c, py::dict inputs) {
  std::map<std::string, Tensor> feeds;
  for (const auto& name : c.in_names) {
    py::str key(name);
    if (!inputs.contains(key)) fail(StatusCode::kInvalidArgument, "missing input '", name, "' (", ioNames(c), ")");
    feeds[name] = tensorFromNumpy(inputs[key], "input '" + name + "'", c.in_dtype[name]);
  }
  std::vector<Tensor> outs;
  {
    py::gil_scoped_release nogil;
    auto lock = lockContext(*c.st);
    outs = unwrap(c.st->ctx->infer(feeds));
  }
  py::dict result;
  for (size_t o = 0; o < outs.size() && o < c.out_names.size(); ++o)
    result[py::str(c.out_names[o])] = numpyFromTensor(outs[o], c.out_names[o]);
  return result;
}

// The Python calibrator (ramjet.Calibrator subclass) behind the C++ calibrator interface. A
// template over the interface so the module builds against a C++ API with or without it.
template <typename Base>
class PyCalibratorT final : public Base {
 public:
  explicit PyCalibratorT(py::object obj) : obj_(std::move(obj)) {}
  ~PyCalibratorT() override {
    py::gil_scoped_acquire gil;
    obj_ = py::object();
  }
  Result<bool> getBatch(std::map<std::string, Tensor>* feeds) override {
    py::gil_scoped_acquire gil;
    std::string what = "calibration batch " + std::to_string(n_);
    try {
      py::object b = obj_.attr("get_batch")();
      if (b.is_none()) return false;
      *feeds = feedsFromPy(b, what);
      ++n_;
      return true;
    } catch (StatusError& e) {
      return e.status;
    } catch (py::error_already_set& e) {
      return makeError(StatusCode::kInvalidArgument, what, ": get_batch() raised ", e.what());
    }
  }
  size_t numBatches() const override {
    py::gil_scoped_acquire gil;
    try {
      return obj_.attr("num_batches").template cast<size_t>();
    } catch (...) {
      return 0;
    }
  }
  Status reset() override {
    py::gil_scoped_acquire gil;
    try {
      obj_.attr("reset")();
      n_ = 0;
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return makeError(StatusCode::kUnsupported, "calibrator.reset() raised ", e.what());
    }
  }

 private:
  py::object obj_;
  size_t n_ = 0;
};

// Mixed-precision options (INT8/FP8 calibration, per-layer overrides) where the C++ API has them.
// Returns what must outlive the build (the calibrator bridge).
template <typename Opt>
std::shared_ptr<void> applyMixedPrecision(Opt& opt, py::object calibrator, py::dict extra) {
  std::shared_ptr<void> keep;
  if constexpr (requires { opt.calibrator; opt.calibration_cache_path; opt.precision_overrides; }) {
    using Cal = std::remove_pointer_t<decltype(opt.calibrator)>;
    if (!calibrator.is_none()) {
      auto c = std::make_shared<PyCalibratorT<Cal>>(calibrator);
      opt.calibrator = c.get();
      keep = c;
    }
    if (extra.contains("precision_overrides"))
      opt.precision_overrides = extra["precision_overrides"].cast<std::vector<std::string>>();
    if (extra.contains("calibration_cache")) opt.calibration_cache_path = extra["calibration_cache"].cast<std::string>();
    if constexpr (requires { opt.reduced_precision_io; }) {
      if (extra.contains("reduced_io")) opt.reduced_precision_io = extra["reduced_io"].cast<bool>();
    }
    if constexpr (requires { opt.calibration_method; opt.calibration_batches; opt.activation_amax; }) {
      if (extra.contains("calibration_method")) opt.calibration_method = extra["calibration_method"].cast<std::string>();
      if (extra.contains("calibration_batches")) opt.calibration_batches = extra["calibration_batches"].cast<size_t>();
      if (extra.contains("activation_amax"))
        opt.activation_amax = extra["activation_amax"].cast<std::map<std::string, float>>();
    }
    if constexpr (requires { opt.accuracy_budget; opt.accuracy_metric; opt.accuracy_loss; opt.accuracy_samples; }) {
      if (extra.contains("accuracy_budget")) opt.accuracy_budget = extra["accuracy_budget"].cast<double>();
      if (extra.contains("accuracy_samples")) opt.accuracy_samples = extra["accuracy_samples"].cast<size_t>();
      if (extra.contains("accuracy_metric")) opt.accuracy_metric = extra["accuracy_metric"].cast<std::string>();
      if (extra.contains("accuracy_loss")) {
        // A Python callable(candidate, reference) -> float; each a list (per batch) of lists of
        // numpy arrays (the engine's outputs in order). Called with the GIL, during the build.
        auto fn = std::make_shared<py::object>(extra["accuracy_loss"]);
        auto hold = std::shared_ptr<void>(new int(0), [fn](int* p) {
          py::gil_scoped_acquire gil;
          *fn = py::object();
          delete p;
        });
        keep = keep ? std::shared_ptr<void>(new std::pair<std::shared_ptr<void>, std::shared_ptr<void>>(keep, hold),
                                            [](void* p) { delete static_cast<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>*>(p); })
                    : hold;
        opt.accuracy_metric = "custom";
        opt.accuracy_loss = [fn](const std::vector<std::vector<Tensor>>& got,
                                 const std::vector<std::vector<Tensor>>& ref) -> Result<double> {
          py::gil_scoped_acquire gil;
          try {
            auto lists = [](const std::vector<std::vector<Tensor>>& v) {
              py::list out;
              for (const auto& batch : v) {
                py::list b;
                for (const Tensor& t : batch) b.append(py::array(numpyDtype(t.dtype()), t.dims(), t.raw()));
                out.append(b);
              }
              return out;
            };
            return (*fn)(lists(got), lists(ref)).template cast<double>();
          } catch (py::error_already_set& e) {
            return makeError(StatusCode::kInvalidArgument, "accuracy_metric callable raised ", e.what());
          } catch (py::cast_error& e) {
            return makeError(StatusCode::kInvalidArgument, "accuracy_metric callable must return a float: ", e.what());
          }
        };
      }
    }
  } else {
    if (!calibrator.is_none() || py::len(extra) > 0)
      fail(StatusCode::kUnsupported, "calibrator / mixed-precision options: this build of ramjet's C++ API "
           "has no such BuildOptions fields yet (issue #6)");
  }
  return keep;
}

Precision parsePrecision(const std::string& s) {
  for (int v = 0; v < 16; ++v)
    if (s == precisionName(static_cast<Precision>(v))) return static_cast<Precision>(v);
  fail(StatusCode::kInvalidArgument, "unknown precision '", s, "'");
}

}  // namespace
}  // namespace ramjet::python

using namespace ramjet;
using namespace ramjet::python;

PYBIND11_MODULE(_ramjet, m) {
  m.doc() = "ramjet's compiled core. Use the `ramjet` package, which re-exports it with docs.";
  m.attr("__version__") = RAMJET_VERSION;
  installCrashBacktrace();
#ifdef RAMJET_HAVE_CUDA
  m.attr("cuda_compiled") = true;
  (void)registerCudaBackend();  // without a GPU, CUDA builds and plans fail with the backend's message
#else
  m.attr("cuda_compiled") = false;
#endif

  // StatusError -> the ramjet.errors class for its code, carrying the Status message.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object errors = py::module_::import("ramjet.errors");
      py::object exc = errors.attr("_make")(static_cast<int>(e.status.code()),
                                            statusCodeName(e.status.code()), e.status.message());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
  // Also re-arms the crash backtrace: pytest's faulthandler plugin restores the handler it found
  // (the default) when the session ends, which would hide a crash during interpreter teardown.
  py::module_::import("atexit").attr("register")(py::cpp_function([]() {
    g_finalizing = true;
    installCrashBacktrace();
  }));

  m.def("_precisions", []() {
    py::list out;
    std::set<std::string> seen;
    for (int v = 0; v < 16; ++v) {
      std::string n = precisionName(static_cast<Precision>(v));
      if (n.empty() || n == "?" || n == "unknown" || !seen.insert(n).second) continue;
      out.append(py::str(n));
    }
    return out;
  }, "Precision names this build of ramjet knows (for BuildOptions(precision=...)).");

  m.def("cuda_device_count", []() {
#ifdef RAMJET_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
#else
    return 0;
#endif
  }, "Number of CUDA devices ramjet can use (0 without a GPU or when built without CUDA).");

  // ---- Graph ----
  py::class_<PyGraph>(m, "Graph", "An imported model (ramjet's IR). Create with ramjet.import_onnx().")
      .def_property_readonly("name", [](const PyGraph& g) { return g.g->name; })
      .def_property_readonly("inputs", [](const PyGraph& g) { return valueInfoList(g.g->inputs); },
                             "Runtime inputs as TensorInfo(name, dtype, shape); symbolic dims are str (or None).")
      .def_property_readonly("outputs", [](const PyGraph& g) { return valueInfoList(g.g->outputs); })
      .def_property_readonly("num_nodes", [](const PyGraph& g) { return g.g->nodes().size(); })
      .def("__len__", [](const PyGraph& g) { return g.g->nodes().size(); })
      .def_property_readonly("op_counts", [](const PyGraph& g) {
        std::map<std::string, size_t> c;
        for (const auto& n : g.g->nodes()) c[n->op_type]++;
        return c;
      }, "Node count per op type.")
      .def_property_readonly("opsets", [](const PyGraph& g) { return g.g->opsets; })
      .def_property_readonly("metadata", [](const PyGraph& g) { return g.g->metadata; })
      .def_property_readonly("weight_bytes", [](const PyGraph& g) { return g.g->weightBytes(); })
      .def("dump", [](const PyGraph& g) { return g.g->dump(); }, "Readable listing of the graph.")
      .def("__repr__", [](const PyGraph& g) {
        return "<ramjet.Graph '" + g.g->name + "': " + std::to_string(g.g->nodes().size()) + " nodes, " +
               std::to_string(g.g->inputs.size()) + " inputs, " + std::to_string(g.g->outputs.size()) + " outputs>";
      });

  m.def("import_onnx", [](const std::string& path) {
    Result<Graph> r = [&] {
      py::gil_scoped_release nogil;
      return importOnnx(path);
    }();
    return PyGraph{std::make_shared<Graph>(unwrap(std::move(r)))};
  }, py::arg("path"), "Imports an ONNX model file. Raises InvalidModelError listing every problem.");
  m.def("import_onnx_bytes", [](py::bytes data) {
    std::string s = data;
    Result<Graph> r = [&] {
      py::gil_scoped_release nogil;
      return importOnnxFromMemory(s.data(), s.size());
    }();
    return PyGraph{std::make_shared<Graph>(unwrap(std::move(r)))};
  }, py::arg("data"), "Imports an ONNX model from its serialized bytes.");

  // ---- Plan ----
  py::class_<PyPlan>(m, "Plan", "A built, serialized engine. Save it with .save(path) and load it with Engine.load().")
      .def("save", [](const PyPlan& p, const std::string& path) {
        py::gil_scoped_release nogil;
        check(p.plan->save(path));
      }, py::arg("path"), "Writes the plan file (atomically: temp file + rename).")
      .def("to_bytes", [](const PyPlan& p) {
        const auto& b = p.plan->bytes();
        return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
      }, "The plan file's bytes.")
      .def_property_readonly("nbytes", [](const PyPlan& p) { return p.plan->bytes().size(); })
      .def_property_readonly("report", [](const PyPlan& p) {
        const BuildReport& r = p.plan->report();
        py::dict d;
        d["nodes_in"] = r.nodes_in;
        d["nodes_folded"] = r.nodes_folded;
        d["nodes_removed"] = r.nodes_removed;
        d["nodes_after_passes"] = r.nodes_after_passes;
        d["nodes_out"] = r.nodes_out;
        d["passes"] = r.passes;
        d["host_nodes"] = r.host_nodes;
        d["fallback_nodes"] = r.fallback_nodes;
        d["weight_bytes"] = r.weight_bytes;
        d["tactics"] = py::cast(r.tactics);
        d["tactics_timed"] = r.tactics_timed;
        d["timing_cache_hits"] = r.timing_cache_hits;
        d["memory"] = memoryDict(r.memory);
        d["build_ms"] = r.build_ms;
        if constexpr (requires { r.int8_layers; r.accuracy_budget; }) {
          d["int8_layers"] = py::cast(r.int8_layers);
          d["accuracy_budget"] = r.accuracy_budget;
        }
        d["summary"] = r.toString() + r.accuracy_budget;
        return py::module_::import("ramjet._types").attr("BuildReport")(d);
      }, "What the builder did (BuildReport: attributes, and str() gives the C++ summary).");

  m.def("_build", [](const PyGraph& g, const std::string& device, int device_index, const std::string& precision,
                     py::dict profiles, const std::string& timing_cache, bool allow_cpu_fallback, bool fold_constants,
                     bool optimize, std::vector<std::string> disabled_passes, int timing_iterations,
                     size_t max_workspace_bytes, py::object calibrator, py::object progress, py::dict extra) {
    BuildOptions opt;
    if (device == "cpu") opt.device = DeviceKind::kCpu;
    else if (device == "cuda") {
#ifndef RAMJET_HAVE_CUDA
      fail(StatusCode::kUnsupported, "this ramjet module was built without CUDA; use device='cpu'");
#endif
      opt.device = DeviceKind::kCuda;
    } else fail(StatusCode::kInvalidArgument, "device must be 'cpu' or 'cuda', got '", device, "'");
    opt.device_index = device_index;
    opt.precision = parsePrecision(precision);
    for (auto kv : profiles) {
      std::string name = py::str(kv.first).cast<std::string>();
      py::tuple t = kv.second.cast<py::tuple>();
      ShapeProfile p{name, toDims(t[0], "profile '" + name + "' min"), toDims(t[1], "profile '" + name + "' opt"),
                     toDims(t[2], "profile '" + name + "' max")};
      opt.profiles.push_back(std::move(p));
    }
    opt.timing_cache_path = timing_cache;
    opt.allow_cpu_fallback = allow_cpu_fallback;
    opt.fold_constants = fold_constants;
    opt.optimize = optimize;
    opt.disabled_passes = std::move(disabled_passes);
    opt.timing_iterations = timing_iterations;
    opt.max_workspace_bytes = max_workspace_bytes;
    opt.logger = pyLogger();
    std::shared_ptr<void> keep_calibrator = applyMixedPrecision(opt, calibrator, extra);
    if (!progress.is_none()) {
      opt.progress = [progress](size_t done, size_t total, const std::string& stage) {
        py::gil_scoped_acquire gil;
        try {
          progress(done, total, stage);
        } catch (py::error_already_set& e) {
          e.discard_as_unraisable("ramjet build progress callback");
        }
      };
    }
    Result<Plan> r = [&] {
      py::gil_scoped_release nogil;
      return build(*g.g, opt);
    }();
    // The std::function holds a py::object: destroy it with the GIL held.
    opt.progress = nullptr;
    return PyPlan{std::make_shared<Plan>(unwrap(std::move(r)))};
  });

  // ---- Engine ----
  py::class_<PyEngine>(m, "Engine", R"doc(
A loaded plan: weights in place (on the GPU for CUDA plans), ready for execution contexts.

    engine = ramjet.Engine.load("model.plan")
    ctx = engine.create_context()
    out = ctx.infer({"x": array})

Use it as a context manager or call close() to free it deterministically.)doc")
      .def_static("load", [](const std::string& path, int device_index) {
        LoadOptions lo;
        lo.device_index = device_index;
        lo.logger = pyLogger();
        Result<std::unique_ptr<Engine>> r = [&] {
          py::gil_scoped_release nogil;
          return Engine::load(path, lo);
        }();
        PyEngine e = makeEngine(unwrap(std::move(r)));
        e.st->device_index = device_index;
        return e;
      }, py::arg("path"), py::arg("device_index") = 0, "Loads a plan file. Raises InvalidPlanError for a bad file.")
      .def_static("from_bytes", [](py::bytes data, int device_index) {
        std::string s = data;
        LoadOptions lo;
        lo.device_index = device_index;
        lo.logger = pyLogger();
        Result<std::unique_ptr<Engine>> r = [&] {
          py::gil_scoped_release nogil;
          return Engine::loadFromMemory(s.data(), s.size(), lo);
        }();
        PyEngine e = makeEngine(unwrap(std::move(r)));
        e.st->device_index = device_index;
        return e;
      }, py::arg("data"), py::arg("device_index") = 0, "Loads a plan from bytes (e.g. Plan.to_bytes()).")
      .def_property_readonly("inputs", [](const PyEngine& e) { return e.inputs; },
                             "Inputs as TensorInfo(name, dtype, shape); symbolic dims are str (or None).")
      .def_property_readonly("outputs", [](const PyEngine& e) { return e.outputs; })
      .def_property_readonly("info", [](const PyEngine& e) { return e.info; },
                             "What the plan says about itself (device, precision, versions, profiles, memory).")
      .def_property_readonly("device", [](const PyEngine& e) { return e.info["device"]; })
      .def_property_readonly("closed", [](const PyEngine& e) { return !e.st || e.st->closed; })
      .def("create_context", [](PyEngine& e) {
        requireOpen(e);
        auto cs = std::make_shared<ContextState>();
        cs->eng = e.st;
        {
          py::gil_scoped_release nogil;
          std::lock_guard<std::mutex> lock(e.st->mu);
          if (e.st->closed || !e.st->engine) fail(StatusCode::kInvalidArgument, "the engine is closed");
          cs->ctx = unwrap(e.st->engine->createContext());
          e.st->contexts.push_back(cs);
        }
        ContextHandle c;
        c.st = cs;
        for (auto i : e.inputs) {
          auto n = i.attr("name").cast<std::string>();
          c.in_names.push_back(n);
        }
        for (auto o : e.outputs) c.out_names.push_back(o.attr("name").cast<std::string>());
        for (const auto& ti : e.st->engine->inputs()) c.in_dtype[ti.name] = ti.dtype;
        for (const auto& ti : e.st->engine->outputs()) c.out_dtype[ti.name] = ti.dtype;
        return c;
      }, "A new execution context (its own activation memory; contexts share the engine's weights).")
      .def("close", [](PyEngine& e) {
        if (!e.st) return;
        std::vector<std::shared_ptr<ContextState>> ctxs;
        {
          py::gil_scoped_release nogil;
          {
            std::lock_guard<std::mutex> lock(e.st->mu);
            if (e.st->closed) return;
            e.st->closed = true;
            for (auto& w : e.st->contexts)
              if (auto c = w.lock()) ctxs.push_back(c);
          }
          for (auto& c : ctxs) {  // waits for calls in flight on each context
            std::lock_guard<std::mutex> lock(c->mu);
            c->ctx.reset();
          }
          std::lock_guard<std::mutex> lock(e.st->mu);
          e.st->maybeDestroyLocked();
        }
      }, "Destroys the engine's contexts (waiting for calls in flight) and the engine. Later calls raise.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py::object self, py::args) { self.attr("close")(); })
      .def("__repr__", [](const PyEngine& e) {
        std::string s = "<ramjet.Engine " + py::str(e.info["device"]).cast<std::string>() + " " +
                        py::str(e.info["precision"]).cast<std::string>() + ": ";
        s += std::to_string(py::len(e.inputs)) + " inputs, " + std::to_string(py::len(e.outputs)) + " outputs";
        return s + (e.st->closed ? ", closed>" : ">");
      });

  // ---- ExecutionContext ----
  py::class_<ContextHandle>(m, "ExecutionContext", R"doc(
Runs an engine. Not thread-safe by itself (calls on one context are serialized); use one
context per thread. Calls release the GIL while ramjet works.

Host path:   ctx.infer({"x": numpy_array}) -> {"y": numpy_array}  (synchronous, copies)
Device path: ctx.infer({"x": torch_cuda_tensor}, stream=s) -> {"y": tensor}  (asynchronous on s,
             zero-copy; outputs are allocated by the input's library, or pass outputs={...})
Raw path:    ctx.set_input_shape / set_tensor_address / execute_async(stream))doc")
      .def("infer", [](ContextHandle& c, py::object inputs, py::object outputs, py::object stream) {
        if (!py::isinstance<py::dict>(inputs))
          fail(StatusCode::kInvalidArgument, "inputs must be a dict {input name: array}, got ",
               py::str(py::type::of(inputs)).cast<std::string>());
        py::dict in = inputs.cast<py::dict>();
        for (auto kv : in) {
          std::string n = py::str(kv.first).cast<std::string>();
          if (!c.in_dtype.count(n)) fail(StatusCode::kNotFound, "the engine has no input '", n, "' (", ioNames(c), ")");
        }
        bool device = false;
        for (auto kv : in)
          if (isDeviceArray(kv.second)) {
            device = true;
            break;
          }
        if (device) {
          if (!c.st->eng->cuda)
            fail(StatusCode::kInvalidArgument, "device arrays were passed to a CPU engine; pass numpy arrays");
          return inferDevice(c, in, outputs, parseStream(stream));
        }
        if (!outputs.is_none()) fail(StatusCode::kInvalidArgument, "outputs= is only for device arrays (the host path allocates its outputs)");
        return inferHost(c, in);
      }, py::arg("inputs"), py::kw_only(), py::arg("outputs") = py::none(), py::arg("stream") = py::none(),
         R"doc(Runs the engine.

numpy inputs: synchronous; returns {output name: numpy array} (new arrays).
CUDA arrays (__cuda_array_interface__ or DLPack: PyTorch, CuPy, ...): asynchronous on `stream`
(None = the legacy default stream, an int handle, or a torch/cupy stream object); nothing is
copied; returns {output name: array} -- `outputs[name]` if given, else a new torch/cupy array
like the inputs, else a ramjet.DeviceArray. Inputs and outputs must stay alive until the stream
has run the work.)doc")
      .def("set_input_shape", [](ContextHandle& c, const std::string& name, py::object shape) {
        auto dims = toDims(shape, "set_input_shape('" + name + "')");
        py::gil_scoped_release nogil;
        auto lock = lockContext(*c.st);
        check(c.st->ctx->setInputShape(name, dims));
      }, py::arg("name"), py::arg("shape"), "Concrete dims for an input; checked against the plan's profile.")
      .def("tensor_shape", [](ContextHandle& c, const std::string& name) {
        std::vector<int64_t> d;
        {
          py::gil_scoped_release nogil;
          auto lock = lockContext(*c.st);
          d = unwrap(c.st->ctx->tensorShape(name));
        }
        return py::tuple(py::cast(d));
      }, py::arg("name"), "Dims of an input or output once every input shape is set.")
      .def("set_tensor_address", [](ContextHandle& c, const std::string& name, py::object obj) {
        bool is_input = c.in_dtype.count(name) != 0, is_output = c.out_dtype.count(name) != 0;
        if (!is_input && !is_output) fail(StatusCode::kNotFound, "the engine has no tensor '", name, "' (", ioNames(c), ")");
        DataType want = is_input ? c.in_dtype[name] : c.out_dtype[name];
        void* ptr = nullptr;
        py::object keep = obj;
        if (py::isinstance<py::int_>(obj) && !py::isinstance<py::bool_>(obj)) {
          ptr = reinterpret_cast<void*>(obj.cast<uintptr_t>());
        } else if (py::isinstance<py::array>(obj)) {
          if (c.st->eng->cuda) fail(StatusCode::kInvalidArgument, "'", name, "': a CUDA engine needs device memory, got a numpy array");
          py::array a = obj.cast<py::array>();
          if (fromNumpyDtype(a.dtype()) != want)
            fail(StatusCode::kInvalidArgument, "'", name, "' must be ", dataTypeName(want), ", got ", py::str(a.dtype()).cast<std::string>());
          if (!(a.flags() & py::array::c_style)) fail(StatusCode::kInvalidArgument, "'", name, "': the array is not C-contiguous");
          if (is_output && !a.writeable()) fail(StatusCode::kInvalidArgument, "'", name, "': output array is read-only");
          ptr = a.mutable_data();
          if (is_input) check([&] {
              py::gil_scoped_release nogil;
              auto lock = lockContext(*c.st);
              return c.st->ctx->setInputShape(name, std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
            }());
        } else {
          ArrayView v;
          if (!viewDeviceArray(obj, 0, "'" + name + "'", &v))
            fail(StatusCode::kInvalidArgument, "'", name, "': expected an int address, a CUDA array or (CPU engines) a numpy array; got ",
                 py::str(py::type::of(obj)).cast<std::string>());
          if (!c.st->eng->cuda) fail(StatusCode::kInvalidArgument, "'", name, "': a CPU engine needs host memory (numpy)");
          if (v.dtype != want) fail(StatusCode::kInvalidArgument, "'", name, "' must be ", dataTypeName(want), ", got ", dataTypeName(v.dtype));
          if (is_output && v.readonly) fail(StatusCode::kInvalidArgument, "'", name, "': output array is read-only");
          ptr = v.ptr;
          keep = v.keepalive;
          if (is_input) check([&] {
              py::gil_scoped_release nogil;
              auto lock = lockContext(*c.st);
              return c.st->ctx->setInputShape(name, v.shape);
            }());
        }
        {
          py::gil_scoped_release nogil;
          auto lock = lockContext(*c.st);
          check(c.st->ctx->setTensorAddress(name, ptr));
        }
        c.bound[name] = keep;
      }, py::arg("name"), py::arg("array"), R"doc(Binds memory to an input or output for execute_async().

`array` is an int address, a CUDA array (__cuda_array_interface__ / DLPack; an input's shape is
set from it), or for CPU engines a C-contiguous numpy array. The object is kept alive while bound.)doc")
      .def("execute_async", [](ContextHandle& c, py::object stream) {
        uintptr_t s = parseStream(stream);
        py::gil_scoped_release nogil;
        auto lock = lockContext(*c.st);
        check(c.st->ctx->enqueue(reinterpret_cast<void*>(s)));
      }, py::arg("stream") = py::none(),
         "Queues the engine on `stream` with the bound addresses (CPU engines run synchronously).")
      .def("_time_enqueue", [](ContextHandle& c, int iterations, py::object stream) {
        // The C++ baseline for the overhead benchmark: `iterations` enqueues in a C++ loop with
        // the bound addresses, then one synchronize. Returns seconds (host clock) for the loop.
        uintptr_t s = parseStream(stream);
        py::gil_scoped_release nogil;
        auto lock = lockContext(*c.st);
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < iterations; ++i) check(c.st->ctx->enqueue(reinterpret_cast<void*>(s)));
        double loop = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        check(c.st->eng->engine->synchronize(reinterpret_cast<void*>(s)));
        return loop;
      }, py::arg("iterations"), py::arg("stream") = py::none())
      .def_property_readonly("last_timing", [](ContextHandle& c) {
        ExecutionContext::Timing t;
        {
          py::gil_scoped_release nogil;
          auto lock = lockContext(*c.st);
          t = c.st->ctx->lastTiming();
        }
        py::dict d;
        d["h2d_ms"] = t.h2d_ms;
        d["compute_ms"] = t.compute_ms;
        d["d2h_ms"] = t.d2h_ms;
        return d;
      }, "Phases of the last host infer() in milliseconds.")
      .def_property_readonly("input_names", [](const ContextHandle& c) { return c.in_names; })
      .def_property_readonly("output_names", [](const ContextHandle& c) { return c.out_names; });

  bindArrays(m);
}
