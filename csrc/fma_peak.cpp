// The FP32 peak of this ISA level on this machine, measured rather than assumed: every thread runs
// independent chains of vector multiply-adds, and the flops they did over the wall time they took
// is the ceiling the bench's "% of peak" is reported against. A core retires at most (FMA pipes)
// vector FMAs per cycle and each chain one per FMA latency, so kChains chains fill the pipes of
// every x86 core we target: 2 pipes x 4-5 cycles. (The portable level, without FMA, gets a multiply
// and an add per step: its own peak, which is also what its kernels can reach.)
#include <chrono>

#include "kernels.h"

namespace ck {
namespace CK_ISA {
namespace {

constexpr int kChains = 12;  // with the two constants, 14 of AVX2's 16 vector registers

// acc <- acc m + a tends to a / (1 - m) = 1 from any start, so the values stay normal however
// many rounds run. Returns the sum of the chains, so no step can be left out.
float run_chains(int64_t rounds, float start) {
  using V = Simd<float>::Vec;
  V acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = V{} + (start + 0.125f * j);
  const V m = V{} + 0.999f, a = V{} + 0.001f;
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * m + a;
  }
  float sum = 0;
  for (int j = 0; j < kChains; ++j) {
    for (int lane = 0; lane < Simd<float>::kLanes; ++lane) sum += acc[j][lane];
  }
  return sum;
}

}  // namespace

FmaRun fma_peak_run(int64_t rounds) {
  const auto start = std::chrono::steady_clock::now();
  float sum = 0;
  int threads = 1;
#pragma omp parallel reduction(+ : sum)
  {
#pragma omp single nowait
    threads = team_size();
    sum += run_chains(rounds, 1.0f + thread_id());
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const double flops = 2.0 * kChains * Simd<float>::kLanes * double(rounds) * threads;
  return {flops, elapsed.count(), threads, sum};
}

}  // namespace CK_ISA
}  // namespace ck
