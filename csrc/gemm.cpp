// General matrix multiply: packed, cache-blocked, register-blocked (the BLIS design).
//
//   C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C,   row-major, op = identity or transpose
//
// Loops, outermost first (the names of BLIS's "Anatomy of high-performance GEMM"):
//   jc  over N in blocks of kNc   op(B) block (kKc, kNc) packed into NR-wide panels, kept in L2
//   pc  over K in blocks of kKc
//   ic  over M in blocks of kMc   op(A) block (kMc, kKc) packed into MR-tall panels, scaled by
//   alpha ir  over the block's MR-row panels: one A micro-panel (kKc x MR) stays in L1 ... jr  ...
//   while the micro-kernel streams the B panels past it
// Only the micro-kernel depends on the ISA, and only through the vector width, which follows
// from the -m flags this file is compiled with (GCC vector extensions, no intrinsics): 4 vectors
// of 16 floats on AVX-512, 2 of 8 on AVX2, 2 of 4 on the SSE2 baseline, always 6 rows. Packing
// pads partial panels with zeros, so the micro-kernel always computes a full MR x NR tile and
// only the store is clipped. The first K block writes C when beta is 0 (C is never read then,
// NaN in C does not leak), later blocks accumulate.
//
// Threads: a GEMM called inside a parallel region (the convolutions call one per sample block)
// runs on its caller's thread; one called with threads > 1 splits the ic blocks over them.
#include "gemm_driver.h"

namespace ck {
namespace CK_ISA {
namespace {

// B as a stored row-major matrix, or its transpose.
template <typename T>
struct StoredB {
  const T* B;
  int64_t ldb;
  Trans trans;

  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* packed) const {
    constexpr int NR = gemm_panel_width<T>();
    for (int64_t q = 0; q < nc; q += NR) {
      const int cols = static_cast<int>(std::min<int64_t>(NR, nc - q));
      T* panel = packed + (q / NR) * kc * NR;
      for (int64_t k = 0; k < kc; ++k) {
        T* dst = panel + k * NR;
        if (trans == Trans::No) {
          const T* src = B + (k0 + k) * ldb + j0 + q;
          for (int j = 0; j < cols; ++j) dst[j] = src[j];
        } else {
          const T* src = B + (j0 + q) * ldb + k0 + k;
          for (int j = 0; j < cols; ++j) dst[j] = src[j * ldb];
        }
        for (int j = cols; j < NR; ++j) dst[j] = T(0);
      }
    }
  }
};

}  // namespace

template <typename T>
int64_t gemm_workspace_size(int64_t M, int64_t N, int64_t K, int threads) {
  // Alignment slack: panels start on 64-byte boundaries.
  return gemm_detail::packed_b_size<T>(N, K) + threads * gemm_detail::packed_a_size<T>(M, K) +
         (threads + 1) * 64;
}

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, T* workspace,
          int threads) {
  gemm_driver(trans_a, M, N, K, alpha, A, lda, StoredB<T>{B, ldb, trans_b}, beta, C, ldc, workspace,
              threads);
}

template int64_t gemm_workspace_size<float>(int64_t, int64_t, int64_t, int);
template int64_t gemm_workspace_size<double>(int64_t, int64_t, int64_t, int);
template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, float*, int);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t, double*, int);

}  // namespace CK_ISA
}  // namespace ck
