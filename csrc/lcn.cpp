// Local contrast normalization (Jarrett, Kavukcuoglu, Ranzato & LeCun 2009), per sample:
//   m = (G * mean_c x) / Nmask               subtractive: local weighted mean over all channels
//   v = x - m
//   sigma = sqrt((G * mean_c v^2) / Nmask)   divisive: local weighted standard deviation
//   c = mean over the image of sigma
//   y = v / max(c, sigma, eps)
// G is the normalised size x size Gaussian, applied with zeros outside the image; Nmask is the
// sum of the taps of G that fall inside the image (border correction), so a constant image maps
// to 0. G = g g^T for the normalised 1-D Gaussian g, so every filter is two 1-D passes, and
// Nmask = nrow nrow^T likewise. LCN ignores a constant added to a sample, so the kernel works on
// x - x[0, 0, 0]: a constant image then gives v = 0 exactly, not rounding residue blown up by
// 1 / eps, and large offsets lose no precision.
//
// Backward, with d = max(c, sigma, eps) and ties resolved towards sigma, then c:
//   dd = -sum_c dy v / d^2;  dsigma = [d is sigma] dd + (sum of dd where d is c) / HW
//   ds = dsigma / (2 sigma), or 0 where sigma == 0
//   dv = dy / d + (2 / C) v (G * (ds / Nmask))
//   dx = dv - (1 / C) G * (sum_c dv / Nmask)
// G is symmetric, so its transpose in the chain rule is G itself.
//
// Legend: N batch, C channels, H W image size, HW = H * W. Threads split the batch.
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// The 1-D Gaussian taps g[0 : size] (centre at size / 2), normalised to sum 1.
template <typename T>
void gaussian_taps(const LcnParams& p, T* g) {
  const int64_t r = p.size / 2;
  // (d / sigma)^2, not d^2 / sigma^2: sigma^2 underflows to 0 for sigma below ~1e-154, and the
  // centre tap would be exp(-0 / 0).
  auto tap = [&](int64_t i) {
    const double z = static_cast<double>(i - r) / p.sigma;
    return std::exp(-0.5 * z * z);
  };
  double sum = 0;
  for (int64_t i = 0; i < p.size; ++i) sum += tap(i);
  for (int64_t i = 0; i < p.size; ++i) g[i] = static_cast<T>(tap(i) / sum);
}

// inside[i] (i < n) = sum of the taps g that land inside [0, n) when centred at i.
template <typename T>
void inside_mass(const T* g, int64_t size, int64_t n, T* inside) {
  const int64_t r = size / 2;
  for (int64_t i = 0; i < n; ++i) {
    T sum = 0;
    for (int64_t t = std::max<int64_t>(0, r - i); t < std::min(size, n - i + r); ++t) sum += g[t];
    inside[i] = sum;
  }
}

// out (H, W) = G * in with zero padding, as a horizontal pass into tmp then a vertical pass.
template <typename T>
void gaussian_filter(const LcnParams& p, const T* g, const T* in, T* tmp, T* out) {
  const int64_t r = p.size / 2, H = p.H, W = p.W;
  for (int64_t h = 0; h < H; ++h) {
    const T* in_h = in + h * W;
    T* tmp_h = tmp + h * W;
    for (int64_t w = 0; w < W; ++w) {
      const int64_t t_lo = std::max<int64_t>(0, r - w), t_hi = std::min(p.size, W - w + r);
      T sum = 0;
      for (int64_t t = t_lo; t < t_hi; ++t) sum += g[t] * in_h[w + t - r];
      tmp_h[w] = sum;
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    T* out_h = out + h * W;
    for (int64_t w = 0; w < W; ++w) out_h[w] = T(0);
    const int64_t t_lo = std::max<int64_t>(0, r - h), t_hi = std::min(p.size, H - h + r);
    for (int64_t t = t_lo; t < t_hi; ++t) {
      const T gt = g[t];
      const T* tmp_h = tmp + (h + t - r) * W;
      for (int64_t w = 0; w < W; ++w) out_h[w] += gt * tmp_h[w];
    }
  }
}

// One thread's (H, W) maps for one sample, carved from `base`, and the shared border correction.
template <typename T>
struct LcnMaps {
  static constexpr int64_t kMaps = 5;
  T* mean;              // m
  T* sigma;             // local standard deviation
  T* a;                 // work map
  T* b;                 // work map
  T* tmp;               // filter temporary
  T shift = 0;          // x[0, 0, 0] of the sample; v = (x - shift) - mean
  const T* inv_mask_h;  // (H): 1 / row factor of Nmask
  const T* inv_mask_w;  // (W): 1 / column factor of Nmask
  LcnMaps(const LcnParams& p, T* base, const T* inv_masks) {
    const int64_t HW = p.H * p.W;
    mean = base;
    sigma = mean + HW;
    a = sigma + HW;
    b = a + HW;
    tmp = b + HW;
    inv_mask_h = inv_masks;
    inv_mask_w = inv_masks + p.H;
  }
};

// out = in / Nmask, elementwise over (H, W).
template <typename T>
void divide_by_mask(const LcnParams& p, const LcnMaps<T>& maps, const T* in, T* out) {
  for (int64_t h = 0; h < p.H; ++h) {
    for (int64_t w = 0; w < p.W; ++w) {
      out[h * p.W + w] = in[h * p.W + w] * maps.inv_mask_h[h] * maps.inv_mask_w[w];
    }
  }
}

// Channel c (0-based) into the running statistics over the channels at every position, by
// Welford's update with xs = x - shift and w = 1 / (c + 1): mean += (xs - mean) w and
// m2 += (xs - mean before) (xs - mean after). After the last channel, m2 = sum_c (xs - mean)^2
// with no cancellation (sum xs^2 - C mean^2 would lose it all where the spread is small beside
// the mean), from one read of x rather than a pass for the mean and a second one for the
// squares. The arrays are distinct, which GCC cannot prove of the maps: without __restrict
// parameters these loops stay scalar.
template <typename T>
void add_channel(const T* __restrict x_c, T shift, T w, int64_t HW, T* __restrict mean,
                 T* __restrict m2) {
  for (int64_t i = 0; i < HW; ++i) {
    const T xs = x_c[i] - shift, before = xs - mean[i];
    mean[i] += before * w;
    m2[i] += before * (xs - mean[i]);
  }
}

// The same with dy: also its running mean dy_mean and the co-moment
// co += (xs - mean before) (dy - dy_mean after), which ends as sum_c (xs - mean) dy.
template <typename T>
void add_channel(const T* __restrict x_c, const T* __restrict dy_c, T shift, T w, int64_t HW,
                 T* __restrict mean, T* __restrict m2, T* __restrict dy_mean, T* __restrict co) {
  for (int64_t i = 0; i < HW; ++i) {
    const T xs = x_c[i] - shift, before = xs - mean[i];
    mean[i] += before * w;
    m2[i] += before * (xs - mean[i]);
    dy_mean[i] += (dy_c[i] - dy_mean[i]) * w;
    co[i] += before * (dy_c[i] - dy_mean[i]);
  }
}

// Fills maps.shift, maps.mean and maps.sigma for one sample x (C, H, W) and returns c, the mean
// of sigma, from one read of x: with mu = mean_c (x - shift) and m2 = sum_c (x - shift - mu)^2
// (add_channel), mean_c v^2 = m2 / C + (mu - m)^2 for v = x - shift - m. With dy (backward), the
// same read of x and dy also leaves sum_c dy v in dy_v (= co + (mu - m) sum_c dy), sum_c dy in
// dy_sum (C times dy's running mean) and mu in x_mean, so that backward reads x and dy only once
// more.
template <typename T>
T local_statistics(const LcnParams& p, const T* g, const T* x, LcnMaps<T>& maps,
                   const T* dy = nullptr, T* dy_v = nullptr, T* dy_sum = nullptr,
                   T* x_mean = nullptr) {
  const int64_t HW = p.H * p.W;
  const T inv_c = T(1) / static_cast<T>(p.C);
  const T shift = maps.shift = x[0];
  T* mu = maps.a;
  T* m2 = maps.sigma;  // until sigma is computed
  for (int64_t i = 0; i < HW; ++i) mu[i] = m2[i] = T(0);
  if (dy == nullptr) {
    for (int64_t c = 0; c < p.C; ++c) {
      add_channel(x + c * HW, shift, T(1) / static_cast<T>(c + 1), HW, mu, m2);
    }
  } else {
    T* dy_mean = dy_sum;  // dy's running mean, in the map that then holds C times it
    for (int64_t i = 0; i < HW; ++i) dy_mean[i] = dy_v[i] = T(0);
    for (int64_t c = 0; c < p.C; ++c) {
      add_channel(x + c * HW, dy + c * HW, shift, T(1) / static_cast<T>(c + 1), HW, mu, m2, dy_mean,
                  dy_v);
    }
    for (int64_t i = 0; i < HW; ++i) {
      x_mean[i] = mu[i];
      dy_sum[i] = dy_mean[i] * static_cast<T>(p.C);
    }
  }
  gaussian_filter(p, g, mu, maps.tmp, maps.b);
  divide_by_mask(p, maps, maps.b, maps.mean);
  for (int64_t i = 0; i < HW; ++i) {
    const T offset = mu[i] - maps.mean[i];
    if (dy != nullptr) dy_v[i] += offset * dy_sum[i];
    maps.a[i] = m2[i] * inv_c + offset * offset;  // overwrites mu
  }
  gaussian_filter(p, g, maps.a, maps.tmp, maps.b);
  divide_by_mask(p, maps, maps.b, maps.sigma);
  T sum = 0;
  for (int64_t i = 0; i < HW; ++i) {
    maps.sigma[i] = std::sqrt(std::max(maps.sigma[i], T(0)));
    sum += maps.sigma[i];
  }
  return sum / static_cast<T>(HW);
}

// Sets up the taps and the border correction shared by every sample.
template <typename T>
void prepare(const LcnParams& p, T* g, T* inv_mask_h, T* inv_mask_w) {
  gaussian_taps(p, g);
  inside_mass(g, p.size, p.H, inv_mask_h);
  inside_mass(g, p.size, p.W, inv_mask_w);
  for (int64_t i = 0; i < p.H; ++i) inv_mask_h[i] = T(1) / inv_mask_h[i];
  for (int64_t i = 0; i < p.W; ++i) inv_mask_w[i] = T(1) / inv_mask_w[i];
}

}  // namespace

template <typename T>
void lcn_forward(const LcnParams& p, const T* x, T* y) {
  const int64_t HW = p.H * p.W, per_thread = LcnMaps<T>::kMaps * HW;
  const int threads = max_threads();
  const T eps = static_cast<T>(p.eps);
  Scratch<T> g(p.size);
  Scratch<T> scratch(threads * per_thread);
  Scratch<T> masks(p.H + p.W);
  prepare(p, g.get(), masks.get(), masks.get() + p.H);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    LcnMaps<T> maps(p, scratch.get() + thread_id() * per_thread, masks.get());
    const T* x_n = x + n * p.C * HW;
    T* y_n = y + n * p.C * HW;
    const T c_mean = local_statistics(p, g.get(), x_n, maps);
    for (int64_t i = 0; i < HW; ++i) {
      maps.a[i] = T(1) / std::max(std::max(c_mean, maps.sigma[i]), eps);
    }
    for (int64_t c = 0; c < p.C; ++c) {
      for (int64_t i = 0; i < HW; ++i) {
        y_n[c * HW + i] = ((x_n[c * HW + i] - maps.shift) - maps.mean[i]) * maps.a[i];
      }
    }
  }
}

template <typename T>
void lcn_backward(const LcnParams& p, const T* dy, const T* x, T* dx) {
  constexpr int64_t kExtraMaps = 4;  // 1 / d, sum_c dy v, sum_c dy, mean_c (x - shift)
  const int64_t HW = p.H * p.W, per_thread = (LcnMaps<T>::kMaps + kExtraMaps) * HW;
  const int threads = max_threads();
  const T eps = static_cast<T>(p.eps);
  const T inv_c = T(1) / static_cast<T>(p.C);
  Scratch<T> g(p.size);
  Scratch<T> scratch(threads * per_thread);
  Scratch<T> masks(p.H + p.W);
  prepare(p, g.get(), masks.get(), masks.get() + p.H);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    T* base = scratch.get() + thread_id() * per_thread;
    LcnMaps<T> maps(p, base, masks.get());
    T* inv_d = base + LcnMaps<T>::kMaps * HW;
    T* dy_v = inv_d + HW;
    T* dy_sum = dy_v + HW;
    T* x_mean = dy_sum + HW;
    const T* x_n = x + n * p.C * HW;
    const T* dy_n = dy + n * p.C * HW;
    T* dx_n = dx + n * p.C * HW;
    const T c_mean = local_statistics(p, g.get(), x_n, maps, dy_n, dy_v, dy_sum, x_mean);

    // dd = -sum_c dy v / d^2, routed to sigma or to c, whichever is the max (ties to sigma,
    // then c).
    T dc = 0;
    for (int64_t i = 0; i < HW; ++i) {
      inv_d[i] = T(1) / std::max(std::max(c_mean, maps.sigma[i]), eps);
      const T dd = -dy_v[i] * inv_d[i] * inv_d[i];
      const bool sigma_wins = maps.sigma[i] >= c_mean && maps.sigma[i] >= eps;
      maps.a[i] = sigma_wins ? dd : T(0);
      if (!sigma_wins && c_mean >= eps) dc += dd;
    }
    const T dc_share = dc / static_cast<T>(HW);
    // b = ds / Nmask, then a = G * b
    for (int64_t i = 0; i < HW; ++i) {
      const T dsigma = maps.a[i] + dc_share;
      maps.a[i] = maps.sigma[i] > T(0) ? dsigma / (2 * maps.sigma[i]) : T(0);
    }
    divide_by_mask(p, maps, maps.a, maps.b);
    gaussian_filter(p, g.get(), maps.b, maps.tmp, maps.a);
    // dv = dy / d + (2 / C) v (G * ds / Nmask), and its sum over the channels without a pass
    // over them: sum_c dv = sum_c dy / d + (2 / C) (G * ds / Nmask) sum_c v, with
    // sum_c v = C (mean_c (x - shift) - m). Then b = -(1 / C) G * (sum_c dv / Nmask).
    for (int64_t i = 0; i < HW; ++i) {
      const T v_sum = static_cast<T>(p.C) * (x_mean[i] - maps.mean[i]);
      maps.b[i] = -(dy_sum[i] * inv_d[i] + 2 * inv_c * maps.a[i] * v_sum);
    }
    divide_by_mask(p, maps, maps.b, maps.sigma);  // sigma is not needed any more
    gaussian_filter(p, g.get(), maps.sigma, maps.tmp, maps.b);
    // dx = dv + (1 / C) G * (-sum_c dv / Nmask), one pass over x, dy and dx.
    for (int64_t c = 0; c < p.C; ++c) {
      const T* x_c = x_n + c * HW;
      const T* dy_c = dy_n + c * HW;
      T* dx_c = dx_n + c * HW;
      for (int64_t i = 0; i < HW; ++i) {
        const T v = (x_c[i] - maps.shift) - maps.mean[i];
        dx_c[i] = dy_c[i] * inv_d[i] + 2 * inv_c * v * maps.a[i] + inv_c * maps.b[i];
      }
    }
  }
}

template void lcn_forward<float>(const LcnParams&, const float*, float*);
template void lcn_forward<double>(const LcnParams&, const double*, double*);
template void lcn_backward<float>(const LcnParams&, const float*, const float*, float*);
template void lcn_backward<double>(const LcnParams&, const double*, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
