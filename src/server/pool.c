/* pool.c: the compute queue of `tunery serve`.
 *
 * Completions are the only CPU-heavy requests the server runs itself (the
 * training runs in worker processes). They must not run on the HTTP
 * event-loop threads, which would then stop answering everyone else, and
 * running one per connection thread would let twenty clients start twenty
 * OpenMP-parallel generations on two cores. So they queue here: a fixed,
 * small number of threads (--compute-threads, default 1: gen_complete is
 * itself parallel) take jobs in the order they came.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    struct job *next;
    void (*fn)(void *arg);
    void *arg;
} job_t;

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    int stopping;
    int n;
    pthread_t th[];
};

static void *pool_main(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        job_t *j = p->head;
        if (j) {
            p->head = j->next;
            if (!p->head) p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!j) return NULL;   /* stopping and nothing left */
        j->fn(j->arg);
        free(j);
    }
}

struct pool *pool_start(int threads, char *err)
{
    if (threads < 1) threads = 1;
    struct pool *p = calloc(1, sizeof *p + (size_t)threads * sizeof(pthread_t));
    if (!p) {
        core_errf(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->n < threads; p->n++) {
        if (pthread_create(&p->th[p->n], NULL, pool_main, p)) {
            core_errf(err, "cannot start compute thread %d of %d; lower --compute-threads", p->n + 1, threads);
            pool_stop(p);
            return NULL;
        }
    }
    return p;
}

int pool_submit(struct pool *p, void (*fn)(void *arg), void *arg)
{
    job_t *j = malloc(sizeof *j);
    if (!j) return -1;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return -1;
    }
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int pool_threads(const struct pool *p) { return p ? p->n : 0; }

void pool_stop(struct pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
