// Cross-channel local response normalization (AlexNet section 3.3), PyTorch's convention:
//   D_c = k + alpha / size * sum_{j in W(c)} x_j^2,  W(c) = [c - size/2, c + (size-1)/2] in [0, C)
//   y_c = x_c * D_c^-beta
//   dx_i = dy_i * D_i^-beta - 2 alpha beta / size * x_i * sum_{c : i in W(c)} dy_c x_c
//   D_c^(-beta-1)
// and i in W(c) exactly when c in [i - (size-1)/2, i + size/2].
//
// Legend: N batch, C channels, H W spatial size, HW = H * W. Work is split into tasks of one
// sample and a tile of spatial positions (backward: each with its own (C, tile) scratch rows).
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

constexpr int64_t kTile = 256;  // spatial positions per task

// Calls fn(n, x_offset, width) for every (sample, tile) task, in parallel.
template <typename Fn>
void for_each_tile(const LrnParams& p, Fn fn) {
  const int64_t HW = p.H * p.W, tiles = (HW + kTile - 1) / kTile;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < p.N * tiles; ++task) {
    const int64_t n = task / tiles, j0 = (task % tiles) * kTile;
    fn(n * p.C * HW + j0, std::min(kTile, HW - j0));
  }
}

// d^-beta for every element of d[0 : n], in place. AlexNet's beta = 0.75 is 1 / sqrt(d sqrt(d)),
// which vectorises; std::pow does not, and costs more than the rest of the layer.
template <typename T>
void inverse_power(T* d, int64_t n, double beta) {
  if (beta == 0.75) {
    for (int64_t j = 0; j < n; ++j) d[j] = T(1) / std::sqrt(d[j] * std::sqrt(d[j]));
  } else {
    const T neg_beta = static_cast<T>(-beta);
    for (int64_t j = 0; j < n; ++j) d[j] = std::pow(d[j], neg_beta);
  }
}

// denom (C, width) = k + alpha / size * windowed sum of x^2 over channels.
template <typename T>
void denominators(const LrnParams& p, const T* x, int64_t width, T* denom) {
  const int64_t HW = p.H * p.W;
  const T scale = static_cast<T>(p.alpha / static_cast<double>(p.size));
  for (int64_t c = 0; c < p.C; ++c) {
    T* d = denom + c * width;
    for (int64_t j = 0; j < width; ++j) d[j] = T(0);
    const int64_t lo = std::max<int64_t>(c - p.size / 2, 0);
    const int64_t hi = std::min<int64_t>(c + (p.size - 1) / 2, p.C - 1);
    for (int64_t i = lo; i <= hi; ++i) {
      const T* x_i = x + i * HW;
      for (int64_t j = 0; j < width; ++j) d[j] += x_i[j] * x_i[j];
    }
    for (int64_t j = 0; j < width; ++j) d[j] = static_cast<T>(p.k) + scale * d[j];
  }
}

}  // namespace

template <typename T>
void lrn_forward(const LrnParams& p, const T* x, T* y) {
  const int64_t HW = p.H * p.W;
  const T k = static_cast<T>(p.k), scale = static_cast<T>(p.alpha / static_cast<double>(p.size));
  // One pass per channel over a tile: the window's squares summed in a block of kBlock sums
  // (L1), then y. The window's input rows stay in L1 from one channel to the next, so x is read
  // from memory once, and nothing else is written (no (C, tile) scratch rows).
  constexpr int64_t kBlock = 64;
  for_each_tile(p, [&](int64_t at, int64_t width) {
    for (int64_t c = 0; c < p.C; ++c) {
      const int64_t lo = std::max<int64_t>(c - p.size / 2, 0);
      const int64_t hi = std::min<int64_t>(c + (p.size - 1) / 2, p.C - 1);
      const T* x_c = x + at + c * HW;
      T* y_c = y + at + c * HW;
      for (int64_t j0 = 0; j0 < width; j0 += kBlock) {
        const int64_t count = std::min(kBlock, width - j0);
        T d[kBlock];
        for (int64_t j = 0; j < count; ++j) d[j] = T(0);
        for (int64_t i = lo; i <= hi; ++i) {
          const T* x_i = x + at + i * HW + j0;
          for (int64_t j = 0; j < count; ++j) d[j] += x_i[j] * x_i[j];
        }
        for (int64_t j = 0; j < count; ++j) d[j] = k + scale * d[j];
        inverse_power(d, count, p.beta);  // D^-beta
        for (int64_t j = 0; j < count; ++j) y_c[j0 + j] = x_c[j0 + j] * d[j];
      }
    }
  });
}

template <typename T>
void lrn_backward(const LrnParams& p, const T* dy, const T* x, T* dx) {
  const int threads = max_threads();
  Scratch<T> scratch(threads * 2 * p.C * kTile);
  const int64_t HW = p.H * p.W;
  const T coef = static_cast<T>(2.0 * p.alpha * p.beta / static_cast<double>(p.size));
  for_each_tile(p, [&](int64_t at, int64_t width) {
    T* denom = scratch.get() + thread_id() * 2 * p.C * kTile;
    T* t = denom + p.C * width;  // t_c = dy_c x_c D_c^(-beta-1)
    denominators(p, x + at, width, denom);
    for (int64_t i = 0; i < p.C * width; ++i) t[i] = T(1) / denom[i];  // t = 1 / D for now
    inverse_power(denom, p.C * width, p.beta);                         // denom = D^-beta
    for (int64_t c = 0; c < p.C; ++c) {
      const T* x_c = x + at + c * HW;
      const T* dy_c = dy + at + c * HW;
      const T* scale = denom + c * width;
      T* t_c = t + c * width;
      for (int64_t j = 0; j < width; ++j) t_c[j] *= dy_c[j] * x_c[j] * scale[j];
    }
    for (int64_t i = 0; i < p.C; ++i) {
      const T* x_i = x + at + i * HW;
      const T* dy_i = dy + at + i * HW;
      T* dx_i = dx + at + i * HW;
      const T* scale_i = denom + i * width;
      const int64_t lo = std::max<int64_t>(i - (p.size - 1) / 2, 0);
      const int64_t hi = std::min<int64_t>(i + p.size / 2, p.C - 1);
      for (int64_t j = 0; j < width; ++j) dx_i[j] = T(0);
      for (int64_t c = lo; c <= hi; ++c) {
        const T* t_c = t + c * width;
        for (int64_t j = 0; j < width; ++j) dx_i[j] += t_c[j];
      }
      for (int64_t j = 0; j < width; ++j) {
        dx_i[j] = dy_i[j] * scale_i[j] - coef * x_i[j] * dx_i[j];
      }
    }
  });
}

template void lrn_forward<float>(const LrnParams&, const float*, float*);
template void lrn_forward<double>(const LrnParams&, const double*, double*);
template void lrn_backward<float>(const LrnParams&, const float*, const float*, float*);
template void lrn_backward<double>(const LrnParams&, const double*, const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
