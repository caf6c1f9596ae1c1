// Depthwise convolution, one input and one output channel per group (groups = C = K), in all
// three directions: LeNet-5's S2/S4 subsampling (2x2, stride 2, one tied weight per channel) and
// the depthwise layers of later nets.
//
// Legend: N batch, C channels, H W input size, R S filter taps, P Q output size.
//
// Each (sample, channel) plane is its own small convolution with R S weights. The GEMM path runs
// it as C GEMMs of one row each, spending nearly all its time in im2col and packing (LeNet S2
// forward at batch 256: 2.4 ms, where average pooling over the same data takes 0.14 ms); here a
// plane is a sum of R S shifted, strided rows times a scalar, the loops along q left for the
// compiler to vectorise. For each tap the valid output columns are computed once, so padding
// costs no branches in the loops.
// Threads split the planes; backward-weight gives each thread its own dw (C R S) and sums them in
// thread order, so results are deterministic for a thread count.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// Output columns [begin, end) whose input column q * stride + offset lies in [0, W), per filter
// column s: computed once per call, not in the loops (two divisions each).
struct ColumnRange {
  int64_t begin, end;
};

std::vector<ColumnRange> valid_columns(const Conv2dParams& p) {
  std::vector<ColumnRange> ranges(p.S);
  for (int64_t s = 0; s < p.S; ++s) {
    const int64_t offset = s * p.dilation.w - p.pad.w, stride = p.stride.w;
    const int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    const int64_t end = p.W - 1 - offset < 0 ? 0 : (p.W - 1 - offset) / stride + 1;
    ranges[s] = {begin, std::min(end, p.Q)};
  }
  return ranges;
}

// The input row of output row `row` and filter row r, or -1 where it falls in the padding.
int64_t input_row(const Conv2dParams& p, int64_t row, int64_t r) {
  const int64_t h = row * p.stride.h - p.pad.h + r * p.dilation.h;
  return h >= 0 && h < p.H ? h : -1;
}

// Calls body(row, r, h) for every output row of a plane and every filter row r whose input row
// h lies inside the image, in order.
template <typename Body>
void for_each_row_pair(const Conv2dParams& p, Body body) {
  for (int64_t row = 0; row < p.P; ++row) {
    for (int64_t r = 0; r < p.R; ++r) {
      const int64_t h = input_row(p, row, r);
      if (h >= 0) body(row, r, h);
    }
  }
}

// Calls body(std::integral_constant<int, S>) for the filter widths S = 1, 2, 3, 5 when there is
// no padding along w (every tap of every output column is then inside the row), so the loops
// over q hold all S taps of a filter row, unrolled: LeNet-5's S2 forward, 2x2 stride 2, ran
// 1.8-2.2x slower with one pass over q per tap. Otherwise body(std::integral_constant<int, 0>),
// which loops over the taps, each over its own range of valid columns.
template <typename Body>
void with_filter_width(const Conv2dParams& p, Body body) {
  if (p.pad.w == 0) {
    switch (p.S) {
      case 1:
        return body(std::integral_constant<int, 1>());
      case 2:
        return body(std::integral_constant<int, 2>());
      case 3:
        return body(std::integral_constant<int, 3>());
      case 5:
        return body(std::integral_constant<int, 5>());
      default:
        break;
    }
  }
  body(std::integral_constant<int, 0>());
}

}  // namespace

bool conv2d_depthwise_possible(const Conv2dParams& p) {
  return p.groups == p.C && p.K == p.C && p.groups > 1;
}

template <typename T>
void conv2d_forward_depthwise(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const std::vector<ColumnRange> columns = valid_columns(p);
  const int64_t planes = p.N * p.C, RS = p.R * p.S, sw = p.stride.w, dil = p.dilation.w;
  with_filter_width(p, [&](auto width) {
    constexpr int kS = decltype(width)::value;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const int64_t c = plane % p.C;
      const T* x_plane = x + plane * p.H * p.W;
      T* y_plane = y + plane * p.P * p.Q;
      const T bias = b != nullptr ? b[c] : T(0);
      for (int64_t i = 0; i < p.P * p.Q; ++i) y_plane[i] = bias;
      for_each_row_pair(p, [&](int64_t row, int64_t r, int64_t h) {
        T* y_row = y_plane + row * p.Q;
        const T* x_row = x_plane + h * p.W;
        const T* w_r = w + c * RS + r * p.S;
        if constexpr (kS > 0) {
          T taps[kS];
          for (int s = 0; s < kS; ++s) taps[s] = w_r[s];
          for (int64_t q = 0; q < p.Q; ++q) {
            T sum = y_row[q];
            for (int s = 0; s < kS; ++s) sum += taps[s] * x_row[q * sw + s * dil];
            y_row[q] = sum;
          }
          return;
        }
        for (int64_t s = 0; s < p.S; ++s) {
          const ColumnRange cols = columns[s];
          const int64_t offset = s * dil - p.pad.w;
          for (int64_t q = cols.begin; q < cols.end; ++q) {
            y_row[q] += w_r[s] * x_row[q * sw + offset];
          }
        }
      });
      if (p.relu) {
        for (int64_t i = 0; i < p.P * p.Q; ++i) y_plane[i] = relu_if(true, y_plane[i]);
      }
    }
  });
}

template <typename T>
void conv2d_backward_input_depthwise(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const std::vector<ColumnRange> columns = valid_columns(p);
  const int64_t planes = p.N * p.C, RS = p.R * p.S, sw = p.stride.w, dil = p.dilation.w;
  with_filter_width(p, [&](auto width) {
    constexpr int kS = decltype(width)::value;
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const int64_t c = plane % p.C;
      T* dx_plane = dx + plane * p.H * p.W;
      for (int64_t i = 0; i < p.H * p.W; ++i) dx_plane[i] = T(0);
      for_each_row_pair(p, [&](int64_t row, int64_t r, int64_t h) {
        const T* dy_row = dy + (plane * p.P + row) * p.Q;
        T* dx_row = dx_plane + h * p.W;
        const T* w_r = w + c * RS + r * p.S;
        if constexpr (kS > 0) {
          T taps[kS];
          for (int s = 0; s < kS; ++s) taps[s] = w_r[s];
          for (int64_t q = 0; q < p.Q; ++q) {
            for (int s = 0; s < kS; ++s) dx_row[q * sw + s * dil] += taps[s] * dy_row[q];
          }
          return;
        }
        for (int64_t s = 0; s < p.S; ++s) {
          const ColumnRange cols = columns[s];
          const int64_t offset = s * dil - p.pad.w;
          for (int64_t q = cols.begin; q < cols.end; ++q) {
            dx_row[q * sw + offset] += w_r[s] * dy_row[q];
          }
        }
      });
    }
  });
}

template <typename T>
void conv2d_backward_weight_depthwise(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  const std::vector<ColumnRange> columns = valid_columns(p);
  const int64_t planes = p.N * p.C, RS = p.R * p.S, sw = p.stride.w, dil = p.dilation.w;
  const int threads = max_threads();
  // Per thread: its dw (C R S), then R S rows of Q partial products, summed over a plane's
  // output rows element by element (vectorisable) before they are added across. The rows keep
  // the threads' dw apart: side by side (sum_slices' layout), a few dozen weights each, they
  // would share cache lines, and backward-weight ran up to 2x slower.
  const int64_t slot_size = p.C * RS + RS * p.Q;
  Scratch<T> scratch(threads * slot_size);
  for (int64_t i = 0; i < threads * slot_size; ++i) scratch.get()[i] = T(0);
  with_filter_width(p, [&](auto width) {
    constexpr int kS = decltype(width)::value;
#pragma omp parallel num_threads(threads)
    {
      T* dw_slot = scratch.get() + thread_id() * slot_size;
      T* rows = dw_slot + p.C * RS;
#pragma omp for schedule(static)
      for (int64_t plane = 0; plane < planes; ++plane) {
        const int64_t c = plane % p.C;
        const T* x_plane = x + plane * p.H * p.W;
        for (int64_t i = 0; i < RS * p.Q; ++i) rows[i] = T(0);
        for_each_row_pair(p, [&](int64_t row, int64_t r, int64_t h) {
          const T* dy_row = dy + (plane * p.P + row) * p.Q;
          const T* x_row = x_plane + h * p.W;
          T* acc_r = rows + r * p.S * p.Q;  // the rows of taps (r, 0), (r, 1), ...
          if constexpr (kS > 0) {
            for (int64_t q = 0; q < p.Q; ++q) {
              for (int s = 0; s < kS; ++s)
                acc_r[s * p.Q + q] += dy_row[q] * x_row[q * sw + s * dil];
            }
            return;
          }
          for (int64_t s = 0; s < p.S; ++s) {
            const ColumnRange cols = columns[s];
            const int64_t offset = s * dil - p.pad.w;
            for (int64_t q = cols.begin; q < cols.end; ++q) {
              acc_r[s * p.Q + q] += dy_row[q] * x_row[q * sw + offset];
            }
          }
        });
        for (int64_t tap = 0; tap < RS; ++tap) {
          T sum = 0;
          for (int64_t q = 0; q < p.Q; ++q) sum += rows[tap * p.Q + q];
          dw_slot[c * RS + tap] += sum;
        }
      }
    }
  });
  // The slots are strided by slot_size; gather their dw parts in thread order.
  for (int64_t i = 0; i < p.C * RS; ++i) {
    T sum = 0;
    for (int t = 0; t < threads; ++t) sum += scratch.get()[t * slot_size + i];
    dw[i] = sum;
  }
}

#define CK_INSTANTIATE(T)                                                                        \
  template void conv2d_forward_depthwise<T>(const Conv2dParams&, const T*, const T*, const T*,   \
                                            T*);                                                 \
  template void conv2d_backward_input_depthwise<T>(const Conv2dParams&, const T*, const T*, T*); \
  template void conv2d_backward_weight_depthwise<T>(const Conv2dParams&, const T*, const T*, T*);
CK_INSTANTIATE(float)
CK_INSTANTIATE(double)
#undef CK_INSTANTIATE

}  // namespace CK_ISA
}  // namespace ck
