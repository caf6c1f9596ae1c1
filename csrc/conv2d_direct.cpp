// Backward-weight for small filter banks, as dot products of rows: no GEMM packing.
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

#include "im2col.h"
#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

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
      T sum = 0;
      for (int l = 0; l < L; ++l) sum += acc[i][j][l];
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

}  // namespace CK_ISA
}  // namespace ck
