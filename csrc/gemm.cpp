// General matrix multiply: packed, cache-blocked, register-blocked (the BLIS design).
//
//   C (M, N) = alpha op(A) (M, K) op(B) (K, N) + beta C,   row-major, op = identity or transpose
//
// Loops, outermost first (the names of BLIS's "Anatomy of high-performance GEMM"):
//   jc  N in blocks of kNc: the op(B) block (kKc, kNc) is packed in NR-wide panels, kept in L2
//   pc  K in blocks of kKc
//   ic  M in blocks of kMc: the op(A) block is packed in MR-tall panels, scaled by alpha
//   ir  the A block's panels: one A micro-panel (kKc x MR) stays in L1 while
//   jr  the micro-kernel streams the B panels past it
// Only the micro-kernel depends on the ISA, and only through the vector width, which follows
// from the -m flags this file is compiled with (GCC vector extensions, no intrinsics): 4 vectors
// of 16 floats on AVX-512, 2 of 8 on AVX2, 2 of 4 on the SSE2 baseline, always 6 rows. Packing
// pads partial panels with zeros, so the micro-kernel always computes a full MR x NR tile and
// only the store is clipped. The first K block writes C when beta is 0 (C is never read then,
// NaN in C does not leak), later blocks accumulate.
//
// Threads: a GEMM called inside a parallel region (the convolutions call one per sample block)
// runs on its caller's thread; one called with threads > 1 runs one parallel region in which the
// threads pack each B block together and then each multiplies its own range of rows.
#include <algorithm>
#include <cstring>

#include "gemm_micro_kernel.h"
#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// The A block packed in MR-row panels, scaled by alpha, zero past the last row: a transposed A
// k-major, packed[panel][k][r], whose kMr values of a k are contiguous in A too; a plain A
// row-major, packed[panel][r][k], each row a contiguous copy (vectorised), which the
// micro-kernel reads as well as the k-major layout (PanelLayout).
template <typename T>
void pack_a(const T* A, int64_t lda, Trans trans, T alpha, int64_t i0, int64_t mc, int64_t k0,
            int64_t kc, T* packed) {
  for (int64_t p = 0; p < mc; p += kMr) {
    const int rows = static_cast<int>(std::min<int64_t>(kMr, mc - p));
    T* panel = packed + (p / kMr) * kc * kMr;
    if (trans == Trans::No) {
      for (int r = 0; r < kMr; ++r) {
        T* dst = panel + r * kc;
        if (r >= rows) {
          std::fill(dst, dst + kc, T(0));
          continue;
        }
        const T* src = A + (i0 + p + r) * lda + k0;
        // Rows are short runs lda apart, which the hardware prefetcher picks up late: fetch the
        // row after next while this one is copied (packing A took half as long).
        if (p + r + 2 < mc) {
          for (int64_t k = 0; k < kc; k += 64 / sizeof(T)) __builtin_prefetch(src + 2 * lda + k);
        }
        for (int64_t k = 0; k < kc; ++k) dst[k] = alpha * src[k];
      }
      continue;
    }
    for (int64_t k = 0; k < kc; ++k) {
      T* dst = panel + k * kMr;
      const T* src = A + (k0 + k) * lda + i0 + p;
      for (int r = 0; r < rows; ++r) dst[r] = alpha * src[r];
      for (int r = rows; r < kMr; ++r) dst[r] = T(0);
    }
  }
}

// packed[panel][k][j] = op(B)[k0 + k, j0 + panel * NR + j], zero past the last column. A plain B
// is read kPackRows rows at a time across all the panels, prefetched kPackRows rows ahead:
// going down all of k within one panel touches a new page at every k (rows are ldb apart).
// Packing B took ~4 % of a 1024^3 GEMM that way, ~3 % this way. A transposed B is read along
// its rows, NR of them per panel, one panel at a time.
constexpr int64_t kPackRows = 8;
constexpr int64_t kPanelsPerGroup = 4;  // B is packed by the team in groups of panels

template <typename T>
void pack_b(const T* B, int64_t ldb, Trans trans, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            T* packed) {
  constexpr int NR = Tile<T>::kNr;
  if (trans == Trans::Yes) {
    for (int64_t q = 0; q < nc; q += NR) {
      const int cols = static_cast<int>(std::min<int64_t>(NR, nc - q));
      T* panel = packed + (q / NR) * kc * NR;
      for (int64_t k = 0; k < kc; ++k) {
        T* dst = panel + k * NR;
        const T* src = B + (j0 + q) * ldb + k0 + k;
        for (int j = 0; j < cols; ++j) dst[j] = src[j * ldb];
        for (int j = cols; j < NR; ++j) dst[j] = T(0);
      }
    }
    return;
  }
  for (int64_t k_first = 0; k_first < kc; k_first += kPackRows) {
    const int64_t k_last = std::min(kc, k_first + kPackRows);
    for (int64_t q = 0; q < nc; q += NR) {
      const int cols = static_cast<int>(std::min<int64_t>(NR, nc - q));
      T* panel = packed + (q / NR) * kc * NR;
      for (int64_t k = k_first; k < k_last; ++k) {
        T* dst = panel + k * NR;
        const T* src = B + (k0 + k) * ldb + j0 + q;
        if (k + kPackRows < kc) __builtin_prefetch(src + kPackRows * ldb);
        if (cols == NR) {  // a fixed-size copy: NR / kLanes vector moves
          std::memcpy(dst, src, NR * sizeof(T));
          continue;
        }
        for (int j = 0; j < cols; ++j) dst[j] = src[j];
        for (int j = cols; j < NR; ++j) dst[j] = T(0);
      }
    }
  }
}

template <typename T>
int64_t packed_b_size(int64_t N, int64_t K) {
  return std::min(K, Tile<T>::kKc) * round_up(std::min(N, Tile<T>::kNc), Tile<T>::kNr);
}

template <typename T>
int64_t packed_a_size(int64_t M, int64_t K) {
  return std::min(K, Tile<T>::kKc) * round_up(std::min(M, Tile<T>::kMc), kMr);
}

template <typename T>
T* align64(T* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<T*>((address + 63) / 64 * 64);
}

// One (mc x kc) block of A against the packed (kc x nc) block of B.
template <typename T>
void block_multiply(Trans trans_a, const T* A, int64_t lda, T alpha, int64_t i0, int64_t mc,
                    int64_t k0, int64_t kc, int64_t j0, int64_t nc, const T* packed_b, T* packed_a,
                    T* C, int64_t ldc, bool accumulate) {
  constexpr int NR = Tile<T>::kNr;
  pack_a(A, lda, trans_a, alpha, i0, mc, k0, kc, packed_a);
  for (int64_t ir = 0; ir < mc; ir += kMr) {
    const T* a_panel = packed_a + (ir / kMr) * kc * kMr;
    const int mr = static_cast<int>(std::min<int64_t>(kMr, mc - ir));
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
      const T* b_panel = packed_b + (jr / NR) * kc * NR;
      T* c_tile = C + (i0 + ir) * ldc + j0 + jr;
      if (trans_a == Trans::No) {
        micro_kernel<T, PanelLayout::kRowMajor>(kc, a_panel, b_panel, c_tile, ldc, mr, nr,
                                                accumulate, kc);
      } else {
        micro_kernel<T>(kc, a_panel, b_panel, c_tile, ldc, mr, nr, accumulate);
      }
    }
  }
}

}  // namespace

template <typename T>
int64_t gemm_workspace_size(int64_t M, int64_t N, int64_t K, int threads) {
  // Alignment slack: panels start on 64-byte boundaries.
  return packed_b_size<T>(N, K) + threads * packed_a_size<T>(M, K) + (threads + 1) * 64;
}

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, T* workspace,
          int threads) {
  using Sizes = Tile<T>;
  if (M == 0 || N == 0) return;
  if (beta != T(0) && beta != T(1)) {
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] *= beta;
    }
  }
  if (K == 0 || alpha == T(0)) {
    if (beta == T(0)) {
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = T(0);
      }
    }
    return;
  }
  T* packed_b = align64(workspace);
  T* packed_a_base = align64(packed_b + packed_b_size<T>(N, K));
  const int64_t a_size = packed_a_size<T>(M, K) + 64 / sizeof(T);
  // Each thread owns a contiguous range of rows, cut into blocks of at most kMc (a multiple of
  // MR), so the work splits evenly to within one MR panel.
  const int team = static_cast<int>(std::min<int64_t>(threads, (M + kMr - 1) / kMr));

  // One parallel region for the whole product: the team packs each B block together, waits for
  // it, multiplies its rows, and waits again before the block is overwritten. The rows are
  // shared by the team that actually runs, which can be smaller than asked (see team_size):
  // sharing them by `team` left some rows uncomputed under OMP_THREAD_LIMIT=1.
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const int slot = thread_id();
    const int64_t rows_per_thread = round_up(ceil_div(M, team_size()), kMr);
    T* packed_a = align64(packed_a_base + slot * a_size);
    const int64_t first = std::min(M, slot * rows_per_thread);
    const int64_t last = std::min(M, first + rows_per_thread);
    for (int64_t j0 = 0; j0 < N; j0 += Sizes::kNc) {
      const int64_t nc = std::min(Sizes::kNc, N - j0);
      const int64_t panels = (nc + Sizes::kNr - 1) / Sizes::kNr;
      for (int64_t k0 = 0; k0 < K; k0 += Sizes::kKc) {
        const int64_t kc = std::min(Sizes::kKc, K - k0);
        const bool accumulate = k0 > 0 || beta != T(0);
        // The team packs the block in groups of panels, each a few rows wide (see pack_b).
#pragma omp for schedule(static)
        for (int64_t group = 0; group < ceil_div(panels, kPanelsPerGroup); ++group) {
          const int64_t q = group * kPanelsPerGroup * Sizes::kNr;
          pack_b(B, ldb, trans_b, k0, kc, j0 + q,
                 std::min<int64_t>(kPanelsPerGroup * Sizes::kNr, nc - q),
                 packed_b + q / Sizes::kNr * kc * Sizes::kNr);
        }  // implicit barrier: the whole B block is packed
        for (int64_t i0 = first; i0 < last; i0 += Sizes::kMc) {
          block_multiply(trans_a, A, lda, alpha, i0, std::min(Sizes::kMc, last - i0), k0, kc, j0,
                         nc, packed_b, packed_a, C, ldc, accumulate);
        }
#pragma omp barrier
      }
    }
  }
}

template <typename T>
void gemm_on_all_threads(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                         const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
                         int64_t ldc) {
  const int threads = max_threads();
  Scratch<T> workspace(gemm_workspace_size<T>(M, N, K, threads));
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, workspace.get(), threads);
}

template int64_t gemm_workspace_size<float>(int64_t, int64_t, int64_t, int);
template int64_t gemm_workspace_size<double>(int64_t, int64_t, int64_t, int);
template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t, float*, int);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t, double*, int);
template void gemm_on_all_threads<float>(Trans, Trans, int64_t, int64_t, int64_t, float,
                                         const float*, int64_t, const float*, int64_t, float,
                                         float*, int64_t);
template void gemm_on_all_threads<double>(Trans, Trans, int64_t, int64_t, int64_t, double,
                                          const double*, int64_t, const double*, int64_t, double,
                                          double*, int64_t);

}  // namespace CK_ISA
}  // namespace ck
