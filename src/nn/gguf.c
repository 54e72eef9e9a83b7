/* gguf.c: GGUF v3 files, so a model trained or imported here runs where
 * people already run local models (llama.cpp, ollama, LM Studio...).
 *
 * The format (ggml docs/gguf.md), all little-endian:
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv,
 *   n_kv x (string key, u32 type, value)       string = u64 length + bytes
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
 *   padding to general.alignment (32), then each tensor's data at its offset
 *   (relative to the data area), each offset a multiple of the alignment.
 * ne[0] is the fastest-varying dimension, so a PyTorch [out][in] matrix, which
 * is nn/'s layout, is ne = {in, out} with the bytes as they are in memory.
 *
 * gguf_write_gpt2 uses llama.cpp's GPT-2 names (gguf-py MODEL_ARCH.GPT2) and
 * keys. The LM head is tied to token_embd, which llama.cpp's GPT-2 loader
 * handles when output.weight is absent, so none is written unless asked for
 * (older llama.cpp releases require the copy). With GGUF_F16, matrices are
 * stored F16 and vectors F32, as convert_hf_to_gguf.py does.
 *
 * The reader parses what the writer writes (and any other GGUF v2/v3 file)
 * with every length checked against the file's size; tests use it to read an
 * exported file back key by key and tensor by tensor.
 */
#include "nn/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_ALIGN 32

static size_t gguf_scalar_size(int type)
{
    switch (type) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

size_t gguf_type_size(int ggml_type)
{
    return ggml_type == GGML_TYPE_F32 ? 4 : ggml_type == GGML_TYPE_F16 ? 2 : 0;
}

/* fp32 -> IEEE half, round to nearest even (NaN stays NaN, overflow -> inf) */
static uint16_t gguf_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, e = (x >> 23) & 0xff, m = x & 0x7fffff;
    if (e == 0xff) return (uint16_t)(sign | 0x7c00 | (m ? 0x200 : 0));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31) return (uint16_t)(sign | 0x7c00);
    if (he <= 0) {
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000;
        uint32_t shift = (uint32_t)(14 - he), half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)he << 10) | (m >> 13), rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* may carry into the exponent: right */
    return (uint16_t)h;
}

float gguf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0) {
        if (m == 0) x = sign;
        else {
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            x = sign | (e << 23) | ((m & 0x3ff) << 13);
        }
    } else if (e == 31) x = sign | 0x7f800000 | (m << 13);
    else x = sign | ((e + 127 - 15) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---------------------------------------------------------------------- */
/* Writer: the header (keys, tensor infos) is built in memory, then the data
 * streams from the model into a temp file that is renamed into place. */

static int put(buf_t *b, const void *p, size_t n) { return buf_append(b, p, n); }
static int put_u32(buf_t *b, uint32_t v) { return put(b, &v, 4); }
static int put_u64(buf_t *b, uint64_t v) { return put(b, &v, 8); }
static int put_str(buf_t *b, const char *s) { size_t n = strlen(s); return put_u64(b, n) || put(b, s, n); }
static int kv_head(buf_t *b, const char *key, int type) { return put_str(b, key) || put_u32(b, (uint32_t)type); }
static int kv_u32(buf_t *b, const char *key, uint32_t v) { return kv_head(b, key, GGUF_U32) || put_u32(b, v); }
static int kv_f32(buf_t *b, const char *key, float v) { return kv_head(b, key, GGUF_F32) || put(b, &v, 4); }
static int kv_str(buf_t *b, const char *key, const char *v) { return kv_head(b, key, GGUF_STR) || put_str(b, v); }

static int kv_strs(buf_t *b, const char *key, const char *const *v, uint64_t n)
{
    if (kv_head(b, key, GGUF_ARR) || put_u32(b, GGUF_STR) || put_u64(b, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(b, v[i])) return -1;
    return 0;
}

typedef struct {
    char name[64];
    int n_dims;
    uint64_t ne[2];
    int type;                   /* GGML_TYPE_* */
    const float *src;           /* fp32, in ne order */
} gguf_out_t;

static uint64_t gguf_out_bytes(const gguf_out_t *t)
{
    return t->ne[0] * (t->n_dims == 2 ? t->ne[1] : 1) * gguf_type_size(t->type);
}


static int gguf_write_tensor(int fd, const gguf_out_t *t)
{
    size_t ne = (size_t)t->ne[0] * (t->n_dims == 2 ? (size_t)t->ne[1] : 1);
    if (t->type == GGML_TYPE_F32) return fs_write_full(fd, t->src, ne * 4);
    uint16_t chunk[8192];
    for (size_t i = 0; i < ne;) {
        size_t n = ne - i < 8192 ? ne - i : 8192;
        size_t j = 0;
#ifdef __F16C__
        /* vcvtps2ph rounds to nearest even like gguf_f32_to_f16, 8 at a time */
        for (; j + 8 <= n; j += 8)
            _mm_storeu_si128((__m128i *)(chunk + j),
                             _mm256_cvtps_ph(_mm256_loadu_ps(t->src + i + j), _MM_FROUND_TO_NEAREST_INT));
#endif
        for (; j < n; j++) chunk[j] = gguf_f32_to_f16(t->src[i + j]);
        if (fs_write_full(fd, chunk, n * 2)) return -1;
        i += n;
    }
    return 0;
}

static int gguf_header(buf_t *h, const gpt2_t *m, const char *name, const gguf_vocab_t *voc, int f16,
                       const gguf_out_t *ts, int nt)
{
    const gpt2_config_t *c = &m->config;
    const char *const *merges = voc->merges;
    int n_kv = 18;
    if (put(h, GGUF_MAGIC, 4) || put_u32(h, 3) || put_u64(h, (uint64_t)nt) || put_u64(h, (uint64_t)n_kv)) return -1;
    if (kv_str(h, "general.architecture", "gpt2") || kv_str(h, "general.name", name) ||
        kv_u32(h, "general.alignment", GGUF_ALIGN) || kv_u32(h, "general.file_type", f16 ? 1 : 0) ||
        kv_u32(h, "gpt2.context_length", (uint32_t)c->max_seq_len) ||
        kv_u32(h, "gpt2.embedding_length", (uint32_t)c->channels) ||
        kv_u32(h, "gpt2.feed_forward_length", (uint32_t)(4 * c->channels)) ||
        kv_u32(h, "gpt2.block_count", (uint32_t)c->num_layers) ||
        kv_u32(h, "gpt2.attention.head_count", (uint32_t)c->num_heads) ||
        kv_f32(h, "gpt2.attention.layer_norm_epsilon", 1e-5f) ||
        kv_str(h, "tokenizer.ggml.model", "gpt2") || kv_str(h, "tokenizer.ggml.pre", "gpt-2") ||
        kv_strs(h, "tokenizer.ggml.tokens", voc->tokens, (uint64_t)voc->n_tokens))
        return -1;
    if (kv_head(h, "tokenizer.ggml.token_type", GGUF_ARR) || put_u32(h, GGUF_I32) || put_u64(h, (uint64_t)voc->n_tokens) ||
        put(h, voc->token_types, (size_t)voc->n_tokens * 4))
        return -1;
    if (kv_strs(h, "tokenizer.ggml.merges", merges, (uint64_t)voc->n_merges) ||
        kv_u32(h, "tokenizer.ggml.bos_token_id", (uint32_t)voc->bos_id) ||
        kv_u32(h, "tokenizer.ggml.eos_token_id", (uint32_t)voc->eos_id) ||
        kv_u32(h, "tokenizer.ggml.padding_token_id", (uint32_t)voc->eos_id))
        return -1;
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        if (put_str(h, ts[i].name) || put_u32(h, (uint32_t)ts[i].n_dims)) return -1;
        for (int d = 0; d < ts[i].n_dims; d++)
            if (put_u64(h, ts[i].ne[d])) return -1;
        if (put_u32(h, (uint32_t)ts[i].type) || put_u64(h, off)) return -1;
        off += (gguf_out_bytes(&ts[i]) + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
    }
    static const char zeros[GGUF_ALIGN];
    return put(h, zeros, (GGUF_ALIGN - h->len % GGUF_ALIGN) % GGUF_ALIGN);
}

int gguf_write_gpt2(const gpt2_t *m, const char *name, const gguf_vocab_t *voc, int flags, const char *path, char *err)
{
    int f16 = flags & GGUF_F16;
    const gpt2_config_t *c = &m->config;
    int L = c->num_layers;
    uint64_t C = (uint64_t)c->channels, V = (uint64_t)c->vocab_size;
    if (voc->n_tokens != c->vocab_size)
        return core_errf(err, "the tokenizer has %d tokens but the model's embedding has %d rows; GGUF needs one token per row",
                         voc->n_tokens, c->vocab_size);
    int nt = 2 + 12 * L + 2 + (flags & GGUF_OUTPUT_COPY ? 1 : 0);
    gguf_out_t *ts = calloc((size_t)nt, sizeof *ts);
    if (!ts) return core_errf(err, "out of memory exporting %s", path);
    int mat = f16 ? GGML_TYPE_F16 : GGML_TYPE_F32, k = 0;
#define T2(nm, n0, n1, p) do { snprintf(ts[k].name, sizeof ts[k].name, "%s", nm); ts[k].n_dims = 2; \
        ts[k].ne[0] = (n0); ts[k].ne[1] = (n1); ts[k].type = mat; ts[k].src = (p); k++; } while (0)
#define T1(nm, n0, p) do { snprintf(ts[k].name, sizeof ts[k].name, "%s", nm); ts[k].n_dims = 1; \
        ts[k].ne[0] = (n0); ts[k].type = GGML_TYPE_F32; ts[k].src = (p); k++; } while (0)
    const gpt2_params_t *p = &m->params;
    T2("token_embd.weight", C, V, p->wte);
    T2("position_embd.weight", C, (uint64_t)c->max_seq_len, p->wpe);
    for (int l = 0; l < L; l++) {
        char nm[64];
        size_t lc = (size_t)l * C;
#define BLK(suffix) (snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix), nm)
        T1(BLK("attn_norm.weight"), C, p->ln1w + lc);
        T1(BLK("attn_norm.bias"), C, p->ln1b + lc);
        T2(BLK("attn_qkv.weight"), C, 3 * C, p->qkvw + lc * 3 * C);
        T1(BLK("attn_qkv.bias"), 3 * C, p->qkvb + lc * 3);
        T2(BLK("attn_output.weight"), C, C, p->attprojw + lc * C);
        T1(BLK("attn_output.bias"), C, p->attprojb + lc);
        T1(BLK("ffn_norm.weight"), C, p->ln2w + lc);
        T1(BLK("ffn_norm.bias"), C, p->ln2b + lc);
        T2(BLK("ffn_up.weight"), C, 4 * C, p->fcw + lc * 4 * C);
        T1(BLK("ffn_up.bias"), 4 * C, p->fcb + lc * 4);
        T2(BLK("ffn_down.weight"), 4 * C, C, p->fcprojw + lc * 4 * C);
        T1(BLK("ffn_down.bias"), C, p->fcprojb + lc);
#undef BLK
    }
    T1("output_norm.weight", C, p->lnfw);
    T1("output_norm.bias", C, p->lnfb);
    if (flags & GGUF_OUTPUT_COPY) T2("output.weight", C, V, p->wte);
#undef T1
#undef T2
    buf_t h = {0};
    int rc = -1, fd = -1;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp || gguf_header(&h, m, name, voc, f16, ts, nt)) {
        core_errf(err, "out of memory exporting %s", path);
        goto out;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        core_errf(err, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    static const char zeros[GGUF_ALIGN];
    int bad = fs_write_full(fd, h.data, h.len);
    for (int i = 0; i < nt && !bad; i++) {
        uint64_t n = gguf_out_bytes(&ts[i]);
        bad = gguf_write_tensor(fd, &ts[i]) || fs_write_full(fd, zeros, (GGUF_ALIGN - n % GGUF_ALIGN) % GGUF_ALIGN);
    }
    if (bad || fsync(fd)) {
        core_errf(err, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path)) {
        core_errf(err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = fs_fsync_dir_of(path, err);
out:
    if (fd >= 0) close(fd);
    if (rc && tmp) unlink(tmp);
    free(tmp);
    buf_free(&h);
    free(ts);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Reader */

typedef struct {
    const uint8_t *p;
    size_t pos, len;
} gguf_cur_t;

static int rd(gguf_cur_t *c, void *out, size_t n)
{
    if (n > c->len - c->pos) return -1;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int rd_str(gguf_cur_t *c, char **out)
{
    uint64_t n;
    if (rd(c, &n, 8) || n > c->len - c->pos) return -1;
    char *s = malloc(n + 1);
    if (!s) return -1;
    memcpy(s, c->p + c->pos, n);
    s[n] = 0;
    c->pos += n;
    *out = s;
    return 0;
}

static int rd_value(gguf_cur_t *c, gguf_kv_t *kv)
{
    if (kv->type == GGUF_STR) return rd_str(c, &kv->str);
    if (kv->type != GGUF_ARR) {
        size_t n = gguf_scalar_size(kv->type);
        uint8_t raw[8] = {0};
        if (!n || rd(c, raw, n)) return -1;
        switch (kv->type) {
        case GGUF_I8: kv->v.i = (int8_t)raw[0]; break;
        case GGUF_I16: { int16_t x; memcpy(&x, raw, 2); kv->v.i = x; break; }
        case GGUF_I32: { int32_t x; memcpy(&x, raw, 4); kv->v.i = x; break; }
        case GGUF_I64: memcpy(&kv->v.i, raw, 8); break;
        case GGUF_F32: { float x; memcpy(&x, raw, 4); kv->v.f = x; break; }
        case GGUF_F64: memcpy(&kv->v.f, raw, 8); break;
        default: memcpy(&kv->v.u, raw, 8); break;   /* unsigned and bool: little-endian zero-extended */
        }
        return 0;
    }
    uint32_t at;
    if (rd(c, &at, 4) || rd(c, &kv->n, 8)) return -1;
    kv->arr_type = (int)at;
    if (at == GGUF_STR) {
        if (kv->n > (c->len - c->pos) / 8) return -1;      /* each string needs at least its length */
        kv->strs = calloc(kv->n ? kv->n : 1, sizeof *kv->strs);
        if (!kv->strs) return -1;
        for (uint64_t i = 0; i < kv->n; i++)
            if (rd_str(c, &kv->strs[i])) return -1;
        return 0;
    }
    size_t es = gguf_scalar_size((int)at);
    if (!es || kv->n > (c->len - c->pos) / es) return -1;  /* nested arrays are not used by GGUF models */
    kv->data = c->p + c->pos;
    c->pos += kv->n * es;
    return 0;
}

void gguf_close(gguf_file_t *f)
{
    for (int i = 0; i < f->n_kv; i++) {
        gguf_kv_t *kv = &f->kvs[i];
        free(kv->key);
        free(kv->str);
        if (kv->strs)
            for (uint64_t j = 0; j < kv->n; j++) free(kv->strs[j]);
        free(kv->strs);
    }
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kvs);
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

static int gguf_parse(gguf_file_t *f, const char *path, char *err)
{
    gguf_cur_t c = { f->map, 0, f->map_len };
    char magic[4];
    uint64_t nt, nkv;
    if (rd(&c, magic, 4) || memcmp(magic, GGUF_MAGIC, 4))
        return core_errf(err, "%s is not a GGUF file (no GGUF magic)", path);
    if (rd(&c, &f->version, 4) || (f->version != 2 && f->version != 3))
        return core_errf(err, "%s is GGUF version %u; versions 2 and 3 are supported", path, f->version);
    if (rd(&c, &nt, 8) || rd(&c, &nkv, 8) || nt > (1u << 20) || nkv > (1u << 20))
        return core_errf(err, "%s has an implausible tensor or key count", path);
    f->kvs = calloc(nkv ? nkv : 1, sizeof *f->kvs);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return core_errf(err, "out of memory reading %s", path);
    f->alignment = GGUF_ALIGN;
    for (uint64_t i = 0; i < nkv; i++) {
        gguf_kv_t *kv = &f->kvs[f->n_kv++];
        uint32_t type;
        if (rd_str(&c, &kv->key) || rd(&c, &type, 4))
            return core_errf(err, "%s is truncated in key %llu", path, (unsigned long long)i);
        kv->type = (int)type;
        if (rd_value(&c, kv))
            return core_errf(err, "%s: key %s has a bad or truncated value (type %u)", path, kv->key, type);
        if (!strcmp(kv->key, "general.alignment") && kv->type == GGUF_U32) {
            if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
                return core_errf(err, "%s: general.alignment %llu is not a power of two", path, (unsigned long long)kv->v.u);
            f->alignment = kv->v.u;
        }
    }
    for (uint64_t i = 0; i < nt; i++) {
        gguf_tensor_info_t *t = &f->tensors[f->n_tensors++];
        uint32_t nd, type;
        if (rd_str(&c, &t->name) || rd(&c, &nd, 4) || nd < 1 || nd > 4)
            return core_errf(err, "%s: tensor info %llu is truncated or has a bad dimension count", path, (unsigned long long)i);
        t->n_dims = (int)nd;
        uint64_t ne = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (rd(&c, &t->ne[d], 8) || t->ne[d] == 0 || t->ne[d] > (1ull << 40) / ne)
                return core_errf(err, "%s: tensor %s has a bad shape", path, t->name);
            ne *= t->ne[d];
        }
        for (int d = (int)nd; d < 4; d++) t->ne[d] = 1;
        if (rd(&c, &type, 4) || rd(&c, &t->offset, 8))
            return core_errf(err, "%s: tensor info %s is truncated", path, t->name);
        t->type = (int)type;
        t->nelem = ne;
        t->nbytes = gguf_type_size(t->type) * ne;  /* 0 for types this reader does not decode */
    }
    f->data_offset = (c.pos + f->alignment - 1) / f->alignment * f->alignment;
    for (int i = 0; i < f->n_tensors; i++) {
        gguf_tensor_info_t *t = &f->tensors[i];
        if (t->offset % f->alignment)
            return core_errf(err, "%s: tensor %s is not aligned to %zu bytes", path, t->name, f->alignment);
        if (f->data_offset > f->map_len || t->offset > f->map_len - f->data_offset ||
            t->nbytes > f->map_len - f->data_offset - t->offset)
            return core_errf(err, "%s: tensor %s lies past the end of the file (truncated?)", path, t->name);
        t->data = (const uint8_t *)f->map + f->data_offset + t->offset;
    }
    return 0;
}

int gguf_open(gguf_file_t *f, const char *path, char *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_errf(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || st.st_size < 24) {
        close(fd);
        return core_errf(err, "%s is too short to be a GGUF file", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return core_errf(err, "cannot map %s: %s", path, strerror(errno));
    f->map = map;
    f->map_len = (size_t)st.st_size;
    if (gguf_parse(f, path, err)) {
        gguf_close(f);
        return -1;
    }
    return 0;
}

const gguf_kv_t *gguf_find_kv(const gguf_file_t *f, const char *key)
{
    for (int i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

const gguf_tensor_info_t *gguf_find_tensor(const gguf_file_t *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

int gguf_tensor_to_f32(const gguf_tensor_info_t *t, float *out)
{
    if (t->type == GGML_TYPE_F32) {
        memcpy(out, t->data, t->nelem * 4);
        return 0;
    }
    if (t->type != GGML_TYPE_F16) return -1;
    for (uint64_t i = 0; i < t->nelem; i++) {
        uint16_t h;
        memcpy(&h, t->data + 2 * i, 2);
        out[i] = gguf_f16_to_f32(h);
    }
    return 0;
}
