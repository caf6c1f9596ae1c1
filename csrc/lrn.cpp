// Cross-channel local response normalization (AlexNet section 3.3), PyTorch's convention:
//   D_c = k + alpha / size * sum_{j in W(c)} x_j^2,  W(c) = [c - size/2, c + (size-1)/2] in [0, C)
//   y_c = x_c * D_c^-beta
//   dx_i = dy_i * D_i^-beta - 2 alpha beta / size * x_i * sum_{c : i in W(c)} dy_c x_c
//   D_c^(-beta-1)
// and i in W(c) exactly when c in [i - (size-1)/2, i + size/2].
//
// Legend: N batch, C channels, H W spatial size, HW = H * W. Work is split into tasks of one
// sample and a tile of spatial positions (backward: each thread with its own rings of rows).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// Tasks are (sample, tile of positions) pairs, each swept across all channels. A tile is a whole
// channel row where that fits in kMaxTileBytes, so a sample's channels are one contiguous stretch
// of memory that the hardware prefetcher streams. Tiles of 256 positions (a 1 KB row every 12 KB
// at AlexNet's 55 x 55) were short strided streams it caught on to late, even with software
// prefetches a few channels ahead; whole rows without them measured 1.2x faster forward and
// 1.15-1.5x backward (2 threads, 96 x 55 x 55, batch 16 and 32; equal on 1 thread). Tiles are
// narrower where the channel window is so wide that backward's two rings of window rows would
// outgrow kWindowBytes (AlexNet's 5 channels take 160 KB), so the scratch stays that small for
// any window, and where there are fewer tasks than threads.
constexpr int64_t kMaxTileBytes = 16 * 1024;
constexpr int64_t kWindowBytes = 256 * 1024;

struct Tiling {
  int64_t width = 0;  // positions per tile (the last one may be narrower)
  int64_t count = 0;  // tiles per sample
};

template <typename T>
Tiling plan_tiles(const LrnParams& p) {
  const int64_t HW = p.H * p.W;
  if (HW == 0) return {};
  const int64_t rows = std::min(p.size, p.C), bytes = static_cast<int64_t>(sizeof(T));
  const int64_t max_width =
      std::max(64 / bytes, std::min(kMaxTileBytes, kWindowBytes / (2 * rows)) / bytes);
  int64_t count = ceil_div(HW, max_width);
  if (p.N * count < max_threads()) count = std::min(HW, ceil_div(max_threads(), p.N));
  const int64_t width = std::min(HW, round_up(ceil_div(HW, count), 64 / sizeof(T)));
  return {width, ceil_div(HW, width)};
}

// Calls fn(x_offset, width) for every (sample, tile) task, in parallel.
template <typename Fn>
void for_each_tile(const LrnParams& p, const Tiling& tiling, Fn fn) {
  const int64_t HW = p.H * p.W;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < p.N * tiling.count; ++task) {
    const int64_t n = task / tiling.count, j0 = (task % tiling.count) * tiling.width;
    fn(n * p.C * HW + j0, std::min(tiling.width, HW - j0));
  }
}

template <typename T>
__attribute__((always_inline)) inline T inverse_power_exact(T d, double beta) {
  return beta == 0.75 ? T(1) / std::sqrt(d * std::sqrt(d)) : std::pow(d, static_cast<T>(-beta));
}

// pw[v] = d[v]^-0.75 and inv[v] = 1 / d[v] for NV float vectors, by the reciprocal square root
// estimate: AlexNet's beta = 0.75 is 1 / sqrt(D sqrt(D)) exactly, but two square roots and a
// division per element were most of the layer on AVX2 (on Zen 3 a vector square root issues
// every ~6 cycles). Here r = D^-0.5 and s = r^-0.5 come from the estimate with one Newton step
// each, D^-0.75 = r^2 s within 4 eps of the exact power (the exact formula: 2 eps) and
// 1 / D = r^2 within 3 eps (backward needs D^-1.75; forward leaves inv unused). Returns false,
// writing nothing, where it does not apply: double, no AVX2, or a lane outside the
// normal floats (0, subnormal, inf, NaN, negative), whose IEEE answers the exact formula keeps.
// No calls in here: every vector register would have to be saved around one.
template <typename T, int NV, typename V>
__attribute__((always_inline)) inline bool fast_inverse_powers(const V* d, V* pw, V* inv) {
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
#if defined(__AVX512F__)
    using R = __m512;
    const auto normal = [](R x) {
      return (_mm512_cmp_ps_mask(x, _mm512_set1_ps(std::numeric_limits<float>::min()), _CMP_GE_OQ) &
              _mm512_cmp_ps_mask(x, _mm512_set1_ps(std::numeric_limits<float>::max()),
                                 _CMP_LE_OQ)) == 0xFFFF;
    };
    const auto estimate = [](R x) { return _mm512_rsqrt14_ps(x); };
    const auto set1 = [](float v) { return _mm512_set1_ps(v); };
    const auto mul = [](R a, R b) { return _mm512_mul_ps(a, b); };
    const auto fnmadd = [](R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); };
#else
    using R = __m256;
    const auto normal = [](R x) {
      const R ok = _mm256_and_ps(
          _mm256_cmp_ps(x, _mm256_set1_ps(std::numeric_limits<float>::min()), _CMP_GE_OQ),
          _mm256_cmp_ps(x, _mm256_set1_ps(std::numeric_limits<float>::max()), _CMP_LE_OQ));
      return _mm256_movemask_ps(ok) == 0xFF;
    };
    const auto estimate = [](R x) { return _mm256_rsqrt_ps(x); };
    const auto set1 = [](float v) { return _mm256_set1_ps(v); };
    const auto mul = [](R a, R b) { return _mm256_mul_ps(a, b); };
    const auto fnmadd = [](R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); };
#endif
    static_assert(sizeof(V) == sizeof(R));
    bool all_normal = true;
    for (int v = 0; v < NV; ++v) all_normal &= normal(R(d[v]));
    if (!all_normal) return false;
    const auto newton = [&](R x, R r0) {  // r0 (1.5 - 0.5 x r0^2)
      return mul(r0, fnmadd(mul(mul(set1(0.5f), x), r0), r0, set1(1.5f)));
    };
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const R dv = R(d[v]);
      const R r = newton(dv, estimate(dv));
      const R s = newton(r, estimate(r)), r2 = mul(r, r);
      pw[v] = V(mul(r2, s));
      inv[v] = V(r2);
    }
    return true;
  }
#endif
  (void)d, (void)pw, (void)inv;
  return false;
}

// pw[v] = d[v]^-beta and inv[v] = 1 / d[v] exactly, lane by lane, for beta = 0.75 (vector
// square roots and divisions, no calls): where fast_inverse_powers declines (double, no AVX2,
// lanes that are not normal).
template <typename T, int NV, typename V>
__attribute__((always_inline)) inline void exact_inverse_powers_075(const V* d, V* pw, V* inv) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    for (int l = 0; l < Simd<T>::kLanes; ++l) pw[v][l] = inverse_power_exact(d[v][l], 0.75);
    inv[v] = T(1) / d[v];
  }
}

// The window's sums of squares at NV vectors of positions from j: sum over channels i in
// [lo, hi] of x_i^2, in channel order. Several vectors at once: each sum is a chain of dependent
// FMAs that one vector alone would wait on.
template <int NV, typename T, typename V>
__attribute__((always_inline)) inline void window_sums(const T* x, int64_t HW, int64_t lo,
                                                       int64_t hi, int64_t j, V* sums) {
  constexpr int64_t step = sizeof(V) / sizeof(T);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) sums[v] = V{};
  for (int64_t i = lo; i <= hi; ++i) {
    const T* x_i = x + i * HW + j;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      V x_v;
      std::memcpy(&x_v, x_i + v * step, sizeof(V));
      sums[v] += x_v * x_v;
    }
  }
}

// Calls body(std::integral_constant<int, NV>(), j) over [0, width): blocks of 4 vectors of L
// lanes, then single vectors, then single elements (NV = 0).
template <int L, typename Body>
void for_each_block(int64_t width, Body body) {
  int64_t j = 0;
  for (; j + 4 * L <= width; j += 4 * L) body(std::integral_constant<int, 4>(), j);
  for (; j + L <= width; j += L) body(std::integral_constant<int, 1>(), j);
  for (; j < width; ++j) body(std::integral_constant<int, 0>(), j);
}

// A forward tile's input and the constants of D = k + scale * window sum.
template <typename T>
struct LrnTile {
  const T* x;
  int64_t HW;
  T k, scale;
};

// From the window sums of squares of NV vectors (overwritten by D = k + scale sum): pw[v] =
// D^-0.75 and inv[v] = 1 / D, for forward (from x) and backward (from its ring of squares).
template <int NV, typename T, typename V>
__attribute__((always_inline)) inline void powers_075_from_sums(T k, T scale, V* sums, V* pw,
                                                                V* inv) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) sums[v] = k + scale * sums[v];
  if (!fast_inverse_powers<T, NV>(sums, pw, inv)) exact_inverse_powers_075<T, NV>(sums, pw, inv);
}

// pw[v] = D^-0.75 for NV vectors of positions from j, channel window [lo, hi] (the 1 / D that
// the power functions also give is backward's: unused here).
template <int NV, typename T, typename V>
__attribute__((always_inline)) inline void window_powers_075(const LrnTile<T>& tile, int64_t lo,
                                                             int64_t hi, int64_t j, V* pw) {
  V sums[NV], inv[NV];
  window_sums<NV>(tile.x, tile.HW, lo, hi, j, sums);
  powers_075_from_sums<NV>(tile.k, tile.scale, sums, pw, inv);
}

// Forward for channel c at positions [j0, j1) with the exact formula: vectors the fast path
// declined, and the remainder.
template <typename T>
__attribute__((noinline)) void forward_exact(const LrnTile<T>& tile, const LrnParams& p, int64_t c,
                                             int64_t lo, int64_t hi, int64_t j0, int64_t j1,
                                             T* y_c) {
  for (int64_t j = j0; j < j1; ++j) {
    T sum;
    window_sums<1>(tile.x, tile.HW, lo, hi, j, &sum);
    y_c[j] = tile.x[c * tile.HW + j] * inverse_power_exact(tile.k + tile.scale * sum, p.beta);
  }
}

// Rows of `stride` values (a tile's width) for a sliding window of channels: channel c in row
// c mod rows, rows >= the window's width, so a row is overwritten only after its last reader ran.
template <typename T>
struct RowRing {
  T* base;
  int64_t rows, stride;
  T* row(int64_t c) const { return base + (c % rows) * stride; }
};

// The ring rows of channels [lo, hi] in channel order: `before` rows from `first` on, then
// `after` rows from the ring's start (found once per channel: no division in the loops).
template <typename T>
struct RingWindow {
  const T* first;
  const T* wrapped;
  int64_t before, after, stride;
  RingWindow(const RowRing<T>& ring, int64_t lo, int64_t hi)
      : first(ring.row(lo)), wrapped(ring.base), stride(ring.stride) {
    before = std::min(hi - lo + 1, ring.rows - lo % ring.rows);
    after = hi - lo + 1 - before;
  }
};

// sums[v] = sum of the window's rows at NV vectors (NV = 0: one element) from j, in order.
template <int NV, typename T, typename V>
__attribute__((always_inline)) inline void sum_rows(const RingWindow<T>& window, int64_t j,
                                                    V* sums) {
  constexpr int64_t step = sizeof(V) / sizeof(T);
  constexpr int N = std::max(NV, 1);
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) sums[v] = V{};
  const auto add_rows = [&](const T* rows, int64_t count) {
    for (int64_t r = 0; r < count; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < N; ++v) {
        V row_v;
        std::memcpy(&row_v, rows + r * window.stride + j + v * step, sizeof(V));
        sums[v] += row_v;
      }
    }
  };
  add_rows(window.first, window.before);
  add_rows(window.wrapped, window.after);
}

// Backward's first pass for channel c at positions [j0, j1) with the exact formula: P = dy D^-beta
// and t = coef dy x D^(-beta-1), from the sums of squares of the window [lo, hi].
template <typename T>
__attribute__((noinline)) void backward_rows_exact(const LrnTile<T>& tile, int64_t lo, int64_t hi,
                                                   T coef, double beta, const T* x_c, const T* dy_c,
                                                   int64_t j0, int64_t j1, T* P_c, T* t_c) {
  for (int64_t j = j0; j < j1; ++j) {
    T sum;
    window_sums<1>(tile.x, tile.HW, lo, hi, j, &sum);
    const T d = tile.k + tile.scale * sum;
    P_c[j] = dy_c[j] * inverse_power_exact(d, beta);
    t_c[j] = coef * P_c[j] * x_c[j] / d;
  }
}

}  // namespace

// Forward takes a tile of positions of one sample at a time, channel by channel, a few vectors
// of positions at a time: the window's input rows stay in cache (L2 for whole 55 x 55 rows) from
// one channel to the next, so x is read from memory once.
template <typename T>
void lrn_forward(const LrnParams& p, const T* x, T* y) {
  using V = typename Simd<T>::Vec;
  using U = typename Simd<T>::UnalignedVec;
  constexpr int L = Simd<T>::kLanes;
  const int64_t HW = p.H * p.W;
  const T k = static_cast<T>(p.k), scale = static_cast<T>(p.alpha / static_cast<double>(p.size));
  for_each_tile(p, plan_tiles<T>(p), [&](int64_t at, int64_t width) {
    const LrnTile<T> tile{x + at, HW, k, scale};
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t lo = std::max<int64_t>(c - p.size / 2, 0);
      const int64_t hi = std::min<int64_t>(c + (p.size - 1) / 2, p.C - 1);
      const T* x_c = tile.x + c * HW;
      T* y_c = y + at + c * HW;
      for_each_block<L>(width, [&](auto vectors, int64_t j) {
        constexpr int NV = vectors();
        if constexpr (NV > 0) {
          if (p.beta == 0.75) {
            V pw[NV];
            window_powers_075<NV>(tile, lo, hi, j, pw);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
              *reinterpret_cast<U*>(y_c + j + v * L) =
                  *reinterpret_cast<const U*>(x_c + j + v * L) * pw[v];
            }
            return;
          }
        }
        forward_exact(tile, p, c, lo, hi, j, j + std::max(1, NV * L), y_c);
      });
    }
  });
}

// Backward in one sweep over the channels of a tile, per channel c: P = dy D^-beta and
// t = coef dy x D^(-beta-1) (coef = 2 alpha beta / size), with D summed from the window of x as
// forward sums it; then dx_i = P_i - x_i sum t over i's window, for every i whose window's t all
// exist. P and t live in rings of rows (RowRing) that stay in cache (L2 at 55 x 55) with the
// window of x and the row of dy; x and dy are read from memory once. P with coef folded into t
// saves multiplies. Tried: a ring of squares (one multiply per value instead of one per window
// entry), 1.1x slower than squaring the window anew with FMAs: one more row stream through L2;
// one loop over positions doing all rows (dx a step behind, to fill the wait on D^-beta's
// latency chain): 5-20 % slower.
template <typename T>
void lrn_backward(const LrnParams& p, const T* dy, const T* x, T* dx) {
  using V = typename Simd<T>::Vec;
  using U = typename Simd<T>::UnalignedVec;
  constexpr int L = Simd<T>::kLanes;
  const int64_t rows = std::min<int64_t>(p.size, p.C);
  const Tiling tiling = plan_tiles<T>(p);
  const int64_t per_thread = 2 * rows * tiling.width;
  Scratch<T> scratch(max_threads() * per_thread);
  const int64_t HW = p.H * p.W;
  const T k = static_cast<T>(p.k), scale = static_cast<T>(p.alpha / static_cast<double>(p.size));
  const T coef = static_cast<T>(2.0 * p.alpha * p.beta / static_cast<double>(p.size));
  for_each_tile(p, tiling, [&](int64_t at, int64_t width) {
    T* rings = scratch.get() + thread_id() * per_thread;
    const int64_t stride = tiling.width;
    const RowRing<T> P{rings, rows, stride}, t{rings + rows * stride, rows, stride};
    const LrnTile<T> tile{x + at, HW, k, scale};
    const T* x_tile = tile.x;
    const T* dy_tile = dy + at;
    const auto first_pass_row = [&](int64_t c) {
      const int64_t lo = std::max<int64_t>(c - p.size / 2, 0);
      const int64_t hi = std::min<int64_t>(c + (p.size - 1) / 2, p.C - 1);
      const T* x_c = x_tile + c * HW;
      const T* dy_c = dy_tile + c * HW;
      T* P_c = P.row(c);
      T* t_c = t.row(c);
      for_each_block<L>(width, [&](auto vectors, int64_t j) {
        constexpr int NV = vectors();
        if constexpr (NV > 0) {
          if (p.beta == 0.75) {
            V sums[NV], pw[NV], inv[NV];
            window_sums<NV>(x_tile, HW, lo, hi, j, sums);
            powers_075_from_sums<NV>(k, scale, sums, pw, inv);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
              const int64_t at_v = j + v * L;
              const V P_v = *reinterpret_cast<const U*>(dy_c + at_v) * pw[v];
              *reinterpret_cast<U*>(P_c + at_v) = P_v;
              *reinterpret_cast<U*>(t_c + at_v) =
                  P_v * *reinterpret_cast<const U*>(x_c + at_v) * (coef * inv[v]);
            }
            return;
          }
        }
        backward_rows_exact(tile, lo, hi, coef, p.beta, x_c, dy_c, j, j + std::max(1, NV * L), P_c,
                            t_c);
      });
    };
    const auto input_gradient_row = [&](int64_t i) {
      const RingWindow<T> window(t, std::max<int64_t>(i - (p.size - 1) / 2, 0),
                                 std::min<int64_t>(i + p.size / 2, p.C - 1));
      const T* x_i = x_tile + i * HW;
      const T* P_i = P.row(i);
      T* dx_i = dx + at + i * HW;
      for_each_block<L>(width, [&](auto vectors, int64_t j) {
        constexpr int NV = vectors();
        if constexpr (NV > 0) {
          V sums[NV];
          sum_rows<NV>(window, j, sums);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            const int64_t at_v = j + v * L;
            *reinterpret_cast<U*>(dx_i + at_v) = *reinterpret_cast<const U*>(P_i + at_v) -
                                                 *reinterpret_cast<const U*>(x_i + at_v) * sums[v];
          }
        } else {
          T sum;
          sum_rows<0>(window, j, &sum);
          dx_i[j] = P_i[j] - x_i[j] * sum;
        }
      });
    };
    int64_t next = 0;  // the next channel of dx
    for (int64_t c = 0; c < p.C; ++c) {
      first_pass_row(c);
      for (; next + p.size / 2 <= c; ++next) input_gradient_row(next);
    }
    for (; next < p.C; ++next) input_gradient_row(next);
  });
}

template void lrn_forward<float>(const LrnParams&, const float*, float*);
template void lrn_forward<double>(const LrnParams&, const double*, double*);
template void lrn_backward<float>(const LrnParams&, const float*, const float*, float*);
template void lrn_backward<double>(const LrnParams&, const double*, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
