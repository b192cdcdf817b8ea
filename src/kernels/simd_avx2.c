/* simd_avx2.c - placeholder while the kernels are written. */
#if defined(__x86_64__)
#include "kernels.h"

static const smoe_kernels table = {
    .name = "avx2",
    .act = {[SMOE_ACT_Q8] = {smoe_act_q8_bytes, smoe_act_q8_quantize},
            [SMOE_ACT_Q8K] = {smoe_act_q8k_bytes, smoe_act_q8k_quantize}},
};

const smoe_kernels *smoe_kernels_avx2(void) { return &table; }
#endif
