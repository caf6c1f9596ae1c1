// 2-D convolution (cross-correlation, like PyTorch) forward and backward, built on gemm.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter taps, P Q output size,
// G groups, Cg = C / G and Kg = K / G channels per group, PQ = P * Q, CRS = Cg * R * S.
//
// Per sample and group the convolution is one GEMM over an im2col panel, col (CRS, PQ):
//   forward          y_g (Kg, PQ)  = w_g (Kg, CRS) * col (CRS, PQ)         (+ bias)
//   backward input   dcol (CRS, PQ) = w_g^T (CRS, Kg) * dy_g (Kg, PQ), then col2im adds into dx
//   backward weight  dw_g (Kg, CRS) += dy_g (Kg, PQ) * col^T (PQ, CRS), summed over samples
// Threads split the batch; backward-weight gives each thread its own dw and sums them at the end
// in thread order, so results are deterministic for a given thread count.
#include <algorithm>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

struct ConvDims {
  int64_t Cg, Kg, RS, CRS, PQ, HW;
  bool pointwise;  // 1x1, stride 1, no padding: col is the input itself
};

ConvDims conv_dims(const Conv2dParams& p) {
  ConvDims d;
  d.Cg = p.C / p.groups;
  d.Kg = p.K / p.groups;
  d.RS = p.R * p.S;
  d.CRS = d.Cg * d.RS;
  d.PQ = p.P * p.Q;
  d.HW = p.H * p.W;
  d.pointwise =
      p.R == 1 && p.S == 1 && p.stride.h == 1 && p.stride.w == 1 && p.pad.h == 0 && p.pad.w == 0;
  return d;
}

// Output positions o in [lo, hi) whose input index o * stride + offset lies in [0, in_size).
void valid_range(int64_t offset, int64_t stride, int64_t in_size, int64_t out_size, int64_t* lo,
                 int64_t* hi) {
  // smallest o with o * stride + offset >= 0
  *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  // largest o with o * stride + offset <= in_size - 1, plus one
  const int64_t last = in_size - 1 - offset;
  *hi = last < 0 ? 0 : std::min(out_size, last / stride + 1);
  if (*lo > *hi) *lo = *hi;
}

// Calls row(at, c, ih, w_off, ow_lo, ow_hi) for every row of col and output row oh: `at` is the
// offset of that (col row, oh) segment of Q entries in col, c the input channel, ih the input row
// read (may lie in the padding), w_off the input column of ow = 0, and [ow_lo, ow_hi) the
// output columns whose input column lies inside the image.
template <typename Fn>
void for_each_col_row(const Conv2dParams& p, const ConvDims& d, Fn row) {
  for (int64_t c = 0; c < d.Cg; ++c) {
    for (int64_t r = 0; r < p.R; ++r) {
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t col_row = (c * p.R + r) * p.S + s;
        const int64_t w_off = s * p.dilation.w - p.pad.w;
        int64_t ow_lo, ow_hi;
        valid_range(w_off, p.stride.w, p.W, p.Q, &ow_lo, &ow_hi);
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const int64_t ih = oh * p.stride.h - p.pad.h + r * p.dilation.h;
          row(col_row * d.PQ + oh * p.Q, c, ih, w_off, ow_lo, ow_hi);
        }
      }
    }
  }
}

// col (CRS, PQ) from one sample's group of input channels x_g (Cg, H, W); padding reads as zero.
template <typename T>
void im2col(const Conv2dParams& p, const ConvDims& d, const T* x_g, T* col) {
  const int64_t sw = p.stride.w;
  auto copy_row = [&](int64_t at, int64_t c, int64_t ih, int64_t w_off, int64_t lo, int64_t hi) {
    T* dst = col + at;
    const bool inside = ih >= 0 && ih < p.H;
    if (!inside) lo = hi = p.Q;  // the whole row is padding
    const T* src = x_g + (inside ? (c * p.H + ih) * p.W : 0);
    for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw + w_off];
    for (int64_t ow = hi; ow < p.Q; ++ow) dst[ow] = T(0);
  };
  for_each_col_row(p, d, copy_row);
}

// dx_g (Cg, H, W) += col2im(dcol); entries of dcol that fall on padding are dropped.
template <typename T>
void col2im_add(const Conv2dParams& p, const ConvDims& d, const T* dcol, T* dx_g) {
  const int64_t sw = p.stride.w;
  auto add_row = [&](int64_t at, int64_t c, int64_t ih, int64_t w_off, int64_t lo, int64_t hi) {
    if (ih < 0 || ih >= p.H) return;
    const T* src = dcol + at;
    T* dst = dx_g + (c * p.H + ih) * p.W;
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw + w_off] += src[ow];
  };
  for_each_col_row(p, d, add_row);
}

// Per-thread scratch: an im2col panel of col_size elements, then the GEMM's workspace.
template <typename T>
class ThreadScratch {
 public:
  ThreadScratch(int threads, int64_t col_size, int64_t gemm_size)
      : col_size_(col_size), stride_(col_size + gemm_size), data_(threads * stride_) {}
  T* col(int thread) const { return data_.get() + thread * stride_; }
  T* gemm(int thread) const { return col(thread) + col_size_; }

 private:
  int64_t col_size_, stride_;
  Scratch<T> data_;
};

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const ConvDims d = conv_dims(p);
  const int threads = max_threads();
  const ThreadScratch<T> scratch(threads, d.pointwise ? 0 : d.CRS * d.PQ,
                                 gemm_workspace_size<T>(d.Kg, d.PQ, d.CRS, 1));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    T* col = scratch.col(thread_id());
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* x_g = x + (n * p.C + g * d.Cg) * d.HW;
      T* y_g = y + (n * p.K + g * d.Kg) * d.PQ;
      if (!d.pointwise) im2col(p, d, x_g, col);
      gemm<T>(Trans::No, Trans::No, d.Kg, d.PQ, d.CRS, T(1), w + g * d.Kg * d.CRS, d.CRS,
              d.pointwise ? x_g : col, d.PQ, T(0), y_g, d.PQ, scratch.gemm(thread_id()), 1);
      if (b != nullptr) {
        for (int64_t k = 0; k < d.Kg; ++k) {
          const T bias = b[g * d.Kg + k];
          T* y_k = y_g + k * d.PQ;
          for (int64_t i = 0; i < d.PQ; ++i) y_k[i] += bias;
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const ConvDims d = conv_dims(p);
  const int threads = max_threads();
  const ThreadScratch<T> scratch(threads, d.pointwise ? 0 : d.CRS * d.PQ,
                                 gemm_workspace_size<T>(d.CRS, d.PQ, d.Kg, 1));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    T* dcol = scratch.col(thread_id());
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* dy_g = dy + (n * p.K + g * d.Kg) * d.PQ;
      T* dx_g = dx + (n * p.C + g * d.Cg) * d.HW;
      // With a pointwise kernel dcol is dx_g itself.
      gemm<T>(Trans::Yes, Trans::No, d.CRS, d.PQ, d.Kg, T(1), w + g * d.Kg * d.CRS, d.CRS, dy_g,
              d.PQ, T(0), d.pointwise ? dx_g : dcol, d.PQ, scratch.gemm(thread_id()), 1);
      if (d.pointwise) continue;
      for (int64_t i = 0; i < d.Cg * d.HW; ++i) dx_g[i] = T(0);
      col2im_add(p, d, dcol, dx_g);
    }
  }
}

template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  const ConvDims d = conv_dims(p);
  const int threads = static_cast<int>(std::min<int64_t>(max_threads(), p.N));
  const int64_t dw_size = p.K * d.CRS;
  const ThreadScratch<T> scratch(threads, d.pointwise ? 0 : d.CRS * d.PQ,
                                 gemm_workspace_size<T>(d.Kg, d.CRS, d.PQ, 1));
  Scratch<T> partial(threads * dw_size);  // one dw per thread
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    T* col = scratch.col(t);
    T* dw_t = partial.get() + t * dw_size;
    bool first = true;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < p.N; ++n) {
      for (int64_t g = 0; g < p.groups; ++g) {
        const T* x_g = x + (n * p.C + g * d.Cg) * d.HW;
        if (!d.pointwise) im2col(p, d, x_g, col);
        gemm<T>(Trans::No, Trans::Yes, d.Kg, d.CRS, d.PQ, T(1), dy + (n * p.K + g * d.Kg) * d.PQ,
                d.PQ, d.pointwise ? x_g : col, d.PQ, first ? T(0) : T(1), dw_t + g * d.Kg * d.CRS,
                d.CRS, scratch.gemm(t), 1);
      }
      first = false;
    }
    if (first) {  // this thread got no sample
      for (int64_t i = 0; i < dw_size; ++i) dw_t[i] = T(0);
    }
  }
  for (int64_t i = 0; i < dw_size; ++i) dw[i] = partial.get()[i];
  for (int t = 1; t < threads; ++t) {
    const T* dw_t = partial.get() + t * dw_size;
    for (int64_t i = 0; i < dw_size; ++i) dw[i] += dw_t[i];
  }
}

template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < p.K; ++k) {
    T sum = 0;
    for (int64_t n = 0; n < p.N; ++n) {
      const T* dy_k = dy + (n * p.K + k) * PQ;
      for (int64_t i = 0; i < PQ; ++i) sum += dy_k[i];
    }
    db[k] = sum;
  }
}

#define CK_INSTANTIATE(T)                                                                 \
  template void conv2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input<T>(const Conv2dParams&, const T*, const T*, T*);    \
  template void conv2d_backward_weight<T>(const Conv2dParams&, const T*, const T*, T*);   \
  template void conv2d_backward_bias<T>(const Conv2dParams&, const T*, T*);
CK_INSTANTIATE(float)
CK_INSTANTIATE(double)
#undef CK_INSTANTIATE

}  // namespace CK_ISA
}  // namespace ck
