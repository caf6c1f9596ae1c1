// Picks the kernel table for this CPU. setup.py defines CK_BUILD_AVX512 / CK_BUILD_AVX2 when it
// compiled those levels (x86-64 only); the portable level is always built.
#include "dispatch.h"

#include <atomic>

namespace ck {

#ifdef CK_BUILD_AVX512
namespace avx512 {
const IsaKernels& isa_kernels();
}
#endif
#ifdef CK_BUILD_AVX2
namespace avx2 {
const IsaKernels& isa_kernels();
}
#endif
namespace portable {
const IsaKernels& isa_kernels();
}

namespace {

struct Level {
  const char* name;
  const IsaKernels& (*kernels)();
  bool (*cpu_has)();
};

const std::vector<Level>& levels() {
  static const std::vector<Level> all = {
#ifdef CK_BUILD_AVX512
      {"avx512", &avx512::isa_kernels,
       [] {
         return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("fma");
       }},
#endif
#ifdef CK_BUILD_AVX2
      {"avx2", &avx2::isa_kernels,
       [] { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }},
#endif
      {"portable", &portable::isa_kernels, [] { return true; }},
  };
  return all;
}

const IsaKernels* best_supported() {
#if defined(CK_BUILD_AVX512) || defined(CK_BUILD_AVX2)
  __builtin_cpu_init();
#endif
  for (const Level& level : levels()) {
    if (level.cpu_has()) return &level.kernels();
  }
  return &portable::isa_kernels();
}

std::atomic<const IsaKernels*>& active() {
  static std::atomic<const IsaKernels*> table{best_supported()};
  return table;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Level& level : levels()) {
    if (level.cpu_has()) names.emplace_back(level.name);
  }
  return names;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const Level& level : levels()) names.emplace_back(level.name);
  return names;
}

const IsaKernels& active_kernels() {
  return *active().load();
}

std::string set_isa(const std::string& name) {
  for (const Level& level : levels()) {
    if (name != level.name) continue;
    if (!level.cpu_has()) return "this CPU does not support the ISA level '" + name + "'";
    active().store(&level.kernels());
    return {};
  }
  std::string known;
  for (const std::string& n : compiled_isas()) known += (known.empty() ? "" : ", ") + n;
  return "unknown ISA level '" + name + "' (this build has: " + known + ")";
}

}  // namespace ck
