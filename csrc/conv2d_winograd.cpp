// Winograd convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016; the transforms NNPACK uses) for stride 1 without dilation: F(4x4, 3x3) for 3x3 filters
// and F(2x2, 5x5) for 5x5, both on 6x6 transformed tiles.
//
// Legend: N batch, C input channels, H W input size, K filters, P Q output size, G groups,
// Cg = C / G and Kg = K / G channels per group; m the output tile's side (4 or 2), r the
// filter's (3 or 5), m + r - 1 = 6.
//
// The output is cut into m x m tiles; tile t of filter k needs the 6x6 input patch d_ct at its
// corner (zero outside the input) and
//   y_kt = A^T [ sum_c (G g_kc G^T) .* (B^T d_ct B) ] A
// with the 6x6 B^T, 6xr G and mx6 A^T of the variant (F4x3, F2x5 below). For each of the 36
// positions xi of a transformed tile the sum over channels is a matrix product,
//   M_xi (Kg, tiles) = U_xi (Kg, Cg) V_xi (Cg, tiles),
// 36 products of 2 Kg Cg flops per tile against the direct kernel's m^2 r^2 2 Kg Cg: 4x less
// arithmetic for 3x3 and 2.8x for 5x5, minus the tiles' overhang past the output (13 x 13
// outputs take 4 x 4 tiles of 16 x 16) and the transforms. The price is rounding: the
// transforms scale by up to 16 and 1/24, so float32 results carry errors ~10x those of the
// direct sum (tests/test_winograd.py measures and bounds them).
//
// Forward (backward-input is the forward of dy with flipped filters, conv2d.cpp): threads take
// blocks of up to kBlockTiles tiles (per group). For its block a thread transforms the inputs
// straight into the micro-kernel's packed B layout (V_xi as panels of NR tiles), runs the GEMM
// micro-kernel (gemm_micro_kernel.h) on the filters, transformed once per call into its packed
// A layout, and transforms M back into y. Transforms run on vectors of tiles: a tile's patch is
// gathered into one lane of 36 vectors, so the arithmetic is all vector code. Backward-weight
// is described above its function.
#include <algorithm>
#include <type_traits>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "gemm_micro_kernel.h"
#include "kernels.h"
#include "transpose.h"

namespace ck {
namespace CK_ISA {
namespace {

constexpr int kAlpha = 6;                 // side of a transformed tile
constexpr int kPoints = kAlpha * kAlpha;  // positions xi of a transformed tile
// Tiles a thread transforms and multiplies at once. Its V and M do not fit in L2 for AlexNet's
// channel counts either way, but 128 (V 4.7 MB on conv3) made the input transform's 36 strided
// store streams 3x slower and the whole layer 1.3x slower than 64.
constexpr int64_t kBlockTiles = 64;
constexpr int64_t kMaxSlotBytes = 32 << 20;  // a thread's V and M, at most (blocks shrink)

// The 1-D transforms, on scalars or vectors (one tile per lane), reading `in` and writing `out`
// with the given strides. Applied along columns and then along rows they give the 2-D
// transforms B^T d B, G g G^T and A^T m A (and, for backward-weight, A dy A^T and G^T m G).
// Each variant below (F4x3, F2x5) supplies its own G, A^T, A and G^T; B^T is shared.

// out = B^T in (6 -> 6)
template <typename V>
inline void input_1d(const V* in, int is, V* out, int os) {
  const V d0 = in[0], d1 = in[is], d2 = in[2 * is], d3 = in[3 * is], d4 = in[4 * is],
          d5 = in[5 * is];
  out[0] = (d4 - d2) + 4 * (d0 - d2);
  out[1 * os] = (d3 + d4) - 4 * (d1 + d2);
  out[2 * os] = (d4 - d3) + 4 * (d1 - d2);
  out[3 * os] = (d4 - d2) + 2 * (d3 - d1);
  out[4 * os] = (d4 - d2) - 2 * (d3 - d1);
  out[5 * os] = (d5 - d3) + 4 * (d1 - d3);
}

// F(4x4, 3x3): 4x4 outputs per tile from 3x3 filters.
struct F4x3 {
  static constexpr int kOut = 4, kTaps = 3;

  // out = G in (3 -> 6); the filters are transformed in double.
  template <typename V>
  static void filter_1d(const V* in, int is, V* out, int os) {
    constexpr double kSixth = 1.0 / 6, kTwelfth = 1.0 / 12, kTwentyFourth = 1.0 / 24;
    const V g0 = in[0], g1 = in[is], g2 = in[2 * is];
    out[0] = g0 * 0.25;
    out[1 * os] = -(g0 + g1 + g2) * kSixth;
    out[2 * os] = -(g0 - g1 + g2) * kSixth;
    out[3 * os] = g0 * kTwentyFourth + g1 * kTwelfth + g2 * kSixth;
    out[4 * os] = g0 * kTwentyFourth - g1 * kTwelfth + g2 * kSixth;
    out[5 * os] = g2;
  }

  // out = A^T in (6 -> 4)
  template <typename V>
  static void output_1d(const V* in, int is, V* out, int os) {
    const V m1p2 = in[is] + in[2 * is], m1m2 = in[is] - in[2 * is];
    const V m3p4 = in[3 * is] + in[4 * is], m3m4 = in[3 * is] - in[4 * is];
    out[0] = in[0] + m1p2 + m3p4;
    out[1 * os] = m1m2 + 2 * m3m4;
    out[2 * os] = m1p2 + 4 * m3p4;
    out[3 * os] = m1m2 + 8 * m3m4 + in[5 * is];
  }

  // out = A in (4 -> 6): a tile of dy into the transformed domain (backward-weight).
  template <typename V>
  static void gradient_1d(const V* in, int is, V* out, int os) {
    const V e0 = in[0], e1 = in[is], e2 = in[2 * is], e3 = in[3 * is];
    out[0] = e0;
    out[1 * os] = (e0 + e2) + (e1 + e3);
    out[2 * os] = (e0 + e2) - (e1 + e3);
    out[3 * os] = (e0 + 4 * e2) + 2 * (e1 + 4 * e3);
    out[4 * os] = (e0 + 4 * e2) - 2 * (e1 + 4 * e3);
    out[5 * os] = e3;
  }

  // out = G^T in (6 -> 3): a transformed weight gradient back to taps (backward-weight).
  template <typename V>
  static void weight_1d(const V* in, int is, V* out, int os) {
    using S = std::remove_reference_t<decltype(in[0][0])>;
    const S sixth = S(1) / 6, twelfth = S(1) / 12, twenty_fourth = S(1) / 24;
    const V m1p2 = in[is] + in[2 * is], m1m2 = in[2 * is] - in[is];
    const V m3p4 = in[3 * is] + in[4 * is], m3m4 = in[3 * is] - in[4 * is];
    out[0] = in[0] * S(0.25) - m1p2 * sixth + m3p4 * twenty_fourth;
    out[1 * os] = m1m2 * sixth + m3m4 * twelfth;
    out[2 * os] = (m3p4 - m1p2) * sixth + in[5 * is];
  }
};

// F(2x2, 5x5): 2x2 outputs per tile from 5x5 filters, on the same points and B^T as F4x3
// (G's rows are the points' powers over the same products of differences).
struct F2x5 {
  static constexpr int kOut = 2, kTaps = 5;

  // out = G in (5 -> 6), in double.
  template <typename V>
  static void filter_1d(const V* in, int is, V* out, int os) {
    constexpr double kSixth = 1.0 / 6, kTwentyFourth = 1.0 / 24;
    const V g0 = in[0], g1 = in[is], g2 = in[2 * is], g3 = in[3 * is], g4 = in[4 * is];
    const V even = g0 + g2 + g4, odd = g1 + g3;
    const V even2 = g0 + 4 * g2 + 16 * g4, odd2 = 2 * g1 + 8 * g3;
    out[0] = g0 * 0.25;
    out[1 * os] = -(even + odd) * kSixth;
    out[2 * os] = -(even - odd) * kSixth;
    out[3 * os] = (even2 + odd2) * kTwentyFourth;
    out[4 * os] = (even2 - odd2) * kTwentyFourth;
    out[5 * os] = g4;
  }

  // out = A^T in (6 -> 2)
  template <typename V>
  static void output_1d(const V* in, int is, V* out, int os) {
    out[0] = in[0] + (in[is] + in[2 * is]) + (in[3 * is] + in[4 * is]);
    out[1 * os] = (in[is] - in[2 * is]) + 2 * (in[3 * is] - in[4 * is]) + in[5 * is];
  }

  // out = A in (2 -> 6)
  template <typename V>
  static void gradient_1d(const V* in, int is, V* out, int os) {
    const V e0 = in[0], e1 = in[is];
    out[0] = e0;
    out[1 * os] = e0 + e1;
    out[2 * os] = e0 - e1;
    out[3 * os] = e0 + 2 * e1;
    out[4 * os] = e0 - 2 * e1;
    out[5 * os] = e1;
  }

  // out = G^T in (6 -> 5)
  template <typename V>
  static void weight_1d(const V* in, int is, V* out, int os) {
    using S = std::remove_reference_t<decltype(in[0][0])>;
    const S sixth = S(1) / 6, twelfth = S(1) / 12, third = S(1) / 3;
    const V m1p2 = in[is] + in[2 * is], m2m1 = in[2 * is] - in[is];
    const V m3p4 = in[3 * is] + in[4 * is], m3m4 = in[3 * is] - in[4 * is];
    out[0] = in[0] * S(0.25) - m1p2 * sixth + m3p4 * (S(1) / 24);
    out[1 * os] = m2m1 * sixth + m3m4 * twelfth;
    out[2 * os] = (m3p4 - m1p2) * sixth;
    out[3 * os] = m2m1 * sixth + m3m4 * third;
    out[4 * os] = m3p4 * (S(2) / 3) - m1p2 * sixth + in[5 * is];
  }
};

// Gathering 6x6 patches into lanes element by element stores each value to the stack and
// reloads it as part of a vector, which the CPU cannot forward from the stores: on AVX2 (Zen 3)
// that made the input transform 41 % of CIFAR c2's forward. With 8 float lanes a patch row fits
// in one vector, so 8 tiles' row i load as 8 vectors (2 values past the patch, read and
// dropped: buffers holding patches keep kPatchSlack elements after them) and an 8 x 8
// transpose turns them into 6 vectors of one element across the tiles.
constexpr int64_t kPatchSlack = 64;
#if defined(__AVX2__) && !defined(__AVX512F__)
template <typename T>
constexpr bool kGatherByTranspose = std::is_same_v<T, float>;

inline void gather_by_transpose(const float* const* sources, int64_t pitch, Simd<float>::Vec* in) {
  for (int i = 0; i < kAlpha; ++i) {
    __m256 r[8];
    for (int l = 0; l < 8; ++l) {
      r[l] = sources[l] ? _mm256_loadu_ps(sources[l] + i * pitch) : _mm256_setzero_ps();
    }
    transpose_8x8(r);
    for (int j = 0; j < kAlpha; ++j) in[i * kAlpha + j] = Simd<float>::Vec(r[j]);
  }
}
#else
template <typename T>
constexpr bool kGatherByTranspose = false;
template <typename T>
void gather_by_transpose(const T* const*, int64_t, typename Simd<T>::Vec*) {}
#endif

// out[xi] = the 2-D transforms of Side x Side patches, one per lane: patch l at sources[l] with
// rows `pitch` apart (nullptr: zeros). Side 6 is an input patch (B^T d B), Side F::kOut a tile
// of dy (A dy A^T). Gathering each patch into one lane makes the arithmetic vector code.
template <typename F, int Side, typename T>
void transform_patches(const T* const* sources, int64_t pitch, typename Simd<T>::Vec* out) {
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  Vec in[Side * Side], half[kAlpha * Side];
  if constexpr (kGatherByTranspose<T> && Side == kAlpha) {
    gather_by_transpose(sources, pitch, in);
  } else {
    alignas(kVectorBytes) T lanes[Side * Side][L];
    for (int l = 0; l < L; ++l) {
      const T* src = sources[l];
      for (int i = 0; i < Side; ++i) {
        for (int j = 0; j < Side; ++j) lanes[i * Side + j][l] = src ? src[i * pitch + j] : T(0);
      }
    }
    for (int i = 0; i < Side * Side; ++i) in[i] = *reinterpret_cast<const Vec*>(lanes[i]);
  }
  if constexpr (Side == kAlpha) {
    for (int j = 0; j < kAlpha; ++j) input_1d(in + j, kAlpha, half + j, kAlpha);  // columns
    for (int a = 0; a < kAlpha; ++a) input_1d(half + a * kAlpha, 1, out + a * kAlpha, 1);
  } else {
    for (int j = 0; j < Side; ++j) F::gradient_1d(in + j, Side, half + j, Side);  // columns
    for (int a = 0; a < kAlpha; ++a) F::gradient_1d(half + a * Side, 1, out + a * kAlpha, 1);
  }
}

struct WinogradDims {
  int64_t Cg, Kg, HW, PQ;
  int64_t tiles_h, tiles_w, tiles_per_sample, tiles;  // m x m output tiles
  int64_t block;                                      // tiles per block, a multiple of NR
  int64_t blocks;                                     // ceil(tiles / block)
  int64_t Kp;                                         // Kg rounded up to whole A panels
};

template <typename F, typename T>
WinogradDims winograd_dims(const Conv2dParams& p, int threads) {
  constexpr int NR = Tile<T>::kNr;
  WinogradDims d;
  d.Cg = p.C / p.groups;
  d.Kg = p.K / p.groups;
  d.HW = p.H * p.W;
  d.PQ = p.P * p.Q;
  d.tiles_h = ceil_div(p.P, F::kOut);
  d.tiles_w = ceil_div(p.Q, F::kOut);
  d.tiles_per_sample = d.tiles_h * d.tiles_w;
  d.tiles = p.N * d.tiles_per_sample;
  d.Kp = round_up(d.Kg, kMr);
  // Smaller blocks while they leave a thread without work or need too much scratch.
  const auto slot_bytes = [&](int64_t block) {
    return static_cast<int64_t>(sizeof(T)) * kPoints * block * (d.Cg + d.Kg);
  };
  d.block = round_up(std::min(kBlockTiles, d.tiles), NR);
  while (d.block > NR &&
         (ceil_div(d.tiles, d.block) * p.groups < threads || slot_bytes(d.block) > kMaxSlotBytes)) {
    d.block -= NR;
  }
  d.blocks = ceil_div(d.tiles, d.block);
  return d;
}

// The block's tiles and the input rows they read. A row of tiles reads a band of 6 input rows
// (m more than the previous row's, 6 - m shared), copied per channel with the padding written as
// zeros, so that gathering a patch needs no bounds checks: with the checks, mispredicted
// branches made the input transform 18 % of AlexNet conv3's time.
struct Band {
  int64_t sample_offset;  // n C H W
  int64_t h0;             // first input row, negative in the padding
};
struct TileAt {
  int64_t band_offset;  // of the patch in the block's band buffer
  int64_t y_offset;     // of the tile's first output, from the group's first filter of sample 0
  int rows, cols;       // inside the output
};
struct BlockLayout {
  int64_t band_w;  // columns of a band row: the tiles' width plus 6 - m, padding included
  int64_t bands;
  Band* band;
  TileAt* tile;
};

template <typename F>
int64_t band_width(const WinogradDims& d) {
  return d.tiles_w * F::kOut + kAlpha - F::kOut;
}
int64_t max_bands(const WinogradDims& d) {  // a block may start and end inside a row of tiles
  return d.block / d.tiles_w + 2;
}

template <typename F>
void locate_tiles(const Conv2dParams& p, const WinogradDims& d, int64_t t0, int64_t count,
                  BlockLayout& layout) {
  layout.band_w = band_width<F>(d);
  layout.bands = 0;
  int64_t previous_row = -1;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t n = (t0 + t) / d.tiles_per_sample, within = (t0 + t) % d.tiles_per_sample;
    const int64_t tile_row = (t0 + t) / d.tiles_w;  // over the whole batch
    const int64_t oh = within / d.tiles_w * F::kOut, ow = within % d.tiles_w * F::kOut;
    if (tile_row != previous_row) {
      layout.band[layout.bands++] = {n * p.C * d.HW, oh - p.pad.h};
      previous_row = tile_row;
    }
    TileAt& at = layout.tile[t];
    at.band_offset = (layout.bands - 1) * kAlpha * layout.band_w + ow;
    at.y_offset = n * p.K * d.PQ + oh * p.Q + ow;
    at.rows = static_cast<int>(std::min<int64_t>(F::kOut, p.P - oh));
    at.cols = static_cast<int>(std::min<int64_t>(F::kOut, p.Q - ow));
  }
}

// band[b][i][u] = x_c (row band b's h0 + i, column u - pad.w), zero outside the input.
template <typename T>
void fill_bands(const Conv2dParams& p, const BlockLayout& layout, const T* x_c, T* band) {
  const int64_t w = layout.band_w, left = std::min(p.pad.w, w);
  const int64_t inside = std::max<int64_t>(0, std::min(p.W, w - p.pad.w));
  for (int64_t b = 0; b < layout.bands; ++b) {
    for (int i = 0; i < kAlpha; ++i) {
      T* dst = band + (b * kAlpha + i) * w;
      const int64_t h = layout.band[b].h0 + i;
      if (h < 0 || h >= p.H) {
        for (int64_t u = 0; u < w; ++u) dst[u] = T(0);
        continue;
      }
      const T* src = x_c + layout.band[b].sample_offset + h * p.W;
      for (int64_t u = 0; u < left; ++u) dst[u] = T(0);
      for (int64_t u = 0; u < inside; ++u) dst[left + u] = src[u];
      for (int64_t u = left + inside; u < w; ++u) dst[u] = T(0);
    }
  }
}

// u[xi][panel][c][r] = (G g G^T)[xi] of filter panel * kMr + r, channel c: the filters of one
// group in the micro-kernel's packed A layout, zero past the last filter. Vectors of channels
// (in double) are transformed for a panel's kMr filters, then written kMr values at a time to
// each of the 36 destinations (one value at a time, the strided stores took 30 % of AlexNet
// conv3's time).
template <typename F, typename T>
void transform_filters(const WinogradDims& d, const T* w_g, T* u) {
  constexpr int kTaps = F::kTaps;
  using Vec = typename Simd<double>::Vec;
  constexpr int L = Simd<double>::kLanes;
  const int64_t panels = d.Kp / kMr, panel_size = d.Cg * kMr, xi_size = panels * panel_size;
#pragma omp parallel for schedule(static)
  for (int64_t panel = 0; panel < panels; ++panel) {
    for (int64_t c0 = 0; c0 < d.Cg; c0 += L) {
      const int lanes = static_cast<int>(std::min<int64_t>(L, d.Cg - c0));
      alignas(kVectorBytes) double g[kTaps * kTaps][L];
      alignas(kVectorBytes) double full[kMr][kPoints][L];
      for (int r = 0; r < kMr; ++r) {
        const int64_t k = panel * kMr + r;
        for (int l = 0; l < L; ++l) {
          const T* src = w_g + (k * d.Cg + c0 + l) * kTaps * kTaps;
          const bool inside = k < d.Kg && l < lanes;
          for (int i = 0; i < kTaps * kTaps; ++i) g[i][l] = inside ? src[i] : 0.0;
        }
        Vec in[kTaps * kTaps], half[kAlpha * kTaps], out[kPoints];
        for (int i = 0; i < kTaps * kTaps; ++i) in[i] = *reinterpret_cast<const Vec*>(g[i]);
        for (int j = 0; j < kTaps; ++j) F::filter_1d(in + j, kTaps, half + j, kTaps);  // G g
        for (int a = 0; a < kAlpha; ++a) F::filter_1d(half + a * kTaps, 1, out + a * kAlpha, 1);
        for (int xi = 0; xi < kPoints; ++xi) *reinterpret_cast<Vec*>(full[r][xi]) = out[xi];
      }
      for (int l = 0; l < lanes; ++l) {
        T* dst = u + panel * panel_size + (c0 + l) * kMr;
        for (int xi = 0; xi < kPoints; ++xi) {
          for (int r = 0; r < kMr; ++r) dst[xi * xi_size + r] = static_cast<T>(full[r][xi][l]);
        }
      }
    }
  }
}

// The block's V and M hold 36 slices, one per position xi, written (V) and read (M) 36 at a time
// by the transforms. Slices a multiple of 4 KiB apart all fall in the same L1 set and evict each
// other (CIFAR c2's V slices are 8 KiB: the stores into them were 18 % of its forward on Zen 3),
// so each slice is followed by a cache line of padding.
template <typename T>
constexpr int64_t kSliceGap = 64 / sizeof(T);
template <typename T>
int64_t v_xi_stride(const WinogradDims& d, int64_t tiles) {
  return round_up(tiles, Tile<T>::kNr) * d.Cg + kSliceGap<T>;
}
template <typename T>
int64_t m_xi_stride(const WinogradDims& d) {
  return d.Kg * d.block + kSliceGap<T>;
}

// v[xi][panel][c][j] = (B^T d B)[xi] of the block's tile panel * NR + j, channel c: the inputs
// in the micro-kernel's packed B layout, zero past the block's last tile.
template <typename F, typename T>
void transform_inputs(const Conv2dParams& p, const WinogradDims& d, const T* x_g,
                      const BlockLayout& layout, int64_t count, T* band, T* v) {
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes, NR = Tile<T>::kNr;
  const int64_t columns = round_up(count, NR), xi_size = v_xi_stride<T>(d, count);
  for (int64_t c = 0; c < d.Cg; ++c) {
    fill_bands(p, layout, x_g + c * d.HW, band);
    for (int64_t lane0 = 0; lane0 < columns; lane0 += L) {
      const T* sources[L];  // lane l: the patch of tile lane0 + l
      for (int l = 0; l < L; ++l) {
        sources[l] = lane0 + l < count ? band + layout.tile[lane0 + l].band_offset : nullptr;
      }
      Vec out[kPoints];
      transform_patches<F, kAlpha>(sources, layout.band_w, out);
      T* dst = v + (lane0 / NR) * d.Cg * NR + c * NR + lane0 % NR;
      for (int xi = 0; xi < kPoints; ++xi) *reinterpret_cast<Vec*>(dst + xi * xi_size) = out[xi];
    }
  }
}

// y (tile, filter k) = A^T m A (+ bias, then ReLU if p.relu) for the block's tiles, m[xi] =
// M[xi][k][tile]; parts of tiles past the output's edge are dropped.
template <typename F, typename T>
void transform_outputs(const Conv2dParams& p, const WinogradDims& d, const T* m, int64_t ldm,
                       const BlockLayout& layout, int64_t count, const T* bias_g, T* y_g) {
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  const int64_t xi_size = m_xi_stride<T>(d);
  alignas(kVectorBytes) T tile[F::kOut * F::kOut][L];
  for (int64_t k = 0; k < d.Kg; ++k) {
    const T bias = bias_g != nullptr ? bias_g[k] : T(0);
    for (int64_t lane0 = 0; lane0 < count; lane0 += L) {
      Vec in[kPoints], half[F::kOut * kAlpha], out[F::kOut * F::kOut];
      for (int xi = 0; xi < kPoints; ++xi) {
        in[xi] = *reinterpret_cast<const Vec*>(m + xi * xi_size + k * ldm + lane0);
      }
      for (int b = 0; b < kAlpha; ++b) F::output_1d(in + b, kAlpha, half + b, kAlpha);  // columns
      for (int i = 0; i < F::kOut; ++i) F::output_1d(half + i * kAlpha, 1, out + i * F::kOut, 1);
      for (int i = 0; i < F::kOut * F::kOut; ++i) {
        const Vec v = out[i] + bias;
        *reinterpret_cast<Vec*>(tile[i]) = p.relu ? relu_lanes(v) : v;
      }
      const int lanes = static_cast<int>(std::min<int64_t>(L, count - lane0));
      for (int l = 0; l < lanes; ++l) {
        const TileAt& q = layout.tile[lane0 + l];
        T* dst = y_g + k * d.PQ + q.y_offset;
        for (int i = 0; i < q.rows; ++i) {
          for (int j = 0; j < q.cols; ++j) dst[i * p.Q + j] = tile[i * F::kOut + j][l];
        }
      }
    }
  }
}

template <typename F, typename T>
void forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int NR = Tile<T>::kNr;
  const int threads = max_threads();
  const WinogradDims d = winograd_dims<F, T>(p, threads);
  const int64_t u_size = kPoints * d.Kp * d.Cg;  // per group
  Scratch<T> u(p.groups * u_size);
  for (int64_t g = 0; g < p.groups; ++g) {
    transform_filters<F>(d, w + g * d.Kg * d.Cg * F::kTaps * F::kTaps, u.get() + g * u_size);
  }
  const int64_t v_size = kPoints * v_xi_stride<T>(d, d.block), m_size = kPoints * m_xi_stride<T>(d);
  const int64_t items = d.blocks * p.groups;
  const int slots = static_cast<int>(std::min<int64_t>(threads, items));
  // Whole cache lines each, so every slot's v stays aligned for the vector stores.
  const int64_t band_size =
      round_up(max_bands(d) * kAlpha * band_width<F>(d) + kPatchSlack, 64 / sizeof(T));
  Scratch<T> work(slots * (v_size + m_size + band_size));
  Scratch<TileAt> tiles(slots * d.block);
  Scratch<Band> bands(slots * max_bands(d));
#pragma omp parallel for num_threads(slots) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t block = item / p.groups, g = item % p.groups;
    const int64_t t0 = block * d.block, count = std::min(d.block, d.tiles - t0);
    const int64_t columns = round_up(count, NR);
    const int slot = thread_id();
    T* v = work.get() + slot * (v_size + m_size + band_size);
    T* m = v + v_size;
    BlockLayout layout{0, 0, bands.get() + slot * max_bands(d), tiles.get() + slot * d.block};
    locate_tiles<F>(p, d, t0, count, layout);
    transform_inputs<F>(p, d, x + g * d.Cg * d.HW, layout, count, m + m_size, v);
    // M_xi (Kg, columns) = U_xi V_xi: one A panel of filters against every B panel of tiles.
    const T* u_g = u.get() + g * u_size;
    for (int xi = 0; xi < kPoints; ++xi) {
      const T* v_xi = v + xi * v_xi_stride<T>(d, count);
      T* m_xi = m + xi * m_xi_stride<T>(d);
      for (int64_t ir = 0; ir < d.Kp; ir += kMr) {
        const T* a = u_g + (xi * d.Kp + ir) * d.Cg;
        const int mr = static_cast<int>(std::min<int64_t>(kMr, d.Kg - ir));
        for (int64_t jr = 0; jr < columns; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, count - jr));
          micro_kernel(d.Cg, a, v_xi + jr * d.Cg, m_xi + ir * d.block + jr, d.block, mr, nr, false);
        }
      }
    }
    transform_outputs<F>(p, d, m, d.block, layout, count, b != nullptr ? b + g * d.Kg : nullptr,
                         y + g * d.Kg * d.PQ);
  }
}

// Backward-weight: for each tile and each of the 36 positions xi, the transformed input
// (B^T d B) and the transformed dy tile (A dy A^T, dy zero past the output's edge) multiply,
// and the products summed over tiles are the transformed gradient:
//   M_xi (Kg, Cg) = sum over tiles  Yt_xi (Kg, tiles) Vt_xi (tiles, Cg),   dw = G^T M G.
// (F(4x4, 3x3) transposed: y = A^T [(G g) .* (B^T d)] gives dg = G^T [(A dy) .* (B^T d)].)
// Tiles go in blocks; per block the team transforms x and dy into the micro-kernel's packed
// layouts in shared buffers, then each thread adds the products of its own positions xi. Every
// M_xi is summed by one thread in block order, so results do not depend on the thread count.
// One operand goes in the A panels (kMr rows, written with scalar stores through a local
// buffer), the other in the B panels (NR columns, vector stores); see x_in_a.

constexpr int64_t kGradientBlockBytes = 48 << 20;  // a block's transformed x and dy, at most
constexpr int64_t kMaxGradientBlock = 512;         // tiles: the micro-kernel's B panels stay in L2

// x (N, C, H, W) with zero padding around it, laid out so every tile's 6x6 patch is inside:
// (N, C, tiles_h * out + 6 - out, tiles_w * out + 6 - out), input row 0 at padded row pad.h.
template <typename F, typename T>
void pad_input(const Conv2dParams& p, const WinogradDims& d, const T* x, T* x_pad) {
  const int64_t hp = d.tiles_h * F::kOut + kAlpha - F::kOut;
  const int64_t wp = d.tiles_w * F::kOut + kAlpha - F::kOut;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.N * p.C; ++plane) {
    const T* src = x + plane * d.HW;
    T* dst = x_pad + plane * hp * wp;
    for (int64_t u = 0; u < hp; ++u) {
      const int64_t h = u - p.pad.h;
      for (int64_t v = 0; v < wp; ++v) {
        const int64_t w = v - p.pad.w;
        const bool inside = h >= 0 && h < p.H && w >= 0 && w < p.W;
        dst[u * wp + v] = inside ? src[h * p.W + w] : T(0);
      }
    }
  }
}

// dy (N, K, P, Q) with zeros to whole tiles: (N, K, tiles_h * 4, tiles_w * 4).
template <typename F, typename T>
void pad_gradient(const Conv2dParams& p, const WinogradDims& d, const T* dy, T* dy_pad) {
  const int64_t hp = d.tiles_h * F::kOut, wp = d.tiles_w * F::kOut;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < p.N * p.K; ++plane) {
    const T* src = dy + plane * d.PQ;
    T* dst = dy_pad + plane * hp * wp;
    for (int64_t u = 0; u < hp; ++u) {
      for (int64_t v = 0; v < wp; ++v) {
        dst[u * wp + v] = u < p.P && v < p.Q ? src[u * p.Q + v] : T(0);
      }
    }
  }
}

// One operand of the backward-weight products: x's 6x6 patches (transformed by B^T . B) or
// dy's m x m tiles (A . A^T), of one group, read from the zero-padded planes above.
template <typename F, typename T, int Side>
struct GradientOperand {
  using Vec = typename Simd<T>::Vec;
  static constexpr int side = Side;  // kAlpha for x, F::kOut for dy
  const T* planes;
  int64_t channels;     // of the whole tensor (C or K)
  int64_t first, rows;  // the group's first channel and its channel count (Cg or Kg)
  int64_t plane_h, plane_w;
  const WinogradDims* d;

  // The corner of tile t's patch in the group's first channel; channel `row` is
  // row * plane_size() further.
  const T* tile(int64_t t) const {
    const int64_t n = t / d->tiles_per_sample, within = t % d->tiles_per_sample;
    const int64_t oh = within / d->tiles_w * F::kOut, ow = within % d->tiles_w * F::kOut;
    return planes + ((n * channels + first) * plane_h + oh) * plane_w + ow;
  }
  int64_t plane_size() const { return plane_h * plane_w; }
  // out = the transforms of the patches of tiles/channels in `sources`, one per lane.
  void transform(const T* const* sources, Vec* out) const {
    transform_patches<F, Side>(sources, plane_w, out);
  }
};

// The block's tiles t0 .. t0 + count of `op` in the micro-kernel's packed B layout,
// b[xi][panel][t][j] = transform of channel panel * NR + j, tile t0 + t (zero past the last
// channel): vectors of channels. `stride` tiles per panel. Inside a parallel region.
template <typename T, typename Operand>
void pack_operand_b(const Operand& op, int64_t t0, int64_t count, int64_t stride, T* b) {
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes, NR = Tile<T>::kNr;
  const int64_t padded = round_up(op.rows, NR), xi_size = padded * stride + kSliceGap<T>;
#pragma omp for schedule(static)
  for (int64_t t = 0; t < count; ++t) {
    const T* tile = op.tile(t0 + t);
    for (int64_t r0 = 0; r0 < padded; r0 += L) {
      const T* sources[L];
      for (int l = 0; l < L; ++l) {
        sources[l] = r0 + l < op.rows ? tile + (r0 + l) * op.plane_size() : nullptr;
      }
      Vec out[kPoints];
      op.transform(sources, out);
      T* dst = b + (r0 / NR) * stride * NR + t * NR + r0 % NR;
      for (int xi = 0; xi < kPoints; ++xi) *reinterpret_cast<Vec*>(dst + xi * xi_size) = out[xi];
    }
  }
}

// The same in the packed A layout, a[xi][panel][t][r] = transform of channel panel * kMr + r:
// vectors of tiles, a panel's kMr channels interleaved in a local buffer so that each of the
// 36 destinations gets whole cache lines (scattered scalar stores were 2x slower than the
// whole GEMM).
template <typename T, typename Operand>
void pack_operand_a(const Operand& op, int64_t t0, int64_t count, int64_t stride, T* a) {
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  const int64_t panels = ceil_div(op.rows, kMr), xi_size = panels * kMr * stride + kSliceGap<T>;
  const int64_t lane_groups = ceil_div(count, L);
#pragma omp for schedule(static)
  for (int64_t item = 0; item < panels * lane_groups; ++item) {
    const int64_t panel = item / lane_groups, lane0 = item % lane_groups * L;
    alignas(kVectorBytes) T interleaved[kPoints][L * kMr];
    const T* tiles[L];
    for (int l = 0; l < L; ++l) tiles[l] = lane0 + l < count ? op.tile(t0 + lane0 + l) : nullptr;
    for (int r = 0; r < kMr; ++r) {
      const int64_t row = panel * kMr + r;
      const T* sources[L];
      for (int l = 0; l < L; ++l) {
        sources[l] = row < op.rows && tiles[l] ? tiles[l] + row * op.plane_size() : nullptr;
      }
      Vec out[kPoints];
      op.transform(sources, out);
      for (int xi = 0; xi < kPoints; ++xi) {
        for (int l = 0; l < L; ++l) interleaved[xi][l * kMr + r] = out[xi][l];
      }
    }
    T* dst = a + panel * stride * kMr + lane0 * kMr;
    for (int xi = 0; xi < kPoints; ++xi) {
      for (int i = 0; i < kMr; ++i) {
        reinterpret_cast<Vec*>(dst + xi * xi_size)[i] =
            reinterpret_cast<const Vec*>(interleaved[xi])[i];
      }
    }
  }
}

// M_xi (a.rows, b.rows) = sum over all tiles of A_xi B_xi, the tiles in blocks: the team packs
// a block of both operands, then each thread multiplies its own positions xi.
template <typename T, typename OperandA, typename OperandB>
void sum_products(const WinogradDims& d, const OperandA& a_op, const OperandB& b_op, T* m) {
  constexpr int L = Simd<T>::kLanes, NR = Tile<T>::kNr;
  const int64_t a_rows = round_up(a_op.rows, kMr), b_rows = round_up(b_op.rows, NR);
  // Tiles per block: as many as kGradientBlockBytes holds, at most kMaxGradientBlock.
  const int64_t per_tile = static_cast<int64_t>(sizeof(T)) * kPoints * (a_rows + b_rows);
  const int64_t block =
      std::max<int64_t>(1, std::min({d.tiles, kMaxGradientBlock, kGradientBlockBytes / per_tile}));
  const int64_t blocks = ceil_div(d.tiles, block);
  const int64_t stride = round_up(block, L);  // tiles per packed panel, whole vectors
  const int64_t a_xi = a_rows * stride + kSliceGap<T>, b_xi = b_rows * stride + kSliceGap<T>;
  const int64_t ldm = b_op.rows, m_xi = a_op.rows * b_op.rows;
  const int team = static_cast<int>(std::min<int64_t>(max_threads(), kPoints));
  Scratch<T> a(kPoints * a_xi), b(kPoints * b_xi);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t t0 = blk * block, count = std::min(block, d.tiles - t0);
#pragma omp parallel num_threads(team)
    {
      pack_operand_a<T>(a_op, t0, count, stride, a.get());
      pack_operand_b<T>(b_op, t0, count, stride, b.get());
      // M_xi (+)= A_xi B_xi, each position by one thread in block order (the implicit barrier
      // above finished both transforms).
#pragma omp for schedule(static)
      for (int xi = 0; xi < kPoints; ++xi) {
        for (int64_t ir = 0; ir < a_rows; ir += kMr) {
          const int mr = static_cast<int>(std::min<int64_t>(kMr, a_op.rows - ir));
          for (int64_t jr = 0; jr < b_rows; jr += NR) {
            const int nr = static_cast<int>(std::min<int64_t>(NR, b_op.rows - jr));
            micro_kernel(count, a.get() + xi * a_xi + ir * stride,
                         b.get() + xi * b_xi + jr * stride, m + xi * m_xi + ir * ldm + jr, ldm, mr,
                         nr, blk > 0);
          }
        }
      }
    }
  }
}

template <typename F, typename T>
void backward_weight(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  constexpr int kTaps = F::kTaps;
  using Vec = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  const int threads = max_threads();
  const WinogradDims d = winograd_dims<F, T>(p, threads);
  const int64_t xh = d.tiles_h * F::kOut + kAlpha - F::kOut;  // padded x plane
  const int64_t xw = d.tiles_w * F::kOut + kAlpha - F::kOut;
  const int64_t gh = d.tiles_h * F::kOut, gw = d.tiles_w * F::kOut;  // padded dy plane
  Scratch<T> x_pad(p.N * p.C * xh * xw + kPatchSlack), dy_pad(p.N * p.K * gh * gw);
  pad_input<F>(p, d, x, x_pad.get());
  pad_gradient<F>(p, d, dy, dy_pad.get());
  using XOperand = GradientOperand<F, T, kAlpha>;
  using DyOperand = GradientOperand<F, T, F::kOut>;
  XOperand xs{x_pad.get(), p.C, 0, d.Cg, xh, xw, &d};
  DyOperand dys{dy_pad.get(), p.K, 0, d.Kg, gh, gw, &d};
  // M_xi (A rows, B rows): dw's transform, or its transpose when x is in A.
  // x in A for 5x5 layers with fewer channels than filters: dy's 2x2 tiles are cheap to
  // transform, and the scalar-store side then has fewer rows (CIFAR c3 1.4x, AlexNet conv2
  // 1.05x faster). For AlexNet conv3 (3x3, 256 channels, 384 filters) it was 1.05x slower.
  const bool x_in_a = F::kOut == 2 && d.Cg < d.Kg;
  const int64_t ldm = x_in_a ? d.Kg : d.Cg, m_xi = d.Kg * d.Cg;
  Scratch<T> m(kPoints * m_xi);
  for (int64_t g = 0; g < p.groups; ++g) {
    xs.first = g * d.Cg;
    dys.first = g * d.Kg;
    if (x_in_a) {
      sum_products(d, xs, dys, m.get());
    } else {
      sum_products(d, dys, xs, m.get());
    }
    // dw[k][c] = G^T M[k][c] G, vectors along M's rows (k for dw's transform, c for its
    // transpose), so that the 36 loads per lane are contiguous.
    T* dw_g = dw + g * d.Kg * d.Cg * kTaps * kTaps;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < (x_in_a ? d.Cg : d.Kg); ++row) {
      for (int64_t j0 = 0; j0 < ldm; j0 += L) {
        const int lanes = static_cast<int>(std::min<int64_t>(L, ldm - j0));
        alignas(kVectorBytes) T in_lanes[kPoints][L] = {};
        for (int xi = 0; xi < kPoints; ++xi) {
          const T* src = m.get() + xi * m_xi + row * ldm + j0;
          for (int l = 0; l < lanes; ++l) in_lanes[xi][l] = src[l];
        }
        Vec in[kPoints], half[kTaps * kAlpha], out[kTaps * kTaps];
        for (int i = 0; i < kPoints; ++i) in[i] = *reinterpret_cast<const Vec*>(in_lanes[i]);
        for (int b = 0; b < kAlpha; ++b) F::weight_1d(in + b, kAlpha, half + b, kAlpha);
        for (int r = 0; r < kTaps; ++r) F::weight_1d(half + r * kAlpha, 1, out + r * kTaps, 1);
        alignas(kVectorBytes) T taps[kTaps * kTaps][L];
        for (int i = 0; i < kTaps * kTaps; ++i) *reinterpret_cast<Vec*>(taps[i]) = out[i];
        for (int l = 0; l < lanes; ++l) {
          const int64_t k = x_in_a ? j0 + l : row, c = x_in_a ? row : j0 + l;
          T* dst = dw_g + (k * d.Cg + c) * kTaps * kTaps;
          for (int i = 0; i < kTaps * kTaps; ++i) dst[i] = taps[i][l];
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void conv2d_forward_winograd(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  if (p.R == 3) {
    forward<F4x3>(p, x, w, b, y);
  } else {
    forward<F2x5>(p, x, w, b, y);
  }
}

template <typename T>
void conv2d_backward_weight_winograd(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  if (p.R == 3) {
    backward_weight<F4x3>(p, x, dy, dw);
  } else {
    backward_weight<F2x5>(p, x, dy, dw);
  }
}

template void conv2d_backward_weight_winograd<float>(const Conv2dParams&, const float*,
                                                     const float*, float*);
template void conv2d_backward_weight_winograd<double>(const Conv2dParams&, const double*,
                                                      const double*, double*);
template void conv2d_forward_winograd<float>(const Conv2dParams&, const float*, const float*,
                                             const float*, float*);
template void conv2d_forward_winograd<double>(const Conv2dParams&, const double*, const double*,
                                              const double*, double*);

}  // namespace CK_ISA
}  // namespace ck
