/* matmul_amx.c: our own bf16 GEMM on AMX tiles (Sapphire Rapids and later).
 *
 * bf16 mode's products ran on oneDNN 2.6's AMX kernels at 900-1000 GFLOP/s a
 * core at the GPT-2 shapes; this core's AMX unit peaks at 3.2 TFLOP/s
 * (docs/bench.md section 11). oneDNN re-reads its right operand for every
 * small block of output rows. Here a block of up to 512 packed rows of A
 * stays in L2 while every pair of B's column panels streams past it:
 *
 *   pack A (M x K, fp32, any strides) into 16 x 32 bf16 tiles, 1 KB each;
 *   pack B (K x N, fp32, any strides) into 16-column VNNI panels (pairs of
 *     reduction steps interleaved, the layout TDPBF16PS reads);
 *   for each KB-long slice of the reduction:
 *     for each MB-row block of A (L2):
 *       each thread, for its own pairs of 16-column panels of B:
 *         for each 32-row sliver of the block: a 32 x 32 block of C in four
 *         tile registers, two A tiles and two B tiles per 32 reduction
 *         steps, four TDPBF16PS; then C is stored (fp32).
 *
 * Conversion to bf16 (round to nearest even) happens while packing, so the
 * engine keeps fp32 master weights and fp32 activations as with oneDNN.
 * Edges are zero-padded to 32 in M, N and K. The threads split the columns
 * of C, never the reduction, so each output element is summed in the same
 * order whatever the thread count: the bits depend on the shape only.
 *
 * Tiles need the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM, once
 * per process) and a tile configuration in each thread (loaded at the start
 * of every product, released at its end so idle threads carry no tile state).
 * Built when the compiler targets AMX (-march=native on such a CPU); used
 * only when the CPU reports it and the kernel grants it.
 */
#include "nn/matmul_impl.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

#define AMX_MB 512    /* rows of A per block (at most; fewer for long reductions) */
#define AMX_KB 4096   /* reduction steps per slice: longer reductions run in slices */

static int amx_state;   /* 0 unknown, 1 granted, -1 not available */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_request(void)
{
    amx_state = nn_cpu()->amx_tile && nn_cpu()->amx_bf16 && nn_cpu()->avx512_bf16 &&
                syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 1 : -1;
}

int mm_amx_available(void)
{
    pthread_once(&amx_once, amx_request);
    return amx_state == 1;
}

/* Eight tiles of 16 rows x 64 bytes: 0-3 C (16 x 16 fp32), 4-5 A (16 x 32
 * bf16), 6-7 B (16 pairs x 16 columns). Static and 64-byte aligned: the
 * prototype crashed at -O2 with the configuration on the stack. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg_t;

static const amx_tilecfg_t amx_cfg __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

static inline __mmask16 mask_n(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* ------------------------------------------------------------------------ */
/* packing                                                                  */
/* ------------------------------------------------------------------------ */

/* Tile row ti of A (rows ti*16 .. +16, all of K) -> ap: KT tiles of 16 rows
 * x 32 bf16, row-major inside the tile, zero past M and K. */
static void pack_a_tilerow(uint16_t *ap, const float *a, int M, int K, size_t sam, size_t sak, int KT, int ti)
{
    uint16_t *dst = ap + (size_t)ti * KT * 512;
    int i0 = ti * 16;
    if (sak == 1) {                              /* rows contiguous */
        for (int r = 0; r < 16; r++) {
            const float *row = i0 + r < M ? a + (size_t)(i0 + r) * sam : NULL;
            for (int tk = 0; tk < KT; tk++) {
                int k0 = tk * 32;
                __m512i v = _mm512_setzero_si512();
                if (row) {
                    __m512 lo = _mm512_maskz_loadu_ps(mask_n(K - k0), row + k0);
                    __m512 hi = _mm512_maskz_loadu_ps(mask_n(K - k0 - 16), row + k0 + 16);
                    v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                }
                _mm512_store_si512((void *)(dst + ((size_t)tk * 16 + r) * 32), v);
            }
        }
        return;
    }
    for (int tk = 0; tk < KT; tk++)              /* any strides, and the edge */
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 32; c++) {
                int i = i0 + r, k = tk * 32 + c;
                dst[((size_t)tk * 16 + r) * 32 + c] = i < M && k < K ? mm_bf16_round(a[(size_t)i * sam + (size_t)k * sak]) : 0;
            }
}

/* Tile rows ti0 .. ti1 of A. Column-major A (dweight's dout^T) is read 32
 * of its columns at a time across all the tile rows, so that every column
 * is read in order (64 bytes per tile): a tile row at a time read 64 bytes
 * from each of K columns a whole column apart, a new page per read at the
 * LM head. */
static void pack_a(uint16_t *ap, const float *a, int M, int K, size_t sam, size_t sak, int KT, int ti0, int ti1)
{
    int full = ti1 < M / 16 ? ti1 : M / 16;      /* tile rows inside M */
    if (sam != 1 || sak == 1 || full <= ti0) {
        for (int ti = ti0; ti < ti1; ti++) pack_a_tilerow(ap, a, M, K, sam, sak, KT, ti);
        return;
    }
    for (int tk = 0; tk < KT; tk++)
        for (int ti = ti0; ti < full; ti++) {
            uint16_t *dst = ap + ((size_t)ti * KT + tk) * 512;
            for (int h = 0; h < 2; h++) {   /* columns past K (none left: src unread) are zeros */
                int k = tk * 32 + h * 16;
                mm_bf16_transposed16(dst + h * 16, 32, k < K ? a + ti * 16 + (size_t)k * sak : a, sak, K - k);
            }
        }
    for (int ti = full; ti < ti1; ti++) pack_a_tilerow(ap, a, M, K, sam, sak, KT, ti);
}

/* Panel j of B (columns j*16 .. +16, all of K) -> bp: KP = Kp/2 rows of 16
 * columns x 2 bf16 (reduction steps 2p and 2p+1 side by side), zero past N
 * and K. */
static void pack_b_panel(uint16_t *bp, const float *b, int K, int N, size_t sbk, size_t sbn, int KP, int j)
{
    uint16_t *dst = bp + (size_t)j * KP * 32;
    int j0 = j * 16;
    if (sbk == 1 && j0 + 16 <= N) {              /* columns contiguous (W^T): 16 x 16 transposes of pairs */
        for (int p0 = 0; p0 < KP; p0 += 16) {
            __m512 r[16];
            int k0 = 2 * p0;
            for (int c = 0; c < 16; c++) {
                const float *col = b + (size_t)(j0 + c) * sbn;
                __m512 lo = _mm512_maskz_loadu_ps(mask_n(K - k0), col + k0);
                __m512 hi = _mm512_maskz_loadu_ps(mask_n(K - k0 - 16), col + k0 + 16);
                r[c] = (__m512)_mm512_cvtne2ps_pbh(hi, lo);
            }
            transpose16(r);
            for (int p = 0; p < 16; p++) _mm512_store_ps((float *)(dst + (size_t)(p0 + p) * 32), r[p]);
        }
        return;
    }
    for (int p = 0; p < KP; p++)                 /* any strides, and the edge */
        for (int c = 0; c < 16; c++)
            for (int h = 0; h < 2; h++) {
                int k = 2 * p + h, n = j0 + c;
                dst[((size_t)p * 16 + c) * 2 + h] = k < K && n < N ? mm_bf16_round(b[(size_t)k * sbk + (size_t)n * sbn]) : 0;
            }
}

/* Panels j0 .. j1 of B. Row-major B is read row pair by row pair across all
 * the panels (each row in order), not panel by panel (64 bytes from each of
 * K rows a row apart). */
static void pack_b(uint16_t *bp, const float *b, int K, int N, size_t sbk, size_t sbn, int KP, int j0, int j1)
{
    if (sbn != 1) {
        for (int j = j0; j < j1; j++) pack_b_panel(bp, b, K, N, sbk, sbn, KP, j);
        return;
    }
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int p = 0; p < KP; p++) {
        int k = 2 * p;
        const float *row0 = k < K ? b + (size_t)k * sbk : NULL, *row1 = k + 1 < K ? b + (size_t)(k + 1) * sbk : NULL;
        for (int j = j0; j < j1; j++) {
            __mmask16 m = mask_n(N - j * 16);
            __m512 r0 = row0 ? _mm512_maskz_loadu_ps(m, row0 + j * 16) : _mm512_setzero_ps();
            __m512 r1 = row1 ? _mm512_maskz_loadu_ps(m, row1 + j * 16) : _mm512_setzero_ps();
            __m512i v = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(r1, r0));
            _mm512_store_si512((void *)(bp + ((size_t)j * KP + p) * 32), v);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the kernel                                                               */
/* ------------------------------------------------------------------------ */

/* One 32 x 32 block of C at rows i, columns j*16 (panels j and j+1) over
 * reduction steps k0 .. k1 (multiples of 32). init: 0 zero, 1 load C, 2 the
 * bias. A block that crosses M or N goes through a 32 x 32 buffer. */
static void amx_block(float *c, size_t ldc, const float *bias, const uint16_t *ap, const uint16_t *bp,
                      int M, int N, int KT, int KP, int i, int j, int k0, int k1, int init, const float *next)
{
    int rows = M - i < 32 ? M - i : 32, cols = N - j * 16 < 32 ? N - j * 16 : 32;
    int edge = rows < 32 || cols < 32;
    float ebuf[32 * 32] __attribute__((aligned(64)));
    float *cp = c + (size_t)i * ldc + (size_t)j * 16;
    size_t ld = ldc;
    if (edge) {
        for (int r = 0; r < 32; r++)
            for (int q = 0; q < 32; q++)
                ebuf[r * 32 + q] = r >= rows || q >= cols ? 0.0f
                                   : init == 1 ? cp[(size_t)r * ldc + q] : init == 2 ? bias[j * 16 + q] : 0.0f;
        cp = ebuf;
        ld = 32;
    }
    if (init == 0 && !edge) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    } else if (init == 2 && !edge) {             /* stride 0: the bias row in all 16 rows */
        _tile_loadd(0, bias + j * 16, 0); _tile_loadd(1, bias + j * 16 + 16, 0);
        _tile_loadd(2, bias + j * 16, 0); _tile_loadd(3, bias + j * 16 + 16, 0);
    } else {
        _tile_loadd(0, cp, ld * 4); _tile_loadd(1, cp + 16, ld * 4);
        _tile_loadd(2, cp + 16 * ld, ld * 4); _tile_loadd(3, cp + 16 * ld + 16, ld * 4);
    }
    const uint16_t *a0 = ap + (size_t)(i / 16) * KT * 512, *a1 = a0 + (size_t)KT * 512;
    const uint16_t *b0 = bp + (size_t)j * KP * 32, *b1 = b0 + (size_t)KP * 32;
    /* the next block's 32 rows of C, for writing, spread over this block's
     * steps: its stores would otherwise each wait for a line from memory */
    int nk = (k1 - k0) / 32, pr = 0;
    for (int k = k0; k < k1; k += 32) {
        for (int it = (k - k0) / 32; next && pr < 32 && pr * nk <= it * 32; pr++) {
            _mm_prefetch((const char *)(next + (size_t)pr * ldc), _MM_HINT_ET0);
            _mm_prefetch((const char *)(next + (size_t)pr * ldc + 16), _MM_HINT_ET0);
        }
        if (k + 64 < k1)   /* A's tiles two steps ahead into L1 (B's too measured no better) */
            for (int l = 0; l < 16; l++) {
                _mm_prefetch((const char *)(a0 + (size_t)(k / 32 + 2) * 512) + 64 * l, _MM_HINT_T0);
                _mm_prefetch((const char *)(a1 + (size_t)(k / 32 + 2) * 512) + 64 * l, _MM_HINT_T0);
            }
        _tile_loadd(4, a0 + (size_t)(k / 32) * 512, 64);
        _tile_loadd(5, a1 + (size_t)(k / 32) * 512, 64);
        _tile_loadd(6, b0 + (size_t)(k / 2) * 32, 64);
        _tile_loadd(7, b1 + (size_t)(k / 2) * 32, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, cp, ld * 4); _tile_stored(1, cp + 16, ld * 4);
    _tile_stored(2, cp + 16 * ld, ld * 4); _tile_stored(3, cp + 16 * ld + 16, ld * 4);
    if (edge) {
        float *co = c + (size_t)i * ldc + (size_t)j * 16;
        for (int r = 0; r < rows; r++) memcpy(co + (size_t)r * ldc, ebuf + r * 32, (size_t)cols * sizeof(float));
    }
}

/* The packed operands of the calling thread: slot 2 = A, 3 = B (see mm_scratch). */
int mm_amx_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate)
{
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0 || !mm_amx_available()) return -1;
    int Mp = (M + 31) / 32 * 32, Kp = (K + 31) / 32 * 32, Np = (N + 31) / 32 * 32;
    int KT = Kp / 32, KP = Kp / 2, MT = Mp / 16, NPAIRS = Np / 32;
    uint16_t *ap = mm_scratch(2, (size_t)Mp * Kp * 2), *bp = mm_scratch(3, (size_t)Kp * Np * 2);
    if (!ap || !bp) return -1;
    /* a slice of the reduction and a block of rows: A's block in about 1 MB of L2 */
    int slices = (Kp + AMX_KB - 1) / AMX_KB;
    int kb = ((Kp + slices - 1) / slices + 31) / 32 * 32;
    int mb = (1024 * 1024 / (kb * 2)) / 32 * 32;
    mb = mb < 32 ? 32 : mb > AMX_MB ? AMX_MB : mb;
    /* The threads split C's columns (pairs of panels: each packs its own B
     * panels, all share A), or its rows when C is much taller than wide (the
     * LM head's dweight: each packs its own rows of A, all share B). */
    int by_rows = M >= 4 * N;
    int units = by_rows ? Mp / 32 : NPAIRS;
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int u0 = (int)((long)units * t / nt), u1 = (int)((long)units * (t + 1) / nt);
        int ilo = by_rows ? 32 * u0 : 0, ihi = by_rows ? 32 * u1 : Mp;
        int jp0 = by_rows ? 0 : u0, jp1 = by_rows ? NPAIRS : u1;
        int mt0 = (int)((long)MT * t / nt), mt1 = (int)((long)MT * (t + 1) / nt);
        int np0 = (int)((long)2 * NPAIRS * t / nt), np1 = (int)((long)2 * NPAIRS * (t + 1) / nt);
        if (by_rows) {
            pack_b(bp, b, K, N, sbk, sbn, KP, np0, np1);
            pack_a(ap, a, M, K, sam, sak, KT, ilo / 16, ihi / 16);
        } else {
            pack_b(bp, b, K, N, sbk, sbn, KP, 2 * jp0, 2 * jp1);
            pack_a(ap, a, M, K, sam, sak, KT, mt0, mt1);
        }
        #pragma omp barrier
        _tile_loadconfig(&amx_cfg);
        for (int k0 = 0; k0 < Kp; k0 += kb) {
            int k1 = k0 + kb < Kp ? k0 + kb : Kp;
            int init = k0 > 0 || accumulate ? 1 : bias ? 2 : 0;
            for (int i0 = ilo; i0 < ihi; i0 += mb) {
                int i1 = i0 + mb < ihi ? i0 + mb : ihi;
                for (int jp = jp0; jp < jp1; jp++)
                    for (int i = i0; i < i1 && i < M; i += 32) {
                        /* the block after this one: the next sliver, or the next pair's
                         * first (never another thread's: no line is fetched from under it) */
                        int ni = i + 32 < i1 && i + 32 < M ? i + 32 : i0, nj = ni == i0 ? 2 * jp + 2 : 2 * jp;
                        const float *next = ni + 32 <= M && nj * 16 + 32 <= N && nj / 2 < jp1
                                                ? c + (size_t)ni * ldc + (size_t)nj * 16 : NULL;
                        amx_block(c, ldc, bias, ap, bp, M, N, KT, KP, i, 2 * jp, k0, k1, init, next);
                    }
            }
        }
        _tile_release();
    }
    return 0;
}

#else

int mm_amx_available(void) { return 0; }

int mm_amx_gemm(float *c, const float *a, const float *b, const float *bias, int M, int K, int N,
                size_t sam, size_t sak, size_t sbk, size_t sbn, size_t ldc, int accumulate)
{
    return -1;   /* no AMX in this build: the caller takes oneDNN */
}

#endif
