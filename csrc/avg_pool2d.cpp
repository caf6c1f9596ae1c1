// 2-D average pooling forward and backward.
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// The divisor follows PyTorch: with count_include_pad, the window clipped to the padded input
// (ceil_mode windows can hang past it); without, the number of taps inside the input.
// Threads split the N * C planes, so overlapping windows in backward never race.
#include <algorithm>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

struct Window {
  int64_t lo, hi;  // taps [lo, hi) inside the input
  int64_t padded;  // taps inside the padded input
};

Window window(int64_t out_index, int64_t kernel, int64_t stride, int64_t pad, int64_t in_size) {
  const int64_t start = out_index * stride - pad;
  const int64_t end = std::min(start + kernel, in_size + pad);
  return {std::max<int64_t>(start, 0), std::min(end, in_size), end - start};
}

template <typename T>
T divisor(const Pool2dParams& p, const Window& h, const Window& w) {
  return p.count_include_pad ? T(h.padded * w.padded) : T((h.hi - h.lo) * (w.hi - w.lo));
}

}  // namespace

template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* x_c = x + plane * HW;
    T* y_c = y + plane * PQ;
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const Window wh = window(oh, p.kernel.h, p.stride.h, p.pad.h, p.H);
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const Window ww = window(ow, p.kernel.w, p.stride.w, p.pad.w, p.W);
        T sum = 0;
        for (int64_t ih = wh.lo; ih < wh.hi; ++ih) {
          for (int64_t iw = ww.lo; iw < ww.hi; ++iw) sum += x_c[ih * p.W + iw];
        }
        y_c[oh * p.Q + ow] = sum / divisor<T>(p, wh, ww);
      }
    }
  }
}

template <typename T>
void avg_pool2d_backward(const Pool2dParams& p, const T* dy, T* dx) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dx_c = dx + plane * HW;
    const T* dy_c = dy + plane * PQ;
    for (int64_t i = 0; i < HW; ++i) dx_c[i] = T(0);
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const Window wh = window(oh, p.kernel.h, p.stride.h, p.pad.h, p.H);
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const Window ww = window(ow, p.kernel.w, p.stride.w, p.pad.w, p.W);
        const T share = dy_c[oh * p.Q + ow] / divisor<T>(p, wh, ww);
        for (int64_t ih = wh.lo; ih < wh.hi; ++ih) {
          for (int64_t iw = ww.lo; iw < ww.hi; ++iw) dx_c[ih * p.W + iw] += share;
        }
      }
    }
  }
}

template void avg_pool2d_forward<float>(const Pool2dParams&, const float*, float*);
template void avg_pool2d_forward<double>(const Pool2dParams&, const double*, double*);
template void avg_pool2d_backward<float>(const Pool2dParams&, const float*, float*);
template void avg_pool2d_backward<double>(const Pool2dParams&, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
