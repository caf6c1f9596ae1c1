// 2-D max pooling forward (recording the argmax) and backward (scattering through it).
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// Padding never wins: a window reads only its taps inside the input. A NaN wins over any number
// and the first maximum (or first NaN) in row-major window order wins ties. Threads split the
// N * C planes, so overlapping windows in backward never race.
//
// Forward takes each output row in two parts: the columns whose windows lie wholly inside the
// input horizontally go tap by tap across the whole row at once (branch-free selects that the
// compiler vectorises along ow), and the few columns at the edges, whose windows are clipped,
// go window by window. Both visit the taps in row-major order, so both keep the same winner.
// 2x2 windows with stride 2 and no padding (LeNet's) take a vector path over whole rows of
// outputs (helpers in pool_2x2.h), and the inner columns of 3-wide windows with stride 2
// (AlexNet's 3x3/2) two vector passes, along rows then down columns; both find the same winner.
#include <algorithm>
#include <type_traits>
#include <utility>

#include "kernels.h"
#include "pool_2x2.h"

namespace ck {
namespace CK_ISA {
namespace {

// The tap v (at input index i) replaces the best so far if it is larger, or if it is the first
// NaN: ties keep the earlier tap. (max_2x2_plane writes the same test for vectors of lanes;
// with its non-short-circuit form here, AlexNet's 3x3/2 rows ran about 5 % slower.)
template <typename T>
inline bool wins(T v, T best) {
  return v > best || (v != v && best == best);
}

// The output columns [lo, hi) of one output row, whose windows lie inside the input
// horizontally: tap by tap over the window rows [h_lo, h_hi). kStride is the w-stride, or 0 for
// "read it from p".
template <typename T, int kStride>
void inner_columns(const Pool2dParams& p, const T* x_c, int64_t h_lo, int64_t h_hi, int64_t lo,
                   int64_t hi, T* y_row, int64_t* arg_row) {
  const int64_t sw = kStride > 0 ? kStride : p.stride.w, offset = -p.pad.w;
  for (int64_t ih = h_lo; ih < h_hi; ++ih) {
    const T* x_row = x_c + ih * p.W;
    for (int64_t kw = 0; kw < p.kernel.w; ++kw) {
      const int64_t shift = offset + kw, base = ih * p.W + shift;
      const T* x_tap = x_row + shift;
      if (ih == h_lo && kw == 0) {
        for (int64_t ow = lo; ow < hi; ++ow) {
          y_row[ow] = x_tap[ow * sw];
          arg_row[ow] = base + ow * sw;
        }
        continue;
      }
      for (int64_t ow = lo; ow < hi; ++ow) {
        const T v = x_tap[ow * sw];
        const bool take = wins(v, y_row[ow]);
        y_row[ow] = take ? v : y_row[ow];
        arg_row[ow] = take ? base + ow * sw : arg_row[ow];
      }
    }
  }
}

// AlexNet's overlapping 3x3/2 windows, and any window 3 wide with stride 2 along w, on the
// output columns [lo, hi) (at least N) whose windows lie inside the input horizontally: as two
// passes, since each input row serves two rows of windows. First every input row's maxima over
// the 3 columns of each window (row_maxima_3_wide: two pairs of loads and three shuffles give
// the columns 2 ow, 2 ow + 1 and 2 ow + 2 of N outputs), with the winning column; then each
// output row's maximum over its window's rows of those (column_maxima). The first maximum (or
// first NaN) in row-major order is the first of the rows' first maxima, so the winners are
// inner_columns' (which read and wrote the row of results and int64 indices once per tap).
// Taps are kept as offsets in the window, in lanes as wide as T, and widened to the int64
// index once per vector. The row maxima are kept in block order (below), which column_maxima
// undoes once per output.
//
// Block order: lane l of a vector of row maxima holds output block_order(l) of its N, where
// every 128-bit lane of the results takes half its outputs from the first load of a pair and
// half from the second. Then the columns 2 ow, 2 ow + 1 and 2 ow + 2 are each one in-lane
// shuffle of two loads (shufps, shufpd); in output order each took two lane-crossing permutes
// and a blend.
template <typename T, int N>
constexpr int block_order(int l) {
  constexpr int E = std::min<int>(16 / sizeof(T), N), half = E / 2;  // lanes per 128 bits
  const int block = l / E, r = l % E;
  return r < half ? block * half + r : N / 2 + block * half + (r - half);
}

// The lane of output o in block order.
template <typename T, int N>
constexpr int block_lane(int o) {
  constexpr int E = std::min<int>(16 / sizeof(T), N), half = E / 2;
  const int second = o >= N / 2, rest = o - second * (N / 2);
  return rest / half * E + second * half + rest % half;
}

// block_lane undoes block_order for every vector width of every ISA level, checked when this
// file compiles (the AVX-512 widths cannot run on every build machine).
template <typename T, int N>
constexpr bool block_order_round_trips() {
  for (int l = 0; l < N; ++l) {
    if (block_order<T, N>(l) < 0 || block_order<T, N>(l) >= N) return false;
    if (block_lane<T, N>(block_order<T, N>(l)) != l) return false;
  }
  return true;
}
static_assert(block_order_round_trips<float, 4>() && block_order_round_trips<float, 8>() &&
              block_order_round_trips<float, 16>() && block_order_round_trips<double, 2>() &&
              block_order_round_trips<double, 4>() && block_order_round_trips<double, 8>());

// Where a vector of row maxima starting at output ow of [lo, ...) is kept: the vectors of a row
// in consecutive slots of N, the last one, which overlaps the one before it in the row
// (for_each_vector_in), in a slot of its own, since block order differs between the two.
template <int N>
int64_t block_slot(int64_t lo, int64_t ow) {
  return ceil_div(ow - lo, N) * N;
}
template <int N>
int64_t block_row_stride(const Pool2dParams& p) {
  return round_up(p.Q, N);
}

// A constant shuffle mask: lane l = lane_source(l).
template <typename Mask, typename F, int... I>
constexpr Mask shuffle_mask(F lane_source, std::integer_sequence<int, I...>) {
  return Mask{static_cast<std::remove_reference_t<decltype(Mask{}[0])>>(lane_source(I))...};
}

template <typename T, int N>
void row_maxima_3_wide(const Pool2dParams& p, const T* x_row, int64_t lo, int64_t hi, T* best_row,
                       typename Lanes<T, N>::Index* tap_row) {
  using L = Lanes<T, N>;
  using V = typename L::Vec;
  using Index = typename L::Index;
  using Taps = typename L::Taps;
  using Mask = typename L::Mask;
  constexpr auto lanes = std::make_integer_sequence<int, N>();
  // Lane l takes x[2 o], x[2 o + 1] and x[2 o + 2] for o = block_order(l): from the loads at 0
  // and N, and at 2 and N + 1 (where x[2 o + 2] is lane 2 o of the first, or 2 o + 1 - N of the
  // second).
  constexpr Mask even = shuffle_mask<Mask>([](int l) { return 2 * block_order<T, N>(l); }, lanes);
  constexpr Mask odd =
      shuffle_mask<Mask>([](int l) { return 2 * block_order<T, N>(l) + 1; }, lanes);
  constexpr Mask from_two = shuffle_mask<Mask>(
      [](int l) {
        const int o = block_order<T, N>(l);
        return o < N / 2 ? 2 * o : 2 * o + 1;
      },
      lanes);
  for_each_vector_in<N>(lo, hi, [&](int64_t ow) {
    const T* row = x_row + 2 * ow - p.pad.w;
    const V a = *reinterpret_cast<const V*>(row), b = *reinterpret_cast<const V*>(row + N);
    const V c = *reinterpret_cast<const V*>(row + 2), d = *reinterpret_cast<const V*>(row + N + 1);
    V best = __builtin_shuffle(a, b, even);
    Taps tap = Taps{};
    const V columns[2] = {__builtin_shuffle(a, b, odd), __builtin_shuffle(c, d, from_two)};
    for (int kw = 1; kw < 3; ++kw) {
      const V v = columns[kw - 1];
      const auto take = ~(v <= best) & (best == best);  // wins(), lane by lane
      best = take ? v : best;
      tap = take ? Taps{} + static_cast<Index>(kw) : tap;
    }
    const int64_t slot = block_slot<N>(lo, ow);
    *reinterpret_cast<V*>(best_row + slot) = best;
    *reinterpret_cast<Taps*>(tap_row + slot) = tap;
  });
}

// One output row's columns [lo, hi) from the row maxima of its window's rows [h_lo, h_hi)
// (best and tap hold a row of block_row_stride per input row, each vector of N in its
// block_slot and in block order).
template <typename T, int N>
void column_maxima(const Pool2dParams& p, const T* best_rows,
                   const typename Lanes<T, N>::Index* tap_rows, int64_t h_lo, int64_t h_hi,
                   int64_t lo, int64_t hi, T* y_row, int64_t* arg_row) {
  using L = Lanes<T, N>;
  using V = typename L::Vec;
  using Index = typename L::Index;
  using Taps = typename L::Taps;
  constexpr auto output_order = shuffle_mask<typename L::Mask>(
      [](int o) { return block_lane<T, N>(o); }, std::make_integer_sequence<int, N>());
  for_each_vector_in<N>(lo, hi, [&](int64_t ow) {
    const int64_t stride = block_row_stride<N>(p), slot = block_slot<N>(lo, ow);
    V best = *reinterpret_cast<const V*>(best_rows + h_lo * stride + slot);
    Taps tap = *reinterpret_cast<const Taps*>(tap_rows + h_lo * stride + slot);
    for (int64_t ih = h_lo + 1; ih < h_hi; ++ih) {
      const V v = *reinterpret_cast<const V*>(best_rows + ih * stride + slot);
      const Taps t = *reinterpret_cast<const Taps*>(tap_rows + ih * stride + slot) +
                     static_cast<Index>((ih - h_lo) * p.W);
      const auto take = ~(v <= best) & (best == best);  // wins(), lane by lane
      best = take ? v : best;
      tap = take ? t : tap;
    }
    best = __builtin_shuffle(best, output_order);
    tap = __builtin_shuffle(tap, output_order);
    *reinterpret_cast<V*>(y_row + ow) = best;
    store_indices<T, N>(arg_row + ow, tap, h_lo * p.W + 2 * ow - p.pad.w);
  });
}

// One plane of 2x2/2 windows, N outputs at a time: the four taps in row-major order (the even
// and odd columns of the top row, then of the bottom row), each taken where wins() says. The
// tap is kept as its offset in the window (r W + s) in lanes as wide as T and widened to the
// int64 index once per vector: selecting int64 indices per tap (two or four registers per
// vector of floats) compiled to scalar code. AlexNet's 3x3/2 windows take
// row_maxima_3_wide and column_maxima instead.
template <typename T, int N>
void max_2x2_plane(const Pool2dParams& p, const T* x_c, T* y_c, int64_t* arg_c) {
  using L = Lanes<T, N>;
  using V = typename L::Vec;
  using Index = typename L::Index;
  typedef Index Offsets __attribute__((vector_size(N * sizeof(T))));
  const auto even = L::pick(0, 2), odd = L::pick(1, 2);
  for (int64_t oh = 0; oh < p.P; ++oh) {
    for_each_vector<N>(p.Q, [&](int64_t ow) {
      V best;
      Offsets tap;
      for (int r = 0; r < 2; ++r) {
        const int64_t row = (2 * oh + r) * p.W + 2 * ow;
        const V left = *reinterpret_cast<const V*>(x_c + row);
        const V right = *reinterpret_cast<const V*>(x_c + row + N);
        for (int s = 0; s < 2; ++s) {
          const V v = __builtin_shuffle(left, right, s == 0 ? even : odd);
          const Offsets offset = Offsets{} + static_cast<Index>(r * p.W + s);
          if (r == 0 && s == 0) {
            best = v, tap = offset;
            continue;
          }
          const auto take = ~(v <= best) & (best == best);  // wins(), lane by lane
          best = take ? v : best;
          tap = take ? offset : tap;
        }
      }
      *reinterpret_cast<V*>(y_c + oh * p.Q + ow) = best;
      store_indices<T, N>(arg_c + oh * p.Q + ow, tap, 2 * oh * p.W + 2 * ow);
    });
  }
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
  if (is_plain_2x2(p) && p.W < (int64_t{1} << 30)) {  // window offsets in 32-bit lanes
    with_widest_lanes<T>(p.Q, [&](auto lanes) {
#pragma omp parallel for schedule(static)
      for (int64_t plane = 0; plane < planes; ++plane) {
        max_2x2_plane<T, lanes()>(p, x + plane * HW, y + plane * PQ, argmax + plane * PQ);
      }
    });
    return;
  }
  // Output columns [inner_lo, inner_hi) have windows inside the input horizontally.
  const int64_t inner_lo = std::min(p.Q, (p.pad.w + p.stride.w - 1) / p.stride.w);
  const int64_t last = p.W - p.kernel.w + p.pad.w;  // largest window start, shifted by pad
  const int64_t inner_hi =
      last < 0 ? inner_lo : std::max(inner_lo, std::min(p.Q, last / p.stride.w + 1));
  constexpr int L = Simd<T>::kLanes;
  using Index = typename Lanes<T, L>::Index;
  const bool two_passes = p.stride.w == 2 && p.kernel.w == 3 && inner_hi - inner_lo >= L &&
                          p.kernel.h * p.W < (int64_t{1} << 30);  // window offsets in Index
  const int threads = max_threads();
  const int64_t rows_size = two_passes ? p.H * block_row_stride<L>(p) : 0;
  Scratch<T> row_best(threads * rows_size);
  Scratch<Index> row_tap(threads * rows_size);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* x_c = x + plane * HW;
    T* y_c = y + plane * PQ;
    int64_t* arg_c = argmax + plane * PQ;
    T* best_rows = row_best.get() + thread_id() * rows_size;
    Index* tap_rows = row_tap.get() + thread_id() * rows_size;
    if (two_passes) {
      for (int64_t ih = 0; ih < p.H; ++ih) {
        const int64_t at = ih * block_row_stride<L>(p);
        row_maxima_3_wide<T, L>(p, x_c + ih * p.W, inner_lo, inner_hi, best_rows + at,
                                tap_rows + at);
      }
    }
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const int64_t h0 = oh * p.stride.h - p.pad.h;
      const int64_t h_lo = std::max<int64_t>(h0, 0), h_hi = std::min(h0 + p.kernel.h, p.H);
      T* y_row = y_c + oh * p.Q;
      int64_t* arg_row = arg_c + oh * p.Q;
      // Edge columns, window by window. The padding rule (pad <= kernel / 2) guarantees every
      // window holds an input tap.
      auto one_window = [&](int64_t ow) {
        const int64_t w0 = ow * p.stride.w - p.pad.w;
        const int64_t w_lo = std::max<int64_t>(w0, 0), w_hi = std::min(w0 + p.kernel.w, p.W);
        int64_t best = h_lo * p.W + w_lo;
        T best_value = x_c[best];
        for (int64_t ih = h_lo; ih < h_hi; ++ih) {
          for (int64_t iw = w_lo; iw < w_hi; ++iw) {
            const T v = x_c[ih * p.W + iw];
            if (wins(v, best_value)) best_value = v, best = ih * p.W + iw;
          }
        }
        y_row[ow] = best_value;
        arg_row[ow] = best;
      };
      for (int64_t ow = 0; ow < inner_lo; ++ow) one_window(ow);
      for (int64_t ow = inner_hi; ow < p.Q; ++ow) one_window(ow);
      // Inner columns, tap by tap across the row. For rows of 24 or more, strides 1 and 2
      // (nearly every network's) with the stride known at compile time, so that the compiler
      // vectorises the strided reads (AlexNet's 3x3/2 pooling 1.35x faster); on short rows
      // (LeNet's 14) the vector loop's set-up costs more than it saves.
      const bool long_row = inner_hi - inner_lo >= 24;
      if (two_passes) {
        column_maxima<T, L>(p, best_rows, tap_rows, h_lo, h_hi, inner_lo, inner_hi, y_row, arg_row);
      } else if (long_row && p.stride.w == 2) {
        inner_columns<T, 2>(p, x_c, h_lo, h_hi, inner_lo, inner_hi, y_row, arg_row);
      } else if (long_row && p.stride.w == 1) {
        inner_columns<T, 1>(p, x_c, h_lo, h_hi, inner_lo, inner_hi, y_row, arg_row);
      } else {
        inner_columns<T, 0>(p, x_c, h_lo, h_hi, inner_lo, inner_hi, y_row, arg_row);
      }
    }
  }
}

template <typename T>
void max_pool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dx_c = dx + plane * HW;
    const T* dy_c = dy + plane * PQ;
    const int64_t* arg_c = argmax + plane * PQ;
    for (int64_t i = 0; i < HW; ++i) dx_c[i] = T(0);
    for (int64_t i = 0; i < PQ; ++i) dx_c[arg_c[i]] += dy_c[i];
  }
}

int64_t first_out_of_range(const int64_t* idx, int64_t count, int64_t limit) {
  // An index i is bad when i < 0 or limit - 1 - i < 0: the sign bit of either, ORed over a block
  // without branches or compares (vector code); only a block that holds a bad index is searched
  // element by element. Blocks run on all threads.
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = ceil_div(count, kBlock);
  const uint64_t last = static_cast<uint64_t>(limit - 1);
  int64_t first_bad_block = blocks;
#pragma omp parallel for schedule(static) reduction(min : first_bad_block)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t end = std::min(count, (block + 1) * kBlock);
    uint64_t signs = 0;
    for (int64_t i = block * kBlock; i < end; ++i) {
      const uint64_t v = static_cast<uint64_t>(idx[i]);
      signs |= v | (last - v);
    }
    if (signs >> 63) first_bad_block = std::min(first_bad_block, block);
  }
  for (int64_t i = first_bad_block * kBlock; i < count; ++i) {
    if (idx[i] < 0 || idx[i] >= limit) return i;
  }
  return -1;
}

template void max_pool2d_forward<float>(const Pool2dParams&, const float*, float*, int64_t*);
template void max_pool2d_forward<double>(const Pool2dParams&, const double*, double*, int64_t*);
template void max_pool2d_backward<float>(const Pool2dParams&, const float*, const int64_t*, float*);
template void max_pool2d_backward<double>(const Pool2dParams&, const double*, const int64_t*,
                                          double*);

}  // namespace CK_ISA
}  // namespace ck
