// Scaled hyperbolic tangent y = A tanh(S x) forward and backward on the GPU; csrc/tanh.cpp is the
// CPU twin and holds the conventions (backward from the output y, (A - y)(A + y)). tanh is
// CUDA's own (tanhf / tanh, within 2 ulp), not the CPU's expm1 construction.
//
// Thread mapping: one thread per element, grid-stride over `count` (any layout).
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    tanh_forward_kernel(int64_t count, T amplitude, T slope, const T* x, T* y) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    y[i] = amplitude * tanh(slope * x[i]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    tanh_backward_kernel(int64_t count, T amplitude, T scale, const T* dy, const T* y, T* dx) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const T y_i = y[i];
    dx[i] = dy[i] * scale * ((amplitude - y_i) * (amplitude + y_i));
  }
}

}  // namespace

template <typename T>
void tanh_forward(const TanhParams& p, const T* x, T* y) {
  if (p.count == 0) return;
  launch("tanh_forward", &tanh_forward_kernel<T>, grid_for(p.count, kThreads), dim3(kThreads),
         p.count, static_cast<T>(p.amplitude), static_cast<T>(p.slope), x, y);
}

template <typename T>
void tanh_backward(const TanhParams& p, const T* dy, const T* y, T* dx) {
  if (p.count == 0) return;
  launch("tanh_backward", &tanh_backward_kernel<T>, grid_for(p.count, kThreads), dim3(kThreads),
         p.count, static_cast<T>(p.amplitude), static_cast<T>(p.slope / p.amplitude), dy, y, dx);
}

template void tanh_forward<float>(const TanhParams&, const float*, float*);
template void tanh_forward<double>(const TanhParams&, const double*, double*);
template void tanh_backward<float>(const TanhParams&, const float*, const float*, float*);
template void tanh_backward<double>(const TanhParams&, const double*, const double*, double*);

}  // namespace cuda
}  // namespace ck
