// Runs CUDA kernels on the host, for the tests only: the kernel sources in cuda/*.cu compile
// unchanged as C++ with -DCK_CUDA_EMULATION, this header standing in for the CUDA toolkit.
//
// A launch runs its blocks one after another. Each block runs one std::thread per CUDA thread;
// __syncthreads() is a std::barrier over the block's threads, warp shuffles go through a per-warp
// exchange buffer between two per-warp barriers, atomics are std::atomic_ref, __shared__ is
// static storage (shared by the block's threads, reused by the next block, as uninitialised as
// on a GPU), and "device" memory is aligned host memory. A thread that returns early leaves its
// block's and warp's barriers (arrive_and_drop), as exited threads do on a GPU.
//
// What this proves: every thread computes what it should from what it reads, indexing stays in
// bounds (run it under AddressSanitizer), and every read of shared memory written by another
// thread is ordered by a barrier (under ThreadSanitizer, a missing __syncthreads is a data race).
// What it does not: warp-synchronous code without __syncwarp, the GPU memory model beyond
// barriers and atomics, resource limits (registers, shared memory size), and speed.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchOutOfResources = 7,
};

inline const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
  }
  return "unknown error";
}

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;  // written before a launch's threads start, read-only during it

namespace ck_emulation {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kMaxBlockThreads = 1024;

inline thread_local cudaError_t last_error = cudaSuccess;

// The synchronisation of one block: its barrier and, per warp, a barrier and an exchange buffer.
struct BlockSync {
  explicit BlockSync(unsigned threads) : block(threads) {
    for (unsigned first = 0; first < threads; first += kWarpSize) {
      const unsigned lanes = std::min(kWarpSize, threads - first);
      warps.push_back(std::make_unique<Warp>(lanes));
    }
  }
  struct Warp {
    explicit Warp(unsigned lanes_) : lanes(lanes_), sync(lanes_) {}
    unsigned lanes;
    std::barrier<> sync;
    alignas(8) unsigned char slots[kWarpSize][8];
  };
  std::barrier<> block;
  std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local BlockSync* current_block = nullptr;
inline thread_local unsigned current_thread = 0;  // linear index in the block

inline BlockSync::Warp& current_warp() {
  return *current_block->warps[current_thread / kWarpSize];
}

inline std::mutex& launch_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Runs kernel<<<grid, block>>>(args...) to completion. Launches are serialised: __shared__
// storage is one static array per kernel, so two launches must never overlap.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  if (threads == 0 || threads > kMaxBlockThreads || block.z > 64 || blocks == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  std::lock_guard<std::mutex> lock(launch_mutex());
  blockDim = block;
  gridDim = grid;
  const unsigned n = static_cast<unsigned>(threads);
  std::barrier<> launch_sync(n);
  std::optional<BlockSync> sync;
  auto run = [&](unsigned tid) {
    threadIdx = dim3(tid % block.x, tid / block.x % block.y, tid / (block.x * block.y));
    current_thread = tid;
    for (uint64_t b = 0; b < blocks; ++b) {
      if (tid == 0) sync.emplace(n);
      launch_sync.arrive_and_wait();
      blockIdx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                      static_cast<unsigned>(b / (uint64_t(grid.x) * grid.y)));
      current_block = &*sync;
      kernel(static_cast<Params>(args)...);
      current_warp().sync.arrive_and_drop();
      current_block->block.arrive_and_drop();
      current_block = nullptr;
      launch_sync.arrive_and_wait();  // the block is over before thread 0 makes the next one's
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(n);
  try {
    for (unsigned tid = 0; tid < n; ++tid) pool.emplace_back(run, tid);
  } catch (const std::system_error&) {
    // Too many threads for this host: the ones started would wait forever at launch_sync.
    std::abort();
  }
  for (std::thread& t : pool) t.join();
}

}  // namespace ck_emulation

inline void __syncthreads() {
  ck_emulation::current_block->block.arrive_and_wait();
}

inline void __syncwarp(unsigned = 0xffffffffu) {
  ck_emulation::current_warp().sync.arrive_and_wait();
}

// Lane `lane + delta` of the calling warp's value (own value past the end of the warp).
template <typename T>
T __shfl_down_sync(unsigned, T value, unsigned delta, int = 32) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  auto& warp = ck_emulation::current_warp();
  const unsigned lane = ck_emulation::current_thread % ck_emulation::kWarpSize;
  std::memcpy(warp.slots[lane], &value, sizeof(T));
  warp.sync.arrive_and_wait();
  T result = value;
  if (lane + delta < warp.lanes) std::memcpy(&result, warp.slots[lane + delta], sizeof(T));
  warp.sync.arrive_and_wait();  // nobody overwrites a slot before every lane has read
  return result;
}

template <typename T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}

inline unsigned long long atomicExch(unsigned long long* address, unsigned long long value) {
  return std::atomic_ref<unsigned long long>(*address).exchange(value);
}

inline cudaError_t cudaGetLastError() {
  const cudaError_t error = ck_emulation::last_error;
  ck_emulation::last_error = cudaSuccess;
  return error;
}

// "Device" memory: aligned host memory; every operation completes before it returns.
inline cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t) {
  *ptr = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFreeAsync(void* ptr, cudaStream_t) {
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
enum cudaMemcpyKind { cudaMemcpyDeviceToHost = 2 };
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return cudaSuccess;
}
