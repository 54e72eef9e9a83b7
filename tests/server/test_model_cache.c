/* test_model_cache.c: the completions' model cache. A model is loaded once
 * (mapped from its .tunery-infer.f32 image, which sits complete beside the
 * weights), later requests hit; `tunery models import --force NAME`
 * replaces the weights and the next request loads the new ones, while a
 * request still holding the old model keeps it valid until it puts it back;
 * requests racing for one new model load it once; models whose tokenizer
 * files have the same bytes share one parsed tokenizer. Run under ASan (make asan)
 * this also checks that the replaced model is freed exactly once. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "test.h"
#include "server_fixture.h"
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256];
static struct server srv;
static char dir[4096];

/* Write the names of dir's entries to out, one a line. */
static void dir_list(const char *dir, FILE *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) fprintf(out, "%s\n", e->d_name);
    if (d) closedir(d);
}

static void import(const char *shipped, int force)
{
    char err[CORE_ERR_LEN], src[4096];
    snprintf(src, sizeof src, "%s/models/%s", core_share_dir(), shipped);
    models_import_opts_t o = {force, 0};
    CHECKF(models_import(src, "swap", tmp, &o, err) == 0, "%s", err);
}

/* The weights as a checksum: differs between the shipped models. */
static double checksum(const gpt2_t *m)
{
    double s = 0;
    for (size_t i = 0; i < m->num_parameters; i += 97) s += m->params_memory[i] * (double)(i % 13 + 1);
    return s;
}

static void test_load_hit_and_image(void)
{
    char err[CORE_ERR_LEN], path[4200];
    int hit = -1;
    model_ref_t *a = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECKF(a != NULL, "%s", err);
    if (!a) return;
    CHECK_EQ_INT(hit, 0);
    CHECK_EQ_INT((int)model_cache_loads(&srv), 1);
    model_ref_t *b = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECK(b == a);
    CHECK_EQ_INT(hit, 1);
    CHECK_EQ_INT((int)model_cache_loads(&srv), 1);
    /* the converted image is beside the weights, whole (header page + fp32
     * weights + on AVX-512 the packed matrices from a 16-float boundary), no temp file left */
    struct stat st;
    snprintf(path, sizeof path, "%s/.tunery-infer.f32", dir);
    CHECKF(stat(path, &st) == 0, "no image at %s", path);
    const gpt2_config_t *c = &a->model.config;
    long long C = c->channels, L = c->num_layers, np = (long long)a->model.num_parameters;
    long long packed = (long long)mm_packed_floats(c->padded_vocab_size, (int)C) +
                       L * (long long)(mm_packed_floats(3 * (int)C, (int)C) + mm_packed_floats((int)C, (int)C) +
                                       mm_packed_floats(4 * (int)C, (int)C) + mm_packed_floats((int)C, 4 * (int)C));
    CHECK_EQ_INT((long long)st.st_size, 4096 + (packed ? (np + 15) / 16 * 16 + packed : np) * 4);
    CHECK((packed > 0) == (a->model.packed.qkvw != NULL));
    snprintf(path, sizeof path, "%s/.tunery-infer.f32.tmp.%d", dir, (int)getpid());
    CHECK(access(path, F_OK) != 0);
    model_cache_put(&srv, b);
    model_cache_put(&srv, a);
}

/* A writer killed mid-write leaves DIR/.tunery-infer.f32.tmp.<pid>, as big
 * as the model: the next load that writes the image removes the temp files
 * of dead pids and keeps a live writer's. */
static void test_stale_temp_removed(void)
{
    char err[CORE_ERR_LEN], src[4096], d[4096], dead[4200], live[4200], other[4200];
    snprintf(src, sizeof src, "%s/models/ada", core_share_dir());
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(src, "crashed", tmp, &o, err) == 0, "%s", err);
    snprintf(d, sizeof d, "%s/models/crashed", tmp);
    pid_t gone = fork();   /* a pid that is certainly dead: a child reaped */
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    pid_t alive = fork();  /* a live writer */
    if (alive == 0) { pause(); _exit(0); }
    snprintf(dead, sizeof dead, "%s/.tunery-infer.f32.tmp.%d", d, (int)gone);
    snprintf(live, sizeof live, "%s/.tunery-infer.f32.tmp.%d", d, (int)alive);
    snprintf(other, sizeof other, "%s/notes.tmp.%d", d, (int)gone);   /* not an image temp: not ours to remove */
    CHECK(fs_write_atomic(dead, "half", 4, err) == 0);
    CHECK(fs_write_atomic(live, "busy", 4, err) == 0);
    CHECK(fs_write_atomic(other, "keep", 4, err) == 0);
    gpt2_t m;
    CHECKF(gpt2_load_mapped(&m, d, err) == 0, "%s", err);
    CHECKF(access(dead, F_OK) != 0, "%s was left", dead);
    CHECKF(access(live, F_OK) == 0, "%s was removed", live);
    CHECK(access(other, F_OK) == 0);
    gpt2_unload_mapped(&m);
    kill(alive, SIGKILL);
    waitpid(alive, NULL, 0);
}

static void test_force_import_reloads(void)
{
    char err[CORE_ERR_LEN];
    int hit = -1;
    model_ref_t *old = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECKF(old != NULL, "%s", err);
    if (!old) return;
    CHECK_EQ_INT(hit, 1);
    double before = checksum(&old->model);
    int old_c = old->model.config.channels;
    long loads = model_cache_loads(&srv);

    import("babbage", 1);   /* a server keeps running; the name now means other weights */
    model_ref_t *neu = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECKF(neu != NULL, "%s", err);
    if (!neu) { model_cache_put(&srv, old); return; }
    CHECK_EQ_INT(hit, 0);
    CHECK_EQ_INT((int)model_cache_loads(&srv), (int)loads + 1);
    CHECK(neu != old);
    CHECK(checksum(&neu->model) != before);
    /* the request that still holds the old weights reads them intact */
    CHECK_EQ_INT(old->model.config.channels, old_c);
    CHECK(checksum(&old->model) == before);
    model_cache_put(&srv, old);   /* frees it: it is no longer in the cache */
    model_ref_t *again = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECK(again == neu);
    CHECK_EQ_INT(hit, 1);
    if (again) model_cache_put(&srv, again);
    model_cache_put(&srv, neu);

    /* and back, while nobody holds it: the idle entry is replaced */
    import("ada", 1);
    model_ref_t *back = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECKF(back != NULL, "%s", err);
    CHECK_EQ_INT(hit, 0);
    if (back) {
        CHECK(checksum(&back->model) == before);
        model_cache_put(&srv, back);
    }
}

static void *racer(void *arg)
{
    char err[CORE_ERR_LEN];
    int hit;
    model_ref_t *r = model_cache_get(&srv, "swap", dir, &hit, err);
    if (r) model_cache_put(&srv, r);
    *(int *)arg = r != NULL;
    return NULL;
}

static void test_racing_requests_load_once(void)
{
    import("curie", 1);
    long loads = model_cache_loads(&srv);
    pthread_t t[4];
    int ok[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, racer, &ok[i]);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(ok[i]);
    CHECK_EQ_INT((int)model_cache_loads(&srv), (int)loads + 1);
}

static void test_shared_tokenizer(void)
{
    char err[CORE_ERR_LEN], other[4096], src[4096];
    int hit;
    snprintf(src, sizeof src, "%s/models/davinci", core_share_dir());
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(src, "other", tmp, &o, err) == 0, "%s", err);
    snprintf(other, sizeof other, "%s/models/other", tmp);
    model_ref_t *a = model_cache_get(&srv, "swap", dir, &hit, err);
    model_ref_t *b = model_cache_get(&srv, "other", other, &hit, err);
    CHECK(a && b && a != b);
    if (!a || !b) return;
    CHECK(a->tok == b->tok);   /* the same tokenizer.json bytes, parsed once */
    model_cache_put(&srv, b);
    completions_cache_evict(&srv, "other");
    import("babbage", 1);      /* new weights, same tokenizer bytes: the parsed one is reused */
    model_ref_t *c = model_cache_get(&srv, "swap", dir, &hit, err);
    CHECK(c && c != a && c->tok == a->tok);
    model_cache_put(&srv, a);  /* the last user of the replaced model: freed, the tokenizer stays */
    if (c) {
        tok_ids_t ids = {0};
        CHECK(tok_encode(c->tok, "In the beginning", 16, 0, &ids) == 0);
        CHECK(ids.len > 0);
        tok_ids_free(&ids);
        tok_t *t = c->tok;
        model_cache_put(&srv, c);
        /* evicted while idle, asked for again: the tokenizer was kept */
        completions_cache_evict(&srv, "swap");
        model_ref_t *d = model_cache_get(&srv, "swap", dir, &hit, err);
        CHECK(d != NULL);
        CHECK_EQ_INT(hit, 0);
        if (d) {
            CHECK(d->tok == t);
            model_cache_put(&srv, d);
        }
    }
}

/* A model directory where the image cannot be written (read-only for a
 * non-root user; here its temp name is taken by a directory, which stops
 * root too): the image goes under DATA/cache/ and the model still loads. */
static void test_unwritable_dir(void)
{
    char err[CORE_ERR_LEN], src[4096], ro[4096], block[4200], cache[4200];
    int hit;
    snprintf(src, sizeof src, "%s/models/ada", core_share_dir());
    models_import_opts_t o = {0, 0};
    CHECKF(models_import(src, "ro", tmp, &o, err) == 0, "%s", err);
    snprintf(ro, sizeof ro, "%s/models/ro", tmp);
    snprintf(block, sizeof block, "%s/.tunery-infer.f32.tmp.%d", ro, (int)getpid());
    CHECK(mkdir(block, 0755) == 0);
    snprintf(cache, sizeof cache, "%s/cache", tmp);
    fs_rm_rf(cache, err);
    model_ref_t *r = model_cache_get(&srv, "ro", ro, &hit, err);
    CHECKF(r != NULL, "%s", err);
    if (!r) return;
    CHECK_EQ_INT(hit, 0);
    snprintf(block, sizeof block, "%s/.tunery-infer.f32", ro);
    CHECK(access(block, F_OK) != 0);   /* nothing half-written beside the weights */
    char *names = NULL;
    size_t n = 0;
    FILE *ls = open_memstream(&names, &n);
    dir_list(cache, ls);
    fclose(ls);
    CHECKF(names && strstr(names, ".f32") && !strstr(names, ".tmp."), "DATA/cache holds: %s", names ? names : "");
    free(names);
    model_cache_put(&srv, r);
}

static void test_missing_weights(void)
{
    char err[CORE_ERR_LEN], path[4200];
    int hit;
    snprintf(path, sizeof path, "%s/models/gone", tmp);
    CHECK(fs_mkdir_p(path, 0755, err) == 0);
    CHECK(model_cache_get(&srv, "gone", path, &hit, err) == NULL);
    CHECKF(strstr(err, "model.safetensors") || strstr(err, "config.json"), "%s", err);
}

int main(void)
{
    fixture_data_dir(tmp, sizeof tmp, "model-cache", &srv);
    srv.opts.model_cache_bytes = (size_t)1 << 30;
    snprintf(dir, sizeof dir, "%s/models/swap", tmp);
    import("ada", 0);
    RUN(test_load_hit_and_image);
    RUN(test_force_import_reloads);
    RUN(test_racing_requests_load_once);
    RUN(test_shared_tokenizer);
    RUN(test_unwritable_dir);
    RUN(test_stale_temp_removed);
    RUN(test_missing_weights);
    completions_cache_free(&srv);
    char err[CORE_ERR_LEN];
    fs_rm_rf(tmp, err);
    return test_summary();
}
