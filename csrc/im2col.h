// im2col and its adjoint col2im, shared by the convolution kernels.
//
// For one sample and group, col (Cg * R * S, P * Q) holds in row (c, r, s) and column (oh, ow)
// the input x[c, oh * sh - ph + r * dh, ow * sw - pw + s * dw], zero where that falls on the
// padding. The functions take col's leading dimension, so several samples can sit side by side.
#pragma once

#include <algorithm>

#include "isa.h"
#include "params.h"

namespace ck {
namespace CK_ISA {

// Output positions o in [lo, hi) whose input index o * stride + offset lies in [0, in_size).
inline void valid_range(int64_t offset, int64_t stride, int64_t in_size, int64_t out_size,
                        int64_t* lo, int64_t* hi) {
  // smallest o with o * stride + offset >= 0
  *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  // largest o with o * stride + offset <= in_size - 1, plus one
  const int64_t last = in_size - 1 - offset;
  *hi = last < 0 ? 0 : std::min(out_size, last / stride + 1);
  if (*lo > *hi) *lo = *hi;
}

// The H x W plane src copied into the (H + 2 pad.h) x (W + 2 pad.w) plane dst, zeros around it:
// for the kernels that read a padded input in place of im2col.
template <typename T>
void pad_plane(const Conv2dParams& p, const T* src, T* dst) {
  const int64_t Hp = p.H + 2 * p.pad.h, Wp = p.W + 2 * p.pad.w;
  for (int64_t h = 0; h < Hp; ++h) {
    const int64_t ih = h - p.pad.h;
    T* row = dst + h * Wp;
    if (ih < 0 || ih >= p.H) {
      for (int64_t w = 0; w < Wp; ++w) row[w] = T(0);
      continue;
    }
    for (int64_t w = 0; w < p.pad.w; ++w) row[w] = T(0);
    for (int64_t w = 0; w < p.W; ++w) row[p.pad.w + w] = src[ih * p.W + w];
    for (int64_t w = p.pad.w + p.W; w < Wp; ++w) row[w] = T(0);
  }
}

// Calls row(col_row, oh, c, ih, w_off, ow_lo, ow_hi) for every row of col and output row oh: c
// is the input channel, ih the input row read (may lie in the padding), w_off the input column
// of ow = 0, and [ow_lo, ow_hi) the output columns whose input column lies inside the image.
template <typename Fn>
void for_each_col_row(const Conv2dParams& p, Fn row) {
  for (int64_t c = 0; c < p.C / p.groups; ++c) {
    for (int64_t r = 0; r < p.R; ++r) {
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t col_row = (c * p.R + r) * p.S + s;
        const int64_t w_off = s * p.dilation.w - p.pad.w;
        int64_t ow_lo, ow_hi;
        valid_range(w_off, p.stride.w, p.W, p.Q, &ow_lo, &ow_hi);
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const int64_t ih = oh * p.stride.h - p.pad.h + r * p.dilation.h;
          row(col_row, oh, c, ih, w_off, ow_lo, ow_hi);
        }
      }
    }
  }
}

// im2col for unit stride and dilation along w: each channel is first copied into a zero-padded
// plane (a few KiB, in L1), so every (row, oh) piece of col is one unclipped run of Q values.
// On small images (CIFAR c3: 8 x 8) the clipping logic of the general path costs more than the
// copying itself.
template <typename T>
void im2col_unit_w(const Conv2dParams& p, const T* x_g, T* col, int64_t ld) {
  const int64_t Hp = p.H + 2 * p.pad.h, Wp = p.W + 2 * p.pad.w;
  Scratch<T> plane(Hp * Wp);
  T* padded = plane.get();
  for (int64_t i = 0; i < Hp * Wp; ++i) padded[i] = T(0);
  for (int64_t c = 0; c < p.C / p.groups; ++c) {
    for (int64_t h = 0; h < p.H; ++h) {
      const T* src = x_g + (c * p.H + h) * p.W;
      T* dst = padded + (h + p.pad.h) * Wp + p.pad.w;
      for (int64_t w = 0; w < p.W; ++w) dst[w] = src[w];
    }
    for (int64_t r = 0; r < p.R; ++r) {
      for (int64_t s = 0; s < p.S; ++s) {
        T* dst = col + ((c * p.R + r) * p.S + s) * ld;
        for (int64_t oh = 0; oh < p.P; ++oh) {
          const T* src = padded + (oh * p.stride.h + r * p.dilation.h) * Wp + s;
          T* out = dst + oh * p.Q;
          // Runs of 8 (fixed-size copies compile to vector moves; a loop of Q would become a
          // call to memmove, which costs more than the copy at these lengths).
          int64_t ow = 0;
          for (; ow + 8 <= p.Q; ow += 8) {
            for (int i = 0; i < 8; ++i) out[ow + i] = src[ow + i];
          }
          for (; ow < p.Q; ++ow) out[ow] = src[ow];
        }
      }
    }
  }
}

// One sample's columns of col (CRS rows, leading dimension ld) from its group of input channels
// x_g (Cg, H, W); padding reads as zero.
template <typename T>
void im2col(const Conv2dParams& p, const T* x_g, T* col, int64_t ld) {
  if (p.stride.w == 1 && p.dilation.w == 1) return im2col_unit_w(p, x_g, col, ld);
  const int64_t sw = p.stride.w;
  auto copy_row = [&](int64_t col_row, int64_t oh, int64_t c, int64_t ih, int64_t w_off, int64_t lo,
                      int64_t hi) {
    T* dst = col + col_row * ld + oh * p.Q;
    const bool inside = ih >= 0 && ih < p.H;
    if (!inside) lo = hi = p.Q;  // the whole row is padding
    const T* src = x_g + (inside ? (c * p.H + ih) * p.W : 0);
    for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * sw + w_off];
    for (int64_t ow = hi; ow < p.Q; ++ow) dst[ow] = T(0);
  };
  for_each_col_row(p, copy_row);
}

// The transpose of one sample's im2col, written row by row: colT (P * Q, Cg * R * S), leading
// dimension ld, from its group of input channels x_g (Cg, H, W); padding reads as zero.
template <typename T>
void im2col_transposed(const Conv2dParams& p, const T* x_g, T* colT, int64_t ld) {
  const int64_t Cg = p.C / p.groups;
  for (int64_t oh = 0; oh < p.P; ++oh) {
    for (int64_t ow = 0; ow < p.Q; ++ow) {
      T* dst = colT + (oh * p.Q + ow) * ld;
      for (int64_t c = 0; c < Cg; ++c) {
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = oh * p.stride.h - p.pad.h + r * p.dilation.h;
          const bool row_inside = ih >= 0 && ih < p.H;
          const T* row = x_g + (c * p.H + (row_inside ? ih : 0)) * p.W;
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t iw = ow * p.stride.w - p.pad.w + s * p.dilation.w;
            *dst++ = row_inside && iw >= 0 && iw < p.W ? row[iw] : T(0);
          }
        }
      }
    }
  }
}

// dx_g (Cg, H, W) += col2im of one sample's columns of dcol; entries on padding are dropped.
template <typename T>
void col2im_add(const Conv2dParams& p, const T* dcol, int64_t ld, T* dx_g) {
  const int64_t sw = p.stride.w;
  auto add_row = [&](int64_t col_row, int64_t oh, int64_t c, int64_t ih, int64_t w_off, int64_t lo,
                     int64_t hi) {
    if (ih < 0 || ih >= p.H) return;
    const T* src = dcol + col_row * ld + oh * p.Q;
    T* dst = dx_g + (c * p.H + ih) * p.W;
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow * sw + w_off] += src[ow];
  };
  for_each_col_row(p, add_row);
}

// The rows of nb samples side by side: panel (rows, nb * PQ) from t (nb samples, sample_stride
// apart, of `rows` rows of PQ). One sample needs no copy: t itself is returned.
template <typename T>
const T* side_by_side(const T* t, int64_t sample_stride, int64_t rows, int64_t PQ, int64_t nb,
                      T* panel) {
  if (nb == 1) return t;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t s = 0; s < nb; ++s) {
      const T* src = t + s * sample_stride + r * PQ;
      T* dst = panel + r * nb * PQ + s * PQ;
      for (int64_t i = 0; i < PQ; ++i) dst[i] = src[i];
    }
  }
  return panel;
}

}  // namespace CK_ISA
}  // namespace ck
