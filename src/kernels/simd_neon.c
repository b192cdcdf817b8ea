/* simd_neon.c - placeholder (being written). */
#if defined(__aarch64__)
#include "kernels.h"
const smoe_kernels *smoe_kernels_neon(void) { return NULL; }
#endif
