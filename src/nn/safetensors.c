/* safetensors.c: reading and writing the safetensors format (Hugging Face's
 * weights file: 8-byte little-endian header length, a JSON header mapping
 * tensor names to dtype, shape and [begin, end) byte offsets into the data
 * area that follows).
 *
 * The reader is the first code that touches a file a user hands us (an HF
 * model directory to import, a checkpoint that a crash may have cut short),
 * so nothing in the header is trusted before it is checked: the header length
 * against the file size, JSON syntax (jansson, duplicates rejected), every
 * field's type, dtype known, shape non-negative and small, byte count =
 * product(shape) * dtype size without overflow, offsets inside the data area,
 * and no two tensors overlapping. st_file_parse works on a byte buffer so the
 * fuzz target (tests/fuzz/fuzz_safetensors.c) can drive it directly.
 *
 * The writer streams (a 124M model is 500 MB; no second copy in memory) into
 * a temp file that is fsync'd and renamed into place.
 */
#include "nn/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20)   /* HF caps the header at 100 MB too */
#define ST_MAX_TENSORS (1 << 20)

static const struct { const char *name; size_t size; } st_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1}, [ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof *st_dtypes))

size_t st_dtype_size(int dtype) { return dtype >= 0 && dtype < ST_NDTYPES ? st_dtypes[dtype].size : 0; }
const char *st_dtype_name(int dtype) { return dtype >= 0 && dtype < ST_NDTYPES ? st_dtypes[dtype].name : "?"; }

static int st_cmp_offset(const void *a, const void *b)
{
    const st_tensor_t *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static void st_tensors_free(st_file_t *f)
{
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->n = 0;
}

/* Check one header entry and fill t. */
static int st_parse_entry(st_tensor_t *t, const char *name, json_t *v, const uint8_t *data, size_t data_len,
                          char *err)
{
    if (!json_is_object(v)) return core_errf(err, "safetensors header: entry '%s' is not an object", name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo))
        return core_errf(err, "safetensors header: tensor '%s' needs a string dtype, a shape array and a data_offsets array", name);
    t->dtype = -1;
    for (int d = 0; d < ST_NDTYPES; d++)
        if (!strcmp(json_string_value(jd), st_dtypes[d].name)) t->dtype = d;
    if (t->dtype < 0)
        return core_errf(err, "safetensors header: tensor '%s' has unsupported dtype '%.16s'", name, json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return core_errf(err, "safetensors header: tensor '%s' has %zu dimensions (at most %d supported)", name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    size_t nelem = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return core_errf(err, "safetensors header: tensor '%s' has a shape entry that is not a non-negative integer", name);
        t->shape[i] = json_integer_value(e);
        if (__builtin_mul_overflow(nelem, (size_t)t->shape[i], &nelem))
            return core_errf(err, "safetensors header: tensor '%s' has a shape too large to exist", name);
    }
    size_t nbytes;
    if (__builtin_mul_overflow(nelem, st_dtypes[t->dtype].size, &nbytes))
        return core_errf(err, "safetensors header: tensor '%s' has a shape too large to exist", name);
    if (json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1)))
        return core_errf(err, "safetensors header: tensor '%s' data_offsets must be two integers [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b || (unsigned long long)e > data_len)
        return core_errf(err, "safetensors: tensor '%s' data_offsets [%lld, %lld] fall outside the %zu-byte data area (truncated file?)",
                         name, (long long)b, (long long)e, data_len);
    if ((size_t)(e - b) != nbytes)
        return core_errf(err, "safetensors header: tensor '%s' is %s with %zu elements = %zu bytes, but data_offsets span %lld bytes",
                         name, st_dtypes[t->dtype].name, nelem, nbytes, (long long)(e - b));
    t->nelem = nelem;
    t->nbytes = nbytes;
    t->data = data + b;
    t->name = strdup(name);
    if (!t->name) return core_errf(err, "out of memory reading a safetensors header");
    return 0;
}

int st_file_parse(st_file_t *f, const void *buf, size_t len, char *err)
{
    memset(f, 0, sizeof *f);
    const uint8_t *p = buf;
    if (len < 8) return core_errf(err, "not a safetensors file: %zu bytes, shorter than the 8-byte header length", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n > len - 8)
        return core_errf(err, "safetensors header length %llu exceeds the file (%zu bytes): the file is truncated or not safetensors",
                         (unsigned long long)n, len);
    if (n > ST_MAX_HEADER || n < 2)
        return core_errf(err, "safetensors header length %llu is not plausible (2 bytes to 100 MB)", (unsigned long long)n);
    if (p[8] != '{') return core_errf(err, "safetensors header does not start with '{': not a safetensors file");
    json_error_t je;
    json_t *root = json_loadb((const char *)p + 8, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) return core_errf(err, "safetensors header is not valid JSON: %s (at byte %d)", je.text, je.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = core_errf(err, "safetensors header is not a JSON object");
        goto out;
    }
    size_t cap = json_object_size(root);
    if (cap > ST_MAX_TENSORS) {
        rc = core_errf(err, "safetensors header lists %zu tensors (at most %d supported)", cap, ST_MAX_TENSORS);
        goto out;
    }
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = core_errf(err, "out of memory reading a safetensors header");
        goto out;
    }
    const uint8_t *data = p + 8 + n;
    size_t data_len = len - 8 - n;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        if ((rc = st_parse_entry(&f->tensors[f->n], key, v, data, data_len, err))) goto out;
        f->n++;
    }
    qsort(f->tensors, f->n, sizeof *f->tensors, st_cmp_offset);
    for (int i = 1; i < f->n; i++) {
        const st_tensor_t *a = &f->tensors[i - 1], *b = &f->tensors[i];
        if (b->data < a->data + a->nbytes) {
            rc = core_errf(err, "safetensors: tensors '%s' and '%s' overlap in the data area: the header is corrupt",
                           a->name, b->name);
            goto out;
        }
    }
out:
    json_decref(root);
    if (rc) st_tensors_free(f);
    return rc;
}

int st_file_open(st_file_t *f, const char *path, char *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core_errf(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return core_errf(err, "cannot stat %s: %s", path, strerror(e));
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return core_errf(err, "%s is not a safetensors file: %zu bytes, shorter than the 8-byte header length", path, len);
    }
    /* populate: one bulk fault-in instead of one fault per 4 KB page */
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return core_errf(err, "cannot map %s: %s", path, strerror(errno));
    char perr[CORE_ERR_LEN];
    if (st_file_parse(f, map, len, perr)) {
        munmap(map, len);
        return core_errf(err, "%s: %s", path, perr);
    }
    f->map = map;
    f->map_len = len;
    return 0;
}

void st_file_close(st_file_t *f)
{
    st_tensors_free(f);
    if (f->map) munmap(f->map, f->map_len);
    f->map = NULL;
}

const st_tensor_t *st_tensor_find(const st_file_t *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static float st_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);           /* inf / nan */
    else if (exp) bits = sign | ((exp + 112) << 23) | (man << 13);      /* normal */
    else if (!man) bits = sign;                                          /* zero */
    else {                                                               /* subnormal */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_tensor_to_f32(const st_tensor_t *t, float *out)
{
    const uint8_t *d = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, d, t->nelem * 4);
        return 0;
    case ST_F64:
        for (size_t i = 0; i < t->nelem; i++) { double x; memcpy(&x, d + 8 * i, 8); out[i] = (float)x; }
        return 0;
    case ST_BF16:
        #pragma omp parallel for schedule(static) if (t->nelem > (1 << 16))
        for (size_t i = 0; i < t->nelem; i++) {
            uint32_t bits = (uint32_t)(d[2 * i] | d[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &bits, 4);
        }
        return 0;
    case ST_F16:
        #pragma omp parallel for schedule(static) if (t->nelem > (1 << 16))
        for (size_t i = 0; i < t->nelem; i++) out[i] = st_half_to_float((uint16_t)(d[2 * i] | d[2 * i + 1] << 8));
        return 0;
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------------- */
struct st_writer {
    int fd;
    char path[4096], tmp[4096];
    size_t *nbytes;     /* per tensor */
    int n, cur;
    size_t written;     /* of the current tensor */
};


int st_writer_open(st_writer_t **out, const char *path, const char *const *names, const int64_t *const *shapes,
                   const int *ndims, int n, char *err)
{
    *out = NULL;
    st_writer_t *w = calloc(1, sizeof *w);
    json_t *root = json_object();
    char *hdr = NULL;
    if (!w || !root || !(w->nbytes = calloc(n ? n : 1, sizeof *w->nbytes))) goto oom;
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *t = json_object(), *sh = json_array(), *of = json_array();
        size_t ne = 1;
        for (int d = 0; d < ndims[i]; d++) {
            json_array_append_new(sh, json_integer(shapes[i][d]));
            ne *= (size_t)shapes[i][d];
        }
        w->nbytes[i] = ne * 4;
        json_array_append_new(of, json_integer((json_int_t)off));
        json_array_append_new(of, json_integer((json_int_t)(off + w->nbytes[i])));
        off += w->nbytes[i];
        json_object_set_new(t, "dtype", json_string("F32"));
        json_object_set_new(t, "shape", sh);
        json_object_set_new(t, "data_offsets", of);
        json_object_set_new(root, names[i], t);
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) goto oom;
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    w->n = n;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        core_errf(err, "cannot create %s: %s", w->tmp, strerror(errno));
        goto fail;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (fs_write_full(w->fd, len8, 8) || fs_write_full(w->fd, hdr, hl) ||
        fs_write_full(w->fd, "        ", padded - hl)) {
        core_errf(err, "cannot write %s: %s", w->tmp, strerror(errno));
        close(w->fd);
        unlink(w->tmp);
        goto fail;
    }
    free(hdr);
    json_decref(root);
    *out = w;
    return 0;
oom:
    core_errf(err, "out of memory writing a safetensors header");
fail:
    free(hdr);
    json_decref(root);
    if (w) free(w->nbytes);
    free(w);
    return -1;
}

int st_writer_write(st_writer_t *w, const float *data, size_t nelem, char *err)
{
    while (w->cur < w->n && w->nbytes[w->cur] == 0) w->cur++;
    if (w->cur >= w->n || w->written + nelem * 4 > w->nbytes[w->cur])
        return core_errf(err, "internal error: more data written to %s than its header declares", w->path);
    if (fs_write_full(w->fd, data, nelem * 4))
        return core_errf(err, "cannot write %s: %s (disk full?)", w->tmp, strerror(errno));
    w->written += nelem * 4;
    while (w->cur < w->n && w->written == w->nbytes[w->cur]) {
        w->cur++;
        w->written = 0;
    }
    return 0;
}

void st_writer_abort(st_writer_t *w)
{
    if (!w) return;
    close(w->fd);
    unlink(w->tmp);
    free(w->nbytes);
    free(w);
}

int st_writer_close(st_writer_t *w, char *err)
{
    while (w->cur < w->n && w->nbytes[w->cur] == 0) w->cur++;
    if (w->cur != w->n) {
        core_errf(err, "internal error: %s closed before all tensors were written", w->path);
        st_writer_abort(w);
        return -1;
    }
    if (fsync(w->fd) || close(w->fd)) {
        int e = errno;
        w->fd = -1;
        unlink(w->tmp);
        core_errf(err, "cannot write %s: %s", w->tmp, strerror(e));
        free(w->nbytes);
        free(w);
        return -1;
    }
    int rc = 0;
    if (rename(w->tmp, w->path)) {
        rc = core_errf(err, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
        unlink(w->tmp);
    } else {
        rc = fs_fsync_dir_of(w->path, err);
    }
    free(w->nbytes);
    free(w);
    return rc;
}
