// ReLU (leaky when negative_slope != 0) forward and backward on the GPU; csrc/relu.cpp is the CPU
// twin and holds the conventions (gradient at 0, NaN, slope 0 gives exact zeros).
//
// Thread mapping: one thread per element, grid-stride over `count` (any layout).
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ T negative_side(T v, T slope) {
  return slope == T(0) ? (v != v ? v : T(0)) : v * slope;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    relu_forward_kernel(int64_t count, T slope, const T* x, T* y) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const T v = x[i];
    y[i] = v > T(0) ? v : negative_side(v, slope);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    relu_backward_kernel(int64_t count, T slope, const T* dy, const T* x, T* dx) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    dx[i] = x[i] > T(0) ? dy[i] : negative_side(dy[i], slope);
  }
}

}  // namespace

template <typename T>
void relu_forward(const ReluParams& p, const T* x, T* y) {
  if (p.count == 0) return;
  launch("relu_forward", &relu_forward_kernel<T>, grid_for(p.count, kThreads), dim3(kThreads),
         p.count, static_cast<T>(p.negative_slope), x, y);
}

template <typename T>
void relu_backward(const ReluParams& p, const T* dy, const T* x, T* dx) {
  if (p.count == 0) return;
  launch("relu_backward", &relu_backward_kernel<T>, grid_for(p.count, kThreads), dim3(kThreads),
         p.count, static_cast<T>(p.negative_slope), dy, x, dx);
}

template void relu_forward<float>(const ReluParams&, const float*, float*);
template void relu_forward<double>(const ReluParams&, const double*, double*);
template void relu_backward<float>(const ReluParams&, const float*, const float*, float*);
template void relu_backward<double>(const ReluParams&, const double*, const double*, double*);

}  // namespace cuda
}  // namespace ck
