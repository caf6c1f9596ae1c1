// 2-D average pooling forward and backward.
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// The divisor follows PyTorch: with count_include_pad, the window clipped to the padded input
// (ceil_mode windows can hang past it); without, the number of taps inside the input.
// Threads split the N * C planes, so overlapping windows in backward never race.
//
// 2x2 windows with stride 2 and no padding (LeNet's subsampling) take a vector path: rows of
// outputs from pairs of input rows, adjacent columns separated by a shuffle. It adds and divides
// in the general loop's order, so both give the same bits (and so does the CUDA kernel).
#include <algorithm>

#include "kernels.h"
#include "pool_2x2.h"

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

template <typename T, int N>
void avg_2x2_forward_plane(const Pool2dParams& p, const T* x_c, T* y_c) {
  using V = typename Lanes<T, N>::Vec;
  const auto even = Lanes<T, N>::pick(0, 2), odd = Lanes<T, N>::pick(1, 2);
  const V zero = V{}, four = zero + T(4);
  for (int64_t oh = 0; oh < p.P; ++oh) {
    const T* top = x_c + 2 * oh * p.W;
    const T* bottom = top + p.W;
    for_each_vector<N>(p.Q, [&](int64_t ow) {
      const V t0 = *reinterpret_cast<const V*>(top + 2 * ow);
      const V t1 = *reinterpret_cast<const V*>(top + 2 * ow + N);
      const V b0 = *reinterpret_cast<const V*>(bottom + 2 * ow);
      const V b1 = *reinterpret_cast<const V*>(bottom + 2 * ow + N);
      // The general loop's order: ((0 + x[0][0]) + x[0][1]) + x[1][0]) + x[1][1].
      V sum = zero + __builtin_shuffle(t0, t1, even);
      sum += __builtin_shuffle(t0, t1, odd);
      sum += __builtin_shuffle(b0, b1, even);
      sum += __builtin_shuffle(b0, b1, odd);
      *reinterpret_cast<V*>(y_c + oh * p.Q + ow) = sum / four;
    });
  }
}

template <typename T, int N>
void avg_2x2_backward_plane(const Pool2dParams& p, const T* dy_c, T* dx_c) {
  using V = typename Lanes<T, N>::Vec;
  const auto low = Lanes<T, N>::repeat(0), high = Lanes<T, N>::repeat(N / 2);
  const V zero = V{}, four = zero + T(4);
  for (int64_t i = 2 * p.P * p.W; i < p.H * p.W; ++i) dx_c[i] = T(0);  // rows past the windows
  for (int64_t oh = 0; oh < p.P; ++oh) {
    T* top = dx_c + 2 * oh * p.W;
    T* bottom = top + p.W;
    for (int64_t iw = 2 * p.Q; iw < p.W; ++iw) top[iw] = bottom[iw] = T(0);  // columns past them
    for_each_vector<N>(p.Q, [&](int64_t ow) {
      // As the general loop: 0 + dy / 4 (which turns -0 into +0).
      const V share = zero + *reinterpret_cast<const V*>(dy_c + oh * p.Q + ow) / four;
      const V first = __builtin_shuffle(share, low), second = __builtin_shuffle(share, high);
      *reinterpret_cast<V*>(top + 2 * ow) = first;
      *reinterpret_cast<V*>(top + 2 * ow + N) = second;
      *reinterpret_cast<V*>(bottom + 2 * ow) = first;
      *reinterpret_cast<V*>(bottom + 2 * ow + N) = second;
    });
  }
}

}  // namespace

template <typename T>
void avg_pool2d_forward(const Pool2dParams& p, const T* x, T* y) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
  if (is_plain_2x2(p)) {
    with_widest_lanes<T>(p.Q, [&](auto lanes) {
#pragma omp parallel for schedule(static)
      for (int64_t plane = 0; plane < planes; ++plane) {
        avg_2x2_forward_plane<T, lanes()>(p, x + plane * HW, y + plane * PQ);
      }
    });
    return;
  }
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
  if (is_plain_2x2(p)) {
    with_widest_lanes<T>(p.Q, [&](auto lanes) {
#pragma omp parallel for schedule(static)
      for (int64_t plane = 0; plane < planes; ++plane) {
        avg_2x2_backward_plane<T, lanes()>(p, dy + plane * PQ, dx + plane * HW);
      }
    });
    return;
  }
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
