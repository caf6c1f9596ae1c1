// pybind11 module convkernels._cuda: the device backend of the op bindings in csrc/op_bindings.h.
//
// The same source also builds the tests' module _cuda_emulated (CK_CUDA_MODULE), whose kernels
// are the cuda/*.cu sources compiled for the host emulation (tests/emulation/cuda_host.h).
//
// Arrays arrive as NumPy arrays describing device memory (convkernels/_device.py): outputs are
// allocated by a Python allocator that convkernels/_device.py registers (CuPy on a GPU), so results
// are the caller's array type and CuPy's memory pool is reused. Each call runs on the device and
// stream that _device.py sets first with _set_call_context.
#include <string>

#include "cuda_kernels.h"
#include "op_bindings.h"

#ifndef CK_CUDA_MODULE
#define CK_CUDA_MODULE _cuda
#endif

namespace ck {
namespace {

// The Python callable (shape, dtype) -> device array header; set once by convkernels._device.
py::object& allocator() {
  static py::object* fn = new py::object();  // never destroyed: it may outlive the interpreter
  return *fn;
}

struct DeviceBackend {
  static constexpr bool kCopiesInputs = false;

  template <typename T>
  static py::array allocate(const std::vector<py::ssize_t>& shape) {
    if (!allocator()) throw std::runtime_error("convkernels._cuda: no allocator registered");
    py::object a = allocator()(py::tuple(py::cast(shape)), py::dtype::of<T>());
    return py::reinterpret_borrow<py::array>(a);
  }

  template <typename T>
  static void poison(py::array& a) {
    cuda::fill_poison<T>(static_cast<T*>(a.mutable_data()), static_cast<int64_t>(a.size()));
  }

  template <typename T>
  static const KernelTable<T>& kernels() {
    return cuda::kernel_table<T>();
  }

  using Launch = py::gil_scoped_release;

  static bool find_out_of_range(const int64_t* idx, int64_t count, int64_t limit, int64_t* bad) {
    return cuda::find_out_of_range(idx, count, limit, bad);
  }
};

// (count, reason): the number of usable devices and, when there are none, why.
py::tuple devices() {
  std::string why;
  const int count = cuda::device_count(&why);
  return py::make_tuple(count, why);
}

}  // namespace
}  // namespace ck

PYBIND11_MODULE(CK_CUDA_MODULE, m) {
  using namespace ck;
  using namespace pybind11::literals;
  m.doc() = "convkernels CUDA kernels; use the functions in convkernels, not these.";
  // A CudaError from a launcher becomes RuntimeError (pybind11's std::runtime_error rule).
  def_ops<DeviceBackend>(m);
  m.def("_set_allocator", [](py::object fn) { allocator() = std::move(fn); });
  m.def(
      "_set_call_context",
      [](int device, uintptr_t stream) {
        cuda::use_device(device);
        cuda::set_stream(stream);
      },
      "device"_a, "stream"_a);
  m.def("devices", &devices);
  m.def("device_name", &cuda::device_name);
  m.def("runtime_version", &cuda::runtime_version);
}
