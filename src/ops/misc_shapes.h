// Helpers shared by the misc-family shape functions (src/ops/misc.cc) and reference kernels
// (src/backends/cpu/reference/{control,quant,nms,loss,misc}.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_registry.h"

namespace ramjet::ops::misc {

// Resolved geometry of a convolution over `spatial` dims (QLinearConv).
struct ConvGeometry {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  int64_t group = 1;
  std::vector<int64_t> out;  // output spatial sizes
};
// in_spatial: input spatial sizes (all known); kernel_spatial: from the weight tensor.
Result<ConvGeometry> convGeometry(const Node& node, const std::vector<int64_t>& in_spatial,
                                  const std::vector<int64_t>& kernel_spatial);

// Output element type of QuantizeLinear: the zero point's type, else output_dtype, else u8.
Result<DataType> quantizeOutputType(const Node& node, bool has_zero_point, DataType zp_type);

// Scalar value of a window / size input (i32 or i64, one element).
Result<int64_t> scalarIntInput(const Tensor& t, const Node& node, const char* what);

// Type an If/Loop/Scan body declares for its output `i` (inferring the body's shapes when the
// declaration carries no type).
TensorType bodyOutputType(const Graph& body, size_t i);

}  // namespace ramjet::ops::misc
