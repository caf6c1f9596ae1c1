// 2-D max pooling forward (recording the argmax) and backward (scattering through it).
//
// Legend: N batch, C channels, H W input size, R S window, P Q output size.
// Padding never wins: a window reads only its taps inside the input. A NaN wins over any number
// and the first maximum (or first NaN) in row-major window order wins ties. Threads split the
// N * C planes, so overlapping windows in backward never race.
//
// Forward takes each output row in two parts: the columns whose windows lie wholly inside the
// input horizontally go tap by tap across the whole row at once (branch-free selects that the
// compiler vectorises along ow), and the few columns at the edges, whose windows are clipped,
// go window by window. Both visit the taps in row-major order, so both keep the same winner.
#include <algorithm>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// The tap v (at input index i) replaces the best so far if it is larger, or if it is the first
// NaN: ties keep the earlier tap.
template <typename T>
inline bool wins(T v, T best) {
  return v > best || (v != v && best == best);
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dParams& p, const T* x, T* y, int64_t* argmax) {
  const int64_t planes = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const T* x_c = x + plane * HW;
    T* y_c = y + plane * PQ;
    int64_t* arg_c = argmax + plane * PQ;
    // Output columns [inner_lo, inner_hi) have windows inside the input horizontally.
    const int64_t inner_lo = std::min(p.Q, (p.pad.w + p.stride.w - 1) / p.stride.w);
    const int64_t last = p.W - p.kernel.w + p.pad.w;  // largest window start, shifted by pad
    const int64_t inner_hi =
        last < 0 ? inner_lo : std::max(inner_lo, std::min(p.Q, last / p.stride.w + 1));
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const int64_t h0 = oh * p.stride.h - p.pad.h;
      const int64_t h_lo = std::max<int64_t>(h0, 0), h_hi = std::min(h0 + p.kernel.h, p.H);
      T* y_row = y_c + oh * p.Q;
      int64_t* arg_row = arg_c + oh * p.Q;
      // Edge columns, window by window. The padding rule (pad <= kernel / 2) guarantees every
      // window holds an input tap.
      auto one_window = [&](int64_t ow) {
        const int64_t w0 = ow * p.stride.w - p.pad.w;
        const int64_t w_lo = std::max<int64_t>(w0, 0), w_hi = std::min(w0 + p.kernel.w, p.W);
        int64_t best = h_lo * p.W + w_lo;
        T best_value = x_c[best];
        for (int64_t ih = h_lo; ih < h_hi; ++ih) {
          for (int64_t iw = w_lo; iw < w_hi; ++iw) {
            const T v = x_c[ih * p.W + iw];
            if (wins(v, best_value)) best_value = v, best = ih * p.W + iw;
          }
        }
        y_row[ow] = best_value;
        arg_row[ow] = best;
      };
      for (int64_t ow = 0; ow < inner_lo; ++ow) one_window(ow);
      for (int64_t ow = inner_hi; ow < p.Q; ++ow) one_window(ow);
      // Inner columns, tap by tap across the row.
      const int64_t sw = p.stride.w, offset = -p.pad.w;
      for (int64_t ih = h_lo; ih < h_hi; ++ih) {
        const T* x_row = x_c + ih * p.W;
        for (int64_t kw = 0; kw < p.kernel.w; ++kw) {
          const int64_t shift = offset + kw, base = ih * p.W + shift;
          if (ih == h_lo && kw == 0) {
            for (int64_t ow = inner_lo; ow < inner_hi; ++ow) {
              y_row[ow] = x_row[ow * sw + shift];
              arg_row[ow] = base + ow * sw;
            }
            continue;
          }
          for (int64_t ow = inner_lo; ow < inner_hi; ++ow) {
            const T v = x_row[ow * sw + shift];
            const bool take = wins(v, y_row[ow]);
            y_row[ow] = take ? v : y_row[ow];
            arg_row[ow] = take ? base + ow * sw : arg_row[ow];
          }
        }
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
