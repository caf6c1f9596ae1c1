// 2-D max pooling forward (recording the argmax) and backward on the GPU; csrc/max_pool2d.cpp is
// the CPU twin and holds the conventions (padding never wins, a NaN wins, ties keep the first tap
// in row-major window order).
//
// Legend: N batch, C channels, H W input size, P Q output size.
// Thread mapping: forward, one thread per output element (n, c, oh, ow), ow fastest so a warp
// reads neighbouring windows. Backward, a zeroing pass, then one thread per output element adding
// its dy at its argmax with atomicAdd (overlapping windows may pick the same input; the order of
// those additions, hence their rounding, is not fixed).
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ bool wins(T v, T best) {
  return v > best || (v != v && best == best);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool2d_forward_kernel(Pool2dParams p, const T* x, T* y, int64_t* argmax) {
  const int64_t total = p.N * p.C * p.P * p.Q, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t ow = i % p.Q, oh = i / p.Q % p.P, plane = i / (p.P * p.Q);
    const T* x_c = x + plane * p.H * p.W;
    const int64_t h0 = oh * p.stride.h - p.pad.h, w0 = ow * p.stride.w - p.pad.w;
    const int64_t h_lo = device_max<int64_t>(h0, 0), h_hi = device_min(h0 + p.kernel.h, p.H);
    const int64_t w_lo = device_max<int64_t>(w0, 0), w_hi = device_min(w0 + p.kernel.w, p.W);
    int64_t best = h_lo * p.W + w_lo;
    T best_value = x_c[best];
    for (int64_t ih = h_lo; ih < h_hi; ++ih) {
      for (int64_t iw = w_lo; iw < w_hi; ++iw) {
        const T v = x_c[ih * p.W + iw];
        if (wins(v, best_value)) best_value = v, best = ih * p.W + iw;
      }
    }
    y[i] = best_value;
    argmax[i] = best;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    max_pool2d_backward_kernel(Pool2dParams p, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t total = p.N * p.C * p.P * p.Q, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t plane = i / (p.P * p.Q);
    atomicAdd(dx + plane * p.H * p.W + argmax[i], dy[i]);
  }
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax) {
  const int64_t total = p.N * p.C * p.P * p.Q;
  if (total == 0) return;
  launch("max_pool2d_forward", &max_pool2d_forward_kernel<T>, grid_for(total, kThreads),
         dim3(kThreads), p, x, y, argmax);
}

template <typename T>
void max_pool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t total = p.N * p.C * p.P * p.Q;
  zero(dx, p.N * p.C * p.H * p.W);
  if (total == 0) return;
  launch("max_pool2d_backward", &max_pool2d_backward_kernel<T>, grid_for(total, kThreads),
         dim3(kThreads), p, dy, argmax, dx);
}

template void max_pool2d_forward<float>(const Pool2dParams&, const float*, float*, int64_t*);
template void max_pool2d_forward<double>(const Pool2dParams&, const double*, double*, int64_t*);
template void max_pool2d_backward<float>(const Pool2dParams&, const float*, const int64_t*, float*);
template void max_pool2d_backward<double>(const Pool2dParams&, const double*, const int64_t*,
                                          double*);

}  // namespace cuda
}  // namespace ck
