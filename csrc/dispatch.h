// Run-time choice of the ISA level: one table of kernel pointers per level, one active table.
// Portable code (bindings, dispatch.cpp) calls kernels only through these tables.
#pragma once

#include <string>
#include <vector>

#include "params.h"

namespace ck {

enum class GemmTrans { No, Yes };

template <typename T>
struct KernelTable {
  void (*conv2d_forward)(const Conv2dParams&, const T*, const T*, const T*, T*);
  void (*conv2d_backward_input)(const Conv2dParams&, const T*, const T*, T*);
  void (*conv2d_backward_weight)(const Conv2dParams&, const T*, const T*, T*);
  void (*conv2d_backward_bias)(const Conv2dParams&, const T*, T*);
  void (*max_pool2d_forward)(const Pool2dParams&, const T*, T*, int64_t*);
  void (*max_pool2d_backward)(const Pool2dParams&, const T*, const int64_t*, T*);
  void (*avg_pool2d_forward)(const Pool2dParams&, const T*, T*);
  void (*avg_pool2d_backward)(const Pool2dParams&, const T*, T*);
  void (*relu_forward)(const ReluParams&, const T*, T*);
  void (*relu_backward)(const ReluParams&, const T*, const T*, T*);
  void (*lrn_forward)(const LrnParams&, const T*, T*);
  void (*lrn_backward)(const LrnParams&, const T*, const T*, T*);
  void (*lcn_forward)(const LcnParams&, const T*, T*);
  void (*lcn_backward)(const LcnParams&, const T*, const T*, T*);
  // C (M, N) = alpha op(A) op(B) + beta C, row-major (exposed for tests and benchmarks).
  void (*gemm)(GemmTrans, GemmTrans, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*,
               int64_t, T, T*, int64_t);
};

struct IsaKernels {
  const char* name;
  KernelTable<float> f32;
  KernelTable<double> f64;

  template <typename T>
  const KernelTable<T>& table() const;
};

template <>
inline const KernelTable<float>& IsaKernels::table<float>() const {
  return f32;
}
template <>
inline const KernelTable<double>& IsaKernels::table<double>() const {
  return f64;
}

// Levels built into this module that this CPU can run, best first.
std::vector<std::string> supported_isas();
// Every level built into this module, best first.
std::vector<std::string> compiled_isas();
// The active table; the best supported level unless set_isa chose another.
const IsaKernels& active_kernels();
// Makes `name` active. Returns an error message, or empty on success.
std::string set_isa(const std::string& name);

}  // namespace ck
