// 2-D max pooling forward (recording the argmax) and backward (scattering through it).
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// Padding never wins: a window reads only its taps inside the input. A NaN wins over any number
// and the first maximum (or first NaN) in row-major window order wins ties. Threads split the
// N * C planes, so overlapping windows in backward never race.
#include <algorithm>

#include "kernels.h"

namespace ck {
namespace CK_ISA {

template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* x_c = x + plane * HW;
    T* y_c = y + plane * PQ;
    int64_t* arg_c = argmax + plane * PQ;
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const int64_t h0 = oh * p.stride.h - p.pad.h;
      const int64_t h_lo = std::max<int64_t>(h0, 0), h_hi = std::min(h0 + p.kernel.h, p.H);
      for (int64_t ow = 0; ow < p.Q; ++ow) {
        const int64_t w0 = ow * p.stride.w - p.pad.w;
        const int64_t w_lo = std::max<int64_t>(w0, 0), w_hi = std::min(w0 + p.kernel.w, p.W);
        // The padding rule (pad <= kernel / 2) guarantees every window holds an input tap.
        int64_t best = h_lo * p.W + w_lo;
        T best_value = x_c[best];
        for (int64_t ih = h_lo; ih < h_hi; ++ih) {
          for (int64_t iw = w_lo; iw < w_hi; ++iw) {
            const T v = x_c[ih * p.W + iw];
            if (v > best_value || (v != v && best_value == best_value)) {  // first NaN wins
              best_value = v;
              best = ih * p.W + iw;
            }
          }
        }
        y_c[oh * p.Q + ow] = best_value;
        arg_c[oh * p.Q + ow] = best;
      }
    }
  }
}

template <typename T>
void max_pool2d_backward(const Pool2dParams& p, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    T* dx_c = dx + plane * HW;
    const T* dy_c = dy + plane * PQ;
    const int64_t* arg_c = argmax + plane * PQ;
    for (int64_t i = 0; i < HW; ++i) dx_c[i] = T(0);
    for (int64_t i = 0; i < PQ; ++i) dx_c[arg_c[i]] += dy_c[i];
  }
}

template void max_pool2d_forward<float>(const Pool2dParams&, const float*, float*, int64_t*);
template void max_pool2d_forward<double>(const Pool2dParams&, const double*, double*, int64_t*);
template void max_pool2d_backward<float>(const Pool2dParams&, const float*, const int64_t*, float*);
template void max_pool2d_backward<double>(const Pool2dParams&, const double*, const int64_t*,
                                          double*);

}  // namespace CK_ISA
}  // namespace ck
