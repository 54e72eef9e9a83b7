/* cpu.c: what the processor can do, asked once through CPUID/XGETBV.
 *
 * The matmul dispatcher picks kernels from these flags, so a flag is only set
 * when both the CPU reports the instructions and the OS has enabled the
 * register state they need (XCR0): a hypervisor may advertise AVX-512 or AMX
 * and still not save ZMM/tile registers. nn_cpu_describe() is the one line
 * that bench output carries so a figure is never quoted without its machine.
 */
#include "nn/matmul_impl.h"

#include <cpuid.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

static nn_cpu_t cpu_info;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static uint64_t cpu_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* A short family name from vendor/family/model, or from features when a
 * hypervisor hides the real model number (KVM often reports a generic one). */
static void cpu_name_family(nn_cpu_t *c, unsigned family, unsigned model)
{
    const char *fam = "";
    if (strcmp(c->vendor, "AuthenticAMD") == 0) {
        if (family == 0x1A) fam = "Zen 5";
        else if (family == 0x19) fam = c->avx512f ? "Zen 4" : "Zen 3";
        else if (family == 0x17) fam = "Zen/Zen 2";
    } else if (strcmp(c->vendor, "GenuineIntel") == 0) {
        if (family == 6 && (model == 0x8F)) fam = "Sapphire Rapids";
        else if (family == 6 && model == 0xCF) fam = "Emerald Rapids";
        else if (family == 6 && (model == 0xAD || model == 0xAE)) fam = "Granite Rapids";
        else if (c->amx_bf16 && c->avx512_fp16) fam = "Sapphire Rapids-class";
        else if (c->avx512f) fam = "AVX-512 class";
    }
    snprintf(c->family_name, sizeof c->family_name, "%s", fam);
}

static void cpu_detect(void)
{
    nn_cpu_t *c = &cpu_info;
    unsigned a, b, cx, d, max_leaf;
    memset(c, 0, sizeof *c);
    if (!__get_cpuid(0, &max_leaf, &b, &cx, &d)) return;
    memcpy(c->vendor + 0, &b, 4);
    memcpy(c->vendor + 4, &d, 4);
    memcpy(c->vendor + 8, &cx, 4);
    c->vendor[12] = 0;

    __cpuid(1, a, b, cx, d);
    unsigned family = (a >> 8) & 0xF, model = (a >> 4) & 0xF;
    if (family == 0xF) family += (a >> 20) & 0xFF;
    if (family == 6 || family >= 0xF) model |= ((a >> 16) & 0xF) << 4;
    int osxsave = (cx >> 27) & 1;
    int fma = (cx >> 12) & 1;
    uint64_t xcr0 = osxsave ? cpu_xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = (xcr0 & 0xE6) == 0xE6;      /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM */
    int os_amx = (xcr0 & 0x60000) == 0x60000;    /* XTILECFG, XTILEDATA */

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, cx, d);
        c->avx2 = os_avx && ((b >> 5) & 1) && fma;
        c->avx512f = os_avx512 && ((b >> 16) & 1);
        c->avx512bw = c->avx512f && ((b >> 30) & 1);
        c->avx512vl = c->avx512f && ((b >> 31) & 1);
        c->amx_bf16 = os_amx && ((d >> 22) & 1);
        c->avx512_fp16 = c->avx512f && ((d >> 23) & 1);
        c->amx_tile = os_amx && ((d >> 24) & 1);
        __cpuid_count(7, 1, a, b, cx, d);
        c->avx512_bf16 = c->avx512f && ((a >> 5) & 1);
    }
    unsigned ext;
    __cpuid(0x80000000, ext, b, cx, d);
    if (ext >= 0x80000004) {
        unsigned r[12];
        for (int i = 0; i < 3; i++)
            __cpuid(0x80000002 + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = 0;
        /* trim leading blanks and collapse "(R)"-style noise is not worth it */
        char *p = brand;
        while (*p == ' ') p++;
        snprintf(c->brand, sizeof c->brand, "%s", p);
    }
    cpu_name_family(c, family, model);
}

const nn_cpu_t *nn_cpu(void)
{
    pthread_once(&cpu_once, cpu_detect);
    return &cpu_info;
}

const char *nn_cpu_describe(void)
{
    static char desc[256];
    const nn_cpu_t *c = nn_cpu();
    snprintf(desc, sizeof desc, "%s%s%s%s%s%s%s%s%s; matmul=%s",
             c->brand[0] ? c->brand : c->vendor,
             c->family_name[0] ? " (" : "", c->family_name, c->family_name[0] ? ")" : "",
             c->avx2 ? " avx2" : "",
             c->avx512f ? " avx512f" : "",
             c->avx512_bf16 ? " avx512_bf16" : "",
             c->amx_bf16 ? " amx_bf16" : "",
             c->amx_tile ? " amx_tile" : "",
             nn_matmul_describe());
    return desc;
}
