// 2-D average pooling forward and backward on the GPU; csrc/avg_pool2d.cpp is the CPU twin and
// holds the divisor rule (PyTorch's, with and without count_include_pad).
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// Thread mapping: forward, one thread per output element (n, c, oh, ow); backward, one thread per
// input element (n, c, ih, iw) gathering the windows that cover it, in the order the CPU kernel
// adds them, so no atomics are needed and both agree exactly. ow / iw run fastest in a warp.
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct Window {
  int64_t lo, hi;  // taps [lo, hi) inside the input
  int64_t padded;  // taps inside the padded input
};

__device__ __forceinline__ Window window(int64_t out_index, int64_t kernel, int64_t stride,
                                         int64_t pad, int64_t in_size) {
  const int64_t start = out_index * stride - pad;
  const int64_t end = device_min(start + kernel, in_size + pad);
  return {device_max<int64_t>(start, 0), device_min(end, in_size), end - start};
}

template <typename T>
__device__ __forceinline__ T divisor(const Pool2dParams& p, const Window& h, const Window& w) {
  return p.count_include_pad ? T(h.padded * w.padded) : T((h.hi - h.lo) * (w.hi - w.lo));
}

// The outputs [first, last] along one dimension whose windows contain input index i.
__device__ __forceinline__ void covering(int64_t i, int64_t kernel, int64_t stride, int64_t pad,
                                         int64_t out_size, int64_t* first, int64_t* last) {
  const int64_t lowest = i + pad - kernel + 1;  // window starts (shifted by pad) in [lowest, i+pad]
  *first = lowest <= 0 ? 0 : (lowest + stride - 1) / stride;
  *last = device_min((i + pad) / stride, out_size - 1);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    avg_pool2d_forward_kernel(Pool2dParams p, const T* x, T* y) {
  const int64_t total = p.N * p.C * p.P * p.Q, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t ow = i % p.Q, oh = i / p.Q % p.P, plane = i / (p.P * p.Q);
    const T* x_c = x + plane * p.H * p.W;
    const Window wh = window(oh, p.kernel.h, p.stride.h, p.pad.h, p.H);
    const Window ww = window(ow, p.kernel.w, p.stride.w, p.pad.w, p.W);
    T sum = 0;
    for (int64_t ih = wh.lo; ih < wh.hi; ++ih) {
      for (int64_t iw = ww.lo; iw < ww.hi; ++iw) sum += x_c[ih * p.W + iw];
    }
    y[i] = sum / divisor<T>(p, wh, ww);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    avg_pool2d_backward_kernel(Pool2dParams p, const T* dy, T* dx) {
  const int64_t total = p.N * p.C * p.H * p.W, step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t iw = i % p.W, ih = i / p.W % p.H, plane = i / (p.H * p.W);
    const T* dy_c = dy + plane * p.P * p.Q;
    int64_t oh_first, oh_last, ow_first, ow_last;
    covering(ih, p.kernel.h, p.stride.h, p.pad.h, p.P, &oh_first, &oh_last);
    covering(iw, p.kernel.w, p.stride.w, p.pad.w, p.Q, &ow_first, &ow_last);
    T sum = 0;
    for (int64_t oh = oh_first; oh <= oh_last; ++oh) {
      const Window wh = window(oh, p.kernel.h, p.stride.h, p.pad.h, p.H);
#pragma unroll 1  // unrolled, the float division's slow path spills registers
      for (int64_t ow = ow_first; ow <= ow_last; ++ow) {
        const Window ww = window(ow, p.kernel.w, p.stride.w, p.pad.w, p.W);
        sum += dy_c[oh * p.Q + ow] / divisor<T>(p, wh, ww);
      }
    }
    dx[i] = sum;
  }
}

}  // namespace

template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  const int64_t total = p.N * p.C * p.P * p.Q;
  if (total == 0) return;
  launch("avg_pool2d_forward", &avg_pool2d_forward_kernel<T>, grid_for(total, kThreads),
         dim3(kThreads), p, x, y);
}

template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx) {
  const int64_t total = p.N * p.C * p.H * p.W;
  if (total == 0) return;
  launch("avg_pool2d_backward", &avg_pool2d_backward_kernel<T>, grid_for(total, kThreads),
         dim3(kThreads), p, dy, dx);
}

template void avg_pool2d_forward<float>(const Pool2dParams&, const float*, float*);
template void avg_pool2d_forward<double>(const Pool2dParams&, const double*, double*);
template void avg_pool2d_backward<float>(const Pool2dParams&, const float*, float*);
template void avg_pool2d_backward<double>(const Pool2dParams&, const double*, double*);

}  // namespace cuda
}  // namespace ck
