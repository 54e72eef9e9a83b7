/* model_cache.c: loaded models for /v1/completions, shared by every
 * connection thread, bounded by memory (least recently used first out).
 * A completion against a cached model loads nothing; a model in use is never
 * evicted under its reader. Deleting a model evicts it.
 *
 * Models are loaded with gpt2_load_mapped (nn.h): the first load of a
 * directory converts model.safetensors once into a .tunery-infer.f32 image
 * (beside it, or under DATA/cache/ when the directory is read-only; written
 * to a temporary file and renamed, so never seen half-written), and every
 * later load, in this process or another, maps that image. Loads are made
 * one at a time, so two requests for the same new model convert it once.
 * Tokenizers are shared between models whose tokenizer files have the same
 * bytes, so a reload parses no tokenizer either.
 *
 * An entry is keyed by the model name, its directory and the identity of
 * its model.safetensors (device, inode, size, mtime): `tunery models import
 * --force NAME` swaps in a directory with new files, so the next request
 * after it sees a different identity and loads the new weights, without a
 * restart. The old entry leaves the cache at once and is freed when its last
 * reader puts it back.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id_t;

/* A tokenizer shared by every cached model whose tokenizer files have the
 * same bytes (most carry r50k's tokenizer.json): parsing one costs ~60 ms,
 * hashing its 2 MB ~7. */
typedef struct tok_entry {
    struct tok_entry *next;
    uint8_t hash[32];
    tok_t *tok;
    int refs;          /* cached models using it; 0 = idle */
    double idle_since;
} tok_entry_t;

typedef struct cached {
    struct cached *next;
    model_ref_t ref;
    tok_entry_t *tok;  /* NULL: the process-wide r50k (no tokenizer files) */
    char id[320];
    char dir[4096];
    file_id_t file;
    size_t bytes;
    int users;
    int stale;        /* out of the list (replaced on disk); freed by the last put */
    double last_used;
} cached_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_mutex_t load_mu;   /* one load at a time (see the top) */
    cached_t *head;
    tok_entry_t *toks;
    size_t bytes;
    long loads;
} cache_t;

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

static cache_t *cache_of(server_t *s)
{
    pthread_mutex_lock(&init_mu);
    if (!s->models) {
        cache_t *c = calloc(1, sizeof *c);
        if (c) {
            pthread_mutex_init(&c->mu, NULL);
            pthread_mutex_init(&c->load_mu, NULL);
        }
        s->models = c;
    }
    pthread_mutex_unlock(&init_mu);
    return s->models;
}

/* Tokenizers kept while no cached model uses them: a model evicted and
 * asked for again (a cache smaller than the models in use) parses none. */
#define TOK_IDLE_MAX 2

/* Under mu (or alone at the end). Idle tokenizers beyond TOK_IDLE_MAX go,
 * the longest idle first. */
static void tok_release(cache_t *c, tok_entry_t *t)
{
    if (!t || --t->refs) return;
    t->idle_since = time_mono();
    for (;;) {
        int idle = 0;
        tok_entry_t **oldest = NULL;
        for (tok_entry_t **p = &c->toks; *p; p = &(*p)->next)
            if (!(*p)->refs && (idle++, !oldest || (*p)->idle_since < (*oldest)->idle_since)) oldest = p;
        if (idle <= TOK_IDLE_MAX) return;
        tok_entry_t *v = *oldest;
        *oldest = v->next;
        tok_free(v->tok);
        free(v);
    }
}

static void cached_free(cache_t *c, cached_t *m)
{
    gpt2_unload_mapped(&m->ref.model);
    tok_release(c, m->tok);
    free(m);
}

/* The tokenizer of dir (load_mu held): shared with the cached models whose
 * tokenizer files hash the same, else loaded. 0 or -1 with err. */
static int tok_acquire(cache_t *c, const char *dir, cached_t *m, char *err)
{
    static const char *const files[][2] = {{"tokenizer.json", NULL}, {"vocab.json", "merges.txt"}};
    uint8_t hash[32];
    int have = 0;
    for (int f = 0; f < 2 && !have; f++) {
        buf_t all = {0};
        have = 1;
        for (int k = 0; k < 2 && files[f][k] && have; k++) {
            char path[4200], *bytes;
            size_t n;
            snprintf(path, sizeof path, "%s/%s", dir, files[f][k]);
            if (fs_read_all(path, &bytes, &n, err)) { have = 0; break; }
            uint8_t h[32];
            sha256(bytes, n, h);
            free(bytes);
            if (buf_append(&all, h, sizeof h)) have = 0;
        }
        if (have) sha256(all.data, all.len, hash);
        buf_free(&all);
    }
    if (!have) {   /* no tokenizer files: r50k, shared by tok itself */
        m->tok = NULL;
        return tok_load_dir(&m->ref.tok, dir, err);
    }
    pthread_mutex_lock(&c->mu);
    for (tok_entry_t *t = c->toks; t; t = t->next)
        if (!memcmp(t->hash, hash, sizeof hash)) {
            t->refs++;
            m->tok = t;
            m->ref.tok = t->tok;
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    pthread_mutex_unlock(&c->mu);
    tok_entry_t *t = calloc(1, sizeof *t);
    if (!t) return core_errf(err, "out of memory");
    if (tok_load_dir(&t->tok, dir, err)) {
        free(t);
        return -1;
    }
    memcpy(t->hash, hash, sizeof hash);
    t->refs = 1;
    pthread_mutex_lock(&c->mu);
    t->next = c->toks;
    c->toks = t;
    pthread_mutex_unlock(&c->mu);
    m->tok = t;
    m->ref.tok = t->tok;
    return 0;
}

/* Drop idle models, oldest first, until the cache fits in the bound. */
static void cache_trim(cache_t *c, size_t bound)
{
    while (c->bytes > bound) {
        cached_t **victim = NULL;
        for (cached_t **p = &c->head; *p; p = &(*p)->next)
            if (!(*p)->users && (!victim || (*p)->last_used < (*victim)->last_used)) victim = p;
        if (!victim) return;
        cached_t *v = *victim;
        *victim = v->next;
        c->bytes -= v->bytes;
        cached_free(c, v);
    }
}

/* The identity of dir/model.safetensors; all zero when it cannot be read
 * (the load then says why). */
static void file_identity(const char *dir, file_id_t *out)
{
    char path[4200];
    struct stat st;
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &st)) return;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    out->size = st.st_size;
    out->mtime = st.st_mtim;
}

static int same_file(const file_id_t *a, const file_id_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Under c->mu: the entry for (id, dir, file) with a reference taken, or
 * NULL. An entry of the same name and directory whose file differs is taken
 * out of the cache (freed now if idle, else by its last put). */
static cached_t *cache_find(cache_t *c, const char *id, const char *dir, const file_id_t *file)
{
    for (cached_t **p = &c->head; *p;) {
        cached_t *m = *p;
        if (strcmp(m->id, id) || strcmp(m->dir, dir)) {
            p = &m->next;
            continue;
        }
        if (same_file(&m->file, file)) {
            m->users++;
            m->last_used = time_mono();
            return m;
        }
        *p = m->next;
        c->bytes -= m->bytes;
        if (m->users) m->stale = 1;
        else cached_free(c, m);
    }
    return NULL;
}

model_ref_t *model_cache_get(server_t *s, const char *id, const char *dir, int *hit, char *err)
{
    cache_t *c = cache_of(s);
    if (!c) return core_errf(err, "out of memory"), NULL;
    file_id_t file;
    file_identity(dir, &file);
    pthread_mutex_lock(&c->mu);
    cached_t *m = cache_find(c, id, dir, &file);
    pthread_mutex_unlock(&c->mu);
    *hit = m != NULL;
    if (m) return &m->ref;
    /* Load outside c->mu: cached models keep serving meanwhile. Whoever
     * waited for load_mu may find the model loaded by the one before. */
    pthread_mutex_lock(&c->load_mu);
    file_identity(dir, &file);
    pthread_mutex_lock(&c->mu);
    m = cache_find(c, id, dir, &file);
    pthread_mutex_unlock(&c->mu);
    if (m) {
        pthread_mutex_unlock(&c->load_mu);
        *hit = 1;
        return &m->ref;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        pthread_mutex_unlock(&c->load_mu);
        return core_errf(err, "out of memory"), NULL;
    }
    snprintf(m->id, sizeof m->id, "%s", id);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    m->file = file;
    /* a model that cannot be mapped (more than nn's 64 maps) is served from a copy */
    if (gpt2_load_mapped(&m->ref.model, dir, err) && gpt2_load(&m->ref.model, dir, err)) {
        pthread_mutex_unlock(&c->load_mu);
        free(m);
        return NULL;
    }
    if (tok_acquire(c, dir, m, err)) {
        pthread_mutex_unlock(&c->load_mu);
        gpt2_unload_mapped(&m->ref.model);
        free(m);
        return NULL;
    }
    m->bytes = m->ref.model.num_parameters * sizeof(float);
    m->users = 1;
    m->last_used = time_mono();
    pthread_mutex_lock(&c->mu);
    c->loads++;
    m->next = c->head;
    c->head = m;
    c->bytes += m->bytes;
    cache_trim(c, s->opts.model_cache_bytes);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->load_mu);
    return &m->ref;
}

void model_cache_put(server_t *s, model_ref_t *ref)
{
    cache_t *c = s->models;
    pthread_mutex_lock(&c->mu);
    cached_t *m = (cached_t *)((char *)ref - offsetof(cached_t, ref));
    m->users--;
    if (m->stale && !m->users) cached_free(c, m);
    cache_trim(c, s->opts.model_cache_bytes);
    pthread_mutex_unlock(&c->mu);
}

void completions_cache_evict(server_t *s, const char *id)
{
    cache_t *c = cache_of(s);
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    for (cached_t **p = &c->head; *p;) {
        cached_t *m = *p;
        if (!strcmp(m->id, id) && !m->users) {
            *p = m->next;
            c->bytes -= m->bytes;
            cached_free(c, m);
        } else {
            p = &m->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

long model_cache_loads(server_t *s)
{
    cache_t *c = cache_of(s);
    return c ? c->loads : 0;
}

void completions_cache_free(server_t *s)
{
    cache_t *c = s->models;
    if (!c) return;
    while (c->head) {
        cached_t *m = c->head;
        c->head = m->next;
        cached_free(c, m);
    }
    while (c->toks) {
        tok_entry_t *t = c->toks;
        c->toks = t->next;
        tok_free(t->tok);
        free(t);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->load_mu);
    free(c);
    s->models = NULL;
}
