// 2-D convolution forward, backward-input, backward-weight and backward-bias on the GPU, as
// implicit GEMMs: the im2col matrix is never built; each tile loader computes which input element
// (or zero) an entry of the GEMM operand is. csrc/conv2d.cpp is the CPU twin.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter size, P Q output size,
// G groups, Cg = C / G, Kg = K / G, RS = R * S, PQ = P * Q.
//
// Per group g, each direction is one GEMM  out[m, n] = sum_k A[m, k] B[k, n]:
//   forward          m = filter k  (Kg),  n = (n, p, q) (N PQ),  k = (c, r, s) (Cg RS)
//   backward-input   m = channel c (Cg),  n = (n, h, w) (N HW),  k = (k, r, s) (Kg RS)
//   backward-weight  m = filter k  (Kg),  n = (c, r, s) (Cg RS), k = (n, p, q) (N PQ), split
//                    into kSplitK-deep slices summed afterwards in a fixed order
// Backward-input reads dy at p = (h + pad - r dilation) / stride only where that divides
// exactly: strided backward gathers, it never zero-stuffs dy.
//
// Thread mapping (gemm_tile_kernel): a block of 256 threads computes a 64 x 64 tile of out; the
// thread (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 entries m = ty + 16 i, n = tx + 16 j, so
// neighbouring threads read neighbouring shared-memory words. The k loop steps kTileK at a time:
// all 256 threads load the A and B tiles (kTileK x 64 each) into shared memory, synchronise, and
// each accumulates its 4 x 4 outer products from registers. Blocks stride over the tiles in x
// (n), y (m) and z (group, or group x k-slice), so any size fits the grid limits.
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTileM = 64, kTileN = 64, kTileK = 8;
constexpr int kMicro = 4;          // each thread's kMicro x kMicro entries
constexpr int64_t kSplitK = 4096;  // backward-weight: GEMM depth per slice

struct GemmShape {
  int64_t M, N, K;  // per batch
  int64_t batches;  // groups, or groups x k-slices
};

// out (per batch z) = A B over k in [problem.k_begin(z), problem.k_end(z)).
template <typename T, typename Problem>
__global__ void __launch_bounds__(kThreads) gemm_tile_kernel(Problem problem) {
  __shared__ T a_tile[kTileK][kTileM];
  __shared__ T b_tile[kTileK][kTileN];
  const GemmShape shape = problem.shape();
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const int64_t tiles_m = ceil_div(shape.M, kTileM), tiles_n = ceil_div(shape.N, kTileN);
  for (int64_t z = blockIdx.z; z < shape.batches; z += gridDim.z) {
    const int64_t k_begin = problem.k_begin(z), k_end = problem.k_end(z);
    for (int64_t tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
      for (int64_t tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
        const int64_t m0 = tm * kTileM, n0 = tn * kTileN;
        T acc[kMicro][kMicro] = {};
        for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
          for (int e = tid; e < kTileK * kTileM; e += kThreads) {
            const int kk = e / kTileM, mm = e % kTileM;
            const int64_t m = m0 + mm, k = k0 + kk;
            a_tile[kk][mm] = m < shape.M && k < k_end ? problem.a(z, m, k) : T(0);
          }
          for (int e = tid; e < kTileK * kTileN; e += kThreads) {
            const int kk = e / kTileN, nn = e % kTileN;
            const int64_t n = n0 + nn, k = k0 + kk;
            b_tile[kk][nn] = n < shape.N && k < k_end ? problem.b(z, k, n) : T(0);
          }
          __syncthreads();
#pragma unroll
          for (int kk = 0; kk < kTileK; ++kk) {
            T a[kMicro], b[kMicro];
#pragma unroll
            for (int i = 0; i < kMicro; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < kMicro; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < kMicro; ++i) {
#pragma unroll
              for (int j = 0; j < kMicro; ++j) acc[i][j] += a[i] * b[j];
            }
          }
          __syncthreads();  // the tiles are overwritten next step
        }
#pragma unroll
        for (int i = 0; i < kMicro; ++i) {
#pragma unroll
          for (int j = 0; j < kMicro; ++j) {
            const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < shape.M && n < shape.N) problem.store(z, m, n, acc[i][j]);
          }
        }
      }
    }
  }
}

// Entry (crs, npq) of group g's implicit im2col: x[n, g Cg + c, oh sh - ph + r dh,
// ow sw - pw + s dw] for crs = (c, r, s) and npq = (n, oh, ow), or 0 on the padding. Forward
// reads it as B, backward-weight as B transposed.
template <typename T>
__device__ __forceinline__ T im2col_entry(const Conv2dParams& p, const T* x, int64_t g, int64_t crs,
                                          int64_t npq) {
  const int64_t c = crs / (p.R * p.S), r = crs / p.S % p.R, s = crs % p.S;
  const int64_t n = npq / (p.P * p.Q), oh = npq / p.Q % p.P, ow = npq % p.Q;
  const int64_t h = oh * p.stride.h - p.pad.h + r * p.dilation.h;
  const int64_t w = ow * p.stride.w - p.pad.w + s * p.dilation.w;
  if (h < 0 || h >= p.H || w < 0 || w >= p.W) return T(0);
  return x[((n * p.C + g * (p.C / p.groups) + c) * p.H + h) * p.W + w];
}

// Forward: A = w (Kg x Cg RS per group), B = the implicit im2col of x, out = y (+ bias), through
// the ReLU where p.relu asks for it (as relu.cu computes it: NaN stays, -0 becomes 0).
template <typename T>
struct ForwardProblem {
  Conv2dParams p;
  const T* x;
  const T* w;
  const T* bias;  // or null
  T* y;

  __device__ int64_t cg() const { return p.C / p.groups; }
  __device__ int64_t kg() const { return p.K / p.groups; }
  __device__ GemmShape shape() const { return {kg(), p.N * p.P * p.Q, cg() * p.R * p.S, p.groups}; }
  __device__ int64_t k_begin(int64_t) const { return 0; }
  __device__ int64_t k_end(int64_t) const { return cg() * p.R * p.S; }
  __device__ T a(int64_t g, int64_t m, int64_t k) const {
    return w[(g * kg() + m) * cg() * p.R * p.S + k];
  }
  __device__ T b(int64_t g, int64_t k, int64_t n) const { return im2col_entry(p, x, g, k, n); }
  __device__ void store(int64_t g, int64_t m, int64_t n, T v) const {
    const int64_t k = g * kg() + m, n_ = n / (p.P * p.Q), pq = n % (p.P * p.Q);
    const T out = bias != nullptr ? v + bias[k] : v;
    y[(n_ * p.K + k) * p.P * p.Q + pq] = p.relu && !(out > T(0)) && out == out ? T(0) : out;
  }
};

// Backward-input: A = w read transposed (Cg x Kg RS per group), B = dy gathered, out = dx.
template <typename T>
struct BackwardInputProblem {
  Conv2dParams p;
  const T* dy;
  const T* w;
  T* dx;

  __device__ int64_t cg() const { return p.C / p.groups; }
  __device__ int64_t kg() const { return p.K / p.groups; }
  __device__ GemmShape shape() const { return {cg(), p.N * p.H * p.W, kg() * p.R * p.S, p.groups}; }
  __device__ int64_t k_begin(int64_t) const { return 0; }
  __device__ int64_t k_end(int64_t) const { return kg() * p.R * p.S; }
  __device__ T a(int64_t g, int64_t c, int64_t k) const {
    const int64_t f = k / (p.R * p.S), rs = k % (p.R * p.S);
    return w[((g * kg() + f) * cg() + c) * p.R * p.S + rs];
  }
  // One tap's output index along a dimension: (i + pad - r dilation) / stride when that is an
  // integer in [0, out), else -1.
  __device__ static int64_t source(int64_t i, int64_t r, int64_t stride, int64_t pad,
                                   int64_t dilation, int64_t out) {
    const int64_t shifted = i + pad - r * dilation;
    if (shifted < 0 || shifted % stride != 0) return -1;
    const int64_t o = shifted / stride;
    return o < out ? o : -1;
  }
  __device__ T b(int64_t g, int64_t k, int64_t n) const {
    const int64_t f = k / (p.R * p.S), r = k / p.S % p.R, s = k % p.S;
    const int64_t n_ = n / (p.H * p.W), h = n / p.W % p.H, w_ = n % p.W;
    const int64_t oh = source(h, r, p.stride.h, p.pad.h, p.dilation.h, p.P);
    const int64_t ow = source(w_, s, p.stride.w, p.pad.w, p.dilation.w, p.Q);
    if (oh < 0 || ow < 0) return T(0);
    return dy[((n_ * p.K + g * kg() + f) * p.P + oh) * p.Q + ow];
  }
  __device__ void store(int64_t g, int64_t c, int64_t n, T v) const {
    const int64_t n_ = n / (p.H * p.W), hw = n % (p.H * p.W);
    dx[(n_ * p.C + g * cg() + c) * p.H * p.W + hw] = v;
  }
};

// Backward-weight: A = dy (Kg x N PQ per group), B = the implicit im2col of x transposed,
// out = one k-slice's partial dw; batch z = g * slices + slice.
template <typename T>
struct BackwardWeightProblem {
  Conv2dParams p;
  const T* x;
  const T* dy;
  T* partial;  // (slices, K, Cg RS)
  int64_t slices;

  __device__ int64_t cg() const { return p.C / p.groups; }
  __device__ int64_t kg() const { return p.K / p.groups; }
  __device__ int64_t depth() const { return p.N * p.P * p.Q; }
  __device__ GemmShape shape() const {
    return {kg(), cg() * p.R * p.S, depth(), p.groups * slices};
  }
  __device__ int64_t k_begin(int64_t z) const { return z % slices * kSplitK; }
  __device__ int64_t k_end(int64_t z) const { return device_min(k_begin(z) + kSplitK, depth()); }
  __device__ T a(int64_t z, int64_t m, int64_t k) const {
    const int64_t g = z / slices, n_ = k / (p.P * p.Q), pq = k % (p.P * p.Q);
    return dy[(n_ * p.K + g * kg() + m) * p.P * p.Q + pq];
  }
  __device__ T b(int64_t z, int64_t k, int64_t n) const {
    return im2col_entry(p, x, z / slices, n, k);
  }
  __device__ void store(int64_t z, int64_t m, int64_t n, T v) const {
    const int64_t g = z / slices, slice = z % slices;
    partial[(slice * p.K + g * kg() + m) * cg() * p.R * p.S + n] = v;
  }
};

// dw[i] = sum over slices of partial[slice][i], in slice order (deterministic).
// Thread mapping: one thread per weight element, grid-stride.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    sum_slices_kernel(const T* partial, int64_t slices, int64_t size, T* dw) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < size; i += step) {
    T sum = partial[i];
    for (int64_t s = 1; s < slices; ++s) sum += partial[s * size + i];
    dw[i] = sum;
  }
}

// db[k] = sum over (n, p, q) of dy. Thread mapping: one block per filter k (grid-strided), its
// threads striding over (n, pq) with pq fastest, then a block_sum.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_bias_kernel(Conv2dParams p, const T* dy, T* db) {
  const int64_t PQ = p.P * p.Q;
  for (int64_t k = blockIdx.x; k < p.K; k += gridDim.x) {
    T sum = 0;
    for (int64_t i = threadIdx.x; i < p.N * PQ; i += blockDim.x) {
      sum += dy[(i / PQ * p.K + k) * PQ + i % PQ];
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) db[k] = sum;
  }
}

// The grid for a GEMM shape: tiles in x and y, batches in z, each capped at the grid limits
// (the kernel strides over the rest).
inline dim3 gemm_grid(int64_t M, int64_t N, int64_t batches) {
  auto cap = [](int64_t v, int64_t limit) { return static_cast<unsigned>(v < limit ? v : limit); };
  return dim3(cap(ceil_div(N, kTileN), 1 << 30), cap(ceil_div(M, kTileM), 65535),
              cap(batches, 65535));
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  if (p.N * p.K * p.P * p.Q == 0) return;
  const ForwardProblem<T> problem{p, x, w, b, y};
  launch("conv2d_forward", &gemm_tile_kernel<T, ForwardProblem<T>>,
         gemm_grid(p.K / p.groups, p.N * p.P * p.Q, p.groups), dim3(kThreads), problem);
}

template <typename T>
void conv2d_backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  if (p.N * p.C * p.H * p.W == 0) return;
  const BackwardInputProblem<T> problem{p, dy, w, dx};
  launch("conv2d_backward_input", &gemm_tile_kernel<T, BackwardInputProblem<T>>,
         gemm_grid(p.C / p.groups, p.N * p.H * p.W, p.groups), dim3(kThreads), problem);
}

template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  const int64_t size = p.K * (p.C / p.groups) * p.R * p.S;
  if (size == 0) return;
  const int64_t slices = ceil_div(p.N * p.P * p.Q, kSplitK);
  Workspace<T> partial(slices * size);
  const BackwardWeightProblem<T> problem{p, x, dy, partial.get(), slices};
  launch("conv2d_backward_weight", &gemm_tile_kernel<T, BackwardWeightProblem<T>>,
         gemm_grid(p.K / p.groups, size / p.K, p.groups * slices), dim3(kThreads), problem);
  launch("conv2d_backward_weight (sum of slices)", &sum_slices_kernel<T>, grid_for(size, kThreads),
         dim3(kThreads), static_cast<const T*>(partial.get()), slices, size, dw);
}

template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, const T* dy, T* db) {
  if (p.K == 0) return;
  launch("conv2d_backward_bias", &backward_bias_kernel<T>,
         dim3(static_cast<unsigned>(p.K < 65535 ? p.K : 65535)), dim3(kThreads), p, dy, db);
}

#define CK_INSTANTIATE(T)                                                                 \
  template void conv2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input<T>(const Conv2dParams&, const T*, const T*, T*);    \
  template void conv2d_backward_weight<T>(const Conv2dParams&, const T*, const T*, T*);   \
  template void conv2d_backward_bias<T>(const Conv2dParams&, const T*, T*);
CK_INSTANTIATE(float)
CK_INSTANTIATE(double)
#undef CK_INSTANTIATE

}  // namespace cuda
}  // namespace ck
