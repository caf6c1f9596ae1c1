// General matrix multiply, single-threaded (callers parallelise over samples or tiles).
//
// Correctness first: op(B) is packed, scaled by alpha, into a contiguous (kc, nc) panel so the
// innermost loop runs over contiguous memory whatever the transposes; rows of C are updated four
// at a time so each packed B element loaded feeds four multiply-adds. The fast CPU issue swaps
// in packed register-blocked micro-kernels behind this same interface.
#include <algorithm>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

constexpr int64_t kBlockK = 128;  // rows of the packed B panel
constexpr int64_t kBlockN = 512;  // columns of the packed B panel: kc * nc floats fit L2

template <typename T>
inline T element(const T* X, int64_t ld, Trans trans, int64_t row, int64_t col) {
  return trans == Trans::No ? X[row * ld + col] : X[col * ld + row];
}

// packed (kc, nc) = alpha * op(B)[k0 : k0 + kc, j0 : j0 + nc]
template <typename T>
void pack_b(const T* B, int64_t ldb, Trans trans_b, T alpha, int64_t k0, int64_t kc, int64_t j0,
            int64_t nc, T* packed) {
  for (int64_t k = 0; k < kc; ++k) {
    T* dst = packed + k * nc;
    if (trans_b == Trans::No) {
      const T* src = B + (k0 + k) * ldb + j0;
      for (int64_t j = 0; j < nc; ++j) dst[j] = alpha * src[j];
    } else {
      for (int64_t j = 0; j < nc; ++j) dst[j] = alpha * B[(j0 + j) * ldb + k0 + k];
    }
  }
}

// c_r[0 : nc] += a_r[k] * packed[k, 0 : nc] over k < kc, for ROWS rows at once.
template <typename T, int ROWS>
void update_rows(const T* a_rows[ROWS], const T* __restrict packed, int64_t kc, int64_t nc,
                 T* c_rows[ROWS]) {
  for (int64_t k = 0; k < kc; ++k) {
    const T* __restrict b = packed + k * nc;
    T a[ROWS];
    for (int r = 0; r < ROWS; ++r) a[r] = a_rows[r][k];
    for (int r = 0; r < ROWS; ++r) {
      T* __restrict c = c_rows[r];
      const T ar = a[r];
      for (int64_t j = 0; j < nc; ++j) c[j] += ar * b[j];
    }
  }
}

constexpr int kRows = 4;  // rows of C updated together

}  // namespace

int64_t gemm_workspace_size(int64_t N, int64_t K) {
  return std::min(K, kBlockK) * std::min(N, kBlockN) + kRows * kBlockK;
}

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, T* workspace) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < N; ++j) c[j] = T(0);
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
  if (K == 0 || alpha == T(0)) return;

  T* packed = workspace;
  // A's rows for one k block, made contiguous so the update loop reads them with unit stride.
  T* a_block = workspace + std::min(K, kBlockK) * std::min(N, kBlockN);
  for (int64_t j0 = 0; j0 < N; j0 += kBlockN) {
    const int64_t nc = std::min(kBlockN, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
      const int64_t kc = std::min(kBlockK, K - k0);
      pack_b(B, ldb, trans_b, alpha, k0, kc, j0, nc, packed);
      int64_t i = 0;
      for (; i + kRows <= M; i += kRows) {
        const T* a_rows[kRows];
        T* c_rows[kRows];
        for (int r = 0; r < kRows; ++r) {
          T* a = a_block + r * kBlockK;
          for (int64_t k = 0; k < kc; ++k) a[k] = element(A, lda, trans_a, i + r, k0 + k);
          a_rows[r] = a;
          c_rows[r] = C + (i + r) * ldc + j0;
        }
        update_rows<T, kRows>(a_rows, packed, kc, nc, c_rows);
      }
      for (; i < M; ++i) {
        T* a = a_block;
        for (int64_t k = 0; k < kc; ++k) a[k] = element(A, lda, trans_a, i, k0 + k);
        const T* a_rows[1] = {a};
        T* c_rows[1] = {C + i * ldc + j0};
        update_rows<T, 1>(a_rows, packed, kc, nc, c_rows);
      }
    }
  }
}

template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, float*);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t, double*);

}  // namespace CK_ISA
}  // namespace ck
