/* cmd_models.c: `tunery models list | import | export`, the way users plug
 * their own GPT-2 weights in (a Hugging Face directory becomes a model name
 * that fine-tunes, completions and `models list` all resolve through
 * core_model_dir) and take a model out to where they run local models (GGUF
 * for llama.cpp, or the Hugging Face directory).
 *
 * Import checks the whole directory before touching the data directory and
 * says the first thing wrong in one sentence; then it copies the files into a
 * temporary directory beside the destination, fsyncs each, and renames it
 * into place (an existing model is swapped out in the same rename with
 * --force), so a crash leaves the old model or the new one, never half of one.
 * Weights are copied as they are (fp16 and bf16 stay fp16 and bf16: half the
 * disk, and gpt2_load converts them to fp32 on load, exactly).
 *
 * Like cmd_generate.c this is a front-end, so it may use tok/ (the engine
 * does not): the tokenizer is loaded to check it and to export it.
 */
#include "cmds.h"
#include "nn/nn.h"
#include "tok/tok.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const base_names[] = {"ada", "babbage", "curie", "davinci", NULL};
/* the files of a Hugging Face GPT-2 directory that import and export carry */
static const char *const hf_files[] = {"config.json", "model.safetensors", "tokenizer.json", "vocab.json",
                                       "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                                       "generation_config.json", "README.md", NULL};

static int path_join(char *out, const char *a, const char *b)
{
    return snprintf(out, PATH_MAX, "%s/%s", a, b) >= PATH_MAX ? -1 : 0;
}

static int is_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return path_join(p, dir, name) == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---------------------------------------------------------------------- */
/* Checking a directory */

static int check_config(const char *dir, char *err)
{
    char path[PATH_MAX];
    path_join(path, dir, "config.json");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return core_errf(err, "%s is not valid JSON: %s (line %d)", path, je.text, je.line);
    int rc = 0;
    json_t *mt = json_object_get(root, "model_type"), *arch = json_object_get(root, "architectures");
    json_t *act = json_object_get(root, "activation_function");
    if (!json_is_string(mt)) {
        rc = core_errf(err, "%s has no model_type; only GPT-2 directories (model_type \"gpt2\") can be imported", path);
    } else if (strcmp(json_string_value(mt), "gpt2")) {
        rc = core_errf(err, "%s: model_type is \"%s\"; only GPT-2 (model_type \"gpt2\") can be imported", path,
                       json_string_value(mt));
    } else if (arch && !json_is_array(arch)) {
        rc = core_errf(err, "%s: architectures must be a list", path);
    } else if (json_is_string(act) && strcmp(json_string_value(act), "gelu_new") &&
               strcmp(json_string_value(act), "gelu_pytorch_tanh")) {
        rc = core_errf(err, "%s: activation_function \"%s\" is not supported (GPT-2 uses gelu_new)", path,
                       json_string_value(act));
    } else if (json_is_true(json_object_get(root, "scale_attn_by_inverse_layer_idx")) ||
               json_is_false(json_object_get(root, "scale_attn_weights")) ||
               json_is_true(json_object_get(root, "add_cross_attention"))) {
        rc = core_errf(err, "%s: scale_attn_by_inverse_layer_idx, scale_attn_weights false or add_cross_attention "
                       "change GPT-2's attention; only the standard GPT-2 attention is supported", path);
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(arch, i, a) {
            const char *s = json_string_value(a);
            if (!s || (strcmp(s, "GPT2LMHeadModel") && strcmp(s, "GPT2Model"))) {
                rc = core_errf(err, "%s: architecture \"%s\" is unknown; GPT2LMHeadModel or GPT2Model expected", path,
                               s ? s : "(not a string)");
                break;
            }
        }
        json_t *nh = json_object_get(root, "n_head"), *ne = json_object_get(root, "n_embd");
        if (!rc && json_is_integer(nh) && json_is_integer(ne) && json_integer_value(nh) > 0 &&
            json_integer_value(ne) % json_integer_value(nh))
            rc = core_errf(err, "%s: n_embd %lld is not a multiple of n_head %lld", path,
                           (long long)json_integer_value(ne), (long long)json_integer_value(nh));
    }
    json_decref(root);
    return rc;
}

/* A tied head is the only kind the engine has: refuse an lm_head.weight
 * that differs from wte rather than silently drop it. */
static int check_lm_head(const char *dir, const gpt2_t *m, char *err)
{
    char path[PATH_MAX];
    path_join(path, dir, "model.safetensors");
    st_file_t f;
    if (st_file_open(&f, path, err)) return -1;
    const st_tensor_t *t = st_tensor_find(&f, "lm_head.weight");
    int rc = 0;
    if (t) {
        size_t n = (size_t)m->config.vocab_size * m->config.channels;
        float *w = t->nelem == n ? malloc(n * sizeof *w) : NULL;
        if (t->nelem != n) rc = core_errf(err, "%s: lm_head.weight has %zu elements, expected %zu (vocab_size x n_embd)",
                                         path, t->nelem, n);
        else if (!w || st_tensor_to_f32(t, w)) rc = core_errf(err, "%s: cannot read lm_head.weight", path);
        else if (memcmp(w, m->params.wte, n * sizeof *w))
            rc = core_errf(err, "%s: lm_head.weight differs from wte.weight; only GPT-2 with tied embeddings is supported", path);
        free(w);
    }
    st_file_close(&f);
    return rc;
}

static int check_tokenizer(const char *dir, int vocab_size, char *err)
{
    int has_json = is_file(dir, "tokenizer.json"), has_v = is_file(dir, "vocab.json"), has_m = is_file(dir, "merges.txt");
    if (!has_json && has_v != has_m)
        return core_errf(err, "%s has %s but no %s: a GPT-2 tokenizer needs both (or a tokenizer.json)", dir,
                         has_v ? "vocab.json" : "merges.txt", has_v ? "merges.txt" : "vocab.json");
    if (!has_json && !has_v)
        return core_errf(err, "%s has no tokenizer: expected tokenizer.json, or vocab.json + merges.txt", dir);
    tok_t *t;
    if (tok_load_dir(&t, dir, err)) return -1;
    int n = tok_vocab_size(t);
    tok_free(t);
    if (n != vocab_size)
        return core_errf(err, "%s: the tokenizer has %d tokens but config.json says vocab_size %d; they must match", dir, n,
                         vocab_size);
    return 0;
}

int models_check_dir(const char *dir, gpt2_config_t *cfg, char *err)
{
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return core_errf(err, "%s is not a directory", dir);
    if (!is_file(dir, "config.json"))
        return core_errf(err, "%s has no config.json: not a Hugging Face model directory (expected config.json, "
                         "model.safetensors, and tokenizer.json or vocab.json + merges.txt)", dir);
    if (check_config(dir, err)) return -1;
    if (!is_file(dir, "model.safetensors")) {
        if (is_file(dir, "model.safetensors.index.json"))
            return core_errf(err, "%s holds a sharded checkpoint (model.safetensors.index.json); save it as one "
                             "model.safetensors (save_pretrained(dir, max_shard_size=\"100GB\"))", dir);
        if (is_file(dir, "pytorch_model.bin"))
            return core_errf(err, "%s has pytorch_model.bin but no model.safetensors; convert it with "
                             "model.save_pretrained(dir, safe_serialization=True)", dir);
        return core_errf(err, "%s has no model.safetensors", dir);
    }
    gpt2_t m;
    if (gpt2_load(&m, dir, err)) return -1;
    int rc = check_lm_head(dir, &m, err);
    if (!rc) *cfg = m.config;
    gpt2_free(&m);
    return rc ? rc : check_tokenizer(dir, cfg->vocab_size, err);
}

/* ---------------------------------------------------------------------- */
/* Copying */

static int copy_file(const char *src, const char *dst, char *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    char *buf = malloc(1 << 20);
    if (in < 0) { core_errf(err, "cannot open %s: %s", src, strerror(errno)); goto out; }
    if (!buf) { core_errf(err, "out of memory copying %s", src); goto out; }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) { core_errf(err, "cannot create %s: %s", dst, strerror(errno)); goto out; }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { core_errf(err, "cannot read %s: %s", src, strerror(errno)); goto out; }
        if (n == 0) break;
        if (fs_write_full(out, buf, (size_t)n)) { core_errf(err, "cannot write %s: %s", dst, strerror(errno)); goto out; }
    }
    if (fsync(out)) { core_errf(err, "cannot sync %s: %s", dst, strerror(errno)); goto out; }
    rc = 0;
out:
    if (in >= 0) close(in);
    if (out >= 0 && close(out) && !rc) rc = core_errf(err, "cannot write %s: %s", dst, strerror(errno));
    free(buf);
    return rc;
}

static int copy_hf_files(const char *src, const char *dst, char *err)
{
    for (int i = 0; hf_files[i]; i++) {
        if (!is_file(src, hf_files[i])) continue;
        char a[PATH_MAX], b[PATH_MAX];
        if (path_join(a, src, hf_files[i]) || path_join(b, dst, hf_files[i])) return core_errf(err, "path too long");
        if (copy_file(a, b, err)) return -1;
    }
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') &&
            !strchr("._-", s[i]))
            return 0;
    return 1;
}

static int write_meta(const char *dir, const char *src, double lr, char *err)
{
    char abs[PATH_MAX], path[PATH_MAX], when[32];
    if (!realpath(src, abs)) snprintf(abs, sizeof abs, "%s", src);
    time_t now = (time_t)time_unix();
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *j = json_pack("{s:s,s:s,s:I,s:f}", "source", abs, "imported_at", when, "created", (json_int_t)now,
                          "pretrain_learning_rate", lr);
    path_join(path, dir, "tunery.json");
    int rc = fs_write_json(path, j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10), err);
    json_decref(j);
    return rc;
}

int models_import(const char *dir, const char *name, const char *data_dir, const models_import_opts_t *opts,
                  char *err)
{
    if (!valid_name(name))
        return core_errf(err, "invalid model name '%s': use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
                         name);
    gpt2_config_t cfg;
    if (models_check_dir(dir, &cfg, err)) return -1;
    char models[PATH_MAX], dest[PATH_MAX], tmp[PATH_MAX];
    snprintf(models, sizeof models, "%s/models", data_dir);
    if (path_join(dest, models, name)) return core_errf(err, "path too long");
    if (fs_exists(dest) && !opts->force)
        return core_errf(err, "%s already exists; pass --force to replace it", dest);
    if (fs_mkdir_p(models, 0755, err)) return -1;
    snprintf(tmp, sizeof tmp, "%s/.import-%s-%d", models, name, (int)getpid());
    fs_rm_rf(tmp, err);
    if (mkdir(tmp, 0755)) return core_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    double lr = opts->pretrain_lr > 0 ? opts->pretrain_lr : 6e-4;
    if (copy_hf_files(dir, tmp, err) || write_meta(tmp, dir, lr, err)) goto fail;
    char probe[PATH_MAX];
    path_join(probe, tmp, "config.json");
    if (fs_fsync_dir_of(probe, err)) goto fail;
    if (fs_exists(dest)) {
        /* one atomic swap: the old model moves to tmp and is removed after */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE)) {
            core_errf(err, "cannot replace %s: %s", dest, strerror(errno));
            goto fail;
        }
    } else if (rename(tmp, dest)) {
        core_errf(err, "cannot rename %s to %s: %s", tmp, dest, strerror(errno));
        goto fail;
    }
    char e2[CORE_ERR_LEN];
    fs_rm_rf(tmp, e2);
    return fs_fsync_dir_of(dest, err);
fail:;
    char e3[CORE_ERR_LEN];
    fs_rm_rf(tmp, e3);
    return -1;
}

/* ---------------------------------------------------------------------- */
/* Export */

int models_export_safetensors(const char *name, const char *out_dir, char *err)
{
    char dir[PATH_MAX];
    if (core_model_dir(name, dir, err) || fs_mkdir_p(out_dir, 0755, err)) return -1;
    if (!is_file(dir, "model.safetensors")) return core_errf(err, "%s has no model.safetensors", dir);
    if (copy_hf_files(dir, out_dir, err)) return -1;
    /* a model without tokenizer files uses r50k: write it, so transformers loads the copy */
    if (!is_file(dir, "tokenizer.json") && !is_file(dir, "vocab.json")) {
        const tok_t *t = tok_r50k(err);
        if (!t || tok_save_dir(t, out_dir, err)) return -1;
    }
    char probe[PATH_MAX];
    path_join(probe, out_dir, "config.json");
    return fs_fsync_dir_of(probe, err);
}

/* The tokenizer as GGUF wants it: vocab.json's strings by id and merges.txt's
 * lines, both taken from what tok_save_dir writes (the byte-to-unicode form). */
typedef struct {
    char **tokens;
    int32_t *types;
    int n_tokens;
    char **merges;
    int n_merges;
    char *merges_text;
} export_vocab_t;

static void export_vocab_free(export_vocab_t *v)
{
    if (v->tokens) for (int i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->merges_text);
}

static int export_vocab(const char *model_dir, int V, export_vocab_t *v, int *eot, char *err)
{
    memset(v, 0, sizeof *v);
    tok_t *t;
    if (tok_load_dir(&t, model_dir, err)) return -1;
    *eot = tok_eot(t);
    const char *td = getenv("TMPDIR");
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/tunery-export-XXXXXX", td && *td ? td : "/tmp");
    int rc = -1;
    json_t *vocab = NULL;
    if (!mkdtemp(tmp)) { tok_free(t); return core_errf(err, "cannot create a temporary directory: %s", strerror(errno)); }
    if (tok_save_dir(t, tmp, err)) goto out;
    path_join(path, tmp, "vocab.json");
    json_error_t je;
    if (!(vocab = json_load_file(path, 0, &je))) { core_errf(err, "cannot read back %s: %s", path, je.text); goto out; }
    v->n_tokens = V;
    v->tokens = calloc((size_t)V, sizeof *v->tokens);
    v->types = calloc((size_t)V, sizeof *v->types);
    if (!v->tokens || !v->types) { core_errf(err, "out of memory"); goto out; }
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= V || v->tokens[id]) continue;
        if (!(v->tokens[id] = strdup(key))) { core_errf(err, "out of memory"); goto out; }
        size_t n = strlen(key);
        v->types[id] = (id == *eot || (n > 4 && !strncmp(key, "<|", 2) && !strcmp(key + n - 2, "|>")))
                           ? GGUF_TOKEN_CONTROL : GGUF_TOKEN_NORMAL;
    }
    for (int i = 0; i < V; i++)   /* ids the tokenizer never produces */
        if (!v->tokens[i]) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            if (!(v->tokens[i] = strdup(pad))) { core_errf(err, "out of memory"); goto out; }
            v->types[i] = GGUF_TOKEN_UNUSED;
        }
    path_join(path, tmp, "merges.txt");
    size_t len;
    if (fs_read_all(path, &v->merges_text, &len, err)) goto out;
    int cap = 1;
    for (size_t i = 0; i < len; i++) cap += v->merges_text[i] == '\n';
    if (!(v->merges = calloc((size_t)cap, sizeof *v->merges))) { core_errf(err, "out of memory"); goto out; }
    for (char *line = v->merges_text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        if ((nl = strchr(line, '\n'))) *nl = 0;
        if (*line && strncmp(line, "#version", 8)) v->merges[v->n_merges++] = line;
    }
    rc = 0;
out:
    json_decref(vocab);
    tok_free(t);
    char e2[CORE_ERR_LEN];
    fs_rm_rf(tmp, e2);
    if (rc) export_vocab_free(v);
    return rc;
}

int models_export_gguf(const char *name, const char *out_path, int flags, char *err)
{
    char dir[PATH_MAX];
    if (core_model_dir(name, dir, err)) return -1;
    gpt2_t m;
    if (gpt2_load(&m, dir, err)) return -1;
    export_vocab_t v;
    int eot, rc = export_vocab(dir, m.config.vocab_size, &v, &eot, err);
    if (!rc) {
        if (eot < 0) eot = m.config.vocab_size - 1;
        gguf_vocab_t gv = { v.n_tokens, (const char *const *)v.tokens, v.types, v.n_merges,
                            (const char *const *)v.merges, eot, eot };
        char base[PATH_MAX];
        snprintf(base, sizeof base, "%s", name);
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/') base[--n] = 0;
        const char *slash = strrchr(base, '/');
        rc = gguf_write_gpt2(&m, slash ? slash + 1 : base, &gv, flags, out_path, err);
        export_vocab_free(&v);
    }
    gpt2_free(&m);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* list */

typedef struct {
    long long params;
    int context, layers, embd, heads, vocab;
    long long created;
    const char *kind;           /* from tunery.json: imported, fine-tuned, pretrained, local */
} model_info_t;

static int model_info(const char *dir, model_info_t *mi)
{
    char path[PATH_MAX];
    memset(mi, 0, sizeof *mi);
    path_join(path, dir, "config.json");
    json_t *c = json_load_file(path, 0, NULL);
    if (!c) return -1;
    long long L = json_integer_value(json_object_get(c, "n_layer")), C = json_integer_value(json_object_get(c, "n_embd"));
    long long V = json_integer_value(json_object_get(c, "vocab_size")), T = json_integer_value(json_object_get(c, "n_positions"));
    if (!T) T = json_integer_value(json_object_get(c, "n_ctx"));
    mi->layers = (int)L; mi->embd = (int)C; mi->vocab = (int)V; mi->context = (int)T;
    mi->heads = (int)json_integer_value(json_object_get(c, "n_head"));
    mi->params = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C;
    json_decref(c);
    path_join(path, dir, "tunery.json");
    json_t *t = json_load_file(path, 0, NULL);
    /* who wrote the directory: models import (imported_at), tunery train
     * (base, created_at) or tunery pretrain (made_by) */
    json_t *cr = json_object_get(t, json_object_get(t, "created") ? "created" : "created_at");
    if (json_is_integer(cr)) mi->created = json_integer_value(cr);
    mi->kind = json_object_get(t, "imported_at") ? "imported" : json_object_get(t, "base") ? "fine-tuned"
               : json_object_get(t, "made_by") ? "pretrained" : "local";
    json_decref(t);
    struct stat st;
    if (!mi->created && stat(dir, &st) == 0) mi->created = (long long)st.st_mtime;
    return 0;
}

static void print_row(int json, const char *name, const char *source, const char *dir, const model_info_t *mi)
{
    if (json) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:i,s:i,s:i,s:i,s:i,s:I,s:s}", "name", name, "source", source,
                              "parameters", (json_int_t)mi->params, "context", mi->context, "layers", mi->layers,
                              "embd", mi->embd, "heads", mi->heads, "vocab", mi->vocab,
                              "created", (json_int_t)mi->created, "path", dir ? dir : "");
        char *s = json_dumps(j, JSON_COMPACT);
        if (s) puts(s);
        free(s);
        json_decref(j);
        return;
    }
    char params[32] = "-", ctx[16] = "-", when[32] = "-";
    if (dir) {
        if (mi->params >= 1000000) snprintf(params, sizeof params, "%.1fM", mi->params / 1e6);
        else snprintf(params, sizeof params, "%.1fK", mi->params / 1e3);
        snprintf(ctx, sizeof ctx, "%d", mi->context);
        if (mi->created) time_fmt_local(mi->created, when);
    }
    printf("%-24s %-10s %9s %7s  %-19s  %s\n", name, source, params, ctx, when, dir ? dir : "(not installed)");
}

static int models_list(int json)
{
    char models[PATH_MAX], share[PATH_MAX], err[CORE_ERR_LEN];
    snprintf(models, sizeof models, "%s/models/", core_data_dir());
    snprintf(share, sizeof share, "%s/models/", core_share_dir());
    if (!json) printf("%-24s %-10s %9s %7s  %-19s  %s\n", "NAME", "SOURCE", "PARAMS", "CONTEXT", "CREATED", "PATH");
    for (int i = 0; base_names[i]; i++) {
        char dir[PATH_MAX];
        model_info_t mi;
        if (core_model_dir(base_names[i], dir, err) || model_info(dir, &mi)) {
            memset(&mi, 0, sizeof mi);
            print_row(json, base_names[i], "missing", NULL, &mi);
            continue;
        }
        /* core_model_dir also takes ./NAME when it is a model directory */
        const char *src = !strncmp(dir, models, strlen(models)) ? mi.kind
                          : !strncmp(dir, share, strlen(share)) ? "built-in" : "directory";
        print_row(json, base_names[i], src, dir, &mi);
    }
    DIR *d = opendir(models);
    if (!d) return 0;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int is_base = 0;
        for (int i = 0; base_names[i]; i++) is_base |= !strcmp(e->d_name, base_names[i]);
        char dir[PATH_MAX];
        if (is_base || snprintf(dir, sizeof dir, "%s%s", models, e->d_name) >= (int)sizeof dir || !is_file(dir, "config.json"))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn) break;
        names = nn;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)   /* sorted, so the listing is stable */
        for (size_t j = i; j > 0 && names[j] && names[j - 1] && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j]; names[j] = names[j - 1]; names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        char dir[PATH_MAX];
        model_info_t mi;
        if (!names[i]) continue;
        snprintf(dir, sizeof dir, "%s%s", models, names[i]);
        if (model_info(dir, &mi) == 0) {
            print_row(json, names[i], strchr(names[i], ':') ? "fine-tuned" : mi.kind, dir, &mi);
        }
        free(names[i]);
    }
    free(names);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* the command */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tunery models list [--json] [--data DIR]\n"
        "       tunery models import DIR --name NAME [--force] [--pretrain-lr LR] [--data DIR]\n"
        "       tunery models export NAME|DIR --format gguf|safetensors --out PATH [--type f32|f16]\n"
        "                            [--output-tensor] [--data DIR]\n"
        "  list     the base names (ada babbage curie davinci) and where each resolves, then the imported\n"
        "           and fine-tuned models in DATA/models (name, parameters, context, created)\n"
        "  import   check a Hugging Face GPT-2 directory (config.json, model.safetensors, tokenizer.json or\n"
        "           vocab.json + merges.txt) and install it as DATA/models/NAME; NAME may be a base name\n"
        "           (after 'import DIR --name curie', curie means these weights everywhere)\n"
        "  export   write a model as a GGUF v3 file for llama.cpp (--format gguf) or as a Hugging Face\n"
        "           directory (--format safetensors)\n"
        "  --data DIR          the data directory (default $TUNERY_DATA or ./tunery-data)\n"
        "  --name NAME         the model name to install as (letters, digits, '.', '_', '-')\n"
        "  --force             replace an existing model of that name\n"
        "  --pretrain-lr LR    learning rate recorded in tunery.json for continued pretraining (default 6e-4)\n"
        "  --format F          gguf or safetensors\n"
        "  --out PATH          the GGUF file, or the directory for safetensors\n"
        "  --type T            GGUF tensor type for matrices: f32 (default) or f16 (alias --outtype)\n"
        "  --output-tensor     GGUF: also write output.weight (a copy of token_embd) for llama.cpp\n"
        "                      releases before late 2024, whose GPT-2 loader requires it\n"
        "  --json              list as JSON lines\n");
}

int cmd_models(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *pos = NULL, *name = NULL, *format = NULL, *out = NULL, *type = "f32";
    int json = 0, force = 0, output_copy = 0;
    double lr = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--force")) force = 1;
        else if (!strcmp(a, "--output-tensor")) output_copy = 1;
        else if (!strcmp(a, "--data") && more) setenv("TUNERY_DATA", argv[++i], 1);
        else if (!strcmp(a, "--name") && more) name = argv[++i];
        else if (!strcmp(a, "--format") && more) format = argv[++i];
        else if (!strcmp(a, "--out") && more) out = argv[++i];
        else if ((!strcmp(a, "--type") || !strcmp(a, "--outtype")) && more) type = argv[++i];
        else if (!strcmp(a, "--pretrain-lr") && more) {
            char *end;
            lr = strtod(argv[++i], &end);
            if (*end || !(lr > 0 && lr < 1)) { fprintf(stderr, "tunery models: --pretrain-lr must be a number in (0, 1)\n"); return 2; }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tunery models %s: unknown option %s%s (see tunery models --help)\n", sub, a,
                    more ? "" : " or a missing value");
            return 2;
        } else if (!pos) pos = a;
        else { fprintf(stderr, "tunery models %s: unexpected argument %s\n", sub, a); return 2; }
    }
    char err[CORE_ERR_LEN];
    if (!strcmp(sub, "list")) return models_list(json) ? 1 : 0;
    if (!strcmp(sub, "import")) {
        if (!pos || !name) { fprintf(stderr, "tunery models import: give a directory and --name NAME\n"); return 2; }
        models_import_opts_t o = { force, lr };
        if (models_import(pos, name, core_data_dir(), &o, err)) { fprintf(stderr, "tunery models import: %s\n", err); return 1; }
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/models/%s", core_data_dir(), name);
        model_info_t mi;
        model_info(dir, &mi);
        printf("imported %s as %s: %lld parameters, %d layers, %d heads, n_embd %d, context %d, vocab %d\n", pos, name,
               mi.params, mi.layers, mi.heads, mi.embd, mi.context, mi.vocab);
        return 0;
    }
    if (!strcmp(sub, "export")) {
        if (!pos || !format || !out) {
            fprintf(stderr, "tunery models export: give a model name, --format gguf|safetensors and --out PATH\n");
            return 2;
        }
        int f16 = !strcmp(type, "f16");
        if (!f16 && strcmp(type, "f32")) { fprintf(stderr, "tunery models export: --type must be f32 or f16\n"); return 2; }
        int rc;
        if (!strcmp(format, "gguf"))
            rc = models_export_gguf(pos, out, (f16 ? GGUF_F16 : 0) | (output_copy ? GGUF_OUTPUT_COPY : 0), err);
        else if (!strcmp(format, "safetensors")) rc = models_export_safetensors(pos, out, err);
        else { fprintf(stderr, "tunery models export: --format must be gguf or safetensors\n"); return 2; }
        if (rc) { fprintf(stderr, "tunery models export: %s\n", err); return 1; }
        printf("exported %s to %s (%s)\n", pos, out, format);
        return 0;
    }
    fprintf(stderr, "tunery models: unknown subcommand '%s' (list, import, export)\n", sub);
    return 2;
}
