// Backward-weight with the filters in the vector lanes, on a channels-last copy of dy.
//
// Legend: N batch, C input channels, H W input size, K filters, R S filter taps, P Q output size,
// G groups, Cg = C / G and Kg = K / G channels per group, L vector lanes.
//
//   dw[k, c, r, s] = sum over n, p, q of  dy[n, k, p, q] * xp[n, c, p sh + r dh, q sw + s]
//
// (xp: x zero-padded). With dy copied to dy_t[n][p][q][k] (k padded to a multiple of L), one
// step of the reduction, an output position (n, p, q), multiplies a vector of filters' dy by one
// input value per tap: acc[tap][k vector] += broadcast(xp[...]) * dy_t[n, p, q, k vector]. A
// block of taps (RB (c, r) rows of S taps) times KV vectors of filters stays in registers over
// all the positions of a chunk of output rows, so each step is KV vector loads, RB S broadcasts
// and RB S KV FMAs, and nothing is copied per tap (no im2col). This is the GEMM dw^T (CRS, K) =
// col (CRS, NPQ) dy_t (NPQ, K) with col read straight from the padded input.
//
// Threads split the blocks of taps and filters (each block's sum runs on one thread, in the
// same order whatever the thread count), or, when there are too few blocks, the output rows
// (each thread its own dw^T, summed in thread order).
#include <algorithm>
#include <vector>

#include "im2col.h"
#include "kernels.h"
#include "transpose.h"

namespace ck {
namespace CK_ISA {
namespace {

// Accumulators a block aims for: enough independent FMA chains to hide their latency (two FMA
// units, 4 cycles each), few enough to leave registers for the operands (32 vector registers
// with AVX-512, 16 below).
#if defined(__AVX512F__)
constexpr int kAccumulators = 25;
#else
constexpr int kAccumulators = 12;
#endif
// Bytes of dy_t and input rows a chunk of output rows spans: the chunk is re-read from L2 for
// every block of taps. dy is copied channels-last a chunk at a time, just before its blocks
// run, so the copy is written to cache rather than to memory and read back.
constexpr int64_t kChunkBytes = 384 << 10;

struct Layout {
  int64_t Cg, Kg, Kpad;           // Kpad: Kg rounded up to whole vectors
  int64_t Hp, Wp, plane, sample;  // padded input: plane = Hp Wp, sample = C plane
  int64_t rows;                   // output rows of a group: N P
};

// One block: acc[i][s][v] (RB (c, r) rows starting at cr0, all S taps, KV vectors from k0) +=
// the products over output rows [row_begin, row_end), into dw_t (Cg R S, Kpad); dy_t_g holds
// the group's dy of those rows, channels-last.
template <typename T, int KV, int RB, int S>
void accumulate_block(const Conv2dParams& p, const Layout& d, const T* xp_g, const T* dy_t_g,
                      int64_t row_begin, int64_t row_end, int64_t cr0, int64_t k0, T* dw_t) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::kLanes;
  V acc[RB][S][KV];
  T* out = dw_t + cr0 * S * d.Kpad + k0;
  for (int i = 0; i < RB; ++i) {
    for (int s = 0; s < S; ++s) {
      for (int v = 0; v < KV; ++v)
        acc[i][s][v] = *reinterpret_cast<V*>(out + (i * S + s) * d.Kpad + v * L);
    }
  }
  int64_t offset[RB];  // of each row's taps in a sample's padded input, for output row 0
  for (int i = 0; i < RB; ++i) {
    const int64_t c = (cr0 + i) / p.R, r = (cr0 + i) % p.R;
    offset[i] = c * d.plane + r * p.dilation.h * d.Wp;
  }
  const V negative_zero = V{} * T(-1);  // -0 + x is x for every x, +0 keeps -0's sign
  const int64_t sw = p.stride.w;
  int64_t n = row_begin / p.P, oh = row_begin % p.P;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const T* x_row = xp_g + n * d.sample + oh * p.stride.h * d.Wp;
    const T* x_i[RB];
    for (int i = 0; i < RB; ++i) x_i[i] = x_row + offset[i];
    const T* dy_row = dy_t_g + (row - row_begin) * p.Q * d.Kpad + k0;
    for (int64_t q = 0; q < p.Q; ++q) {
      V b[KV];
#pragma GCC unroll 4
      for (int v = 0; v < KV; ++v) b[v] = *reinterpret_cast<const V*>(dy_row + q * d.Kpad + v * L);
#pragma GCC unroll 8
      for (int i = 0; i < RB; ++i) {
#pragma GCC unroll 11
        for (int s = 0; s < S; ++s) {
          const V a = negative_zero + x_i[i][q * sw + s];
#pragma GCC unroll 4
          for (int v = 0; v < KV; ++v) acc[i][s][v] += a * b[v];
        }
      }
    }
    if (++oh == p.P) oh = 0, ++n;
  }
  for (int i = 0; i < RB; ++i) {
    for (int s = 0; s < S; ++s) {
      for (int v = 0; v < KV; ++v)
        *reinterpret_cast<V*>(out + (i * S + s) * d.Kpad + v * L) = acc[i][s][v];
    }
  }
}

// A block of the work: RB (c, r) rows from cr0, KV filter vectors from k0, in group g.
struct Block {
  int64_t g, cr0, k0;
  int rows, vectors;
};

template <typename T>
using BlockKernel = void (*)(const Conv2dParams&, const Layout&, const T*, const T*, int64_t,
                             int64_t, int64_t, int64_t, T*);

// The kernel for a block of `vectors` KV and `rows` RB, for filter width S.
template <typename T, int S>
BlockKernel<T> block_kernel(int vectors, int rows) {
  constexpr int kRows1 = std::max(1, kAccumulators / S),
                kRows2 = std::max(1, kAccumulators / (2 * S));
  constexpr int kRows4 = std::max(1, kAccumulators / (4 * S));
  if constexpr (4 * S <= kAccumulators) {
    if (vectors == 4)
      return rows == 1 ? accumulate_block<T, 4, 1, S> : accumulate_block<T, 4, kRows4, S>;
  }
  if constexpr (2 * S <= kAccumulators) {
    if (vectors == 2)
      return rows == 1 ? accumulate_block<T, 2, 1, S> : accumulate_block<T, 2, kRows2, S>;
  }
  return rows == 1 ? accumulate_block<T, 1, 1, S> : accumulate_block<T, 1, kRows1, S>;
}

template <typename T>
BlockKernel<T> block_kernel(int64_t S, int vectors, int rows) {
  switch (S) {
    case 3:
      return block_kernel<T, 3>(vectors, rows);
    case 5:
      return block_kernel<T, 5>(vectors, rows);
    case 7:
      return block_kernel<T, 7>(vectors, rows);
    default:
      return block_kernel<T, 11>(vectors, rows);
  }
}

// Splits the work into blocks: filter vectors in passes of 4, 2 or 1 (as many as the
// accumulators allow), each pass over the (c, r) rows in runs of as many as fit.
std::vector<Block> plan_blocks(const Conv2dParams& p, const Layout& d, int lanes) {
  std::vector<Block> blocks;
  const int64_t vectors = d.Kpad / lanes, cr = d.Cg * p.R;
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t v0 = 0; v0 < vectors;) {
      int kv = 1;
      if (vectors - v0 >= 4 && 4 * p.S <= kAccumulators) {
        kv = 4;
      } else if (vectors - v0 >= 2 && 2 * p.S <= kAccumulators) {
        kv = 2;
      }
      const int rb = static_cast<int>(std::max<int64_t>(1, kAccumulators / (kv * p.S)));
      int64_t cr0 = 0;
      for (; cr0 + rb <= cr; cr0 += rb) blocks.push_back({g, cr0, v0 * lanes, rb, kv});
      for (; cr0 < cr; ++cr0) blocks.push_back({g, cr0, v0 * lanes, 1, kv});
      v0 += kv;
    }
  }
  return blocks;
}

// dy of output rows [row_begin, row_end) copied channels-last: dy_t[g][row - chunk_row0][q][k]
// (group g's rows start at dy_t + g * group_stride), zero for k >= Kg.
template <typename T>
void copy_dy_rows(const Conv2dParams& p, const Layout& d, const T* dy, int64_t row_begin,
                  int64_t row_end, int64_t chunk_row0, T* dy_t, int64_t group_stride) {
  const int64_t PQ = p.P * p.Q;
  for (int64_t row = row_begin; row < row_end;) {
    // The rows of one sample: positions contiguous in every channel of dy.
    const int64_t n = row / p.P, oh = row % p.P, rows = std::min(row_end - row, p.P - oh);
    for (int64_t g = 0; g < p.groups; ++g) {
      T* dst = dy_t + g * group_stride + (row - chunk_row0) * p.Q * d.Kpad;
      transpose(dy + (n * p.K + g * d.Kg) * PQ + oh * p.Q, PQ, d.Kg, rows * p.Q, dst, d.Kpad);
      for (int64_t i = 0; i < rows * p.Q; ++i) {
        for (int64_t k = d.Kg; k < d.Kpad; ++k) dst[i * d.Kpad + k] = T(0);
      }
    }
    row += rows;
  }
}

}  // namespace

bool conv2d_backward_weight_nhwc_possible(const Conv2dParams& p) {
  return (p.S == 3 || p.S == 5 || p.S == 7 || p.S == 11) && p.dilation.w == 1;
}

template <typename T>
void conv2d_backward_weight_nhwc(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  constexpr int L = Simd<T>::kLanes;
  Layout d;
  d.Cg = p.C / p.groups, d.Kg = p.K / p.groups, d.Kpad = round_up(d.Kg, L);
  d.Hp = p.H + 2 * p.pad.h, d.Wp = p.W + 2 * p.pad.w, d.plane = d.Hp * d.Wp;
  d.sample = p.C * d.plane, d.rows = p.N * p.P;
  const int64_t CRS = d.Cg * p.R * p.S, dw_t_size = p.groups * CRS * d.Kpad;

  // The input zero-padded (unless there is no padding).
  const bool padded = p.pad.h != 0 || p.pad.w != 0;
  Scratch<T> xp(padded ? p.N * d.sample : 0);
  if (padded) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < p.N * p.C; ++nc)
      pad_plane(p, x + nc * p.H * p.W, xp.get() + nc * d.plane);
  }
  const T* input = padded ? xp.get() : x;

  const std::vector<Block> blocks = plan_blocks(p, d, L);
  const int threads = max_threads();
  const int64_t row_bytes =
      (p.Q * d.Kpad + p.stride.h * d.Cg * d.Wp) * static_cast<int64_t>(sizeof(T));
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / row_bytes);
  // Too few blocks to share out evenly: threads split the rows instead, each into its own dw_t
  // and with its own copy of dy. Otherwise all threads copy a chunk's dy together, into one of
  // two buffers so that copying the next chunk overlaps the slowest thread's last blocks.
  const bool split_rows = static_cast<int64_t>(blocks.size()) < 4 * threads;
  const int slots = split_rows ? threads : 1;
  const int64_t group_chunk = chunk * p.Q * d.Kpad;  // a chunk's dy_t of one group
  Scratch<T> dy_t((split_rows ? threads : 2) * p.groups * group_chunk);
  Scratch<T> dw_t(slots * dw_t_size);
  for (int64_t i = 0; i < slots * dw_t_size; ++i) dw_t.get()[i] = T(0);
#pragma omp parallel num_threads(threads)
  {
    // Work is shared by the team actually running (unused dw_t slots stay zero).
    const int t = thread_id(), team = team_size();
    const int64_t count = static_cast<int64_t>(blocks.size());
    const int64_t first = split_rows ? 0 : count * t / team;
    const int64_t last = split_rows ? count : count * (t + 1) / team;
    const int64_t row_first = split_rows ? d.rows * t / team : 0;
    const int64_t row_last = split_rows ? d.rows * (t + 1) / team : d.rows;
    T* dw_t_mine = dw_t.get() + (split_rows ? t : 0) * dw_t_size;
    int64_t parity = 0;
    for (int64_t row0 = row_first; row0 < row_last; row0 += chunk, parity ^= 1) {
      const int64_t row1 = std::min(row_last, row0 + chunk);
      T* dy_chunk = dy_t.get() + (split_rows ? t : parity) * p.groups * group_chunk;
      if (split_rows) {
        copy_dy_rows(p, d, dy, row0, row1, row0, dy_chunk, group_chunk);
      } else {
        const int64_t rows = row1 - row0;
        copy_dy_rows(p, d, dy, row0 + rows * t / team, row0 + rows * (t + 1) / team, row0, dy_chunk,
                     group_chunk);
#pragma omp barrier
      }
      for (int64_t b = first; b < last; ++b) {
        const Block& blk = blocks[b];
        block_kernel<T>(p.S, blk.vectors, blk.rows)(
            p, d, input + blk.g * d.Cg * d.plane, dy_chunk + blk.g * group_chunk, row0, row1,
            blk.cr0, blk.k0, dw_t_mine + blk.g * CRS * d.Kpad);
      }
    }
  }
  if (split_rows) sum_slices(dw_t.get(), slots, dw_t_size, dw_t.get());
  for (int64_t g = 0; g < p.groups; ++g) {
    const T* src = dw_t.get() + g * CRS * d.Kpad;
    for (int64_t k = 0; k < d.Kg; ++k) {
      T* dst = dw + (g * d.Kg + k) * CRS;
      for (int64_t i = 0; i < CRS; ++i) dst[i] = src[i * d.Kpad + k];
    }
  }
}

template void conv2d_backward_weight_nhwc<float>(const Conv2dParams&, const float*, const float*,
                                                 float*);
template void conv2d_backward_weight_nhwc<double>(const Conv2dParams&, const double*, const double*,
                                                  double*);

}  // namespace CK_ISA
}  // namespace ck
