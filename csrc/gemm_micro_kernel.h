// The GEMM's register-blocked micro-kernel and its block sizes, shared by gemm.cpp and the
// Winograd convolution (conv2d_winograd.cpp), which feeds it panels packed by its transforms.
//
// Packed layouts: an A micro-panel holds kc steps of kMr rows, a[k * kMr + r]; a B micro-panel
// kc steps of Tile<T>::kNr columns, b[k * kNr + j], aligned to the vector width.
#pragma once

#include <cstring>

#include "isa.h"

namespace ck {
namespace CK_ISA {

#if defined(__AVX512F__)
constexpr int kNrVectors = 4;
#else
constexpr int kNrVectors = 2;
#endif
constexpr int kMr = 6;

template <typename T>
struct Tile {
  using Vec = typename Simd<T>::Vec;
  using UnalignedVec = typename Simd<T>::UnalignedVec;
  static constexpr int kLanes = Simd<T>::kLanes;
  static constexpr int kNr = kNrVectors * kLanes;  // columns of a micro-tile
  // Blocks sized in bytes, so double gets half as many elements. B block: 512 KiB (half of L2);
  // A micro-panel: kKc x MR = 6 KiB (L1).
  static constexpr int64_t kKc = 256;
  static constexpr int64_t kNc = 512 * 4 / sizeof(T) / kNr * kNr;
  static constexpr int64_t kMc = 16 * kMr;
};

// How an A micro-panel lies in memory: k-major, a[k * kMr + r] (the packed layout above), or
// row-major, a[r * a_row_stride + k]. gemm packs a non-transposed A row-major, a vectorised copy
// of contiguous rows, where k-major would be a gather of one value from each of kMr rows.
enum class PanelLayout { kKMajor, kRowMajor };

// c (mr, nr) (+)= a_panel (kc, MR) * b_panel (kc, NR): the only code whose speed matters.
template <typename T, PanelLayout Layout = PanelLayout::kKMajor>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T* c, int64_t ldc,
                  int mr, int nr, bool accumulate, int64_t a_row_stride = 1) {
  using V = typename Tile<T>::Vec;
  using U = typename Tile<T>::UnalignedVec;
  constexpr int L = Tile<T>::kLanes, NV = kNrVectors;
  // The C tile is read (or written) once the sums are done: fetched into cache meanwhile.
  for (int r = 0; r < mr; ++r) {
    __builtin_prefetch(c + r * ldc, 1);
    __builtin_prefetch(c + r * ldc + nr - 1, 1);
  }
  // Zeroed one by one: `= {}` became a rep stos on the stack before every call.
  V acc[kMr][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  }
  const V negative_zero = V{} * T(-1);  // x + (-0) == x for every x, so this adds nothing
  constexpr bool kRowMajor = Layout == PanelLayout::kRowMajor;
  const int64_t row_stride = kRowMajor ? a_row_stride : 1;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const V*>(b + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const V ar = negative_zero + a[r * row_stride];  // broadcast
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
    }
    a += kRowMajor ? 1 : kMr;
    b += NV * L;
  }
  if (mr == kMr && nr == Tile<T>::kNr) {
    for (int r = 0; r < kMr; ++r) {
      for (int v = 0; v < NV; ++v) {
        U* out = reinterpret_cast<U*>(c + r * ldc + v * L);
        *out = accumulate ? *out + acc[r][v] : acc[r][v];
      }
    }
    return;
  }
  alignas(kVectorBytes) T tile[kMr][Tile<T>::kNr];
  std::memcpy(tile, acc, sizeof(tile));
  for (int r = 0; r < mr; ++r) {
    T* out = c + r * ldc;
    for (int j = 0; j < nr; ++j) out[j] = accumulate ? out[j] + tile[r][j] : tile[r][j];
  }
}

}  // namespace CK_ISA
}  // namespace ck
