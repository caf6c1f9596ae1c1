// Forward with the filters in the vector lanes: no im2col, any stride along h, strides 1, 2 and 4
// along w.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter taps, P Q output size,
// G groups, Cg = C / G and Kg = K / G channels per group, L vector lanes.
//
//   y[n, k, p, q] = sum over c, r, s of  w[k, c, r, s] * xp[n, c, p sh + r dh, q sw + s dw]
//
// (xp: x zero-padded). With the filters copied to w_t[g][c][r][s][k] (k padded to whole vectors),
// a register block of 6 (or 5) output columns times KV vectors of filters is one step per
// tap (c, r, s): KV vector loads of w_t, 6 broadcasts of the input, 6 KV FMAs.
// Nothing is wasted on padding columns or partial filter tiles (the direct kernel with the
// positions in the lanes, conv2d_direct.cpp, computes whole padded rows), and strides cost
// nothing extra. A row of outputs, all filters, is computed into a small channels-last buffer
// and transposed into y (plus the bias) while it is in L1. Threads split the rows.
#include <algorithm>

#include "im2col.h"
#include "kernels.h"
#include "transpose.h"

namespace ck {
namespace CK_ISA {
namespace {

// Output columns per register block: 6 with 2 (AVX2, SSE2) or 4 (AVX-512) filter vectors, 12 or
// 24 accumulators, the most each register file holds beside the operands; or 5 where rows come
// in fives (LeNet C3's 10 columns, AlexNet conv1's 55) and 6 would compute columns twice.
constexpr int kPositions = 6, kFewerPositions = 5;
#if defined(__AVX512F__)
constexpr int kMaxVectors = 4;
#else
constexpr int kMaxVectors = 2;
#endif

struct Layout {
  int64_t Cg, Kg, Kpad;
  int64_t Hp, Wp, plane;  // padded input
  int64_t CRS;
};

// row_t[q][k0 .. k0 + KV L) for q in [q0, q0 + PB): the taps' sum for one output row.
// x_row: the group's first channel at input row p sh (padded), column q0 sw.
template <typename T, int PB, int KV, int SW>
void position_block(const Conv2dParams& p, const Layout& d, const T* x_row, const T* w_t,
                    int64_t k0, T* row_t) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  // Zeroed one by one: `= {}` became a rep stos on the stack, 10 % of CIFAR c1's time.
  V acc[PB][KV];
#pragma GCC unroll 8
  for (int j = 0; j < PB; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) acc[j][v] = V{};
  }
  const V negative_zero = V{} * T(-1);
  const int64_t sw = SW > 0 ? SW : p.stride.w;
  const T* w = w_t + k0;
  for (int64_t c = 0; c < d.Cg; ++c) {
    for (int64_t r = 0; r < p.R; ++r) {
      const T* x = x_row + c * d.plane + r * p.dilation.h * d.Wp;
      for (int64_t s = 0; s < p.S; ++s, w += d.Kpad) {
        const T* xs = x + s * p.dilation.w;
        V b[KV];
#pragma GCC unroll 4
        for (int v = 0; v < KV; ++v) b[v] = *reinterpret_cast<const V*>(w + v * L);
#pragma GCC unroll 8
        for (int j = 0; j < PB; ++j) {
          const V a = negative_zero + xs[j * sw];
#pragma GCC unroll 4
          for (int v = 0; v < KV; ++v) acc[j][v] += a * b[v];
        }
      }
    }
  }
  for (int j = 0; j < PB; ++j) {
    for (int v = 0; v < KV; ++v) *reinterpret_cast<V*>(row_t + j * d.Kpad + k0 + v * L) = acc[j][v];
  }
}

// Filter vectors per pass: kMaxVectors, then 2, then 1 for what is left.
int pass_width(int64_t vectors_left) {
  if (vectors_left >= 4 && kMaxVectors >= 4) return 4;
  return vectors_left >= 2 ? 2 : 1;
}

template <typename T>
using BlockKernel = void (*)(const Conv2dParams&, const Layout&, const T*, const T*, int64_t, T*);

template <typename T, int PB, int SW>
BlockKernel<T> block_kernel(int vectors) {
  if constexpr (kMaxVectors >= 4) {
    if (vectors == 4) return position_block<T, PB, 4, SW>;
  }
  if (vectors == 2) return position_block<T, PB, 2, SW>;
  return position_block<T, PB, 1, SW>;
}

template <typename T, int PB>
BlockKernel<T> block_kernel(int64_t stride_w, int vectors) {
  switch (stride_w) {
    case 1:
      return block_kernel<T, PB, 1>(vectors);
    case 2:
      return block_kernel<T, PB, 2>(vectors);
    case 4:
      return block_kernel<T, PB, 4>(vectors);
    default:
      return block_kernel<T, PB, 0>(vectors);
  }
}

// The block width that computes fewest columns for rows of Q (the last block of a row overlaps
// the one before it), 6 on a tie.
int64_t block_width(int64_t Q) {
  const auto computed = [Q](int64_t width) { return ceil_div(Q, width) * width; };
  return computed(kFewerPositions) < computed(kPositions) ? kFewerPositions : kPositions;
}

}  // namespace

bool conv2d_forward_nhwc_possible(const Conv2dParams& p) {
  return p.Q >= kFewerPositions;
}

template <typename T>
double conv2d_forward_nhwc_yield(const Conv2dParams& p) {
  const int64_t width = block_width(p.Q), Kg = p.K / p.groups;
  return static_cast<double>(p.Q) / (ceil_div(p.Q, width) * width) * Kg /
         round_up(Kg, Simd<T>::kLanes);
}

template <typename T>
void conv2d_forward_nhwc(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int L = Simd<T>::kLanes;
  const bool relu = p.relu;  // a local: GCC cannot tell that writes to y leave p alone
  Layout d;
  d.Cg = p.C / p.groups, d.Kg = p.K / p.groups, d.Kpad = round_up(d.Kg, L);
  d.Hp = p.H + 2 * p.pad.h, d.Wp = p.W + 2 * p.pad.w, d.plane = d.Hp * d.Wp;
  d.CRS = d.Cg * p.R * p.S;
  const int64_t PQ = p.P * p.Q;

  // w_t[g][c][r][s][k], zero for k >= Kg.
  Scratch<T> w_t(p.groups * d.CRS * d.Kpad);
  for (int64_t g = 0; g < p.groups; ++g) {
    T* dst = w_t.get() + g * d.CRS * d.Kpad;
    for (int64_t i = 0; i < d.CRS; ++i) {
      for (int64_t k = 0; k < d.Kpad; ++k) {
        dst[i * d.Kpad + k] = k < d.Kg ? w[(g * d.Kg + k) * d.CRS + i] : T(0);
      }
    }
  }
  const bool padded = p.pad.h != 0 || p.pad.w != 0;
  Scratch<T> xp(padded ? p.N * p.C * d.plane : 0);
  if (padded) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < p.N * p.C; ++nc)
      pad_plane(p, x + nc * p.H * p.W, xp.get() + nc * d.plane);
  }
  const T* input = padded ? xp.get() : x;

  const int64_t vectors = d.Kpad / L, width = block_width(p.Q);
  const int threads = max_threads();
  Scratch<T> rows(threads * p.Q * d.Kpad);
  const int64_t items = p.N * p.groups * p.P;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t n = item / (p.groups * p.P), g = item / p.P % p.groups, oh = item % p.P;
    T* row_t = rows.get() + thread_id() * p.Q * d.Kpad;
    const T* x_g = input + (n * p.C + g * d.Cg) * d.plane + oh * p.stride.h * d.Wp;
    const T* w_g = w_t.get() + g * d.CRS * d.Kpad;
    for (int64_t v0 = 0; v0 < vectors;) {
      const int kv = pass_width(vectors - v0);
      const int64_t k0 = v0 * L;
      const BlockKernel<T> kernel = width == kPositions
                                        ? block_kernel<T, kPositions>(p.stride.w, kv)
                                        : block_kernel<T, kFewerPositions>(p.stride.w, kv);
      // The last block overlaps the one before it rather than running past Q: the same sums
      // in the same order, written twice.
      for (int64_t q0 = 0; q0 < p.Q; q0 += width) {
        const int64_t q = std::min(q0, p.Q - width);
        kernel(p, d, x_g + q * p.stride.w, w_g, k0, row_t + q * d.Kpad);
      }
      v0 += kv;
    }
    T* y_row = y + (n * p.K + g * d.Kg) * PQ + oh * p.Q;
    transpose(row_t, d.Kpad, p.Q, d.Kg, y_row, PQ);
    if (b == nullptr && !relu) continue;
    for (int64_t k = 0; k < d.Kg; ++k) {
      T* y_k = y_row + k * PQ;
      if (b == nullptr) {
        for (int64_t q = 0; q < p.Q; ++q) y_k[q] = relu_if(true, y_k[q]);
        continue;
      }
      const T bias = b[g * d.Kg + k];
      for (int64_t q = 0; q < p.Q; ++q) y_k[q] = relu_if(relu, y_k[q] + bias);
    }
  }
}

template double conv2d_forward_nhwc_yield<float>(const Conv2dParams&);
template double conv2d_forward_nhwc_yield<double>(const Conv2dParams&);
template void conv2d_forward_nhwc<float>(const Conv2dParams&, const float*, const float*,
                                         const float*, float*);
template void conv2d_forward_nhwc<double>(const Conv2dParams&, const double*, const double*,
                                          const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
