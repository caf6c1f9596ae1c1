// Matrix transposes for moving between channel planes (NCHW) and channels-last rows: 8x8 float
// tiles go through registers, since element by element every store lands in a different cache
// line.
#pragma once

#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "isa.h"

namespace ck {
namespace CK_ISA {

#if defined(__AVX2__)
// r[j] becomes column j of the 8x8 matrix whose rows were r[0..7].
inline void transpose_8x8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols.
template <typename T>
void transpose(const T* src, int64_t src_stride, int64_t rows, int64_t cols, T* dst,
               int64_t dst_stride) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    for (; i0 + 8 <= rows; i0 += 8) {
      int64_t j0 = 0;
      for (; j0 + 8 <= cols; j0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (i0 + i) * src_stride + j0);
        transpose_8x8(r);
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (j0 + j) * dst_stride + i0, r[j]);
      }
      for (; j0 < cols; ++j0) {
        for (int i = 0; i < 8; ++i) dst[j0 * dst_stride + i0 + i] = src[(i0 + i) * src_stride + j0];
      }
    }
  }
#endif
  for (; i0 < rows; ++i0) {
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i0] = src[i0 * src_stride + j];
  }
}

}  // namespace CK_ISA
}  // namespace ck
