// Local contrast normalization (Jarrett et al. 2009) forward and backward on the GPU; csrc/lcn.cpp
// is the CPU twin and holds the formulas, the border correction and the shift by x[0, 0, 0].
//
// Legend: N batch, C channels, H W image size, HW = H * W, r = size / 2.
// Thread mapping: one block per sample (kThreads threads), every stage a block-strided loop over
// the HW positions (channel loops inside), stages separated by __syncthreads; the mean of sigma
// (and, backward, the share of the gradient routed through it) is a block_sum. The sample's maps
// live in a workspace: kMaps planes of HW per sample. A setup launch first computes the Gaussian
// taps and the inverse border masks, which every sample shares.
#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaps = 6;  // mean, sigma, a, b, tmp, inv_d

// Shared setup, in a workspace of size + H + W elements: g (the normalised 1-D taps), then
// 1 / (the mass of g inside [0, H)) per row and per column.
template <typename T>
__global__ void __launch_bounds__(kThreads) lcn_setup_kernel(LcnParams p, T* g, T* inv_mask) {
  if (threadIdx.x == 0) {
    // (d / sigma)^2, not d^2 / sigma^2, which underflows for tiny sigma (see lcn.cpp).
    const int64_t r = p.size / 2;
    double sum = 0;
    for (int64_t i = 0; i < p.size; ++i) {
      const double z = static_cast<double>(i - r) / p.sigma;
      sum += exp(-0.5 * z * z);
    }
    for (int64_t i = 0; i < p.size; ++i) {
      const double z = static_cast<double>(i - r) / p.sigma;
      g[i] = static_cast<T>(exp(-0.5 * z * z) / sum);
    }
  }
  __syncthreads();
  const int64_t r = p.size / 2;
  for (int64_t j = threadIdx.x; j < p.H + p.W; j += blockDim.x) {
    const int64_t i = j < p.H ? j : j - p.H, n = j < p.H ? p.H : p.W;
    T mass = 0;
    const int64_t t_hi = device_min(p.size, n - i + r);
    for (int64_t t = device_max<int64_t>(0, r - i); t < t_hi; ++t) mass += g[t];
    inv_mask[j] = T(1) / mass;
  }
}

// One sample's view of the workspace and the shared setup.
template <typename T>
struct Sample {
  const LcnParams& p;
  int64_t HW;
  const T* g;
  const T* inv_mask_h;  // (H)
  const T* inv_mask_w;  // (W)
  T *mean, *sigma, *a, *b, *tmp, *inv_d;

  __device__ Sample(const LcnParams& p_, const T* setup, T* maps)
      : p(p_),
        HW(p_.H * p_.W),
        g(setup),
        inv_mask_h(setup + p_.size),
        inv_mask_w(setup + p_.size + p_.H) {
    mean = maps + blockIdx.x * kMaps * HW;
    sigma = mean + HW;
    a = sigma + HW;
    b = a + HW;
    tmp = b + HW;
    inv_d = tmp + HW;
  }

  // out = G * in with zero padding (divided by Nmask when `masked`): a horizontal pass into tmp,
  // then a vertical one. Reads `in` after the caller's __syncthreads; ends with one, so `out` is
  // ready for everyone.
  __device__ void filter(const T* in, T* out, bool masked) const {
    const int64_t r = p.size / 2;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      const int64_t h = i / p.W, w = i % p.W;
      const int64_t t_hi = device_min(p.size, p.W - w + r);
      T sum = 0;
      for (int64_t t = device_max<int64_t>(0, r - w); t < t_hi; ++t) {
        sum += g[t] * in[h * p.W + w + t - r];
      }
      tmp[i] = sum;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      const int64_t h = i / p.W, w = i % p.W;
      const int64_t t_hi = device_min(p.size, p.H - h + r);
      T sum = 0;
      for (int64_t t = device_max<int64_t>(0, r - h); t < t_hi; ++t) {
        sum += g[t] * tmp[(h + t - r) * p.W + w];
      }
      out[i] = masked ? sum * inv_mask_h[h] * inv_mask_w[w] : sum;
    }
    __syncthreads();
  }

  // Fills mean and sigma for sample x (C, H, W) shifted by x[0]; returns c, the mean of sigma.
  __device__ T statistics(const T* x, T shift) {
    const T inv_c = T(1) / static_cast<T>(p.C);
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      T sum = 0;
      for (int64_t c = 0; c < p.C; ++c) sum += x[c * HW + i] - shift;
      a[i] = sum * inv_c;
    }
    __syncthreads();
    filter(a, mean, true);
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      T sum = 0;
      for (int64_t c = 0; c < p.C; ++c) {
        const T v = (x[c * HW + i] - shift) - mean[i];
        sum += v * v;
      }
      a[i] = sum * inv_c;
    }
    __syncthreads();
    filter(a, sigma, true);
    T total = 0;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
      sigma[i] = device_sqrt(device_max(sigma[i], T(0)));
      total += sigma[i];
    }
    return block_sum(total) / static_cast<T>(HW);  // block_sum synchronises
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    lcn_forward_kernel(LcnParams p, const T* setup, T* maps, const T* x, T* y) {
  Sample<T> s(p, setup, maps);
  const int64_t at = blockIdx.x * p.C * s.HW;
  const T shift = x[at];
  const T c_mean = s.statistics(x + at, shift);
  const T eps = static_cast<T>(p.eps);
  for (int64_t i = threadIdx.x; i < s.HW; i += blockDim.x) {
    const T inv_d = T(1) / device_max(device_max(c_mean, s.sigma[i]), eps);
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t e = at + c * s.HW + i;
      y[e] = ((x[e] - shift) - s.mean[i]) * inv_d;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    lcn_backward_kernel(LcnParams p, const T* setup, T* maps, const T* dy, const T* x, T* dx) {
  Sample<T> s(p, setup, maps);
  const int64_t HW = s.HW, at = blockIdx.x * p.C * HW;
  const T shift = x[at];
  const T c_mean = s.statistics(x + at, shift);
  const T eps = static_cast<T>(p.eps), inv_c = T(1) / static_cast<T>(p.C);
  // dd = -sum_c dy v / d^2, routed to sigma or to c, whichever is the max (ties to sigma).
  T dc = 0;
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    const T inv_d = s.inv_d[i] = T(1) / device_max(device_max(c_mean, s.sigma[i]), eps);
    T sum = 0;
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t e = at + c * HW + i;
      sum -= dy[e] * ((x[e] - shift) - s.mean[i]);
    }
    const T dd = sum * inv_d * inv_d;
    const bool sigma_wins = s.sigma[i] >= c_mean && s.sigma[i] >= eps;
    s.a[i] = sigma_wins ? dd : T(0);
    if (!sigma_wins && c_mean >= eps) dc += dd;
  }
  const T dc_share = block_sum(dc) / static_cast<T>(HW);
  // b = ds / Nmask with ds = dsigma / (2 sigma), then a = G * b (the transpose of the forward
  // filter-then-divide: divide, then filter).
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    const T dsigma = s.a[i] + dc_share;
    const T ds = s.sigma[i] > T(0) ? dsigma / (2 * s.sigma[i]) : T(0);
    s.b[i] = ds * s.inv_mask_h[i / p.W] * s.inv_mask_w[i % p.W];
  }
  __syncthreads();
  s.filter(s.b, s.a, false);
  // dx = dv = dy / d + (2 / C) v (G * ds / Nmask); b = -sum_c dv
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    T sum = 0;
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t e = at + c * HW + i;
      const T v = (x[e] - shift) - s.mean[i];
      const T dv = dy[e] * s.inv_d[i] + 2 * inv_c * v * s.a[i];
      dx[e] = dv;
      sum -= dv;
    }
    s.b[i] = sum * s.inv_mask_h[i / p.W] * s.inv_mask_w[i % p.W];
  }
  __syncthreads();
  // dx += (1 / C) G * (b / Nmask)
  s.filter(s.b, s.a, false);
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    for (int64_t c = 0; c < p.C; ++c) dx[at + c * HW + i] += inv_c * s.a[i];
  }
}

}  // namespace

template <typename T>
void lcn_forward(const LcnParams& p, const T* x, T* y) {
  if (p.N * p.C * p.H * p.W == 0) return;
  Workspace<T> setup(p.size + p.H + p.W), maps(p.N * kMaps * p.H * p.W);
  launch("lcn_setup", &lcn_setup_kernel<T>, dim3(1), dim3(kThreads), p, setup.get(),
         setup.get() + p.size);
  launch("lcn_forward", &lcn_forward_kernel<T>, dim3(static_cast<unsigned>(p.N)), dim3(kThreads), p,
         static_cast<const T*>(setup.get()), maps.get(), x, y);
}

template <typename T>
void lcn_backward(const LcnParams& p, const T* dy, const T* x, T* dx) {
  if (p.N * p.C * p.H * p.W == 0) return;
  Workspace<T> setup(p.size + p.H + p.W), maps(p.N * kMaps * p.H * p.W);
  launch("lcn_setup", &lcn_setup_kernel<T>, dim3(1), dim3(kThreads), p, setup.get(),
         setup.get() + p.size);
  launch("lcn_backward", &lcn_backward_kernel<T>, dim3(static_cast<unsigned>(p.N)), dim3(kThreads),
         p, static_cast<const T*>(setup.get()), maps.get(), dy, x, dx);
}

template void lcn_forward<float>(const LcnParams&, const float*, float*);
template void lcn_forward<double>(const LcnParams&, const double*, double*);
template void lcn_backward<float>(const LcnParams&, const float*, const float*, float*);
template void lcn_backward<double>(const LcnParams&, const double*, const double*, double*);

}  // namespace cuda
}  // namespace ck
