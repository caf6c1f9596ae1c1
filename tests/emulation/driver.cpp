// Runs every CUDA kernel under the host emulation on small, odd shapes (partial tiles and blocks,
// strides, padding, dilation, groups, several backward-weight k-slices) and compares each result
// with the CPU kernels of libconvkernels. Built twice by tests/emulation/build.py: under
// ThreadSanitizer (a missing __syncthreads is a data race between the emulated threads) and
// under AddressSanitizer + UndefinedBehaviorSanitizer (out-of-bounds global or __shared__
// accesses, overflow). Exit status 0 when every comparison holds and no sanitizer fired.
//
//   driver               check every kernel
//   driver canary-race   a kernel that reads shared memory without __syncthreads (TSan must fail)
//   driver canary-sync   the same kernel with the barrier (must pass)
//   driver canary-oob    a kernel that writes one past a __shared__ array (ASan must fail)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_kernels.h"
#include "dispatch.h"
#include "runtime.cuh"

namespace {

int failures = 0;

template <typename T>
std::vector<T> random_values(size_t count, unsigned seed) {
  std::vector<T> v(count);
  unsigned state = seed * 2654435761u + 1;
  for (T& x : v) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<T>((state >> 8) % 2001) / T(1000) - T(1);
  }
  return v;
}

template <typename T>
void compare(const char* what, const std::vector<T>& gpu, const std::vector<T>& cpu) {
  const double tol = sizeof(T) == 4 ? 2e-4 : 1e-11;
  double worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double scale = std::fmax(1.0, std::fabs(static_cast<double>(cpu[i])));
    const double err = std::fabs(static_cast<double>(gpu[i]) - static_cast<double>(cpu[i])) / scale;
    if (!(err <= worst)) worst = err;  // NaN counts as the worst
  }
  const bool ok = worst <= tol;
  std::printf("%-4s %-6s %-40s max error %.3g\n", ok ? "ok" : "FAIL",
              sizeof(T) == 4 ? "float" : "double", what, worst);
  if (!ok) ++failures;
}

// Whether params.cpp accepted a case's shape (`check` is its message); a rejected one fails.
bool valid_shape(const char* name, const std::string& check) {
  if (check.empty()) return true;
  std::printf("FAIL bad shape %s: %s\n", name, check.c_str());
  ++failures;
  return false;
}

template <typename T>
void check_conv(const char* name, ck::Conv2dParams p) {
  if (!valid_shape(name, ck::conv2d_check(p, p.C / p.groups, ck::ConvArgNames{}))) return;
  const auto& cpu = ck::active_kernels().table<T>();
  const auto& gpu = ck::cuda::kernel_table<T>();
  const size_t nx = p.N * p.C * p.H * p.W, nw = p.K * (p.C / p.groups) * p.R * p.S;
  const size_t ny = p.N * p.K * p.P * p.Q;
  const auto x = random_values<T>(nx, 1), w = random_values<T>(nw, 2), b = random_values<T>(p.K, 3);
  const auto dy = random_values<T>(ny, 4);
  std::vector<T> a(ny), c(ny);
  gpu.conv2d_forward(p, x.data(), w.data(), b.data(), a.data());
  cpu.conv2d_forward(p, x.data(), w.data(), b.data(), c.data());
  compare((std::string(name) + " forward").c_str(), a, c);
  a.assign(nx, T(0)), c.assign(nx, T(0));
  gpu.conv2d_backward_input(p, dy.data(), w.data(), a.data());
  cpu.conv2d_backward_input(p, dy.data(), w.data(), c.data());
  compare((std::string(name) + " backward-input").c_str(), a, c);
  a.assign(nw, T(0)), c.assign(nw, T(0));
  gpu.conv2d_backward_weight(p, x.data(), dy.data(), a.data());
  cpu.conv2d_backward_weight(p, x.data(), dy.data(), c.data());
  compare((std::string(name) + " backward-weight").c_str(), a, c);
  a.assign(p.K, T(0)), c.assign(p.K, T(0));
  gpu.conv2d_backward_bias(p, dy.data(), a.data());
  cpu.conv2d_backward_bias(p, dy.data(), c.data());
  compare((std::string(name) + " backward-bias").c_str(), a, c);
}

ck::Conv2dParams conv(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                      ck::Hw stride, ck::Hw pad, ck::Hw dilation, int64_t groups) {
  ck::Conv2dParams p;
  p.N = N, p.C = C, p.H = H, p.W = W, p.K = K, p.R = R, p.S = S;
  p.stride = stride, p.pad = pad, p.dilation = dilation, p.groups = groups;
  return p;
}

template <typename T>
void check_pool(const char* name, ck::Pool2dParams p) {
  if (!valid_shape(name, ck::pool2d_check(p, name, "x"))) return;
  const auto& cpu = ck::active_kernels().table<T>();
  const auto& gpu = ck::cuda::kernel_table<T>();
  const size_t nx = p.N * p.C * p.H * p.W, ny = p.N * p.C * p.P * p.Q;
  const auto x = random_values<T>(nx, 5), dy = random_values<T>(ny, 6);
  std::vector<T> a(ny), c(ny);
  std::vector<int64_t> idx_a(ny), idx_c(ny);
  gpu.max_pool2d_forward(p, x.data(), a.data(), idx_a.data());
  cpu.max_pool2d_forward(p, x.data(), c.data(), idx_c.data());
  compare((std::string(name) + " max forward").c_str(), a, c);
  if (idx_a != idx_c) {
    std::printf("FAIL %s max forward: argmax differs\n", name);
    ++failures;
  }
  a.assign(nx, T(0)), c.assign(nx, T(0));
  gpu.max_pool2d_backward(p, dy.data(), idx_c.data(), a.data());
  cpu.max_pool2d_backward(p, dy.data(), idx_c.data(), c.data());
  compare((std::string(name) + " max backward").c_str(), a, c);
  a.assign(ny, T(0)), c.assign(ny, T(0));
  gpu.avg_pool2d_forward(p, x.data(), a.data());
  cpu.avg_pool2d_forward(p, x.data(), c.data());
  compare((std::string(name) + " avg forward").c_str(), a, c);
  a.assign(nx, T(0)), c.assign(nx, T(0));
  gpu.avg_pool2d_backward(p, dy.data(), a.data());
  cpu.avg_pool2d_backward(p, dy.data(), c.data());
  compare((std::string(name) + " avg backward").c_str(), a, c);
}

ck::Pool2dParams pool(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k, int64_t s, int64_t pad,
                      bool ceil_mode, bool count_include_pad) {
  ck::Pool2dParams p;
  p.N = N, p.C = C, p.H = H, p.W = W;
  p.kernel = {k, k}, p.stride = {s, s}, p.pad = {pad, pad};
  p.ceil_mode = ceil_mode, p.count_include_pad = count_include_pad;
  return p;
}

template <typename T>
void check_elementwise() {
  const auto& cpu = ck::active_kernels().table<T>();
  const auto& gpu = ck::cuda::kernel_table<T>();
  const ck::ReluParams relu{1000, 0.1};
  const auto x = random_values<T>(1000, 7), dy = random_values<T>(1000, 8);
  std::vector<T> a(1000), c(1000);
  gpu.relu_forward(relu, x.data(), a.data());
  cpu.relu_forward(relu, x.data(), c.data());
  compare("relu forward", a, c);
  gpu.relu_backward(relu, dy.data(), x.data(), a.data());
  cpu.relu_backward(relu, dy.data(), x.data(), c.data());
  compare("relu backward", a, c);
  const ck::TanhParams tanh{1000, 1.7159, 2.0 / 3.0};
  gpu.tanh_forward(tanh, x.data(), a.data());
  cpu.tanh_forward(tanh, x.data(), c.data());
  compare("tanh forward", a, c);
  gpu.tanh_backward(tanh, dy.data(), c.data(), a.data());
  cpu.tanh_backward(tanh, dy.data(), c.data(), c.data());
  compare("tanh backward", a, c);

  for (double beta : {0.75, 0.6}) {
    ck::LrnParams p;
    p.N = 2, p.C = 7, p.H = 3, p.W = 5, p.size = 4, p.alpha = 0.5, p.beta = beta, p.k = 2;
    const size_t n = p.N * p.C * p.H * p.W;
    const auto lx = random_values<T>(n, 9), ldy = random_values<T>(n, 10);
    a.assign(n, T(0)), c.assign(n, T(0));
    gpu.lrn_forward(p, lx.data(), a.data());
    cpu.lrn_forward(p, lx.data(), c.data());
    compare(beta == 0.75 ? "lrn forward (beta 0.75)" : "lrn forward", a, c);
    gpu.lrn_backward(p, ldy.data(), lx.data(), a.data());
    cpu.lrn_backward(p, ldy.data(), lx.data(), c.data());
    compare(beta == 0.75 ? "lrn backward (beta 0.75)" : "lrn backward", a, c);
  }

  ck::LcnParams q;
  q.N = 2, q.C = 3, q.H = 6, q.W = 7, q.size = 5, q.sigma = 1.5, q.eps = 1e-4;
  const size_t n = q.N * q.C * q.H * q.W;
  const auto cx = random_values<T>(n, 11), cdy = random_values<T>(n, 12);
  a.assign(n, T(0)), c.assign(n, T(0));
  gpu.lcn_forward(q, cx.data(), a.data());
  cpu.lcn_forward(q, cx.data(), c.data());
  compare("lcn forward", a, c);
  gpu.lcn_backward(q, cdy.data(), cx.data(), a.data());
  cpu.lcn_backward(q, cdy.data(), cx.data(), c.data());
  compare("lcn backward", a, c);
}

template <typename T>
void check_all() {
  using ck::Hw;
  // A partial 64 x 64 tile in every dimension, stride, padding and dilation.
  check_conv<T>("conv odd", conv(2, 3, 7, 9, 5, 3, 2, Hw{2, 1}, Hw{1, 0}, Hw{1, 2}, 1));
  // Groups, and more filters than one tile holds.
  check_conv<T>("conv groups", conv(1, 4, 6, 5, 70, 3, 3, Hw{1, 1}, Hw{1, 1}, Hw{1, 1}, 2));
  // N P Q = 4608 > 4096: backward-weight sums two k-slices.
  check_conv<T>("conv k-slices", conv(2, 2, 48, 48, 3, 1, 1, Hw{1, 1}, Hw{0, 0}, Hw{1, 1}, 1));
  check_pool<T>("pool 3/2 pad 1 ceil", pool(2, 3, 7, 8, 3, 2, 1, true, false));
  check_pool<T>("pool 2/2", pool(1, 2, 6, 6, 2, 2, 0, false, true));
  check_elementwise<T>();
}

// The canaries: proof that the sanitizers see what they are here to see.
__global__ void canary_kernel(float* out, bool sync, bool overflow) {
  __shared__ float tile[64];
  tile[threadIdx.x + (overflow ? 1 : 0)] = static_cast<float>(threadIdx.x);
  if (sync) __syncthreads();
  out[threadIdx.x] = tile[(threadIdx.x + 1) % 64];
}

int canary(bool sync, bool overflow) {
  std::vector<float> out(64);
  ck::cuda::launch("canary", &canary_kernel, dim3(1), dim3(64), out.data(), sync, overflow);
  std::printf("canary ran: out[0] = %g\n", out[0]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "canary-race") return canary(false, false);
  if (mode == "canary-sync") return canary(true, false);
  if (mode == "canary-oob") return canary(true, true);
  // One CPU thread: the library's OpenMP threads are not instrumented.
  if (!ck::set_num_threads(1).empty()) return 2;
  try {
    check_all<float>();
    check_all<double>();
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
