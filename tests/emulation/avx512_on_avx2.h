// Lets the AVX-512 level's kernels build and run on a CPU with only AVX2, for the tests: setup.py
// force-includes this header into every kernel file of that level when CONVKERNELS_EMULATE_AVX512
// is set, and compiles them with the AVX2 flags instead of the AVX-512 ones (never for a wheel).
//
// The kernels are written in GCC vector extensions, so with __AVX512F__ defined they take their
// AVX-512 branches (64-byte vectors, the wider register tiles and loop counts), and GCC lowers
// each 64-byte operation to two AVX2 ones with the same result. The few AVX-512 intrinsics they
// call are redefined below, lane by lane; _mm512_rsqrt14_ps is given its worst documented
// precision (14 bits), so the Newton steps that follow it must make up for the worst estimate.
//
// What this shows: the AVX-512 code paths compute what the reference does (the kernel tests,
// outputs pre-filled with NaN). What it does not: out-of-bounds reads that happen to hit valid
// memory (no sanitizer runs here), the AVX-512 encodings themselves, and their speed.
#pragma once

#include <immintrin.h>  // first, so the kernels' own #include of it is a no-op after the macros

#include <cmath>
#include <cstdint>
#include <cstring>

#if !defined(__AVX2__) || !defined(__FMA__) || defined(__AVX512F__)
#error "avx512_on_avx2.h: compile with -mavx2 -mfma and without the AVX-512 flags"
#endif

#define __AVX512F__ 1
#define __AVX512DQ__ 1
#define __AVX512BW__ 1
#define __AVX512VL__ 1

// Inside ck::avx512, as everything a kernel file defines must be (csrc/isa.h).
namespace ck::avx512::emulated {

inline __m512 set1_ps(float v) {
  __m512 r;
  for (int i = 0; i < 16; ++i) r[i] = v;
  return r;
}

inline __m512 mul_ps(__m512 a, __m512 b) {
  return a * b;
}

// -(a b) + c with one rounding, as vfnmadd does.
inline __m512 fnmadd_ps(__m512 a, __m512 b, __m512 c) {
  __m512 r;
  for (int i = 0; i < 16; ++i) r[i] = std::fma(-a[i], b[i], c[i]);
  return r;
}

// 1 / sqrt(x) with its lowest 9 mantissa bits cleared: a relative error of up to 2^-14, the
// bound Intel documents for vrsqrt14ps.
inline __m512 rsqrt14_ps(__m512 x) {
  __m512 r;
  for (int i = 0; i < 16; ++i) {
    const float exact = 1.0f / std::sqrt(x[i]);
    uint32_t bits;
    std::memcpy(&bits, &exact, sizeof bits);
    if (std::isfinite(exact)) bits &= ~uint32_t{0x1FF};
    std::memcpy(&r[i], &bits, sizeof bits);
  }
  return r;
}

// The two ordered, quiet predicates the kernels use; any other fails to compile.
template <int kPredicate>
__mmask16 cmp_ps_mask(__m512 a, __m512 b) {
  static_assert(kPredicate == _CMP_GE_OQ || kPredicate == _CMP_LE_OQ,
                "avx512_on_avx2.h: add this comparison predicate");
  __mmask16 mask = 0;
  for (int i = 0; i < 16; ++i) {
    const bool ordered = !std::isnan(a[i]) && !std::isnan(b[i]);
    const bool holds = kPredicate == _CMP_GE_OQ ? a[i] >= b[i] : a[i] <= b[i];
    if (ordered && holds) mask = static_cast<__mmask16>(mask | (1u << i));
  }
  return mask;
}

}  // namespace ck::avx512::emulated

#define _mm512_set1_ps(v) ck::avx512::emulated::set1_ps(v)
#define _mm512_mul_ps(a, b) ck::avx512::emulated::mul_ps(a, b)
#define _mm512_fnmadd_ps(a, b, c) ck::avx512::emulated::fnmadd_ps(a, b, c)
#define _mm512_rsqrt14_ps(x) ck::avx512::emulated::rsqrt14_ps(x)
#define _mm512_cmp_ps_mask(a, b, predicate) ck::avx512::emulated::cmp_ps_mask<predicate>(a, b)
