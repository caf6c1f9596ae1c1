// What every CUDA kernel file includes first: the CUDA runtime (or, for the tests, the host
// emulation in tests/emulation/cuda_host.h), a launcher that turns CUDA errors into exceptions,
// device workspace, and the small device helpers the kernels share.
//
// Kernels never call the runtime directly, so that the same source builds for a GPU with nvcc
// and for the host emulation with a C++ compiler: they launch through ck::cuda::launch and take
// memory from Workspace.
#pragma once

#ifdef CK_CUDA_EMULATION
#include "cuda_host.h"
#else
#include <cuda_runtime.h>
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

namespace ck {
namespace cuda {

constexpr int kWarpSize = 32;

// Raised (as RuntimeError in Python) for any CUDA error; a launcher never exits the process.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(error));
  }
}

// The stream the kernels of the current host thread run on (the caller's current stream, set by
// the bindings before each op).
inline cudaStream_t& current_stream() {
  static thread_local cudaStream_t stream = nullptr;
  return stream;
}

// kernel<<<grid, block, 0, current_stream()>>>(args...), then a check of the launch. `what`
// names the kernel in the error message.
template <typename... Params, typename... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
#ifdef CK_CUDA_EMULATION
  ck_emulation::launch(kernel, grid, block, args...);
#else
  // clang-format would split the >>> of a launch in a .cuh file.
  // clang-format off
  kernel<<<grid, block, 0, current_stream()>>>(static_cast<Params>(args)...);
  // clang-format on
#endif
  check(cudaGetLastError(), what);
}

// `count` elements of device memory for the duration of one op, ordered on the current stream.
template <typename T>
class Workspace {
 public:
  explicit Workspace(int64_t count) {
    void* ptr = nullptr;
    check(cudaMallocAsync(&ptr, static_cast<size_t>(count > 0 ? count : 1) * sizeof(T),
                          current_stream()),
          "workspace allocation");
    data_ = static_cast<T*>(ptr);
  }
  ~Workspace() { cudaFreeAsync(data_, current_stream()); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
};

// Sets `count` elements at `ptr` to zero bits (0.0 for floats), on the current stream.
template <typename T>
void zero(T* ptr, int64_t count) {
  check(cudaMemsetAsync(ptr, 0, static_cast<size_t>(count) * sizeof(T), current_stream()),
        "cudaMemsetAsync");
}

__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Blocks for a 1-D grid over `count` items with `threads` per block; grid-stride loops cover the
// rest when the count exceeds what one launch can index.
inline dim3 grid_for(int64_t count, int threads) {
  const int64_t blocks = ceil_div(count > 0 ? count : 1, threads);
  return dim3(static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16));
}

// Math with one name for float and double (CUDA's float overloads are not std's).
__device__ __forceinline__ float device_sqrt(float x) {
  return sqrtf(x);
}
__device__ __forceinline__ double device_sqrt(double x) {
  return sqrt(x);
}
__device__ __forceinline__ float device_exp(float x) {
  return expf(x);
}
__device__ __forceinline__ double device_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float device_pow(float x, float y) {
  return powf(x, y);
}
__device__ __forceinline__ double device_pow(double x, double y) {
  return pow(x, y);
}
template <typename T>
__device__ __forceinline__ T device_max(T a, T b) {
  return a > b ? a : b;
}
template <typename T>
__device__ __forceinline__ T device_min(T a, T b) {
  return a < b ? a : b;
}

// The sum of `value` over the calling warp, in lane 0.
template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
  for (int delta = kWarpSize / 2; delta > 0; delta /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, delta);
  }
  return value;
}

// The sum of `value` over the block (blockDim.x threads, a multiple of 32, at most 1024), in
// every thread. Every thread of the block must call it; it synchronises the block.
template <typename T>
__device__ __forceinline__ T block_sum(T value) {
  __shared__ T warp_sums[1024 / kWarpSize];
  __shared__ T total;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  value = warp_sum(value);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarpSize;
    T sum = lane < warps ? warp_sums[lane] : T(0);
    sum = warp_sum(sum);
    if (lane == 0) total = sum;
  }
  __syncthreads();
  const T result = total;
  __syncthreads();  // a following block_sum may overwrite total only after everyone has read it
  return result;
}

}  // namespace cuda
}  // namespace ck
