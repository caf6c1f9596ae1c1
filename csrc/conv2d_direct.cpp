// Convolution kernels that need no GEMM packing: backward-weight for small filter banks as dot
// products of rows, and forward with stride 1 as shifted products over the padded input.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter taps, P Q output size,
// G groups, Cg = C / G and Kg = K / G channels per group, PQ = P * Q, CRS = Cg * R * S.
//
// LeNet's and CIFAR's first layers have filter banks of a few hundred to a few thousand weights
// (6 x 1 x 5 x 5 in LeNet C1). Their backward-weight, dw_g (Kg, CRS) = dy' (Kg, PQ) col^T, is a
// GEMM with a tiny output and a long reduction, for which the packed GEMM spends its time
// packing. Both dy' and col (im2col) hold the reduction along their rows, so each weight
// gradient is a dot product of two contiguous rows: dot_products() keeps a 4 x 4 block of them
// in vector registers, lanes along the reduction, and adds each across its lanes once at the
// end. Threads split the batch, each into its own dw, summed in thread order at the end.
#include <algorithm>
#include <cstring>

#include "im2col.h"
#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// The sum of a vector's lanes as a tree of vector adds (halves added together down to two
// lanes): the scalar loop over 16 lanes was a chain of 16 dependent adds per accumulator, and
// took longer than the dot products of CIFAR c2's rows themselves.
template <typename T, int Bytes>
struct LaneSum {
  typedef T Vec __attribute__((vector_size(Bytes)));
  typedef T Half __attribute__((vector_size(Bytes / 2)));
  static T of(Vec v) {
    Half lo, hi;
    std::memcpy(&lo, &v, Bytes / 2);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + Bytes / 2, Bytes / 2);
    return LaneSum<T, Bytes / 2>::of(lo + hi);
  }
};
template <typename T>
struct LaneSum<T, 2 * sizeof(T)> {
  typedef T Vec __attribute__((vector_size(2 * sizeof(T))));
  static T of(Vec v) { return v[0] + v[1]; }
};

// C (MB, NB) += A (MB, K) B (NB, K)^T, every row contiguous.
template <typename T, int MB, int NB>
void dot_block(int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
  using V = typename Simd<T>::Vec;
  using U = typename Simd<T>::UnalignedVec;
  constexpr int L = Simd<T>::kLanes;
  V acc[MB][NB] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    V a[MB], b[NB];
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) a[i] = *reinterpret_cast<const U*>(A + i * lda + k);
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) b[j] = *reinterpret_cast<const U*>(B + j * ldb + k);
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) acc[i][j] += a[i] * b[j];
    }
  }
  for (int i = 0; i < MB; ++i) {
    for (int j = 0; j < NB; ++j) {
      T sum = LaneSum<T, kVectorBytes>::of(acc[i][j]);
      for (int64_t kk = k; kk < K; ++kk) sum += A[i * lda + kk] * B[j * ldb + kk];
      C[i * ldc + j] += sum;
    }
  }
}

// C (M, N) += A (M, K) B (N, K)^T in 4 x 4 blocks, with 1-wide blocks at the edges.
template <typename T>
void dot_products(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                  T* C, int64_t ldc) {
  constexpr int kBlock = 4;
  int64_t i = 0;
  for (; i + kBlock <= M; i += kBlock) {
    int64_t j = 0;
    for (; j + kBlock <= N; j += kBlock) {
      dot_block<T, kBlock, kBlock>(K, A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc);
    }
    for (; j < N; ++j) {
      dot_block<T, kBlock, 1>(K, A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc);
    }
  }
  for (; i < M; ++i) {
    int64_t j = 0;
    for (; j + kBlock <= N; j += kBlock) {
      dot_block<T, 1, kBlock>(K, A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc);
    }
    for (; j < N; ++j)
      dot_block<T, 1, 1>(K, A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc);
  }
}

// Reduction length a sample block aims for.
constexpr int64_t kDotLength = 512;

}  // namespace

template <typename T>
void conv2d_backward_weight_direct(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  const int64_t Cg = p.C / p.groups, Kg = p.K / p.groups, CRS = Cg * p.R * p.S;
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q, dw_size = p.K * CRS;
  const int threads = static_cast<int>(std::min<int64_t>(max_threads(), p.N));
  // Samples side by side, so that short rows (LeNet C3 has PQ = 100) still make long dot
  // products: dy' (Kg, nb PQ) and col (CRS, nb PQ).
  const int64_t nb =
      std::max<int64_t>(1, std::min((kDotLength + PQ - 1) / PQ, (p.N + threads - 1) / threads));
  const int64_t blocks = (p.N + nb - 1) / nb, ld = nb * PQ;
  Scratch<T> partial(threads * dw_size);         // one dw per thread
  Scratch<T> panels(threads * (CRS + Kg) * ld);  // col, then dy', per thread
  for (int64_t i = 0; i < threads * dw_size; ++i) partial.get()[i] = T(0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t n0 = block * nb, count = std::min(nb, p.N - n0), width = count * PQ;
    T* dw_t = partial.get() + thread_id() * dw_size;
    T* col = panels.get() + thread_id() * (CRS + Kg) * ld;
    T* dy_panel = col + CRS * ld;
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t s = 0; s < count; ++s) {
        im2col(p, x + ((n0 + s) * p.C + g * Cg) * HW, col + s * PQ, width);
      }
      const T* dy_rows =
          side_by_side(dy + (n0 * p.K + g * Kg) * PQ, p.K * PQ, Kg, PQ, count, dy_panel);
      dot_products(Kg, CRS, width, dy_rows, width, col, width, dw_t + g * Kg * CRS, CRS);
    }
  }
  sum_slices(partial.get(), threads, dw_size, dw);
}

template void conv2d_backward_weight_direct<float>(const Conv2dParams&, const float*, const float*,
                                                   float*);
template void conv2d_backward_weight_direct<double>(const Conv2dParams&, const double*,
                                                    const double*, double*);

// Forward with stride 1, without im2col. On the zero-padded input xp (Cg, Hp, Wp) flattened per
// channel, output pixel (oh, ow) at position j = oh * Wp + ow reads xp[c, j + r dh Wp + s dw] for
// tap (r, s): every tap is a fixed shift of one contiguous row, so
//   y_full[k, j] = sum_{r, s, c} w[k, c, r, s] xp[c, j + r dh Wp + s dw],   j < P * Wp
// runs as a register-blocked outer product (6 filters x kTileWidth positions, like the GEMM's
// micro-kernel) reading the input in place, and y keeps the columns ow < Q of each row. The
// other Wp - Q columns are computed and dropped: cheap when the padding is narrow.
namespace {

// Register tiles (filters x vectors of positions), all of 24 accumulators on AVX-512 (12 on
// AVX2 and SSE2); conv2d_forward_direct picks the one that wastes least on the layer's filter
// count and row length (LeNet C3: 16 filters and 140 positions fit 8 x 48 better than 6 x 64).
struct DirectTile {
  int filters, vectors;
};
#if defined(__AVX512F__)
constexpr DirectTile kTiles[] = {{6, 4}, {8, 3}};
#else
constexpr DirectTile kTiles[] = {{6, 2}, {4, 3}};
#endif

template <typename T>
double tile_yield(const Conv2dParams& t, DirectTile tile) {
  const int64_t Wp = t.W + 2 * t.pad.w, positions = t.P * Wp, Kg = t.K / t.groups;
  const int64_t width = tile.vectors * Simd<T>::kLanes;
  return static_cast<double>(t.Q) / Wp * positions / ((positions + width - 1) / width * width) *
         Kg / ((Kg + tile.filters - 1) / tile.filters * tile.filters);
}

template <typename T>
int best_tile(const Conv2dParams& p) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(sizeof(kTiles) / sizeof(kTiles[0])); ++i) {
    if (tile_yield<T>(p, kTiles[i]) > tile_yield<T>(p, kTiles[best])) best = i;
  }
  return best;
}

// acc (F, NV vectors) = sum over taps and channels, for one tile of output positions.
template <typename T, int F, int NV>
void shifted_tile(const T* xp_j, int64_t plane, int64_t channels, const int64_t* shifts,
                  int64_t taps, const T* w_panel, T* out) {
  using V = typename Simd<T>::Vec;
  using U = typename Simd<T>::UnalignedVec;
  constexpr int L = Simd<T>::kLanes;
  V acc[F][NV] = {};
  const V negative_zero = V{} * T(-1);
  for (int64_t t = 0; t < taps; ++t) {
    const T* x_t = xp_j + shifts[t];
    for (int64_t c = 0; c < channels; ++c) {
      const T* x_c = x_t + c * plane;
      V xv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) xv[v] = *reinterpret_cast<const U*>(x_c + v * L);
#pragma GCC unroll 8
      for (int k = 0; k < F; ++k) {
        const V wk = negative_zero + w_panel[k];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[k][v] += wk * xv[v];
      }
      w_panel += F;
    }
  }
  std::memcpy(out, acc, sizeof(acc));
}

// The filter rows [begin, end) that reach the input's own rows (not its zero padding) from some
// output row in [oh_first, oh_last]: the others add only zeros to a tile of those rows. Where
// the padding is wide that is much of the work (backward-input of LeNet C3 as a forward
// convolution, 10 x 10 padded by 4 on each side: 20 of 70 row pairs).
struct TapRows {
  int64_t begin, end;
};

inline TapRows tap_rows(const Conv2dParams& p, int64_t oh_first, int64_t oh_last) {
  const int64_t dh = p.dilation.h;
  // The first r with oh_last + r dh >= pad, and one past the last with oh_first + r dh < pad + H.
  const int64_t below = p.pad.h - oh_last, above = p.pad.h + p.H - 1 - oh_first;
  const int64_t begin = below <= 0 ? 0 : ceil_div(below, dh);
  const int64_t end = above < 0 ? 0 : std::min<int64_t>(p.R, above / dh + 1);
  return {std::min(begin, end), end};
}

// One sample's channels zero-padded into xp_n (plane = Hp Wp per channel, sample_size in all,
// zeros past the last plane for the reads that run over).
template <typename T>
void pad_sample(const Conv2dParams& p, const T* x_n, int64_t plane, int64_t sample_size, T* xp_n) {
  for (int64_t c = 0; c < p.C; ++c) pad_plane(p, x_n + c * p.H * p.W, xp_n + c * plane);
  for (int64_t i = p.C * plane; i < sample_size; ++i) xp_n[i] = T(0);
}

template <typename T, int F, int NV>
void forward_direct_with(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int kTileWidth = NV * Simd<T>::kLanes;
  const bool relu = p.relu;  // a local: GCC cannot tell that writes to y leave p alone
  const int64_t Cg = p.C / p.groups, Kg = p.K / p.groups, RS = p.R * p.S;
  const int64_t Hp = p.H + 2 * p.pad.h, Wp = p.W + 2 * p.pad.w, plane = Hp * Wp;
  const int64_t positions = p.P * Wp, tiles = (positions + kTileWidth - 1) / kTileWidth;
  const int64_t panels = (Kg + F - 1) / F;
  // Reads run past the last plane by at most a tile and the widest tap shift.
  const int64_t sample_size = p.C * plane + kTileWidth + (p.S - 1) * p.dilation.w + Wp;
  Scratch<T> xp(max_threads() * sample_size);
  Scratch<T> wp(p.groups * panels * RS * Cg * F);
  Scratch<int64_t> shifts(RS);
  for (int64_t r = 0; r < p.R; ++r) {
    for (int64_t s = 0; s < p.S; ++s) {
      shifts.get()[r * p.S + s] = r * p.dilation.h * Wp + s * p.dilation.w;
    }
  }
  // wp[g][panel][tap][c][k] = w[g Kg + panel * F + k, c, tap], zero past Kg.
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t panel = 0; panel < panels; ++panel) {
      T* dst = wp.get() + (g * panels + panel) * RS * Cg * F;
      for (int64_t t = 0; t < RS; ++t) {
        for (int64_t c = 0; c < Cg; ++c) {
          for (int64_t k = 0; k < F; ++k) {
            const int64_t filter = panel * F + k;
            *dst++ = filter < Kg ? w[((g * Kg + filter) * Cg + c) * RS + t] : T(0);
          }
        }
      }
    }
  }
  const int64_t tasks = p.N * p.groups * panels;
#pragma omp parallel
  {
    // Each thread pads the samples of its tasks (a contiguous range) into its own buffer, one at
    // a time, just before it reads them: in cache, and no batch-sized copy to allocate and fill.
    T* xp_n = xp.get() + thread_id() * sample_size;
    int64_t padded_sample = -1;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t n = task / (p.groups * panels), g = (task / panels) % p.groups;
      const int64_t panel = task % panels, k0 = panel * F;
      const int64_t filters = std::min<int64_t>(F, Kg - k0);
      if (n != padded_sample) {
        pad_sample(p, x + n * p.C * p.H * p.W, plane, sample_size, xp_n);
        padded_sample = n;
      }
      const T* xp_g = xp_n + g * Cg * plane;
      const T* w_panel = wp.get() + (g * panels + panel) * RS * Cg * F;
      alignas(64) T out[F][kTileWidth];
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t j0 = tile * kTileWidth;
        const TapRows rows = tap_rows(p, j0 / Wp, std::min(p.P - 1, (j0 + kTileWidth - 1) / Wp));
        shifted_tile<T, F, NV>(xp_g + j0, plane, Cg, shifts.get() + rows.begin * p.S,
                               (rows.end - rows.begin) * p.S, w_panel + rows.begin * p.S * Cg * F,
                               &out[0][0]);
        // Keep positions j = oh * Wp + ow with ow < Q: one contiguous run per padded row in the
        // tile (with few channels, an element-by-element test here cost as much as the FMAs).
        const int64_t width = std::min<int64_t>(kTileWidth, positions - j0);
        for (int64_t j = 0; j < width;) {
          const int64_t oh = (j0 + j) / Wp, ow = (j0 + j) % Wp;
          const int64_t run = std::min(width - j, Wp - ow);
          const int64_t keep = std::max<int64_t>(0, std::min(run, p.Q - ow));
          for (int64_t k = 0; k < filters; ++k) {
            const int64_t filter = g * Kg + k0 + k;
            const T bias = b != nullptr ? b[filter] : T(0);
            T* dst = y + ((n * p.K + filter) * p.P + oh) * p.Q + ow;
            const T* src = &out[k][j];
            for (int64_t i = 0; i < keep; ++i) dst[i] = relu_if(relu, src[i] + bias);
          }
          j += run;
        }
      }
    }
  }
}

}  // namespace

template <typename T>
double conv2d_forward_direct_yield(const Conv2dParams& p) {
  return tile_yield<T>(p, kTiles[best_tile<T>(p)]);
}

template <typename T>
void conv2d_forward_direct(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr DirectTile a = kTiles[0], c = kTiles[1];
  if (best_tile<T>(p) == 0) return forward_direct_with<T, a.filters, a.vectors>(p, x, w, b, y);
  forward_direct_with<T, c.filters, c.vectors>(p, x, w, b, y);
}

template double conv2d_forward_direct_yield<float>(const Conv2dParams&);
template double conv2d_forward_direct_yield<double>(const Conv2dParams&);
template void conv2d_forward_direct<float>(const Conv2dParams&, const float*, const float*,
                                           const float*, float*);
template void conv2d_forward_direct<double>(const Conv2dParams&, const double*, const double*,
                                            const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
