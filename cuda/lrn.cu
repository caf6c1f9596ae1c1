// Cross-channel local response normalization forward and backward on the GPU; csrc/lrn.cpp is the
// CPU twin and holds the formulas (PyTorch's convention):
//   D_c = k + alpha / size * sum_{j in W(c)} x_j^2,  W(c) = [c - size/2, c + (size-1)/2] in [0, C)
//   y_c = x_c D_c^-beta
//   dx_i = dy_i D_i^-beta - 2 alpha beta / size * x_i * sum_{c : i in W(c)} dy_c x_c D_c^(-beta-1)
//
// Legend: N batch, C channels, H W spatial size, HW = H * W.
// Thread mapping: one thread per spatial position (n, h, w), positions fastest in a warp so every
// load is coalesced; the thread walks the channels, summing each window afresh (size loads, from
// cache). Backward takes two launches: t_c = dy_c x_c D_c^(-beta-1) into a workspace, then dx.
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// d^-beta; AlexNet's beta = 0.75 without pow.
template <typename T>
__device__ __forceinline__ T inverse_power(T d, T beta) {
  if (beta == T(0.75)) return T(1) / device_sqrt(d * device_sqrt(d));
  return device_pow(d, -beta);
}

// sum_{j in [c - before, c + after], clipped to [0, C)} v[j * HW], added in channel order as the
// CPU kernel does (a running sum would be cheaper but can cancel catastrophically).
template <typename T, typename Value>
__device__ __forceinline__ T window_sum(const LrnParams& p, int64_t c, int64_t before,
                                        int64_t after, Value v) {
  T sum = 0;
  const int64_t hi = device_min(c + after, p.C - 1);
  for (int64_t j = device_max<int64_t>(c - before, 0); j <= hi; ++j) sum += v(j);
  return sum;
}

// D_c at one position (x points at channel 0 there; channels are HW apart).
template <typename T>
__device__ __forceinline__ T denominator(const LrnParams& p, const T* x, int64_t HW, int64_t c) {
  const T scale = static_cast<T>(p.alpha / static_cast<double>(p.size));
  const T sum = window_sum<T>(p, c, p.size / 2, (p.size - 1) / 2,
                              [&](int64_t j) { return x[j * HW] * x[j * HW]; });
  return static_cast<T>(p.k) + scale * sum;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) lrn_forward_kernel(LrnParams p, const T* x, T* y) {
  const int64_t HW = p.H * p.W, total = p.N * HW, step = int64_t(gridDim.x) * blockDim.x;
  const T beta = static_cast<T>(p.beta);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t at = i / HW * p.C * HW + i % HW;
    for (int64_t c = 0; c < p.C; ++c) {
      y[at + c * HW] = x[at + c * HW] * inverse_power(denominator(p, x + at, HW, c), beta);
    }
  }
}

// t_c = dy_c x_c D_c^(-beta-1), the terms of the backward window sums.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    lrn_backward_terms_kernel(LrnParams p, const T* dy, const T* x, T* t) {
  const int64_t HW = p.H * p.W, total = p.N * HW, step = int64_t(gridDim.x) * blockDim.x;
  const T beta = static_cast<T>(p.beta);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t at = i / HW * p.C * HW + i % HW;
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t e = at + c * HW;
      const T d = denominator(p, x + at, HW, c);
      t[e] = dy[e] * x[e] * inverse_power(d, beta) / d;
    }
  }
}

// dx_i = dy_i D_i^-beta - coef x_i sum_{c in [i - (size-1)/2, i + size/2]} t_c.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    lrn_backward_kernel(LrnParams p, const T* dy, const T* x, const T* t, T* dx) {
  const int64_t HW = p.H * p.W, total = p.N * HW, step = int64_t(gridDim.x) * blockDim.x;
  const T beta = static_cast<T>(p.beta);
  const T coef = static_cast<T>(2 * p.alpha * p.beta / static_cast<double>(p.size));
  const int64_t before = (p.size - 1) / 2, after = p.size / 2;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t at = i / HW * p.C * HW + i % HW;
    const T* t_at = t + at;
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t e = at + c * HW;
      const T sum = window_sum<T>(p, c, before, after, [&](int64_t j) { return t_at[j * HW]; });
      dx[e] = dy[e] * inverse_power(denominator(p, x + at, HW, c), beta) - coef * x[e] * sum;
    }
  }
}

}  // namespace

template <typename T>
void lrn_forward(const LrnParams& p, const T* x, T* y) {
  const int64_t positions = p.N * p.H * p.W;
  if (positions * p.C == 0) return;
  launch("lrn_forward", &lrn_forward_kernel<T>, grid_for(positions, kThreads), dim3(kThreads), p, x,
         y);
}

template <typename T>
void lrn_backward(const LrnParams& p, const T* dy, const T* x, T* dx) {
  const int64_t positions = p.N * p.H * p.W;
  if (positions * p.C == 0) return;
  Workspace<T> t(positions * p.C);
  launch("lrn_backward_terms", &lrn_backward_terms_kernel<T>, grid_for(positions, kThreads),
         dim3(kThreads), p, dy, x, t.get());
  launch("lrn_backward", &lrn_backward_kernel<T>, grid_for(positions, kThreads), dim3(kThreads), p,
         dy, x, static_cast<const T*>(t.get()), dx);
}

template void lrn_forward<float>(const LrnParams&, const float*, float*);
template void lrn_forward<double>(const LrnParams&, const double*, double*);
template void lrn_backward<float>(const LrnParams&, const float*, const float*, float*);
template void lrn_backward<double>(const LrnParams&, const double*, const double*, double*);

}  // namespace cuda
}  // namespace ck
