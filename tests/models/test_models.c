/* test_models.c: `tunery models import | export` as the spec.
 * Import: the random-weight Hugging Face GPT-2 directories written by
 * scripts/gen_import_fixture.py (fp32 with vocab.json + merges.txt, fp16 with
 * tokenizer.json) import and give PyTorch's logits through the name they were
 * imported as; every kind of bad directory gives its own one-sentence error
 * and leaves the data directory untouched. GGUF: an exported file read back
 * with the reader has every key and every tensor (shape in GGUF order, bytes)
 * of the model; F16 export, the r50k tokenizer, a truncated file.
 * Run from the repo root (make check does). */
#include "nn/nn.h"
#include "test.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/models/fixtures"

static char data_dir[PATH_MAX];

static void fresh_data_dir(void)
{
    char err[CORE_ERR_LEN];
    if (data_dir[0]) fs_rm_rf(data_dir, err);
    snprintf(data_dir, sizeof data_dir, "/tmp/tunery-test-models-XXXXXX");
    if (!mkdtemp(data_dir)) { perror("mkdtemp"); exit(1); }
    setenv("TUNERY_DATA", data_dir, 1);
}

static int cp(const char *src, const char *dst)
{
    char *d;
    size_t n;
    char err[CORE_ERR_LEN];
    if (fs_read_all(src, &d, &n, err)) return -1;
    int rc = fs_write_atomic(dst, d, n, err);
    free(d);
    return rc;
}

/* a scratch copy of a fixture directory to break */
static void copy_fixture(const char *name, char *out)
{
    static const char *files[] = {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer.json", NULL};
    char err[CORE_ERR_LEN];
    snprintf(out, PATH_MAX, "%s/src-%s", data_dir, name);
    fs_mkdir_p(out, 0755, err);
    for (int i = 0; files[i]; i++) {
        char a[PATH_MAX], b[PATH_MAX + 32];
        snprintf(a, sizeof a, FIX "/%s/%s", name, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        if (fs_exists(a)) CHECK(cp(a, b) == 0);
    }
}

static json_t *expected(void)
{
    json_error_t je;
    json_t *j = json_load_file(FIX "/expected.json", 0, &je);
    if (!j) fprintf(stderr, "cannot read " FIX "/expected.json: %s\n", je.text);
    return j;
}

/* logits of the model called name (resolved like everywhere else) vs PyTorch */
static void check_parity(const char *name, const char *key)
{
    json_t *e = expected();
    CHECK(e != NULL);
    if (!e) return;
    char dir[PATH_MAX], err[CORE_ERR_LEN];
    CHECKF(core_model_dir(name, dir, err) == 0, "%s", err);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/models/%s", data_dir, name);
    CHECK_EQ_STR(dir, want);
    gpt2_t m;
    int rc = gpt2_load(&m, dir, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) { json_decref(e); return; }
    json_t *in = json_object_get(e, "input"), *lg = json_object_get(e, key);
    int T = (int)json_array_size(in), V = m.config.vocab_size, Vp = m.config.padded_vocab_size;
    CHECK_EQ_INT(V, json_integer_value(json_object_get(e, "vocab_size")));
    CHECK_EQ_INT(json_array_size(lg), (size_t)T * V);
    int ids[64];
    for (int t = 0; t < T; t++) ids[t] = (int)json_integer_value(json_array_get(in, t));
    gpt2_forward(&m, ids, NULL, NULL, 1, T);
    const float *out = gpt2_logits(&m);
    double maxd = 0;
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) {
            double d = fabs(out[(size_t)t * Vp + v] - json_real_value(json_array_get(lg, (size_t)t * V + v)));
            if (d > maxd) maxd = d;
        }
    CHECKF(maxd < 1e-4, "max |logit - torch| = %g", maxd);
    gpt2_free(&m);
    json_decref(e);
}

static void test_import_parity_f32(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN];
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(FIX "/hf_gpt2", "curie", data_dir, &o, err) == 0, "%s", err);
    check_parity("curie", "logits_f32");
    /* tunery.json: where it came from, when, the pretraining learning rate */
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/models/curie/tunery.json", data_dir);
    json_t *j = json_load_file(p, 0, NULL);
    CHECK(j != NULL);
    CHECK(strstr(json_string_value(json_object_get(j, "source")) ? json_string_value(json_object_get(j, "source")) : "",
                 "hf_gpt2") != NULL);
    CHECK(json_is_string(json_object_get(j, "imported_at")));
    CHECK_NEAR(json_real_value(json_object_get(j, "pretrain_learning_rate")), 6e-4, 1e-12);
    json_decref(j);
    snprintf(p, sizeof p, "%s/models/curie/merges.txt", data_dir);
    CHECK(fs_exists(p));
}

static void test_import_parity_f16_keeps_dtype(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN];
    models_import_opts_t o = {0, 1e-3};
    CHECKF(models_import(FIX "/hf_gpt2_f16", "small-16", data_dir, &o, err) == 0, "%s", err);
    check_parity("small-16", "logits_f16");
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/models/small-16/model.safetensors", data_dir);
    st_file_t f;
    CHECKF(st_file_open(&f, p, err) == 0, "%s", err);
    const st_tensor_t *t = st_tensor_find(&f, "transformer.wte.weight");
    CHECK(t && t->dtype == ST_F16);
    st_file_close(&f);
    snprintf(p, sizeof p, "%s/models/small-16/tokenizer.json", data_dir);
    CHECK(fs_exists(p));
    snprintf(p, sizeof p, "%s/models/small-16/tunery.json", data_dir);
    json_t *j = json_load_file(p, 0, NULL);
    CHECK_NEAR(json_real_value(json_object_get(j, "pretrain_learning_rate")), 1e-3, 1e-12);
    json_decref(j);
}

static int no_leftovers(void)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/models", data_dir);
    DIR *d = opendir(p);
    if (!d) return 1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, ".import", 7)) n++;
    closedir(d);
    return n == 0;
}

static void test_import_force(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN];
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(FIX "/hf_gpt2", "m1", data_dir, &o, err) == 0, "%s", err);
    CHECK(models_import(FIX "/hf_gpt2_f16", "m1", data_dir, &o, err) < 0);
    CHECKF(strstr(err, "already exists") && strstr(err, "--force"), "%s", err);
    check_parity("m1", "logits_f32");          /* untouched */
    o.force = 1;
    CHECKF(models_import(FIX "/hf_gpt2_f16", "m1", data_dir, &o, err) == 0, "%s", err);
    check_parity("m1", "logits_f16");          /* replaced as a whole: */
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/models/m1/vocab.json", data_dir);
    CHECK(!fs_exists(p));                      /* no file of the old model left */
    CHECK(no_leftovers());
    CHECK(models_import(FIX "/hf_gpt2", "../evil", data_dir, &o, err) < 0);
    CHECKF(strstr(err, "invalid model name") != NULL, "%s", err);
}

/* Break a copy of the fixture with fn, import it, expect an error holding
 * every one of the words, and nothing installed. */
static void expect_bad(const char *fixture, void (*fn)(const char *dir), const char *const *words)
{
    char dir[PATH_MAX], err[CORE_ERR_LEN] = "";
    copy_fixture(fixture, dir);
    if (fn) fn(dir);
    models_import_opts_t o = {0, 0};
    int rc = models_import(dir, "broken", data_dir, &o, err);
    CHECKF(rc < 0, "imported %s", dir);
    for (int i = 0; words[i]; i++) CHECKF(strstr(err, words[i]) != NULL, "error \"%s\" lacks \"%s\"", err, words[i]);
    CHECKF(strchr(err, '\n') == NULL, "multi-line error: %s", err);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/models/broken", data_dir);
    CHECK(!fs_exists(p));
    CHECK(no_leftovers());
    char e2[CORE_ERR_LEN];
    fs_rm_rf(dir, e2);
}

static void rm_in(const char *dir, const char *f)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/%s", dir, f);
    unlink(p);
}
static void no_config(const char *d) { rm_in(d, "config.json"); }
static void no_weights(const char *d) { rm_in(d, "model.safetensors"); }
static void no_merges(const char *d) { rm_in(d, "merges.txt"); }
static void no_tokenizer(const char *d) { rm_in(d, "merges.txt"); rm_in(d, "vocab.json"); }

static void edit_config(const char *d, const char *key, json_t *val)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/config.json", d);
    json_t *j = json_load_file(p, 0, NULL);
    json_object_set_new(j, key, val);
    json_dump_file(j, p, 0);
    json_decref(j);
}
static void llama_type(const char *d) { edit_config(d, "model_type", json_string("llama")); }
static void unknown_arch(const char *d) { edit_config(d, "architectures", json_pack("[s]", "GPT2ForSequenceMagic")); }
static void truncate_weights(const char *d)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    struct stat st;
    if (stat(p, &st) == 0) CHECK(truncate(p, st.st_size - 1000) == 0);
}
static void extra_token(const char *d)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/vocab.json", d);
    json_t *j = json_load_file(p, 0, NULL);
    json_object_set_new(j, "zz", json_integer(json_object_size(j)));
    json_dump_file(j, p, JSON_ENSURE_ASCII);
    json_decref(j);
}

static void test_import_bad_dirs(void)
{
    fresh_data_dir();
    expect_bad("hf_gpt2", no_config, (const char *[]){"no config.json", NULL});
    expect_bad("hf_gpt2", no_weights, (const char *[]){"no model.safetensors", NULL});
    expect_bad("hf_gpt2", no_merges, (const char *[]){"vocab.json but no merges.txt", NULL});
    expect_bad("hf_gpt2", no_tokenizer, (const char *[]){"no tokenizer", "tokenizer.json", NULL});
    expect_bad("hf_gpt2", llama_type, (const char *[]){"model_type is \"llama\"", NULL});
    expect_bad("hf_gpt2", unknown_arch, (const char *[]){"GPT2ForSequenceMagic", "unknown", NULL});
    expect_bad("hf_gpt2", truncate_weights, (const char *[]){"truncated", NULL});
    expect_bad("bad_shape", NULL, (const char *[]){"h.1.attn.c_attn.weight", "[96, 32]", "expected [32, 96]", NULL});
    expect_bad("hf_gpt2", extra_token, (const char *[]){"270 tokens", "vocab_size 269", NULL});
    char err[CORE_ERR_LEN];
    models_import_opts_t o = {0, 0};
    CHECK(models_import("/nonexistent/dir", "x", data_dir, &o, err) < 0);
    CHECKF(strstr(err, "not a directory") != NULL, "%s", err);
}

/* ---- GGUF ---- */

static uint64_t kv_u(const gguf_file_t *f, const char *k)
{
    const gguf_kv_t *kv = gguf_find_kv(f, k);
    CHECKF(kv && kv->type == GGUF_U32, "key %s missing or not u32", k);
    return kv ? kv->v.u : 0;
}
static const char *kv_s(const gguf_file_t *f, const char *k)
{
    const gguf_kv_t *kv = gguf_find_kv(f, k);
    CHECKF(kv && kv->type == GGUF_STR, "key %s missing or not a string", k);
    return kv && kv->str ? kv->str : "";
}

/* every tensor of m, by GGUF name, with its GGUF shape (ne0 fastest) */
static void check_tensor(const gguf_file_t *f, const char *name, uint64_t ne0, uint64_t ne1, const float *want,
                         int f16)
{
    const gguf_tensor_info_t *t = gguf_find_tensor(f, name);
    CHECKF(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECKF(t->n_dims == (ne1 ? 2 : 1) && t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1),
           "%s: n_dims %d ne {%llu, %llu}, want {%llu, %llu}", name, t->n_dims, (unsigned long long)t->ne[0],
           (unsigned long long)t->ne[1], (unsigned long long)ne0, (unsigned long long)ne1);
    CHECKF(t->offset % 32 == 0, "%s not 32-byte aligned", name);
    CHECK_EQ_INT(t->type, f16 && ne1 ? GGML_TYPE_F16 : GGML_TYPE_F32);
    size_t n = (size_t)ne0 * (ne1 ? ne1 : 1);
    float *got = malloc(n * sizeof *got);
    CHECK(gguf_tensor_to_f32(t, got) == 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float tol = t->type == GGML_TYPE_F16 ? fabsf(want[i]) * (1.0f / 1024) + 1e-7f : 0.0f;
        if (!(fabsf(got[i] - want[i]) <= tol)) bad++;
    }
    CHECKF(bad == 0, "%s: %zu of %zu values differ", name, bad, n);
    free(got);
}

static void check_gguf_model(const gguf_file_t *f, const gpt2_t *m, int flags)
{
    int f16 = flags & GGUF_F16, out = !!(flags & GGUF_OUTPUT_COPY);
    const gpt2_config_t *c = &m->config;
    uint64_t C = (uint64_t)c->channels, V = (uint64_t)c->vocab_size;
    const gpt2_params_t *p = &m->params;
    CHECK_EQ_INT(f->n_tensors, 4 + 12 * c->num_layers + out);
    check_tensor(f, "token_embd.weight", C, V, p->wte, f16);
    check_tensor(f, "position_embd.weight", C, (uint64_t)c->max_seq_len, p->wpe, f16);
    check_tensor(f, "output_norm.weight", C, 0, p->lnfw, f16);
    check_tensor(f, "output_norm.bias", C, 0, p->lnfb, f16);
    if (out) check_tensor(f, "output.weight", C, V, p->wte, f16);
    else CHECK(gguf_find_tensor(f, "output.weight") == NULL);
    for (int l = 0; l < c->num_layers; l++) {
        char n[64];
        size_t lc = (size_t)l * C;
#define T(suffix, ne0, ne1, ptr) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), check_tensor(f, n, ne0, ne1, ptr, f16))
        T("attn_norm.weight", C, 0, p->ln1w + lc);
        T("attn_norm.bias", C, 0, p->ln1b + lc);
        T("attn_qkv.weight", C, 3 * C, p->qkvw + lc * 3 * C);
        T("attn_qkv.bias", 3 * C, 0, p->qkvb + lc * 3);
        T("attn_output.weight", C, C, p->attprojw + lc * C);
        T("attn_output.bias", C, 0, p->attprojb + lc);
        T("ffn_norm.weight", C, 0, p->ln2w + lc);
        T("ffn_norm.bias", C, 0, p->ln2b + lc);
        T("ffn_up.weight", C, 4 * C, p->fcw + lc * 4 * C);
        T("ffn_up.bias", 4 * C, 0, p->fcb + lc * 4);
        T("ffn_down.weight", 4 * C, C, p->fcprojw + lc * 4 * C);
        T("ffn_down.bias", C, 0, p->fcprojb + lc);
#undef T
    }
    CHECK_EQ_STR(kv_s(f, "general.architecture"), "gpt2");
    CHECK_EQ_INT(kv_u(f, "general.alignment"), 32);
    CHECK_EQ_INT(kv_u(f, "general.file_type"), f16 ? 1 : 0);
    CHECK_EQ_INT(kv_u(f, "gpt2.context_length"), c->max_seq_len);
    CHECK_EQ_INT(kv_u(f, "gpt2.embedding_length"), C);
    CHECK_EQ_INT(kv_u(f, "gpt2.feed_forward_length"), 4 * C);
    CHECK_EQ_INT(kv_u(f, "gpt2.block_count"), c->num_layers);
    CHECK_EQ_INT(kv_u(f, "gpt2.attention.head_count"), c->num_heads);
    const gguf_kv_t *eps = gguf_find_kv(f, "gpt2.attention.layer_norm_epsilon");
    CHECK(eps && eps->type == GGUF_F32 && fabs(eps->v.f - 1e-5) < 1e-10);
    CHECK_EQ_STR(kv_s(f, "tokenizer.ggml.model"), "gpt2");
    CHECK_EQ_INT(f->version, 3);
    CHECK(f->data_offset % 32 == 0);
}

static void test_gguf_export_roundtrip(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN], out[PATH_MAX + 32];
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(FIX "/hf_gpt2", "curie", data_dir, &o, err) == 0, "%s", err);
    for (int flags = 0; flags <= 3; flags++) {
        int f16 = flags & GGUF_F16;
        snprintf(out, sizeof out, "%s/curie-%d.gguf", data_dir, flags);
        CHECKF(models_export_gguf("curie", out, flags, err) == 0, "%s", err);
        gguf_file_t f;
        int rc = gguf_open(&f, out, err);
        CHECKF(rc == 0, "%s", err);
        if (rc) continue;
        gpt2_t m;
        CHECK(gpt2_load(&m, FIX "/hf_gpt2", err) == 0);
        check_gguf_model(&f, &m, flags);
        gpt2_free(&m);
        CHECK_EQ_STR(kv_s(&f, "general.name"), "curie");
        CHECK_EQ_INT(kv_u(&f, "general.file_type"), f16 ? 1 : 0);
        const gguf_kv_t *tk = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *ty = gguf_find_kv(&f, "tokenizer.ggml.token_type");
        const gguf_kv_t *mg = gguf_find_kv(&f, "tokenizer.ggml.merges");
        CHECK(tk && tk->type == GGUF_ARR && tk->arr_type == GGUF_STR && tk->n == 269);
        CHECK(ty && ty->arr_type == GGUF_I32 && ty->n == 269);
        CHECK(mg && mg->arr_type == GGUF_STR && mg->n == 12);
        if (tk && tk->n == 269 && ty && ty->n == 269 && mg && mg->n == 12) {
            CHECK_EQ_STR(tk->strs[268], "<|endoftext|>");
            CHECK_EQ_STR(tk->strs[32], "\xc4\xa0");          /* byte ' ' is "Ġ" in vocab.json */
            CHECK_EQ_STR(tk->strs[65], "A");
            CHECK_EQ_STR(tk->strs[258], "\xc4\xa0the");      /* the third merge */
            CHECK_EQ_STR(mg->strs[0], "\xc4\xa0 t");
            CHECK_EQ_STR(mg->strs[2], "\xc4\xa0t he");
            int32_t t268, t65;
            memcpy(&t268, (const char *)ty->data + 268 * 4, 4);
            memcpy(&t65, (const char *)ty->data + 65 * 4, 4);
            CHECK_EQ_INT(t268, GGUF_TOKEN_CONTROL);
            CHECK_EQ_INT(t65, GGUF_TOKEN_NORMAL);
        }
        CHECK_EQ_INT(kv_u(&f, "tokenizer.ggml.eos_token_id"), 268);
        CHECK_EQ_INT(kv_u(&f, "tokenizer.ggml.bos_token_id"), 268);
        gguf_close(&f);
    }
}

/* A model directory with no tokenizer files uses r50k: the export carries
 * GPT-2's 50257 tokens and 50000 merges. */
static void test_gguf_r50k(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN], dir[PATH_MAX + 32], out[PATH_MAX + 32];
    gpt2_config_t cfg = { .max_seq_len = 16, .vocab_size = 50257, .num_layers = 1, .num_heads = 1, .channels = 8 };
    gpt2_t m;
    CHECK(gpt2_create(&m, &cfg, err) == 0);
    gpt2_init_random(&m, 7);
    snprintf(dir, sizeof dir, "%s/models/tiny50k", data_dir);
    CHECKF(gpt2_save(&m, dir, err) == 0, "%s", err);
    snprintf(out, sizeof out, "%s/tiny.gguf", data_dir);
    int rc = models_export_gguf("tiny50k", out, 0, err);
    CHECKF(rc == 0, "%s", err);
    gguf_file_t f;
    if (!rc && gguf_open(&f, out, err) == 0) {
        check_gguf_model(&f, &m, 0);
        const gguf_kv_t *tk = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *mg = gguf_find_kv(&f, "tokenizer.ggml.merges");
        CHECK(tk && tk->n == 50257 && mg && mg->n == 50000);
        if (tk && tk->n == 50257) {
            CHECK_EQ_STR(tk->strs[50256], "<|endoftext|>");
            CHECK_EQ_STR(tk->strs[220], "\xc4\xa0");
            CHECK_EQ_STR(tk->strs[464], "The");
        }
        if (mg && mg->n == 50000) CHECK_EQ_STR(mg->strs[0], "\xc4\xa0 t");
        CHECK_EQ_INT(kv_u(&f, "tokenizer.ggml.eos_token_id"), 50256);
        gguf_close(&f);
    } else {
        CHECKF(0, "%s", err);
    }
    gpt2_free(&m);
}

static void test_gguf_reader_rejects(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN], out[PATH_MAX + 32];
    models_import_opts_t o = {0, 0};
    CHECK(models_import(FIX "/hf_gpt2", "ada", data_dir, &o, err) == 0);
    snprintf(out, sizeof out, "%s/ada.gguf", data_dir);
    CHECKF(models_export_gguf("ada", out, 0, err) == 0, "%s", err);
    struct stat st;
    CHECK(stat(out, &st) == 0);
    gguf_file_t f;
    CHECK(truncate(out, st.st_size - 100) == 0);
    CHECK(gguf_open(&f, out, err) < 0);
    CHECKF(strstr(err, "past the end") != NULL, "%s", err);
    CHECK(truncate(out, 5000) == 0);          /* inside the metadata */
    CHECK(gguf_open(&f, out, err) < 0);
    CHECKF(strstr(err, "truncated") != NULL, "%s", err);
    CHECK(fs_write_atomic(out, "GGML not a gguf file at all.....", 32, err) == 0);
    CHECK(gguf_open(&f, out, err) < 0);
    CHECKF(strstr(err, "not a GGUF file") != NULL, "%s", err);
}

/* The reader against damaged files: bytes of the header flipped and
 * lengths cut at random (a fixed seed), each open must fail cleanly or
 * succeed, never read out of bounds (make asan runs this under ASan). */
static void test_gguf_reader_mutations(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN], out[PATH_MAX + 32], bad[PATH_MAX + 32];
    models_import_opts_t o = {0, 0};
    CHECK(models_import(FIX "/hf_gpt2", "davinci", data_dir, &o, err) == 0);
    snprintf(out, sizeof out, "%s/d.gguf", data_dir);
    snprintf(bad, sizeof bad, "%s/bad.gguf", data_dir);
    CHECKF(models_export_gguf("davinci", out, 0, err) == 0, "%s", err);
    char *img;
    size_t len;
    if (fs_read_all(out, &img, &len, err)) { CHECKF(0, "%s", err); return; }
    gguf_file_t f;
    CHECK(gguf_open(&f, out, err) == 0);
    size_t header = f.data_offset;
    gguf_close(&f);
    char *mut = malloc(len);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int opened = 0, refused = 0, silent = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(mut, img, len);
        size_t n = len;
        for (int k = 0; k < 1 + it % 4; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            size_t at = (size_t)(x % header);
            mut[at] = (char)(x >> 32);
        }
        if (it % 5 == 0) n = (size_t)(x >> 20) % len;
        FILE *fp = fopen(bad, "wb");   /* no fsync: 400 of them would dominate the test */
        if (!fp || fwrite(mut, 1, n, fp) != n || fclose(fp)) break;
        err[0] = 0;
        if (gguf_open(&f, bad, err) == 0) { opened++; gguf_close(&f); }
        else if (err[0]) refused++;
        else silent++;
    }
    CHECKF(silent == 0, "%d failures without an error message", silent);
    CHECK(refused > 0);
    CHECK_EQ_INT(opened + refused + silent, 400);
    free(mut);
    free(img);
}

static void test_f16_values(void)
{
    CHECK_EQ_INT(gguf_f16_to_f32(0x3c00) == 1.0f, 1);
    CHECK_EQ_INT(gguf_f16_to_f32(0xc000) == -2.0f, 1);
    CHECK_EQ_INT(gguf_f16_to_f32(0x0001) == 5.9604644775390625e-08f, 1);   /* smallest subnormal */
    CHECK_EQ_INT(gguf_f16_to_f32(0x7bff) == 65504.0f, 1);
    CHECK(isinf(gguf_f16_to_f32(0x7c00)));
}

static void test_export_safetensors(void)
{
    fresh_data_dir();
    char err[CORE_ERR_LEN], out[PATH_MAX + 32], p[PATH_MAX + 64];
    models_import_opts_t o = {0, 0};
    CHECK(models_import(FIX "/hf_gpt2_f16", "babbage", data_dir, &o, err) == 0);
    snprintf(out, sizeof out, "%s/exported", data_dir);
    CHECKF(models_export_safetensors("babbage", out, err) == 0, "%s", err);
    gpt2_t a, b;
    CHECK(gpt2_load(&a, FIX "/hf_gpt2_f16", err) == 0);
    CHECKF(gpt2_load(&b, out, err) == 0, "%s", err);
    CHECK(a.num_parameters == b.num_parameters &&
          memcmp(a.params_memory, b.params_memory, a.num_parameters * sizeof(float)) == 0);
    gpt2_free(&a);
    gpt2_free(&b);
    snprintf(p, sizeof p, "%s/tokenizer.json", out);
    CHECK(fs_exists(p));
    snprintf(p, sizeof p, "%s/tunery.json", out);
    CHECK(!fs_exists(p));
}

int main(void)
{
    setenv("TUNERY_SHARE", "data", 0);   /* r50k for a model without tokenizer files (tests/run.sh sets it too) */
    RUN(test_import_parity_f32);
    RUN(test_import_parity_f16_keeps_dtype);
    RUN(test_import_force);
    RUN(test_import_bad_dirs);
    RUN(test_gguf_export_roundtrip);
    RUN(test_gguf_r50k);
    RUN(test_gguf_reader_rejects);
    RUN(test_gguf_reader_mutations);
    RUN(test_f16_values);
    RUN(test_export_safetensors);
    char err[CORE_ERR_LEN];
    if (data_dir[0]) fs_rm_rf(data_dir, err);
    return test_summary();
}
