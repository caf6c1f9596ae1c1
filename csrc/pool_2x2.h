// Vector helpers for 2x2 pooling windows with stride 2 and no padding (LeNet's subsampling),
// shared by avg_pool2d.cpp and max_pool2d.cpp: a row of outputs comes from a pair of input
// rows, adjacent input columns separated by shuffles.
#pragma once

#include <cstring>
#include <type_traits>

#include "isa.h"
#include "params.h"

namespace ck {
namespace CK_ISA {

// 2x2 windows, stride 2, no padding, every window inside the input, and rows of at least two
// outputs (the narrowest vector).
inline bool is_plain_2x2(const Pool2dParams& p) {
  return p.kernel.h == 2 && p.kernel.w == 2 && p.stride.h == 2 && p.stride.w == 2 && p.pad.h == 0 &&
         p.pad.w == 0 && 2 * p.P <= p.H && 2 * p.Q <= p.W && p.Q >= 2;
}

// Vectors of N lanes of T, and shuffle masks (lane indices of the same width as T).
template <typename T, int N>
struct Lanes {
  typedef T Vec __attribute__((vector_size(N * sizeof(T)), aligned(sizeof(T)), may_alias));
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Index Mask __attribute__((vector_size(N * sizeof(T))));
  typedef int64_t Offsets __attribute__((vector_size(N * sizeof(int64_t)), aligned(8), may_alias));
  // Tap offsets in a window, one per lane as wide as T, loadable at any T-aligned address.
  typedef Index Taps __attribute__((vector_size(N * sizeof(T)), aligned(sizeof(T)), may_alias));
  static Mask pick(int first, int step) {  // lanes first, first + step, ... of (a, b)
    Mask m;
    for (int l = 0; l < N; ++l) m[l] = static_cast<Index>(first + l * step);
    return m;
  }
  static Mask repeat(int first) {  // lanes first, first, first + 1, first + 1, ...
    Mask m;
    for (int l = 0; l < N; ++l) m[l] = static_cast<Index>(first + l / 2);
    return m;
  }
  // Index and int64 lanes of one register of int64 (a Part of a vector of Index lanes).
  static constexpr int kWideLanes = N < kVectorBytes / 8 ? N : kVectorBytes / 8;
  typedef Index Part __attribute__((vector_size(kWideLanes * sizeof(Index))));
  typedef int64_t Wide
      __attribute__((vector_size(kWideLanes * sizeof(int64_t)), aligned(8), may_alias));
};

// out[l] = base + 2 l + tap[l] for the N lanes of tap (Index lanes: each output's offset in its
// window; 2 l: the column of its window, stride 2), widened to int64 one register at a time. As
// a single N-lane int64 vector, wider than a register below AVX-512, GCC spilled it to the stack
// and stored it 8 bytes at a time.
template <typename T, int N, typename Tap>
inline void store_indices(int64_t* out, const Tap& tap, int64_t base) {
  using L = Lanes<T, N>;
  constexpr int M = L::kWideLanes;
  static_assert(sizeof(Tap) == N * sizeof(typename L::Index));
  for (int q = 0; q < N / M; ++q) {
    typename L::Part part;
    std::memcpy(&part, reinterpret_cast<const char*>(&tap) + q * sizeof(part), sizeof(part));
    typename L::Wide column;  // a constant: a broadcast of base is added once
    for (int l = 0; l < M; ++l) column[l] = 2 * (q * M + l);
    *reinterpret_cast<typename L::Wide*>(out + q * M) =
        __builtin_convertvector(part, typename L::Wide) + (column + base);
  }
}

// Calls body(std::integral_constant<int, N>()) for the widest vector, N lanes of T (halving from
// a full register down to 2), whose outputs fit in a row of Q >= 2.
template <typename T, int N = Simd<T>::kLanes, typename Fn>
void with_widest_lanes(int64_t Q, Fn body) {
  if constexpr (N > 2) {
    if (Q < N) return with_widest_lanes<T, N / 2>(Q, body);
  }
  body(std::integral_constant<int, N>());
}

// Calls body(ow) for vectors of N outputs starting at ow, covering [0, Q): the last vector
// overlaps the one before it instead of a scalar tail (it recomputes the same values).
template <int N, typename Fn>
void for_each_vector(int64_t Q, Fn body) {
  for (int64_t ow = 0; ow + N <= Q; ow += N) body(ow);
  if (Q % N != 0) body(Q - N);
}

// The same over [lo, hi), hi - lo >= N.
template <int N, typename Fn>
void for_each_vector_in(int64_t lo, int64_t hi, Fn body) {
  for_each_vector<N>(hi - lo, [&](int64_t ow) { body(lo + ow); });
}

}  // namespace CK_ISA
}  // namespace ck
