// Run-time choice of the ISA level: one table of kernel pointers per level, one active table,
// and the thread count. Portable code (the C API in c_api.cpp, the Python bindings) calls kernels
// only through these tables. dispatch.cpp lives in the shared library libconvkernels with the
// kernels and the C API, so there is one active table per process, whoever calls.
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
  void (*tanh_forward)(const TanhParams&, const T*, T*);
  void (*tanh_backward)(const TanhParams&, const T*, const T*, T*);
  void (*lrn_forward)(const LrnParams&, const T*, T*);
  void (*lrn_backward)(const LrnParams&, const T*, const T*, T*);
  void (*lcn_forward)(const LcnParams&, const T*, T*);
  void (*lcn_backward)(const LcnParams&, const T*, const T*, T*);
  // C (M, N) = alpha op(A) op(B) + beta C, row-major (exposed for tests and benchmarks).
  void (*gemm)(GemmTrans, GemmTrans, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*,
               int64_t, T, T*, int64_t);
};

// One timed run of the FMA peak probe (fma_peak.cpp): flops done by `threads` threads in
// `seconds` of wall time; checksum is what the chains computed (so none is optimised away).
struct FmaRun {
  double flops, seconds;
  int threads;
  float checksum;
};

struct IsaKernels {
  const char* name;
  KernelTable<float> f32;
  KernelTable<double> f64;
  // The position of the first idx[i] outside [0, limit), or -1: max_pool2d_backward's check of
  // its indices before it writes anything.
  int64_t (*first_out_of_range)(const int64_t* idx, int64_t count, int64_t limit);
  // The FP32 peak probe: `rounds` steps of independent FMA chains on every thread.
  FmaRun (*fma_peak_run)(int64_t rounds);

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

// Levels built into this library that this CPU can run, best first.
std::vector<std::string> supported_isas();
// Every level built into this library, best first.
std::vector<std::string> compiled_isas();
// The active table: the level CONVKERNELS_ISA names, if set and usable, else the best supported
// level, until set_isa chooses another. Call it on the thread that will run the kernel, just
// before the call: it also gives that thread the process-wide thread count (set_num_threads).
const IsaKernels& active_kernels();
// Makes `name` active. Returns an error message, or empty on success.
std::string set_isa(const std::string& name);
// Why CONVKERNELS_ISA could not be honoured ("CONVKERNELS_ISA=x: ..."), or empty: empty when the
// variable is unset or usable, and again once set_isa has succeeded.
std::string isa_env_error();

// Threads per kernel call. OpenMP keeps its thread count per calling thread; this library keeps
// one for the process and hands it to each thread that calls a kernel (see active_kernels), so
// a setting made on one thread holds for all. Before any set_num_threads: OpenMP's default.
int get_num_threads();
// Returns an error message, or empty on success. n must lie in [1, kMaxThreads].
std::string set_num_threads(int n);
constexpr int kMaxThreads = 65536;
// Whether the kernels were built with OpenMP (if not, every call runs on the calling thread).
bool openmp_enabled();

}  // namespace ck
