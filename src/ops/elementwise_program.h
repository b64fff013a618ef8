// The expression program of the ramjet-internal op FusedElementwise (ops_fused.def): a short
// straight-line list of float instructions over broadcast inputs, produced by the
// ElementwiseFusion pass and run by the reference interpreter, by an NVRTC-generated CUDA kernel
// and by a generic CUDA interpreter kernel (the NVRTC fallback).
//
// Node attributes: `ops` (string, comma-separated op names), `args` (ints, two operand codes per
// instruction: 0..n_in-1 = input, n_in+j = result of instruction j (j < current), -1 = none),
// `params` (floats, two per instruction: alpha/beta of HardSigmoid, LeakyRelu, Elu, Clip, ...).
// The output is the result of the last instruction. Every value is computed in float.
//
// RJ_EW_APPLY is the one definition of each instruction's math. It is compiled for the host
// (reference), for the device (fallback kernel) and pasted as text into NVRTC sources, so the
// three paths cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ramjet/graph.h"
#include "ramjet/status.h"

namespace ramjet::ops {

// Op codes; the order is the wire format of nothing (attributes carry names), only in-memory.
#define RJ_EW_OPS(X)                                                                          \
  X(Relu, 1) X(Sigmoid, 1) X(Tanh, 1) X(Exp, 1) X(Log, 1) X(Sqrt, 1) X(Reciprocal, 1) X(Neg, 1) \
  X(Abs, 1) X(Erf, 1) X(Gelu, 1) X(GeluTanh, 1) X(Silu, 1) X(HardSigmoid, 1) X(HardSwish, 1)    \
  X(LeakyRelu, 1) X(Clip, 1) X(Softplus, 1) X(Elu, 1) X(Floor, 1) X(Ceil, 1) X(Sin, 1)          \
  X(Cos, 1) X(Mish, 1) X(Add, 2) X(Sub, 2) X(Mul, 2) X(Div, 2) X(Pow, 2) X(Max, 2) X(Min, 2)

enum class EwOp : int32_t {
#define RJ_EW_ENUM(Name, arity) k##Name,
  RJ_EW_OPS(RJ_EW_ENUM)
#undef RJ_EW_ENUM
      kCount
};

// The math, as a macro so the same text is compiled (host and device) and stringified (NVRTC).
// `QUAL` is the function qualifier. Ops are the integer values of EwOp in RJ_EW_OPS order.
#define RJ_EW_APPLY_BODY(QUAL)                                                                  \
  QUAL float rjEwApply(int op, float a, float b, float p0, float p1) {                          \
    switch (op) {                                                                               \
      case 0: return a > 0.f ? a : 0.f;                                                         \
      case 1: return a >= 0.f ? 1.f / (1.f + expf(-a)) : expf(a) / (1.f + expf(a));             \
      case 2: return tanhf(a);                                                                  \
      case 3: return expf(a);                                                                   \
      case 4: return logf(a);                                                                   \
      case 5: return sqrtf(a);                                                                  \
      case 6: return 1.f / a;                                                                   \
      case 7: return -a;                                                                        \
      case 8: return fabsf(a);                                                                  \
      case 9: return erff(a);                                                                   \
      case 10: return 0.5f * a * (1.f + erff(a * 0.70710678118654752f));                        \
      case 11: return 0.5f * a * (1.f + tanhf(0.79788456080286536f * (a + 0.044715f * a * a * a))); \
      case 12: return a >= 0.f ? a / (1.f + expf(-a)) : a * expf(a) / (1.f + expf(a));          \
      case 13: return fminf(fmaxf(p0 * a + p1, 0.f), 1.f);                                      \
      case 14: return a * fminf(fmaxf(a / 6.f + 0.5f, 0.f), 1.f);                               \
      case 15: return a >= 0.f ? a : p0 * a;                                                    \
      case 16: return fminf(fmaxf(a, p0), p1);                                                  \
      case 17: return a > 20.f ? a : log1pf(expf(a));                                           \
      case 18: return a >= 0.f ? a : p0 * (expf(a) - 1.f);                                      \
      case 19: return floorf(a);                                                                \
      case 20: return ceilf(a);                                                                 \
      case 21: return sinf(a);                                                                  \
      case 22: return cosf(a);                                                                  \
      case 23: return a * tanhf(a > 20.f ? a : log1pf(expf(a)));                                \
      case 24: return a + b;                                                                    \
      case 25: return a - b;                                                                    \
      case 26: return a * b;                                                                    \
      case 27: return a / b;                                                                    \
      case 28: return powf(a, b);                                                               \
      case 29: return (a != a || b != b) ? a + b : fmaxf(a, b);                                 \
      case 30: return (a != a || b != b) ? a + b : fminf(a, b);                                 \
      default: return 0.f;                                                                      \
    }                                                                                           \
  }

#define RJ_EW_STR_(...) #__VA_ARGS__
#define RJ_EW_STR(...) RJ_EW_STR_(__VA_ARGS__)

struct EwInstr {
  EwOp op = EwOp::kRelu;
  int32_t a = -1, b = -1;  // operand codes (see the file comment)
  float p0 = 0.f, p1 = 0.f;
};

struct EwProgram {
  int32_t num_inputs = 0;
  std::vector<EwInstr> code;
  // "Add(i0,i1);Gelu(r0)" — for logs, explain output and tests.
  std::string toString() const;
};

const char* ewOpName(EwOp op);
int ewArity(EwOp op);
// Name ("Relu") -> op; false for a name that is not an instruction.
bool ewOpFromName(const std::string& name, EwOp* op);

// Reads and validates a FusedElementwise node's program against `num_inputs` inputs: known op
// names, arity, operands in range and referring only to earlier results, at least one instruction.
Result<EwProgram> ewProgramFromNode(const Node& n, size_t num_inputs);
// Writes the program's attributes onto n.
void ewProgramToNode(const EwProgram& p, Node* n);

// Host evaluation of the program for one element (regs: scratch of code.size()).
float ewEvalHost(const EwProgram& p, const float* inputs, float* regs);

}  // namespace ramjet::ops
