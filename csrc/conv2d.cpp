// 2-D convolution (cross-correlation, like PyTorch) forward and backward, on the GEMM.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter taps, P Q output size,
// G groups, Cg = C / G and Kg = K / G channels per group, PQ = P * Q, CRS = Cg * R * S.
//
// Samples are processed in blocks of nb, so that small outputs (CIFAR c3 has PQ = 64) still
// give the GEMM enough columns: the block's im2col panel is col (CRS, nb * PQ), sample s in
// columns [s * PQ, (s + 1) * PQ). Per block and group:
//   forward           y' (Kg, nb PQ) = w_g (Kg, CRS) * col (+ bias)
//   backward input    dcol (CRS, nb PQ) = w_g^T * dy' (Kg, nb PQ), added into dx by col2im
//   backward weight   dw_g (Kg, CRS) += dy' * col^T, summed over blocks; most layers use the
//                     kernel with the filters in the vector lanes instead
//                     (conv2d_backward_weight_nhwc.cpp), small filter banks row dot products
//                     (conv2d_direct.cpp)
// y' and dy' are y and dy with the block's samples side by side; with nb = 1 they are the NCHW
// tensors themselves and no copy is made. Threads split the blocks when there are enough of
// them, and otherwise the GEMM inside each block. Backward-weight gives each thread its own dw
// and sums them at the end in thread order, so results are deterministic for a thread count.
//
// Packing the im2col operand straight from x (an implicit GEMM, never storing col) was tried and
// measured slower than im2col + the GEMM's own packing on every layer of the benchmark except
// LeNet C5 (both copies are streaming, the fused gather is not); direct kernels for the small
// layers are the way past this, see bench/RESULTS.md.
//
// Before any of this, each direction checks its special cases: a layer that is a fully
// connected one (LeNet C5) runs as one GEMM on the NCHW arrays, Winograd takes 3x3 and 5x5
// stride-1 layers with enough channels (conv2d_winograd.cpp), and the direct kernels take
// small ones (conv2d_direct.cpp).
#include <algorithm>

#include "im2col.h"
#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

// GEMM columns a sample block aims for: enough to fill the micro-kernel's tiles many times over.
constexpr int64_t kTargetColumns = 512;

struct ConvDims {
  int64_t Cg, Kg, RS, CRS, PQ, HW;
  int64_t nb;      // samples per block
  int64_t blocks;  // ceil(N / nb)
  bool by_blocks;  // threads split the blocks (else each block's GEMM is threaded)
};

ConvDims conv_dims(const Conv2dParams& p, int threads) {
  ConvDims d;
  d.Cg = p.C / p.groups;
  d.Kg = p.K / p.groups;
  d.RS = p.R * p.S;
  d.CRS = d.Cg * d.RS;
  d.PQ = p.P * p.Q;
  d.HW = p.H * p.W;
  const int64_t per_thread = (p.N + threads - 1) / threads;
  d.nb = std::max<int64_t>(1, std::min((kTargetColumns + d.PQ - 1) / d.PQ, per_thread));
  d.blocks = (p.N + d.nb - 1) / d.nb;
  d.by_blocks = d.blocks >= threads;
  return d;
}

// Per-thread scratch: the block's col panel, its y' or dy' panel, then the GEMM's workspace.
template <typename T>
class ThreadScratch {
 public:
  ThreadScratch(int slots, int64_t col_size, int64_t panel_size, int64_t gemm_size)
      : col_size_(col_size),
        panel_size_(panel_size),
        stride_(col_size + panel_size + gemm_size),
        data_(slots * stride_) {}
  T* col(int slot) const { return data_.get() + slot * stride_; }
  T* panel(int slot) const { return col(slot) + col_size_; }
  T* gemm(int slot) const { return panel(slot) + panel_size_; }

 private:
  int64_t col_size_, panel_size_, stride_;
  Scratch<T> data_;
};

// Runs body(block, slot, gemm_threads) for every sample block: in parallel over blocks when
// there are enough of them (each on its own scratch slot, single-threaded GEMMs), otherwise one
// block after another with all threads inside the GEMM.
template <typename Fn>
void for_each_block(const ConvDims& d, int threads, Fn body) {
  if (d.by_blocks) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t block = 0; block < d.blocks; ++block) body(block, thread_id(), 1);
  } else {
    for (int64_t block = 0; block < d.blocks; ++block) body(block, 0, threads);
  }
}

int scratch_slots(const ConvDims& d, int threads) {
  return d.by_blocks ? threads : 1;
}
int gemm_threads(const ConvDims& d, int threads) {
  return d.by_blocks ? 1 : threads;
}

// The direct kernel or the GEMM: as the tests force it (set_conv_algorithm), else as `choice`
// says for this shape.
bool direct_unless_forced(bool choice) {
  switch (conv_algorithm()) {
    case ConvAlgorithm::kDirect:
      return true;
    case ConvAlgorithm::kGemm:
      return false;
    case ConvAlgorithm::kAuto:
    case ConvAlgorithm::kWinograd:  // where Winograd does not apply
      break;
  }
  return choice;
}

// Winograd F(4x4, 3x3) or F(2x2, 5x5) (conv2d_winograd.cpp) where it applies and gains: its 36
// GEMMs need at least 32 filters and channels per group to outweigh the per-tile transforms
// (LeNet C3, 6 channels, is 1.5x slower this way), and at least half of its tiles' outputs must
// land in y (a 5 x 5 output takes 2 x 2 tiles of 4 x 4: 39 %). Measured on CIFAR c2/c3 and
// AlexNet conv2-5, forward and backward-input: 1.1-1.9x faster than the direct kernel or GEMM.
bool forward_is_winograd(const Conv2dParams& p) {
  if (!conv2d_winograd_possible(p)) return false;
  switch (conv_algorithm()) {
    case ConvAlgorithm::kWinograd:
      return true;
    case ConvAlgorithm::kAuto:
      break;
    case ConvAlgorithm::kGemm:
    case ConvAlgorithm::kDirect:
      return false;
  }
  const int64_t side = p.R == 3 ? 4 : 2;  // of an output tile: F(4x4, 3x3) or F(2x2, 5x5)
  const int64_t tile_outputs = (p.P + side - 1) / side * ((p.Q + side - 1) / side) * side * side;
  return p.C / p.groups >= 32 && p.K / p.groups >= 32 && 2 * p.P * p.Q >= tile_outputs;
}

// Backward-weight as dot products of rows (conv2d_direct.cpp), where the kernel with the filters
// in the lanes (below) does not take it, when the filter bank is small: its GEMM would have few
// rows (Kg) and columns (CRS) and a long reduction, mostly packing. The bound sits between CIFAR c2
// (25,600 weights per group: 1.4x faster as dot products) and LeNet C5 and AlexNet conv1 (48,000
// and 34,848: 1.3x and 2x faster as a GEMM), measured on an AVX-512 Xeon.
bool backward_weight_is_direct(const Conv2dParams& p) {
  return direct_unless_forced((p.K / p.groups) * (p.C / p.groups) * p.R * p.S <= 30000);
}

// Backward-weight with the filters in the vector lanes (conv2d_backward_weight_nhwc.cpp) where
// they fill at least one vector: measured against the dot products or GEMM it replaces (2
// threads, AVX2 on a Zen 3 EPYC), LeNet C3 2.4x, CIFAR c1 1.3x, c2 2.3x, AlexNet conv1 1.3x
// faster. Winograd stays ahead on CIFAR c3 and AlexNet conv2-5 (1.1-1.7x). With fewer filters
// (LeNet C1: 6) most lanes would be idle; the dot products are as fast there. Forcing the direct
// kernels picks it wherever it applies, so the tests run it on every filter count.
template <typename T>
bool backward_weight_is_nhwc(const Conv2dParams& p) {
  return conv2d_backward_weight_nhwc_possible(p) &&
         direct_unless_forced(p.K / p.groups >= Simd<T>::kLanes);
}

// Forward as shifted products over the padded input (conv2d_direct.cpp): stride 1 only. It
// wins where the GEMM has few rows (Kg) to spend its im2col on, and loses where a filter's
// output is tiny (LeNet C5: PQ = 1), the bank is large (AlexNet conv3/conv4), or much of its
// arithmetic is wasted on padding columns and partial tiles while the GEMM has enough filters
// to amortise im2col (CIFAR c3: yield 0.5, Kg = 64, 1.2x faster as a GEMM). Measured on the
// benchmark layers: LeNet C1/C3, CIFAR c1/c2 forward run 1.3-2x faster this way.
template <typename T>
bool forward_is_direct(const Conv2dParams& p) {
  if (p.stride.h != 1 || p.stride.w != 1) return false;
  const int64_t Kg = p.K / p.groups;
  const bool worth_it = Kg < 32 || conv2d_forward_direct_yield<T>(p) >= 0.6;
  return direct_unless_forced(Kg <= 128 && p.P * p.Q >= 64 && worth_it);
}

// Forward with the filters in the vector lanes (conv2d_forward_nhwc.cpp) in place of the GEMM,
// where the filters fill at least one vector and their channels-last copy fits in L2 (beyond
// that the GEMM's blocking wins): AlexNet conv1 (stride 4) 1.3x faster (2 threads, AVX2 on a
// Zen 3 EPYC). It also takes layers from the direct kernel with the positions in the lanes where
// that one wastes much more (per FMA the direct kernel is ~1.2x faster, 1 thread): LeNet C3
// (10 of 14 columns used) 1.4x faster; CIFAR c1 (32 of 36) stays, 1.2x faster the direct way.
// Forcing the direct kernels picks this one wherever it applies (the other then still runs
// backward-input), so the tests run both.
template <typename T>
bool forward_is_nhwc(const Conv2dParams& p) {
  if (!conv2d_forward_nhwc_possible(p)) return false;
  const int64_t Kg = p.K / p.groups, taps = p.C / p.groups * p.R * p.S;
  const bool fits =
      Kg >= Simd<T>::kLanes &&
      taps * round_up(Kg, Simd<T>::kLanes) * static_cast<int64_t>(sizeof(T)) <= (512 << 10);
  return direct_unless_forced(
      fits && (!forward_is_direct<T>(p) ||
               conv2d_forward_nhwc_yield<T>(p) >= 1.2 * conv2d_forward_direct_yield<T>(p)));
}

// Depthwise layers (groups = C = K) by conv2d_depthwise.cpp: the GEMM would run one-row products
// per channel. LeNet-5's S2 (6 channels, 2x2 stride 2, 28x28, batch 256, 2 threads): forward 2.4
// -> 0.34 ms, backward-input 2.9 -> 0.51 ms, backward-weight 0.85 -> 0.51 ms.
bool runs_depthwise(const Conv2dParams& p) {
  return conv2d_depthwise_possible(p) && direct_unless_forced(true);
}

// Backward-weight by Winograd where the forward would use it and each tile's share of the GEMM,
// ~Kg Cg, outweighs its transforms, ~Kg + Cg: Kg Cg / (Kg + Cg) >= 20. Measured (2 threads):
// AlexNet conv2-5 (35-154) 1.2-1.8x faster than the GEMM, CIFAR c3 (5x5, 64 and 32: 21) 1.3x
// faster than the dot products; CIFAR c2 (32 and 32: 16) 1.6x slower.
bool backward_weight_is_winograd(const Conv2dParams& p) {
  const int64_t Kg = p.K / p.groups, Cg = p.C / p.groups;
  return forward_is_winograd(p) &&
         (conv_algorithm() == ConvAlgorithm::kWinograd || Kg * Cg >= 20 * (Kg + Cg));
}

// A convolution whose single output position sees the whole input (LeNet C5: 5x5 filters on
// 5x5 inputs) is a fully connected layer: im2col of a sample is the sample itself, so each
// direction is one GEMM on the NCHW arrays (unless the tests force the direct kernels).
bool runs_as_fully_connected(const Conv2dParams& p) {
  return p.groups == 1 && p.P == 1 && p.Q == 1 && p.H == p.R && p.W == p.S && p.pad.h == 0 &&
         p.pad.w == 0 && p.dilation.h == 1 && p.dilation.w == 1 &&
         conv_algorithm() != ConvAlgorithm::kDirect;
}

// Backward-input with stride 1 is the forward convolution of dy with the filters flipped in both
// spatial axes and transposed per group (K <-> C), padded by dilation * (R - 1) - pad (when
// that is not negative).
bool backward_input_as_forward_is_possible(const Conv2dParams& p) {
  return p.stride.h == 1 && p.stride.w == 1 && p.pad.h <= p.dilation.h * (p.R - 1) &&
         p.pad.w <= p.dilation.w * (p.S - 1);
}

Conv2dParams transposed_params(const Conv2dParams& p) {
  Conv2dParams t = p;
  t.C = p.K, t.H = p.P, t.W = p.Q;
  t.K = p.C, t.P = p.H, t.Q = p.W;
  t.pad = {p.dilation.h * (p.R - 1) - p.pad.h, p.dilation.w * (p.S - 1) - p.pad.w};
  return t;
}

// The filters for backward-input as a forward convolution: flipped in both spatial axes and
// transposed per group, w_t[g Cg + c, k, r, s] = w[g Kg + k, c, R - 1 - r, S - 1 - s].
template <typename T>
Scratch<T> flipped_transposed(const Conv2dParams& p, const T* w) {
  const int64_t Cg = p.C / p.groups, Kg = p.K / p.groups, RS = p.R * p.S;
  Scratch<T> w_t(p.K * Cg * RS);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t k = 0; k < Kg; ++k) {
      for (int64_t c = 0; c < Cg; ++c) {
        const T* src = w + ((g * Kg + k) * Cg + c) * RS;
        T* dst = w_t.get() + ((g * Cg + c) * Kg + k) * RS;
        for (int64_t i = 0; i < RS; ++i) dst[i] = src[RS - 1 - i];
      }
    }
  }
  return w_t;
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const bool relu = p.relu;  // a local: GCC cannot tell that writes to y leave p alone
  if (runs_as_fully_connected(p)) {
    // y (N, K) = x (N, CRS) w^T (CRS, K) (+ bias). LeNet C5 at batch 256: 2.8x faster than
    // im2col + GEMM.
    const int64_t CRS = p.C * p.R * p.S;
    gemm_on_all_threads(Trans::No, Trans::Yes, p.N, p.K, CRS, T(1), x, CRS, w, CRS, T(0), y, p.K);
    if (b != nullptr || relu) {
      for (int64_t n = 0; n < p.N; ++n) {
        for (int64_t k = 0; k < p.K; ++k) {
          T& v = y[n * p.K + k];
          v = relu_if(relu, b != nullptr ? v + b[k] : v);
        }
      }
    }
    return;
  }
  if (forward_is_winograd(p)) {
    conv2d_forward_winograd(p, x, w, b, y);
    return;
  }
  if (runs_depthwise(p)) {
    conv2d_forward_depthwise(p, x, w, b, y);
    return;
  }
  if (forward_is_nhwc<T>(p)) {
    conv2d_forward_nhwc(p, x, w, b, y);
    return;
  }
  if (forward_is_direct<T>(p)) {
    conv2d_forward_direct(p, x, w, b, y);
    return;
  }
  const int threads = max_threads();
  const ConvDims d = conv_dims(p, threads);
  const bool in_place = d.nb == 1;  // the GEMM writes y itself
  const int64_t cols = d.nb * d.PQ;
  const ThreadScratch<T> scratch(
      scratch_slots(d, threads), d.CRS * cols, in_place ? 0 : d.Kg * cols,
      gemm_workspace_size<T>(d.Kg, cols, d.CRS, gemm_threads(d, threads)));
  for_each_block(d, threads, [&](int64_t block, int slot, int gemm_team) {
    const int64_t n0 = block * d.nb, nb = std::min(d.nb, p.N - n0), ld = nb * d.PQ;
    T* col = scratch.col(slot);
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* x_g = x + (n0 * p.C + g * d.Cg) * d.HW;
      T* y_g = y + (n0 * p.K + g * d.Kg) * d.PQ;
      const T* b_g = b != nullptr ? b + g * d.Kg : nullptr;
      for (int64_t s = 0; s < nb; ++s) im2col(p, x_g + s * p.C * d.HW, col + s * d.PQ, ld);
      T* out = in_place ? y_g : scratch.panel(slot);
      gemm<T>(Trans::No, Trans::No, d.Kg, ld, d.CRS, T(1), w + g * d.Kg * d.CRS, d.CRS, col, ld,
              T(0), out, ld, scratch.gemm(slot), gemm_team);
      if (in_place && b_g == nullptr && !relu) continue;
      // y_g (sample s, channel k) = relu(out[k, s PQ : (s + 1) PQ] + bias), while out is in cache
      for (int64_t s = 0; s < nb; ++s) {
        for (int64_t k = 0; k < d.Kg; ++k) {
          const T* src = out + k * ld + s * d.PQ;
          T* dst = y_g + (s * p.K + k) * d.PQ;
          if (b_g == nullptr) {
            for (int64_t i = 0; i < d.PQ; ++i) dst[i] = relu_if(relu, src[i]);
            continue;
          }
          const T bias = b_g[k];
          for (int64_t i = 0; i < d.PQ; ++i) dst[i] = relu_if(relu, src[i] + bias);
        }
      }
    }
  });
}

template <typename T>
void conv2d_backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  if (runs_as_fully_connected(p)) {
    // dx (N, CRS) = dy (N, K) w (K, CRS). LeNet C5 at batch 256: 2.6-3.2x faster than the
    // GEMM over samples side by side plus col2im.
    const int64_t CRS = p.C * p.R * p.S;
    gemm_on_all_threads(Trans::No, Trans::No, p.N, CRS, p.K, T(1), dy, p.K, w, CRS, T(0), dx, CRS);
    return;
  }
  if (backward_input_as_forward_is_possible(p) && forward_is_winograd(transposed_params(p))) {
    const Scratch<T> w_t = flipped_transposed(p, w);
    conv2d_forward_winograd(transposed_params(p), dy, w_t.get(), static_cast<const T*>(nullptr),
                            dx);
    return;
  }
  if (runs_depthwise(p)) {
    conv2d_backward_input_depthwise(p, dy, w, dx);
    return;
  }
  // As a direct forward convolution where it wastes little and the GEMM's rows would be few
  // (LeNet C3 1.3x, CIFAR c2 1.5x faster; CIFAR c3 and AlexNet conv2 are faster as below).
  const bool as_forward =
      backward_input_as_forward_is_possible(p) && forward_is_direct<T>(transposed_params(p)) &&
      direct_unless_forced(p.C / p.groups <= 32 &&
                           conv2d_forward_direct_yield<T>(transposed_params(p)) >= 0.6);
  if (as_forward) {
    const Scratch<T> w_t = flipped_transposed(p, w);
    conv2d_forward_direct(transposed_params(p), dy, w_t.get(), static_cast<const T*>(nullptr), dx);
    return;
  }
  const int threads = max_threads();
  const ConvDims d = conv_dims(p, threads);
  const int64_t cols = d.nb * d.PQ;
  const ThreadScratch<T> scratch(
      scratch_slots(d, threads), d.CRS * cols, d.nb == 1 ? 0 : d.Kg * cols,
      gemm_workspace_size<T>(d.CRS, cols, d.Kg, gemm_threads(d, threads)));
  for_each_block(d, threads, [&](int64_t block, int slot, int gemm_team) {
    const int64_t n0 = block * d.nb, nb = std::min(d.nb, p.N - n0), ld = nb * d.PQ;
    T* dcol = scratch.col(slot);
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* dy_g = dy + (n0 * p.K + g * d.Kg) * d.PQ;
      T* dx_g = dx + (n0 * p.C + g * d.Cg) * d.HW;
      const T* dy_panel = side_by_side(dy_g, p.K * d.PQ, d.Kg, d.PQ, nb, scratch.panel(slot));
      gemm<T>(Trans::Yes, Trans::No, d.CRS, ld, d.Kg, T(1), w + g * d.Kg * d.CRS, d.CRS, dy_panel,
              ld, T(0), dcol, ld, scratch.gemm(slot), gemm_team);
      for (int64_t s = 0; s < nb; ++s) {
        T* dx_s = dx_g + s * p.C * d.HW;
        for (int64_t i = 0; i < d.Cg * d.HW; ++i) dx_s[i] = T(0);
        col2im_add(p, dcol + s * d.PQ, ld, dx_s);
      }
    }
  });
}

template <typename T>
void conv2d_backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  if (runs_as_fully_connected(p)) {
    // dw (K, CRS) = dy^T (K, N) x (N, CRS). LeNet C5 at batch 256: 1.9x faster than im2col^T +
    // GEMM.
    const int64_t CRS = p.C * p.R * p.S;
    gemm_on_all_threads(Trans::Yes, Trans::No, p.K, CRS, p.N, T(1), dy, p.K, x, CRS, T(0), dw, CRS);
    return;
  }
  if (backward_weight_is_winograd(p)) {
    conv2d_backward_weight_winograd(p, x, dy, dw);
    return;
  }
  if (runs_depthwise(p)) {
    conv2d_backward_weight_depthwise(p, x, dy, dw);
    return;
  }
  if (backward_weight_is_nhwc<T>(p)) {
    conv2d_backward_weight_nhwc(p, x, dy, dw);
    return;
  }
  if (backward_weight_is_direct(p)) {
    conv2d_backward_weight_direct(p, x, dy, dw);
    return;
  }
  const int threads = max_threads();
  const ConvDims d = conv_dims(p, threads);
  const int64_t cols = d.nb * d.PQ, dw_size = p.K * d.CRS;
  // With few output positions per sample, im2col's rows are short and the GEMM's transposing
  // pack of col is slow: write col^T instead (2.3x faster on LeNet C5, PQ = 1, before that layer
  // went to the fully connected GEMM). On larger outputs the row-wise im2col is faster.
  const bool transposed_col = d.PQ <= 32;
  // Otherwise, with enough filters to fill the GEMM's tiles and many more col rows than filters,
  // compute dw^T = col dy'^T: the GEMM's transposing pack then reads Kg rows of dy' (a few KiB
  // at a time) rather than the CRS rows of col (CIFAR c3 1.2x faster single-threaded; AlexNet
  // conv1, CRS = 363 for Kg = 96, is 1.2x slower that way). The slots then hold dw^T.
  const bool swapped = !transposed_col && d.Kg >= 48 && d.CRS >= 4 * d.Kg;
  const int slots = scratch_slots(d, threads);
  const ThreadScratch<T> scratch(
      slots, d.CRS * cols, d.nb == 1 ? 0 : d.Kg * cols,
      swapped ? gemm_workspace_size<T>(d.CRS, d.Kg, cols, gemm_threads(d, threads))
              : gemm_workspace_size<T>(d.Kg, d.CRS, cols, gemm_threads(d, threads)));
  Scratch<T> partial(slots * dw_size);  // one dw per slot, summed at the end
  for (int64_t i = 0; i < slots * dw_size; ++i) partial.get()[i] = T(0);
  for_each_block(d, threads, [&](int64_t block, int slot, int gemm_team) {
    const int64_t n0 = block * d.nb, nb = std::min(d.nb, p.N - n0), ld = nb * d.PQ;
    T* col = scratch.col(slot);
    T* dw_slot = partial.get() + slot * dw_size;
    for (int64_t g = 0; g < p.groups; ++g) {
      const T* x_g = x + (n0 * p.C + g * d.Cg) * d.HW;
      const T* dy_g = dy + (n0 * p.K + g * d.Kg) * d.PQ;
      const T* dy_panel = side_by_side(dy_g, p.K * d.PQ, d.Kg, d.PQ, nb, scratch.panel(slot));
      T* dw_g = dw_slot + g * d.Kg * d.CRS;
      if (transposed_col) {  // col^T (nb PQ, CRS): the GEMM packs it with contiguous reads
        for (int64_t s = 0; s < nb; ++s) {
          im2col_transposed(p, x_g + s * p.C * d.HW, col + s * d.PQ * d.CRS, d.CRS);
        }
        gemm<T>(Trans::No, Trans::No, d.Kg, d.CRS, ld, T(1), dy_panel, ld, col, d.CRS, T(1), dw_g,
                d.CRS, scratch.gemm(slot), gemm_team);
        continue;
      }
      for (int64_t s = 0; s < nb; ++s) im2col(p, x_g + s * p.C * d.HW, col + s * d.PQ, ld);
      if (swapped) {
        gemm<T>(Trans::No, Trans::Yes, d.CRS, d.Kg, ld, T(1), col, ld, dy_panel, ld, T(1), dw_g,
                d.Kg, scratch.gemm(slot), gemm_team);  // dw_g^T (CRS, Kg)
      } else {
        gemm<T>(Trans::No, Trans::Yes, d.Kg, d.CRS, ld, T(1), dy_panel, ld, col, ld, T(1), dw_g,
                d.CRS, scratch.gemm(slot), gemm_team);
      }
    }
  });
  if (!swapped) {
    sum_slices(partial.get(), slots, dw_size, dw);
    return;
  }
  sum_slices(partial.get(), slots, dw_size, partial.get());  // slot 0: the sum, as dw^T
  for (int64_t g = 0; g < p.groups; ++g) {
    const T* sum_g = partial.get() + g * d.Kg * d.CRS;
    T* dw_g = dw + g * d.Kg * d.CRS;
    for (int64_t k = 0; k < d.Kg; ++k) {
      for (int64_t i = 0; i < d.CRS; ++i) dw_g[k * d.CRS + i] = sum_g[i * d.Kg + k];
    }
  }
}

template <typename T>
void conv2d_backward_bias(const Conv2dParams& p, const T* dy, T* db) {
  using V = typename Simd<T>::Vec;
  using U = typename Simd<T>::UnalignedVec;
  constexpr int L = Simd<T>::kLanes, kAccumulators = 4;
  const int64_t PQ = p.P * p.Q;
  // Vector partial sums: a scalar float sum is one dependent add per element (the compiler may
  // not reorder it), which made this 4 % of a LeNet-5 training step.
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < p.K; ++k) {
    V acc[kAccumulators] = {};
    T sum = 0;
    for (int64_t n = 0; n < p.N; ++n) {
      const T* dy_k = dy + (n * p.K + k) * PQ;
      int64_t i = 0;
      for (; i + kAccumulators * L <= PQ; i += kAccumulators * L) {
        for (int a = 0; a < kAccumulators; ++a) {
          acc[a] += *reinterpret_cast<const U*>(dy_k + i + a * L);
        }
      }
      for (; i < PQ; ++i) sum += dy_k[i];
    }
    for (int a = 1; a < kAccumulators; ++a) acc[0] += acc[a];
    for (int l = 0; l < L; ++l) sum += acc[0][l];
    db[k] = sum;
  }
}

#define CK_INSTANTIATE(T)                                                                 \
  template void conv2d_forward<T>(const Conv2dParams&, const T*, const T*, const T*, T*); \
  template void conv2d_backward_input<T>(const Conv2dParams&, const T*, const T*, T*);    \
  template void conv2d_backward_weight<T>(const Conv2dParams&, const T*, const T*, T*);   \
  template void conv2d_backward_bias<T>(const Conv2dParams&, const T*, T*);
CK_INSTANTIATE(float)
CK_INSTANTIATE(double)
#undef CK_INSTANTIATE

}  // namespace CK_ISA
}  // namespace ck
