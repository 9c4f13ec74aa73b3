#pragma once
// Thin wrappers so kernels compile with or without OpenMP.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln::cpu {
inline int omp_threads() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
inline int omp_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
}  // namespace kiln::cpu
