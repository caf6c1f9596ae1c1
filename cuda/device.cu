// The kernel table of the CUDA launchers, and what the bindings need from the runtime: streams,
// devices, poisoned outputs for the tests, and the range check of max-pool indices.
#include <limits>

#include "cuda_kernels.h"
#include "runtime.cuh"

namespace ck {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
KernelTable<T> make_table() {
  return {&conv2d_forward<T>,
          &conv2d_backward_input<T>,
          &conv2d_backward_weight<T>,
          &conv2d_backward_bias<T>,
          &max_pool2d_forward<T>,
          &max_pool2d_backward<T>,
          &avg_pool2d_forward<T>,
          &avg_pool2d_backward<T>,
          &relu_forward<T>,
          &relu_backward<T>,
          &tanh_forward<T>,
          &tanh_backward<T>,
          &lrn_forward<T>,
          &lrn_backward<T>,
          &lcn_forward<T>,
          &lcn_backward<T>,
          nullptr};
}

// Thread mapping for both: one thread per element, grid-stride.
template <typename T>
__global__ void __launch_bounds__(kThreads) fill_kernel(T* ptr, int64_t count, T value) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    ptr[i] = value;
  }
}

// found[0] = 1 and found[1] = some idx[i] outside [0, limit) (the last written wins) if any;
// found stays zero otherwise.
__global__ void __launch_bounds__(kThreads)
    out_of_range_kernel(const int64_t* idx, int64_t count, int64_t limit,
                        unsigned long long* found) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    if (idx[i] < 0 || idx[i] >= limit) {
      atomicExch(found + 1, static_cast<unsigned long long>(idx[i]));
      atomicExch(found, 1ull);
    }
  }
}

}  // namespace

template <typename T>
const KernelTable<T>& kernel_table() {
  static const KernelTable<T> table = make_table<T>();
  return table;
}
template const KernelTable<float>& kernel_table<float>();
template const KernelTable<double>& kernel_table<double>();

void set_stream(uintptr_t stream) {
  current_stream() = reinterpret_cast<cudaStream_t>(stream);
}

template <typename T>
void fill_poison(T* ptr, int64_t count) {
  if (count == 0) return;
  const T value =
      std::numeric_limits<T>::has_quiet_NaN ? std::numeric_limits<T>::quiet_NaN() : T(-1);
  launch("fill_poison", &fill_kernel<T>, grid_for(count, kThreads), dim3(kThreads), ptr, count,
         value);
}
template void fill_poison<float>(float*, int64_t);
template void fill_poison<double>(double*, int64_t);
template void fill_poison<int64_t>(int64_t*, int64_t);

bool find_out_of_range(const int64_t* idx, int64_t count, int64_t limit, int64_t* bad) {
  if (count == 0) return false;
  Workspace<unsigned long long> found(2);
  zero(found.get(), 2);
  launch("max_pool2d_backward (index check)", &out_of_range_kernel, grid_for(count, kThreads),
         dim3(kThreads), idx, count, limit, found.get());
  unsigned long long result[2] = {0, 0};
  check(cudaMemcpyAsync(result, found.get(), sizeof(result), cudaMemcpyDeviceToHost,
                        current_stream()),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(current_stream()), "cudaStreamSynchronize");
  *bad = static_cast<int64_t>(result[1]);
  return result[0] != 0;
}

#ifdef CK_CUDA_EMULATION
// The host emulation is one device that owns all memory.
void use_device(int) {}
int device_count(std::string*) {
  return 1;
}
std::string device_name(int) {
  return "host emulation of CUDA (tests/emulation/cuda_host.h)";
}
int runtime_version() {
  return 0;
}
#else
void use_device(int index) {
  check(cudaSetDevice(index), "cudaSetDevice");
}

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();  // clear it, so it is not reported by the next launch
    if (why != nullptr) *why = cudaGetErrorString(error);
    return 0;
  }
  if (count == 0 && why != nullptr) *why = "no CUDA device found";
  return count;
}

std::string device_name(int index) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ")";
}

int runtime_version() {
  int version = 0;
  cudaRuntimeGetVersion(&version);
  return version;
}
#endif

}  // namespace cuda
}  // namespace ck
