/* dispatch.c - the choice of kernel table: from the CPU's features
 * (smoe_kernels_best), by name (smoe_kernels_by_name) or from the
 * SMOE_KERNELS environment variable (smoe_kernels_select).  Why tables and
 * not ifuncs: kernels.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "../base/common.h"
#include "kernels.h"

const char *const smoe_kernel_names[] = {"reference", "scalar",
#if defined(__x86_64__)
                                         "avx2", "avx512",
#elif defined(__aarch64__)
                                         "neon",
#endif
                                         NULL};

#if defined(__x86_64__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
 * does not know "f16c", and the fuzz build uses clang. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
}

static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}

static int has_avx512(void) {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16");
}
#endif

const smoe_kernels *smoe_kernels_best(void) {
#if defined(__x86_64__)
    if (has_avx512()) return smoe_kernels_avx512();
    if (has_avx2()) return smoe_kernels_avx2();
#elif defined(__aarch64__)
    const smoe_kernels *k = smoe_kernels_neon();
    if (k) return k;
#endif
    return smoe_kernels_scalar();
}

const smoe_kernels *smoe_kernels_by_name(const char *name, char *err) {
    if (!strcmp(name, "best")) return smoe_kernels_best();
    if (!strcmp(name, "reference")) return smoe_kernels_reference();
    if (!strcmp(name, "scalar")) return smoe_kernels_scalar();
#if defined(__x86_64__)
    if (!strcmp(name, "avx2")) {
        if (has_avx2()) return smoe_kernels_avx2();
        smoe_errf(err, "kernels 'avx2': this CPU lacks AVX2, FMA or F16C");
        return NULL;
    }
    if (!strcmp(name, "avx512")) {
        if (has_avx512()) return smoe_kernels_avx512();
        smoe_errf(err, "kernels 'avx512': this CPU lacks one of AVX-512 F, BW, VL, DQ, VNNI, BF16");
        return NULL;
    }
#elif defined(__aarch64__)
    if (!strcmp(name, "neon")) {
        const smoe_kernels *k = smoe_kernels_neon();
        if (!k) smoe_errf(err, "kernels 'neon': not available on this CPU");
        return k;
    }
#endif
    char list[128] = "";
    for (int i = 0; smoe_kernel_names[i]; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, smoe_kernel_names[i]);
    }
    smoe_errf(err, "unknown kernels '%s' (this build has: best, %s)", name, list);
    return NULL;
}

const smoe_kernels *smoe_kernels_select(char *err) {
    const char *name = getenv("SMOE_KERNELS");
    if (!name || !*name) return smoe_kernels_best();
    const smoe_kernels *k = smoe_kernels_by_name(name, err);
    if (!k && err) {
        char why[SMOE_ERR_SIZE];
        snprintf(why, sizeof why, "%s", err);
        smoe_errf(err, "SMOE_KERNELS: %s", why);
    }
    return k;
}
