/* model_cache.c: loaded models for /v1/completions, shared by every
 * connection thread, bounded by memory (least recently used first out).
 * A completion against a cached model loads nothing; a model in use is never
 * evicted under its reader. Deleting a model evicts it.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct cached {
    struct cached *next;
    model_ref_t ref;
    char id[320];
    char dir[4096];
    size_t bytes;
    int users;
    double last_used;
} cached_t;

typedef struct {
    pthread_mutex_t mu;
    cached_t *head;
    size_t bytes;
    long loads;
} cache_t;

static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

static cache_t *cache_of(server_t *s)
{
    pthread_mutex_lock(&init_mu);
    if (!s->models) {
        cache_t *c = calloc(1, sizeof *c);
        if (c) pthread_mutex_init(&c->mu, NULL);
        s->models = c;
    }
    pthread_mutex_unlock(&init_mu);
    return s->models;
}

static void cached_free(cached_t *c)
{
    gpt2_free(&c->ref.model);
    if (c->ref.tok) tok_free(c->ref.tok);
    free(c);
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
        cached_free(v);
    }
}

model_ref_t *model_cache_get(server_t *s, const char *id, const char *dir, int *hit, char *err)
{
    cache_t *c = cache_of(s);
    if (!c) return core_errf(err, "out of memory"), NULL;
    pthread_mutex_lock(&c->mu);
    for (cached_t *m = c->head; m; m = m->next) {
        if (strcmp(m->id, id) || strcmp(m->dir, dir)) continue;
        m->users++;
        m->last_used = time_mono();
        pthread_mutex_unlock(&c->mu);
        *hit = 1;
        return &m->ref;
    }
    pthread_mutex_unlock(&c->mu);
    *hit = 0;
    /* load outside the lock: other models keep serving meanwhile */
    cached_t *m = calloc(1, sizeof *m);
    if (!m) return core_errf(err, "out of memory"), NULL;
    snprintf(m->id, sizeof m->id, "%s", id);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (gpt2_load(&m->ref.model, dir, err)) {
        free(m);
        return NULL;
    }
    if (tok_load_dir(&m->ref.tok, dir, err)) {
        gpt2_free(&m->ref.model);
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
    return &m->ref;
}

void model_cache_put(server_t *s, model_ref_t *ref)
{
    cache_t *c = s->models;
    pthread_mutex_lock(&c->mu);
    cached_t *m = (cached_t *)((char *)ref - offsetof(cached_t, ref));
    m->users--;
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
            cached_free(m);
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
        cached_free(m);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    s->models = NULL;
}
