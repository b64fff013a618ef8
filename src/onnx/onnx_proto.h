// The generated ONNX protobuf classes (lite runtime, from /usr/include/onnx/onnx.proto).
// Only src/onnx/ includes this: nothing downstream sees protobuf.
#pragma once
#include "onnx.pb.h"
