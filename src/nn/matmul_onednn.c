/* matmul_onednn.c: the oneDNN (libdnnl 2.6) GEMM path, fp32 and bf16.
 *
 * oneDNN's matmul primitive carries JIT kernels for AVX-512, AVX512_BF16 and
 * AMX, chosen for the CPU it runs on. Creating a primitive JIT-compiles code
 * (milliseconds), so primitives are created once per shape/stride/precision
 * and kept in a small table for the life of the process; the engine's shapes
 * are few (a dozen per model). Transposes are expressed as strides, never as
 * copies: oneDNN packs operands internally anyway.
 *
 * bf16 mode converts both operands to bf16 (round to nearest even) into
 * per-thread scratch buffers and accumulates in fp32 into an fp32 output, so
 * the engine keeps fp32 master weights and fp32 activations.
 */
#include "nn/matmul_impl.h"

#include <dnnl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t m, k, n, sm, sk, wk, wn, dm, dn;   /* shape; strides of src (m,k), wei (k,n), dst (m,n) */
    int bias, accumulate, prec;
    dnnl_primitive_t prim;
    int busy;            /* executions in flight: never evicted while > 0 */
    uint64_t last_use;   /* for least-recently-used eviction */
    dnnl_memory_desc_t scratch_md;   /* the primitive's scratchpad (user-managed, see scratch_get) */
    size_t scratch_bytes;
} onednn_entry_t;

/* Training uses ~40 shapes per model; inference adds one per prompt length
 * (prefill row counts vary), fine-tuning one per count of rows with a loss
 * (the LM head's products), so the table evicts the least recently used
 * primitive instead of refusing new shapes. */
#define ONEDNN_CACHE 256
static onednn_entry_t onednn_cache[ONEDNN_CACHE];
static int onednn_ncache;
static uint64_t onednn_tick;
static pthread_mutex_t onednn_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t onednn_engine;
static int onednn_state; /* 0 untried, 1 ready, -1 unavailable */
/* oneDNN streams are not thread-safe: one per calling thread (the server may
 * run completions on several threads), created on first use and destroyed
 * when the thread exits (a pthread key's destructor; a compute-pool thread
 * that ends would leak it otherwise). */
static __thread dnnl_stream_t onednn_stream;
static pthread_key_t stream_key;
static pthread_once_t stream_once = PTHREAD_ONCE_INIT;
static int stream_key_ok;

static void stream_destroy(void *s) { dnnl_stream_destroy((dnnl_stream_t)s); }
static void stream_key_init(void) { stream_key_ok = pthread_key_create(&stream_key, stream_destroy) == 0; }

static int onednn_init_locked(void)
{
    if (onednn_state) return onednn_state;
    onednn_state = dnnl_engine_create(&onednn_engine, dnnl_cpu, 0) == dnnl_success ? 1 : -1;
    return onednn_state;
}

/* Destroy every idle primitive: a process that starts over (tests use it to
 * stand for a fresh process, e.g. a resumed fine-tune). */
void mm_onednn_table_clear(void)
{
    pthread_mutex_lock(&onednn_mu);
    int keep = 0;
    for (int i = 0; i < onednn_ncache; i++) {
        if (onednn_cache[i].busy) onednn_cache[keep++] = onednn_cache[i];
        else dnnl_primitive_destroy(onednn_cache[i].prim);
    }
    onednn_ncache = keep;
    pthread_mutex_unlock(&onednn_mu);
}

int mm_onednn_available(void)
{
    pthread_mutex_lock(&onednn_mu);
    int s = onednn_init_locked();
    pthread_mutex_unlock(&onednn_mu);
    return s == 1;
}

static int onednn_key_eq(const onednn_entry_t *e, const onednn_entry_t *key)
{
    return e->m == key->m && e->k == key->k && e->n == key->n && e->sm == key->sm && e->sk == key->sk &&
           e->wk == key->wk && e->wn == key->wn && e->dm == key->dm && e->dn == key->dn &&
           e->bias == key->bias && e->accumulate == key->accumulate && e->prec == key->prec;
}

/* oneDNN's own scratchpad (brgemm's packed copies of the operands, several
 * MB at the GPT-2 shapes) was allocated and freed around every execution:
 * glibc hands such blocks back to the kernel, so every product page-faulted
 * its scratch in again, ~21,000 faults per 124M training step (zeroing 84 MB;
 * on these VMs a fresh page costs up to ~12 us). Primitives are created with
 * a user-managed scratchpad instead, and each calling thread keeps one
 * buffer that only grows (oneDNN streams are per thread too, so a buffer is
 * never used by two products at once). */
static __thread void *scratch_buf;
static __thread size_t scratch_cap;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void) { pthread_key_create(&scratch_key, free); }

static void *scratch_get(size_t bytes)
{
    if (bytes <= scratch_cap) return scratch_buf;
    void *p = aligned_alloc(64, (bytes + 4095) / 4096 * 4096);
    if (!p) return NULL;
    free(scratch_buf);
    scratch_buf = p;
    scratch_cap = (bytes + 4095) / 4096 * 4096;
    pthread_once(&scratch_once, scratch_key_init);
    pthread_setspecific(scratch_key, p);   /* freed when the thread exits */
    return p;
}

static dnnl_primitive_t onednn_create(onednn_entry_t *key)
{
    dnnl_primitive_t prim = NULL;
    dnnl_data_type_t in_t = key->prec == NN_PREC_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;
    dnnl_dims_t sd = {key->m, key->k}, ss = {key->sm, key->sk};
    dnnl_dims_t wd = {key->k, key->n}, ws = {key->wk, key->wn};
    dnnl_dims_t dd = {key->m, key->n}, ds = {key->dm, key->dn};
    dnnl_dims_t bd = {1, key->n}, bs = {key->n, 1};
    if (dnnl_memory_desc_init_by_strides(&src_md, 2, sd, in_t, ss) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&wei_md, 2, wd, in_t, ws) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&dst_md, 2, dd, dnnl_f32, ds) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&bias_md, 2, bd, dnnl_f32, bs) != dnnl_success)
        return NULL;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src_md, &wei_md, key->bias ? &bias_md : NULL, &dst_md) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (key->accumulate) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, &desc, attr, onednn_engine, NULL) == dnnl_success) {
        /* a reference (non-JIT) implementation is 100-1000x slower than the
         * portable kernels: refuse it, the caller falls back */
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        if (impl && strncmp(impl, "ref", 3) == 0) prim = NULL;
        else if (dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
        if (prim) {
            const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            key->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
            if (key->scratch_bytes) key->scratch_md = *smd;
        }
        dnnl_primitive_desc_destroy(pd);
    }
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return prim;
}

static onednn_entry_t *onednn_find_locked(const onednn_entry_t *key)
{
    for (int i = 0; i < onednn_ncache; i++)
        if (onednn_key_eq(&onednn_cache[i], key)) return &onednn_cache[i];
    return NULL;
}

/* Create key's primitive into a free slot or over the least recently used
 * idle one. */
static onednn_entry_t *onednn_insert_locked(const onednn_entry_t *key)
{
    onednn_entry_t *e = NULL;
    onednn_entry_t made = *key;
    dnnl_primitive_t prim = onednn_create(&made);
    if (!prim) return NULL;
    if (onednn_ncache < ONEDNN_CACHE) {
        e = &onednn_cache[onednn_ncache++];
    } else {
        for (int i = 0; i < ONEDNN_CACHE; i++)
            if (!onednn_cache[i].busy && (!e || onednn_cache[i].last_use < e->last_use)) e = &onednn_cache[i];
        if (!e) { dnnl_primitive_destroy(prim); return NULL; }   /* all busy: caller falls back */
        dnnl_primitive_destroy(e->prim);
    }
    *e = made;
    e->prim = prim;
    e->busy = 0;
    return e;
}

/* Find or create the primitive for key and mark it busy; NULL if oneDNN
 * cannot do it. Creation (JIT) happens under the lock: rare, and it keeps
 * two threads from compiling the same shape twice.
 *
 * Which primitive runs a product depends on the product alone (shape,
 * strides, precision; and TUNERY_MATMUL_RT), never on what the table holds:
 * a resumed fine-tune starts with an empty table and must compute the same
 * bits as the process it replaces. A new shape in a full table evicts the
 * least recently used idle primitive (a re-compile costs 0.3-3 ms). */
static onednn_entry_t *onednn_acquire(const onednn_entry_t *key)
{
    onednn_entry_t *e = NULL;
    pthread_mutex_lock(&onednn_mu);
    if (onednn_init_locked() != 1) goto out;
    if ((e = onednn_find_locked(key)) == NULL && (e = onednn_insert_locked(key)) == NULL) goto out;
    e->busy++;
    e->last_use = ++onednn_tick;
out:
    pthread_mutex_unlock(&onednn_mu);
    return e;
}

static void onednn_release(onednn_entry_t *e)
{
    pthread_mutex_lock(&onednn_mu);
    e->busy--;
    pthread_mutex_unlock(&onednn_mu);
}

/* fp32 -> bf16, round to nearest even, n contiguous elements (a strided
 * matrix is converted as the whole span it covers, keeping its strides). */
static void bf16_convert(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
#if defined(__AVX512BF16__)
    if (nn_cpu()->avx512_bf16) {
        #pragma omp parallel for schedule(static)
        for (size_t j = 0; j < n / 32; j++) {
            __m512 a = _mm512_loadu_ps(src + 32 * j), b = _mm512_loadu_ps(src + 32 * j + 16);
            __m512bh r = _mm512_cvtne2ps_pbh(b, a);
            _mm512_storeu_si512((void *)(dst + 32 * j), (__m512i)r);
        }
        i = n / 32 * 32;
    }
#endif
    for (; i < n; i++) dst[i] = mm_bf16_round(src[i]);
}

/* Scratch for bf16 operands, grown as needed, one pair per process, held
 * under bf16_mu for the whole product (concurrent bf16 calls serialise). */
static uint16_t *bf16_buf[2];
static size_t bf16_cap[2];
static pthread_mutex_t bf16_mu = PTHREAD_MUTEX_INITIALIZER;

static uint16_t *bf16_scratch(int which, size_t n)
{
    if (bf16_cap[which] < n) {
        free(bf16_buf[which]);
        bf16_buf[which] = aligned_alloc(64, (n * 2 + 63) / 64 * 64);
        bf16_cap[which] = bf16_buf[which] ? n : 0;
    }
    return bf16_buf[which];
}

/* bf16 copies of weight matrices, kept from a forward for its backward.
 * A training step converts each weight in matmul_forward (MM_WCACHE_STORE)
 * and its backward's dinp product reads the same copy (MM_WCACHE_USE)
 * instead of converting the same 124M weights a second time. Keyed by
 * pointer and length; the forward always re-converts, so a weight changed by
 * the optimizer is never read stale by the next step. Bounded by entries and
 * bytes, least recently stored evicted first. Guarded by bf16_mu. */
#define WCACHE_ENTRIES 64
#define WCACHE_MAX_BYTES ((size_t)1 << 30)
static struct { const float *key; size_t len; uint16_t *data; uint64_t stamp; } wcache_tab[WCACHE_ENTRIES];
static size_t wcache_bytes;
static uint64_t wcache_clock;

static uint16_t *wcache_get(const float *w, size_t len, int store)
{
    int hit = -1;
    for (int i = 0; i < WCACHE_ENTRIES; i++)
        if (wcache_tab[i].key == w && wcache_tab[i].len == len) hit = i;
    if (!store) return hit >= 0 ? wcache_tab[hit].data : NULL;
    if (hit < 0) {
        if (len * 2 > WCACHE_MAX_BYTES / 2) return NULL;
        for (;;) {   /* evict oldest until there is a free slot and room */
            int freeslot = -1, oldest = -1;
            for (int i = 0; i < WCACHE_ENTRIES; i++) {
                if (!wcache_tab[i].data) { if (freeslot < 0) freeslot = i; continue; }
                if (oldest < 0 || wcache_tab[i].stamp < wcache_tab[oldest].stamp) oldest = i;
            }
            if (freeslot >= 0 && wcache_bytes + len * 2 <= WCACHE_MAX_BYTES) { hit = freeslot; break; }
            if (oldest < 0) return NULL;
            wcache_bytes -= wcache_tab[oldest].len * 2;
            free(wcache_tab[oldest].data);
            memset(&wcache_tab[oldest], 0, sizeof wcache_tab[oldest]);
        }
        wcache_tab[hit].data = aligned_alloc(64, (len * 2 + 63) / 64 * 64);
        if (!wcache_tab[hit].data) return NULL;
        wcache_tab[hit].key = w;
        wcache_tab[hit].len = len;
        wcache_bytes += len * 2;
    }
    wcache_tab[hit].stamp = ++wcache_clock;
    bf16_convert(wcache_tab[hit].data, w, len);
    return wcache_tab[hit].data;
}

void mm_onednn_wcache_clear(void)
{
    pthread_mutex_lock(&bf16_mu);
    for (int i = 0; i < WCACHE_ENTRIES; i++) free(wcache_tab[i].data);
    memset(wcache_tab, 0, sizeof wcache_tab);
    wcache_bytes = 0;
    pthread_mutex_unlock(&bf16_mu);
}

/* TUNERY_MATMUL_RT=1: always leave the row count to run time (measurements). */
static int rt_always = -1;

/* Run e's primitive on operands already in its input type (s, w), with the
 * actual dimensions (the primitive's may hold run-time placeholders). */
static int onednn_exec(onednn_entry_t *e, float *dst, const void *s, const void *w, const float *bias, int64_t m,
                       int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn, int64_t dm, int64_t dn)
{
    dnnl_data_type_t in_t = e->prec == NN_PREC_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src_md, wei_md, dst_md, bias_md;
    dnnl_dims_t sd = {m, k}, ss = {sm, sk}, wd = {k, n}, ws = {wk, wn}, dd = {m, n}, ds = {dm, dn};
    dnnl_dims_t bd = {1, n}, bs = {n, 1};
    dnnl_memory_desc_init_by_strides(&src_md, 2, sd, in_t, ss);
    dnnl_memory_desc_init_by_strides(&wei_md, 2, wd, in_t, ws);
    dnnl_memory_desc_init_by_strides(&dst_md, 2, dd, dnnl_f32, ds);
    dnnl_memory_desc_init_by_strides(&bias_md, 2, bd, dnnl_f32, bs);
    dnnl_memory_t ms, mw, md, mb = NULL, mscr = NULL;
    dnnl_memory_create(&ms, &src_md, onednn_engine, (void *)s);
    dnnl_memory_create(&mw, &wei_md, onednn_engine, (void *)w);
    dnnl_memory_create(&md, &dst_md, onednn_engine, dst);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int nargs = 3;
    dnnl_status_t st = dnnl_success;
    if (e->scratch_bytes) {
        void *buf = scratch_get(e->scratch_bytes);
        if (!buf || dnnl_memory_create(&mscr, &e->scratch_md, onednn_engine, buf) != dnnl_success) st = dnnl_out_of_memory;
        else args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mscr};
    }
    if (bias) {
        dnnl_memory_create(&mb, &bias_md, onednn_engine, (void *)bias);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    }
    if (st == dnnl_success) st = dnnl_primitive_execute(e->prim, onednn_stream, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(onednn_stream);
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(md);
    if (mb) dnnl_memory_destroy(mb);
    if (mscr) dnnl_memory_destroy(mscr);
    return st == dnnl_success ? 0 : -1;
}

/* The calling thread's oneDNN stream, created on first use. */
static int onednn_stream_ready(void)
{
    if (!onednn_stream && mm_onednn_available()) {
        pthread_once(&stream_once, stream_key_init);
        dnnl_stream_t st;
        if (stream_key_ok && dnnl_stream_create(&st, onednn_engine, dnnl_stream_default_flags) == dnnl_success) {
            if (pthread_setspecific(stream_key, st) == 0) onednn_stream = st;
            else dnnl_stream_destroy(st);
        }
    }
    return onednn_stream != NULL;
}

/* bf16 products with a very long reduction, the LM head's dinp (dout (N,
 * 50304) @ wte), run in pieces of BF16_PIECE reduction steps that accumulate:
 * oneDNN 2.6's AMX kernels re-read the whole right operand (77 MB here) for
 * every block of output rows, and a piece's part stays in cache instead.
 * Measured on one core (Sapphire Rapids, B8T128, docs/bench.md section 10):
 * 217 ms whole, 124-143 ms in pieces of 1024-2048 (conversion included). (Cutting the LM head's
 * forward into column pieces the same way made it slower, 180 -> 196-248 ms,
 * so output columns are never cut.) Operands are converted once for all
 * pieces; pieces depend on the shape only, so the bits do too.
 * TUNERY_BF16_PIECE overrides the piece (measuring). */
#define BF16_SPLIT_K 8192
#define BF16_PIECE 2048

static int64_t bf16_piece(int64_t total)
{
    static int64_t env = -1;
    if (env < 0) {
        const char *e = getenv("TUNERY_BF16_PIECE");
        env = e && atoll(e) >= 16 ? atoll(e) : BF16_PIECE;
    }
    if (total <= BF16_SPLIT_K || total <= env) return total;
    int64_t pieces = (total + env - 1) / env, chunk = (total + pieces - 1) / pieces;
    return (chunk + 15) / 16 * 16;
}

/* src (m, k) read as column-major (element (i, j) at src[i + j * ld]) ->
 * dst (m, k) row-major bf16. dweight's left operand is dout transposed:
 * converting it straight into rows gives oneDNN a plain operand, which its
 * AMX kernels take 1.3-1.8x faster than the transposed one (docs/bench.md). */
static void bf16_convert_transposed(uint16_t *dst, const float *src, int64_t m, int64_t k, int64_t ld)
{
    #pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < m; i0 += 16) {
        int64_t j0 = 0;
#if defined(__AVX512BF16__)
        if (nn_cpu()->avx512_bf16 && i0 + 16 <= m) {
            for (; j0 + 16 <= k; j0 += 16)
                mm_bf16_transposed16(dst + i0 * k + j0, (size_t)k, src + i0 + j0 * ld, (size_t)ld, 16);
        }
#endif
        for (int64_t i = i0; i < m && i < i0 + 16; i++)
            for (int64_t j = j0; j < k; j++) dst[i * k + j] = mm_bf16_round(src[i + j * ld]);
    }
}

/* dst (m, n) [+]= src (m, k) @ wei (k, n) [+ bias (n)], with element strides
 * (sm, sk) for src, (wk, wn) for wei and (dm, dn) for dst. In bf16 mode the
 * operands are converted once per call: wei as the whole span its strides
 * cover (or its stored copy, wcache), src likewise, or into rows when it is
 * column-major (bf16_convert_transposed); long reductions then run in pieces
 * (bf16_piece). rt (MM_RT_M / MM_RT_K, fp32 only) names the row-count
 * dimension, which may be left to run time (see onednn_acquire). Returns 0,
 * or -1 if oneDNN cannot do it (the caller falls back; nothing was written). */

static int onednn_run(int prec, float *dst, const float *src, const float *wei, const float *bias,
                      int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                      int64_t dm, int64_t dn, int accumulate, int wcache, int rt)
{
    if (!onednn_stream_ready()) return -1;
    if (prec != NN_PREC_BF16) {
        onednn_entry_t key = {.m = m, .k = k, .n = n, .sm = sm, .sk = sk, .wk = wk, .wn = wn, .dm = dm, .dn = dn,
                              .bias = bias != NULL, .accumulate = accumulate, .prec = prec};
        if (rt_always < 0) {
            const char *ev = getenv("TUNERY_MATMUL_RT");
            rt_always = ev && atoi(ev) == 1;
        }
        if (rt_always && rt == MM_RT_M) key.m = DNNL_RUNTIME_DIM_VAL;
        if (rt_always && rt == MM_RT_K) key.k = DNNL_RUNTIME_DIM_VAL;
        onednn_entry_t *e = onednn_acquire(&key);
        if (!e) return -1;
        int r = onednn_exec(e, dst, src, wei, bias, m, k, n, sm, sk, wk, wn, dm, dn);
        onednn_release(e);
        return r;
    }
    /* bf16: a long reduction without bias in pieces (pieces after the first
     * accumulate), on src as converted: rows when it came column-major */
    int64_t kb = bias ? k : bf16_piece(k);
    int src_t = sm == 1 && sk != 1 && m > 1;
    int64_t csm = src_t ? k : sm, csk = src_t ? 1 : sk;
    onednn_entry_t key = {.m = m, .n = n, .sm = csm, .sk = csk, .wk = wk, .wn = wn, .dm = dm, .dn = dn,
                          .bias = bias != NULL, .prec = prec};
    /* every piece's primitive exists before the first piece writes (all or nothing) */
    for (int64_t k0 = 0; k0 < k; k0 += kb) {
        key.k = k - k0 < kb ? k - k0 : kb;
        key.accumulate = accumulate || k0 > 0;
        onednn_entry_t *e = onednn_acquire(&key);
        if (!e) return -1;
        onednn_release(e);
    }
    size_t src_len = src_t ? (size_t)(m * k) : (size_t)((m - 1) * sm + (k - 1) * sk + 1);
    size_t wei_len = (size_t)((k - 1) * wk + (n - 1) * wn + 1);
    pthread_mutex_lock(&bf16_mu);
    uint16_t *sb = bf16_scratch(0, src_len), *wb = NULL;
    if (wcache) wb = wcache_get(wei, wei_len, wcache == MM_WCACHE_STORE);
    if (!wb && (wb = bf16_scratch(1, wei_len)) != NULL) bf16_convert(wb, wei, wei_len);
    if (!sb || !wb) { pthread_mutex_unlock(&bf16_mu); return -1; }
    if (src_t) bf16_convert_transposed(sb, src, m, k, sk);
    else bf16_convert(sb, src, src_len);
    int r = 0;
    for (int64_t k0 = 0; k0 < k && !r; k0 += kb) {
        key.k = k - k0 < kb ? k - k0 : kb;
        key.accumulate = accumulate || k0 > 0;
        onednn_entry_t *e = onednn_acquire(&key);
        if (!e) { r = -1; break; }   /* not reached: created above */
        r = onednn_exec(e, dst, sb + k0 * csk, wb + k0 * wk, bias, m, key.k, n, csm, csk, wk, wn, dm, dn);
        onednn_release(e);
    }
    pthread_mutex_unlock(&bf16_mu);
    return r;
}

int mm_onednn_gemm_strided(int prec, float *dst, const float *src, const float *wei, const float *bias,
                           int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                           int64_t dm, int64_t dn, int accumulate)
{
    return onednn_run(prec, dst, src, wei, bias, m, k, n, sm, sk, wk, wn, dm, dn, accumulate, 0, MM_RT_NONE);
}

int mm_onednn_gemm(int prec, float *dst, const float *src, const float *wei, const float *bias,
                   int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                   int accumulate, int wcache, int rt)
{
    return onednn_run(prec, dst, src, wei, bias, m, k, n, sm, sk, wk, wn, n, 1, accumulate, wcache, rt);
}

/* Create (or find) the primitive for a product without running it, so a
 * caller that splits one product into accumulating pieces can make sure all
 * pieces will run before the first one touches the output. */
int mm_onednn_prepare(int prec, int64_t m, int64_t k, int64_t n, int64_t sm, int64_t sk, int64_t wk, int64_t wn,
                      int64_t dm, int64_t dn, int bias, int accumulate)
{
    onednn_entry_t key = {.m = m, .k = k, .n = n, .sm = sm, .sk = sk, .wk = wk, .wn = wn, .dm = dm, .dn = dn,
                          .bias = bias, .accumulate = accumulate, .prec = prec};
    onednn_entry_t *e = onednn_acquire(&key);
    if (!e) return -1;
    onednn_release(e);
    return 0;
}
