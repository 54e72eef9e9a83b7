/* st_gpt2.c: GPT-2 model directories in Hugging Face layout (config.json +
 * model.safetensors), so a model trained here loads in
 * transformers.GPT2LMHeadModel and an HF GPT-2 directory (gpt2, distilgpt2,
 * gpt2-medium...) imports here.
 *
 * HF names (optionally prefixed "transformer.") and their place in
 * gpt2_params_t are one table; load and save walk it. HF's Conv1D stores
 * weights [in][out], nn/ keeps [out][in], so those four per layer are
 * transposed on the way in and out. The file is memory-mapped and each
 * tensor converted (F32/F16/BF16/F64) straight into params_memory, so a 124M
 * model loads in well under a second. Buffers that are not parameters
 * (attn.bias, attn.masked_bias) and the tied lm_head.weight are ignored.
 */
#include "nn/gpt2_impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *fmt;    /* HF name; %d = layer */
    int param;          /* index into gpt2_params_t order */
    int per_layer;
    int transpose;      /* Conv1D [in][out] on disk */
    int rows_mul, cols_mul; /* in-memory per-layer shape: rows_mul*C x cols_mul*C (cols 0 = vector) */
} st_map_t;

static const st_map_t st_map[] = {
    {"h.%d.ln_1.weight", 2, 1, 0, 1, 0},
    {"h.%d.ln_1.bias", 3, 1, 0, 1, 0},
    {"h.%d.attn.c_attn.weight", 4, 1, 1, 3, 1},
    {"h.%d.attn.c_attn.bias", 5, 1, 0, 3, 0},
    {"h.%d.attn.c_proj.weight", 6, 1, 1, 1, 1},
    {"h.%d.attn.c_proj.bias", 7, 1, 0, 1, 0},
    {"h.%d.ln_2.weight", 8, 1, 0, 1, 0},
    {"h.%d.ln_2.bias", 9, 1, 0, 1, 0},
    {"h.%d.mlp.c_fc.weight", 10, 1, 1, 4, 1},
    {"h.%d.mlp.c_fc.bias", 11, 1, 0, 4, 0},
    {"h.%d.mlp.c_proj.weight", 12, 1, 1, 1, 4},
    {"h.%d.mlp.c_proj.bias", 13, 1, 0, 1, 0},
};
#define ST_MAP_N ((int)(sizeof st_map / sizeof *st_map))

static float *gpt2_param_ptr(const gpt2_t *m, int idx)
{
    float *p = m->params_memory;
    for (int i = 0; i < idx; i++) p += m->param_sizes[i];
    return p;
}

/* dst (R, Cc) = src (Cc, R)^T, blocked for the cache */
static void st_transpose(float *dst, const float *src, int R, int Cc)
{
    const int BS = 32;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int r0 = 0; r0 < R; r0 += BS)
        for (int c0 = 0; c0 < Cc; c0 += BS)
            for (int r = r0; r < r0 + BS && r < R; r++)
                for (int c = c0; c < c0 + BS && c < Cc; c++)
                    dst[(size_t)r * Cc + c] = src[(size_t)c * R + r];
}

/* ---------------------------------------------------------------------- */
static int json_int_field(json_t *root, const char *k1, const char *k2, int *out)
{
    json_t *v = json_object_get(root, k1);
    if (!json_is_integer(v) && k2) v = json_object_get(root, k2);
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 1 || x > (1 << 24)) return -1;
    *out = (int)x;
    return 0;
}

static int gpt2_read_config(const char *dir, gpt2_config_t *c, char *err)
{
    char path[4096], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (fs_read_all(path, &text, &len, err)) return -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return core_errf(err, "%s is not valid JSON: %s (line %d)", path, je.text, je.line);
    int rc = 0;
    json_t *mt = json_object_get(root, "model_type");
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) {
        rc = core_errf(err, "%s is not a JSON object", path);
    } else if (json_is_string(mt) && strcmp(json_string_value(mt), "gpt2")) {
        rc = core_errf(err, "%s describes a '%s' model; only GPT-2 (model_type gpt2) is supported", path,
                       json_string_value(mt));
    } else if (json_int_field(root, "n_layer", NULL, &c->num_layers) ||
               json_int_field(root, "n_head", NULL, &c->num_heads) ||
               json_int_field(root, "n_embd", NULL, &c->channels) ||
               json_int_field(root, "vocab_size", NULL, &c->vocab_size) ||
               json_int_field(root, "n_positions", "n_ctx", &c->max_seq_len)) {
        rc = core_errf(err, "%s needs positive integers n_layer, n_head, n_embd, vocab_size and n_positions", path);
    }
    json_decref(root);
    return rc;
}

static int st_check_shape(const st_tensor_t *t, int64_t d0, int64_t d1, const char *path, char *err)
{
    int ok = d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
    if (!ok) {
        char got[128] = "";
        size_t n = 0;
        for (int i = 0; i < t->ndim && n < sizeof got - 24; i++)
            n += (size_t)snprintf(got + n, sizeof got - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (d1) return core_errf(err, "%s: tensor %s has shape [%s], expected [%lld, %lld] for this config.json",
                                 path, t->name, got, (long long)d0, (long long)d1);
        return core_errf(err, "%s: tensor %s has shape [%s], expected [%lld] for this config.json",
                         path, t->name, got, (long long)d0);
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return core_errf(err, "%s: tensor %s is %s; weights must be F32, F16, BF16 or F64", path, t->name,
                         st_dtype_name(t->dtype));
    return 0;
}

static const st_tensor_t *st_find_prefixed(const st_file_t *f, const char *name)
{
    const st_tensor_t *t = st_tensor_find(f, name);
    if (t) return t;
    char buf[256];
    snprintf(buf, sizeof buf, "transformer.%s", name);
    return st_tensor_find(f, buf);
}

/* Find name, check its shape (d1 = 0: a vector), convert into dst; a
 * Conv1D weight (d0 = in, d1 = out on disk) is transposed through tmp. */
static int st_load_one(const st_file_t *f, const char *name, int64_t d0, int64_t d1, int transpose, float *dst,
                       float *tmp, const char *path, char *err)
{
    const st_tensor_t *t = st_find_prefixed(f, name);
    if (!t) return core_errf(err, "%s has no tensor %s: not a complete GPT-2 checkpoint for this config.json", path, name);
    if (st_check_shape(t, d0, d1, path, err)) return -1;
    if (!transpose) return st_tensor_to_f32(t, dst);
    st_tensor_to_f32(t, tmp);
    st_transpose(dst, tmp, (int)d1, (int)d0);
    return 0;
}

int gpt2_load(gpt2_t *m, const char *dir, char *err)
{
    gpt2_config_t cfg;
    memset(m, 0, sizeof *m);
    if (gpt2_read_config(dir, &cfg, err) || gpt2_create(m, &cfg, err)) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file_t f;
    if (st_file_open(&f, path, err)) {
        gpt2_free(m);
        return -1;
    }
    int L = cfg.num_layers, C = cfg.channels, rc = 0;
    float *tmp = malloc((size_t)4 * C * C * sizeof(float));
    if (!tmp) {
        rc = core_errf(err, "out of memory loading %s", path);
        goto out;
    }
    if ((rc = st_load_one(&f, "wte.weight", cfg.vocab_size, C, 0, m->params.wte, tmp, path, err)) ||
        (rc = st_load_one(&f, "wpe.weight", cfg.max_seq_len, C, 0, m->params.wpe, tmp, path, err)) ||
        (rc = st_load_one(&f, "ln_f.weight", C, 0, 0, m->params.lnfw, tmp, path, err)) ||
        (rc = st_load_one(&f, "ln_f.bias", C, 0, 0, m->params.lnfb, tmp, path, err)))
        goto out;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < ST_MAP_N; k++) {
            const st_map_t *e = &st_map[k];
            char name[128];
            snprintf(name, sizeof name, e->fmt, l);
            size_t per = m->param_sizes[e->param] / L;
            float *dst = gpt2_param_ptr(m, e->param) + l * per;
            /* on disk: Conv1D [in][out] = [cols][rows] of the in-memory matrix */
            int64_t d0 = e->cols_mul ? (int64_t)e->cols_mul * C : (int64_t)e->rows_mul * C;
            int64_t d1 = e->cols_mul ? (int64_t)e->rows_mul * C : 0;
            if ((rc = st_load_one(&f, name, d0, d1, e->transpose, dst, tmp, path, err))) goto out;
        }
out:
    free(tmp);
    st_file_close(&f);
    if (rc) gpt2_free(m);
    return rc;
}

/* ---------------------------------------------------------------------- */
static int gpt2_write_config(const gpt2_t *m, const char *dir, char *err)
{
    const gpt2_config_t *c = &m->config;
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
    json_object_set_new(j, "model_type", json_string("gpt2"));
    json_object_set_new(j, "activation_function", json_string("gelu_new"));
    json_object_set_new(j, "n_layer", json_integer(c->num_layers));
    json_object_set_new(j, "n_head", json_integer(c->num_heads));
    json_object_set_new(j, "n_embd", json_integer(c->channels));
    json_object_set_new(j, "n_positions", json_integer(c->max_seq_len));
    json_object_set_new(j, "n_ctx", json_integer(c->max_seq_len));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "layer_norm_epsilon", json_real(1e-5));
    json_object_set_new(j, "tie_word_embeddings", json_true());
    json_object_set_new(j, "torch_dtype", json_string("float32"));
    if (c->vocab_size == 50257) {
        json_object_set_new(j, "bos_token_id", json_integer(50256));
        json_object_set_new(j, "eos_token_id", json_integer(50256));
    }
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) return core_errf(err, "out of memory writing config.json");
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    buf_t b = {0};
    int rc = buf_appends(&b, text) || buf_appends(&b, "\n")
                 ? core_errf(err, "out of memory writing config.json")
                 : fs_write_atomic(path, b.data, b.len, err);
    buf_free(&b);
    free(text);
    return rc;
}

int gpt2_save(const gpt2_t *m, const char *dir, char *err)
{
    const gpt2_config_t *c = &m->config;
    int L = c->num_layers, C = c->channels;
    if (fs_mkdir_p(dir, 0755, err)) return -1;
    int n = 4 + L * ST_MAP_N;
    char (*names)[96] = calloc(n, sizeof *names);
    int64_t (*shapes)[2] = calloc(n, sizeof *shapes);
    const int64_t **shp = calloc(n, sizeof *shp);
    const char **nm = calloc(n, sizeof *nm);
    int *nd = calloc(n, sizeof *nd);
    float *tmp = malloc((size_t)4 * C * C * sizeof(float));
    const float **src = calloc(n, sizeof *src);
    int *tr = calloc(n, sizeof *tr);
    int rc = 0;
    st_writer_t *w = NULL;
    if (!names || !shapes || !shp || !nm || !nd || !tmp || !src || !tr) {
        rc = core_errf(err, "out of memory saving the model");
        goto out;
    }
    int k = 0;
#define ADD(name_, d0, d1, p, t) do { snprintf(names[k], sizeof names[k], "%s", name_); shapes[k][0] = (d0); \
        shapes[k][1] = (d1); nd[k] = (d1) ? 2 : 1; src[k] = (p); tr[k] = (t); k++; } while (0)
    ADD("wte.weight", c->vocab_size, C, m->params.wte, 0);
    ADD("wpe.weight", c->max_seq_len, C, m->params.wpe, 0);
    for (int l = 0; l < L; l++)
        for (int e = 0; e < ST_MAP_N; e++) {
            const st_map_t *s = &st_map[e];
            char name[96];
            snprintf(name, sizeof name, s->fmt, l);
            size_t per = m->param_sizes[s->param] / L;
            int64_t d0 = s->cols_mul ? (int64_t)s->cols_mul * C : (int64_t)s->rows_mul * C;
            int64_t d1 = s->cols_mul ? (int64_t)s->rows_mul * C : 0;
            ADD(name, d0, d1, gpt2_param_ptr(m, s->param) + l * per, s->transpose);
        }
    ADD("ln_f.weight", C, 0, m->params.lnfw, 0);
    ADD("ln_f.bias", C, 0, m->params.lnfb, 0);
#undef ADD
    for (int i = 0; i < n; i++) { shp[i] = shapes[i]; nm[i] = names[i]; }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = st_writer_open(&w, path, nm, shp, nd, n, err))) goto out;
    for (int i = 0; i < n && !rc; i++) {
        size_t ne = (size_t)shapes[i][0] * (nd[i] == 2 ? (size_t)shapes[i][1] : 1);
        if (tr[i]) {
            /* in memory (rows = d1, cols = d0) -> disk [d0][d1] */
            st_transpose(tmp, src[i], (int)shapes[i][0], (int)shapes[i][1]);
            rc = st_writer_write(w, tmp, ne, err);
        } else {
            rc = st_writer_write(w, src[i], ne, err);
        }
    }
    if (rc) st_writer_abort(w);
    else rc = st_writer_close(w, err);
    if (!rc) rc = gpt2_write_config(m, dir, err);
out:
    free(names); free(shapes); free(shp); free(nm); free(nd); free(tmp); free(src); free(tr);
    return rc;
}
