/* server.c: start and stop `tunery serve`: the store (opened and
 * bootstrapped here, then one connection per event-loop thread), the
 * scheduler thread, the compute pool, the event hub and the HTTP daemon.
 *
 * Stop order matters: libmicrohttpd must not be stopped with a connection
 * still suspended, so the compute pool finishes (each deferred request is
 * resumed with its reply) and the hub ends every stream before http_stop.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "sched/sched.h"
#include "store/store.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One store connection per thread (store.h: never share one), closed when
 * the connection thread ends. */
typedef struct {
    store_t *st;
    const server_t *srv;
} tls_store_t;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
    tls_store_t *t = p;
    if (t && t->st) store_close(t->st);
    free(t);
}

static void tls_init(void) { pthread_key_create(&tls_key, tls_free); }

store_t *server_thread_store(const server_t *s, char *err)
{
    pthread_once(&tls_once, tls_init);
    tls_store_t *t = pthread_getspecific(tls_key);
    if (t && t->srv == s && t->st) return t->st;
    if (t && t->st) {
        store_close(t->st);
        t->st = NULL;
    }
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            core_errf(err, "out of memory");
            return NULL;
        }
        pthread_setspecific(tls_key, t);
    }
    if (store_open(s->data_dir, &t->st, err)) return NULL;
    t->srv = s;
    return t->st;
}

store_t *server_store(req_t *r)
{
    char err[CORE_ERR_LEN];
    store_t *st = server_thread_store(r->srv, err);
    if (!st) HTTP_500(r, "The store could not be opened: %s", err);
    return st;
}

int server_store_error(req_t *r, int rc, const char *param, const char *err)
{
    if (rc == STORE_ENOTFOUND) return HTTP_404(r, param, "%s", err);
    if (rc == STORE_ECONFLICT) return HTTP_400(r, param, "%s", err);
    return HTTP_500(r, "%s", err);
}

int server_base_model_dir(const server_t *s, const char *name, char dir[4096], char *err)
{
    if (!name[0] || strchr(name, '/') || strchr(name, ':') || name[0] == '.')
        return core_errf(err, "`%s` is not a base model name", name);
    char cfg[4096 + 32];
    snprintf(dir, 4096, "%s/models/%s", s->data_dir, name);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (fs_exists(cfg)) return 0;
    if (core_model_dir(name, dir, err) == 0) return 0;
    return core_errf(err, "the base model `%s` is not installed on this server (looked in %s/models/%s and %s/models/%s); "
                     "import weights with `tunery models import DIR --name %s`", name, s->data_dir, name, core_share_dir(), name, name);
}

int server_start(server_t **out, const server_opts_t *o, char **initial_key, char *err)
{
    *out = NULL;
    if (initial_key) *initial_key = NULL;
    server_t *s = calloc(1, sizeof *s);
    if (!s) return core_errf(err, "out of memory");
    s->opts = *o;
    if (!s->opts.host) s->opts.host = "127.0.0.1";
    if (!s->opts.upload_limit) s->opts.upload_limit = 1ull << 30;
    if (s->opts.ping_ms <= 0) s->opts.ping_ms = 15000;
    if (s->opts.max_concurrent_jobs <= 0) s->opts.max_concurrent_jobs = 1;
    if (!s->opts.model_cache_bytes) s->opts.model_cache_bytes = (size_t)2 << 30;
    if (s->opts.threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->opts.threads = cpus < 2 ? 2 : cpus > 64 ? 64 : (int)cpus;
    }
    if (s->opts.compute_threads <= 0) s->opts.compute_threads = 1;
    snprintf(s->data_dir, sizeof s->data_dir, "%s", o->data_dir ? o->data_dir : core_data_dir());

    store_t *st;
    if (store_open(s->data_dir, &st, err)) {
        free(s);
        return -1;
    }
    char key[STORE_KEY_LEN];
    int created = 0;
    if (store_recover_blobs(st, err) < 0 || store_bootstrap(st, key, &created, err)) {
        store_close(st);
        free(s);
        return -1;
    }
    store_close(st);
    if (created && initial_key) *initial_key = strdup(key);
    if (!s->opts.no_scheduler) {
        sched_t *sc;
        if (sched_start(s->data_dir, s->opts.max_concurrent_jobs, NULL, &sc, err)) {
            free(s);
            return -1;
        }
        s->sched = sc;
    }
    if (!(s->pool = pool_start(s->opts.compute_threads, err)) || !(s->io_pool = pool_start(2, err)) ||
        hub_start(s, &s->hub, err) || http_listen(s, err)) {
        hub_stop(s->hub);
        pool_stop(s->io_pool);
        pool_stop(s->pool);
        if (s->sched) sched_stop(s->sched);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int server_port(const server_t *s) { return s->port; }

void server_stop(server_t *s)
{
    if (!s) return;
    s->stopping = 1;
    pool_stop(s->pool);   /* new completions run on the event loop from here on */
    s->pool = NULL;
    pool_stop(s->io_pool);
    s->io_pool = NULL;
    hub_stop(s->hub);     /* new streams end at once from here on */
    s->hub = NULL;
    http_stop(s);
    if (s->sched) sched_stop(s->sched);
    completions_cache_free(s);
    free(s);
}
