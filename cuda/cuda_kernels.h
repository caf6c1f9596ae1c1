// Declarations of the CUDA kernels' host launchers, for the bindings (cuda/bindings.cpp).
//
// Plain C++: no CUDA header needed to include it. The launchers have the CPU kernels' names and
// signatures (csrc/kernels.h) and take the same params structs, already checked by params.cpp;
// pointers are device pointers. Each runs on current_stream() (set_stream) and returns without
// waiting for the GPU; errors throw ck::cuda::CudaError (a std::runtime_error).
#pragma once

#include <cstdint>
#include <string>

#include "dispatch.h"
#include "params.h"

namespace ck {
namespace cuda {

// The launchers as a kernel table (gemm is null: the GPU has no public GEMM).
template <typename T>
const KernelTable<T>& kernel_table();

// The stream the calling host thread's launches go to (a cudaStream_t; 0 is the legacy default).
void set_stream(uintptr_t stream);
// Makes device `index` current on the calling thread (the device the arrays live on).
void use_device(int index);
// Number of usable devices; 0 on any CUDA error (no driver, no device), with the reason in
// `why` when it is not null.
int device_count(std::string* why);
// The name and compute capability of device `index` ("NVIDIA H100 ... (sm_90)").
std::string device_name(int index);
// CUDA runtime version the module was built with, e.g. 13000.
int runtime_version();

// count elements of ptr set to NaN (indices to -1), for the tests' poisoned outputs.
template <typename T>
void fill_poison(T* ptr, int64_t count);
// Whether some idx[0 : count] lies outside [0, limit); if so, *bad is one such value. Waits for
// the GPU.
bool find_out_of_range(const int64_t* idx, int64_t count, int64_t limit, int64_t* bad);

// The launchers, by op (one .cu file each).
template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y);
template <typename T>
void conv2d_backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw);
template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, const T* dy, T* db);
template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* argmax, T* dx);
template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx);
template <typename T>
void relu_forward(const ReluParams& p, const T* x, T* y);
template <typename T>
void relu_backward(const ReluParams& p, const T* dy, const T* x, T* dx);
template <typename T>
void tanh_forward(const TanhParams& p, const T* x, T* y);
template <typename T>
void tanh_backward(const TanhParams& p, const T* dy, const T* y, T* dx);
template <typename T>
void lrn_forward(const LrnParams& p, const T* x, T* y);
template <typename T>
void lrn_backward(const LrnParams& p, const T* dy, const T* x, T* dx);
template <typename T>
void lcn_forward(const LcnParams& p, const T* x, T* y);
template <typename T>
void lcn_backward(const LcnParams& p, const T* dy, const T* x, T* dx);

}  // namespace cuda
}  // namespace ck
