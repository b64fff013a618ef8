// Host tensor: dtype + dense row-major dims + shared, 64-byte-aligned storage.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage.
  Tensor(DataType dtype, std::vector<int64_t> dims);
  // Storage left uninitialized, for a buffer the caller overwrites completely before reading it
  // (request tensors, batch merges: the zero fill was 6% of a loaded server's CPU). String
  // tensors are constructed as by Tensor(dtype, dims).
  static Tensor uninitialized(DataType dtype, std::vector<int64_t> dims);
  // Wraps existing storage (shared, e.g. an mmap'ed weights file); no copy.
  Tensor(DataType dtype, std::vector<int64_t> dims, std::shared_ptr<uint8_t> storage);

  template <typename T>
  static Tensor scalar(T v) {
    Tensor t(DataTypeOf<T>::value, {});
    *t.data<T>() = v;
    return t;
  }
  template <typename T>
  static Tensor fromVector(const std::vector<T>& v, std::vector<int64_t> dims = {}) {
    if (dims.empty() && v.size() != 1) dims = {static_cast<int64_t>(v.size())};
    Tensor t(DataTypeOf<T>::value, dims);
    T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = v[i];
    return t;
  }

  // ---- non-tensor values (ONNX sequences and optionals) ----
  // They travel through the interpreter as a Tensor whose kind() is not kTensor: dims() is
  // empty, numel() is 0 and there is no numeric storage. dtype() is the innermost element type.
  // A sequence of tensors; `elem_type` describes every element (its dtype must be set).
  static Tensor sequence(TensorType elem_type, std::vector<Tensor> elements);
  // An optional holding `value`, or holding nothing ("none") of type `elem_type`.
  static Tensor optional(Tensor value);
  static Tensor optionalNone(TensorType elem_type);
  TypeKind kind() const { return kind_; }
  bool isTensor() const { return kind_ == TypeKind::kTensor; }
  // Sequence elements, or an optional's value (empty when none). Empty for tensors.
  const std::vector<Tensor>& elements() const;
  bool hasElement() const { return kind_ == TypeKind::kOptional && !elements().empty(); }

  // ---- string tensors (dtype kString): one std::string per element, shared like storage ----
  std::string* strings() { return strings_ ? strings_->data() : nullptr; }
  const std::string* strings() const { return strings_ ? strings_->data() : nullptr; }

  bool defined() const { return dtype_ != DataType::kUndefined || kind_ != TypeKind::kTensor; }
  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  size_t rank() const { return dims_.size(); }
  int64_t dim(int i) const { return dims_[i < 0 ? i + static_cast<int>(dims_.size()) : i]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dataTypeSize(dtype_); }

  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }
  template <typename T>
  T* data() {
    RJ_CHECK(DataTypeOf<T>::value == dtype_);
    return reinterpret_cast<T*>(storage_.get());
  }
  template <typename T>
  const T* data() const {
    RJ_CHECK(DataTypeOf<T>::value == dtype_);
    return reinterpret_cast<const T*>(storage_.get());
  }

  // Same storage, new dims (element count must match).
  Tensor reshaped(std::vector<int64_t> dims) const;
  Tensor clone() const;  // deep copy
  // Element i as double / int64 regardless of dtype (for shape tensors, tests, summaries).
  double getDouble(int64_t i) const;
  int64_t getInt(int64_t i) const;
  std::vector<int64_t> toInt64Vector() const;  // any integer tensor -> values
  // Converts to another dtype element-wise (float<->int saturates like a C cast).
  Tensor cast(DataType to) const;

  TensorType type() const {
    if (kind_ != TypeKind::kTensor) return *value_type_;
    return TensorType{dtype_, Shape::fromDims(dims_)};
  }
  std::string summary() const;  // "f32[1,1000] min=.. max=.. mean=.."

 private:
  DataType dtype_ = DataType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  std::shared_ptr<uint8_t> storage_;
  TypeKind kind_ = TypeKind::kTensor;
  std::shared_ptr<std::vector<std::string>> strings_;     // kString tensors only
  std::shared_ptr<const std::vector<Tensor>> elements_;   // sequences / optionals only
  std::shared_ptr<const TensorType> value_type_;          // full type of a sequence / optional
};

// NumPy .npy files (format versions 1-3, little-endian, C order).
Result<Tensor> readNpy(const std::string& path);
Result<Tensor> parseNpy(const uint8_t* data, size_t size, const std::string& what);
Status writeNpy(const std::string& path, const Tensor& t);

// Comparison used by tests and conformance: max abs error, max rel error, cosine similarity.
struct CompareResult {
  double max_abs = 0, max_rel = 0, cosine = 1;
  int64_t mismatches = 0;  // elements outside atol + rtol*|ref|
  bool shape_match = true, dtype_match = true;
  bool nan_mismatch = false;
  std::string toString() const;
};
CompareResult compareTensors(const Tensor& got, const Tensor& ref, double atol, double rtol);

}  // namespace ramjet
