// Element types, 16-bit float helpers and concrete/symbolic shapes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace ramjet {

// Values match ONNX TensorProto.DataType so importers and plan files can store them directly.
enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,  // recognised so errors can name it; no kernel computes on strings
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

const char* dataTypeName(DataType t);      // "f32", "f16", ...
size_t dataTypeSize(DataType t);           // bytes per element; 0 for undefined/string
bool isFloatType(DataType t);              // f16, bf16, f32, f64
bool isIntegerType(DataType t);            // signed and unsigned ints (not bool)
bool isSupportedDataType(DataType t);      // one ramjet can hold in a Tensor
bool dataTypeFromOnnx(int32_t onnx_type, DataType* out);

// IEEE half precision stored as bits; arithmetic goes through float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float f) : bits(fromFloat(f)) {}  // NOLINT
  operator float() const { return toFloat(bits); }  // NOLINT
  static uint16_t fromFloat(float f);
  static float toFloat(uint16_t h);
};

// bfloat16 stored as bits (round to nearest even); arithmetic goes through float.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) : bits(fromFloat(f)) {}  // NOLINT
  operator float() const { return toFloat(bits); }  // NOLINT
  static uint16_t fromFloat(float f);
  static float toFloat(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

template <typename T> struct DataTypeOf;
template <> struct DataTypeOf<float> { static constexpr DataType value = DataType::kFloat32; };
template <> struct DataTypeOf<double> { static constexpr DataType value = DataType::kFloat64; };
template <> struct DataTypeOf<Half> { static constexpr DataType value = DataType::kFloat16; };
template <> struct DataTypeOf<BFloat16> { static constexpr DataType value = DataType::kBFloat16; };
template <> struct DataTypeOf<int8_t> { static constexpr DataType value = DataType::kInt8; };
template <> struct DataTypeOf<uint8_t> { static constexpr DataType value = DataType::kUInt8; };
template <> struct DataTypeOf<int16_t> { static constexpr DataType value = DataType::kInt16; };
template <> struct DataTypeOf<uint16_t> { static constexpr DataType value = DataType::kUInt16; };
template <> struct DataTypeOf<int32_t> { static constexpr DataType value = DataType::kInt32; };
template <> struct DataTypeOf<uint32_t> { static constexpr DataType value = DataType::kUInt32; };
template <> struct DataTypeOf<int64_t> { static constexpr DataType value = DataType::kInt64; };
template <> struct DataTypeOf<uint64_t> { static constexpr DataType value = DataType::kUInt64; };
template <> struct DataTypeOf<bool> { static constexpr DataType value = DataType::kBool; };

// One dimension of a symbolic shape: a known size (>= 0) or a named unknown ("batch", "?").
struct Dim {
  int64_t value = -1;  // -1 when symbolic
  std::string symbol;  // name of the unknown, empty when known

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT
  static Dim symbolic(std::string name) {
    Dim d;
    d.symbol = std::move(name);
    return d;
  }
  bool known() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
  bool operator!=(const Dim& o) const { return !(*this == o); }
  std::string toString() const { return known() ? std::to_string(value) : symbol; }
};

// A possibly symbolic shape; `rank_known == false` means even the rank is unknown.
struct Shape {
  std::vector<Dim> dims;
  bool rank_known = true;

  Shape() = default;
  Shape(std::vector<Dim> d) : dims(std::move(d)) {}  // NOLINT
  static Shape fromDims(const std::vector<int64_t>& d) {
    Shape s;
    for (auto v : d) s.dims.emplace_back(v);
    return s;
  }
  static Shape unknownRank() {
    Shape s;
    s.rank_known = false;
    return s;
  }
  size_t rank() const { return dims.size(); }
  bool fullyKnown() const;
  std::vector<int64_t> concrete() const;  // requires fullyKnown()
  std::string toString() const;           // "[batch,3,224,224]"
  bool operator==(const Shape& o) const { return rank_known == o.rank_known && dims == o.dims; }
};

// What a value is: a dense tensor (the common case), an ONNX sequence of tensors, or an ONNX
// optional (a value or "none").
enum class TypeKind : uint8_t { kTensor = 0, kSequence = 1, kOptional = 2 };

struct TensorType {
  DataType dtype = DataType::kUndefined;
  Shape shape = Shape::unknownRank();
  // Elements of a small integer tensor (rank 0/1) known during shape inference although the
  // tensor is not constant: the values of a shape subgraph (Shape -> Gather -> Concat), each
  // a number or a symbol such as "batch". Null when unknown. Lets Reshape/Expand/... give
  // exact output dims for models with a symbolic batch.
  std::shared_ptr<const std::vector<Dim>> shape_value;

  // Sequence and optional types: `kind` says which and `elem` is the type inside (a tensor,
  // or a sequence inside an optional). `dtype` is then the innermost tensor's element type so
  // that code which only compares dtypes keeps working; `shape` is unknown rank.
  TypeKind kind = TypeKind::kTensor;
  std::shared_ptr<const TensorType> elem;

  TensorType() = default;
  TensorType(DataType dt, Shape s, std::shared_ptr<const std::vector<Dim>> value = nullptr)
      : dtype(dt), shape(std::move(s)), shape_value(std::move(value)) {}
  static TensorType sequenceOf(TensorType e) { return wrap(TypeKind::kSequence, std::move(e)); }
  static TensorType optionalOf(TensorType e) { return wrap(TypeKind::kOptional, std::move(e)); }
  bool isTensor() const { return kind == TypeKind::kTensor; }
  std::string toString() const;

 private:
  static TensorType wrap(TypeKind k, TensorType e) {
    TensorType t(e.dtype, Shape::unknownRank());
    t.kind = k;
    t.elem = std::make_shared<const TensorType>(std::move(e));
    return t;
  }
};

int64_t numElements(const std::vector<int64_t>& dims);
std::string dimsToString(const std::vector<int64_t>& dims);

}  // namespace ramjet
