/* notify.c: the event hub, one thread that feeds every event stream.
 *
 * Followers of GET /v1/fine-tunes/{id}/events?stream=true hold no thread and
 * poll nothing: their connections sleep suspended (http_reply_push) until
 * this thread pushes to them. It owns the one watch on the store's events
 * (inotify on DATA/events.tick, which every store_event_add touches, from
 * the server or from a worker process), and on each wake reads the new
 * events of all jobs in one query (store_event_after), formats each once and
 * appends it to every follower of its job. A new follower is replayed its
 * job's whole history first (that is how `fine_tunes.follow` resumes), in one
 * query per job however many followers join at once.
 *
 * The stream contract is sse.c's: "data: {event}\n\n" per visible event,
 * ": ping" comments every opts.ping_ms (from a timer here, sent only to
 * streams with nothing buffered), and "data: [DONE]" only once the job is
 * terminal and its final message has gone out (or 2 s after it became
 * terminal without one). A deleted job ends its streams. A sleeping
 * connection is invisible to libmicrohttpd, so the hub also watches each
 * follower's socket for the client's hang-up (EPOLLRDHUP) and ends that
 * stream at once instead of at the next ping.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HUB_BATCH 512          /* events read per query */
#define HUB_SWEEP_S 1.0        /* status check of every followed job (deletes, silent ends) */
#define HUB_FINAL_WAIT_S 2.0   /* terminal without its final message: [DONE] after this */

typedef struct {
    uint64_t serial;         /* the key of its hang-up watch */
    int fd;                  /* the client's socket, -1 = not watched */
    char org_id[64];
    char job_id[STORE_ID_LEN];
    int64_t last_seq;
    http_push_t *push;
    double next_ping;
    double terminal_since;   /* 0 = not seen terminal */
    int saw_final;
    int fresh;               /* not replayed yet */
    int check;               /* status to be read this round */
    int done;
} follower_t;

struct hub {
    server_t *srv;
    pthread_t th;
    pthread_mutex_t mu;
    follower_t **inbox;      /* new followers (mu) */
    int n_inbox, cap_inbox;
    int stop;                /* (mu) */
    int wake_fd;             /* eventfd: inbox or stop */
    /* hub thread only */
    follower_t **fl;         /* sorted by job_id */
    int n, cap;
    int watch_fd;
    int hup_fd;              /* epoll of the followers' sockets, for EPOLLRDHUP */
    uint64_t serial;
    store_t *st;
    int64_t seq;             /* every event up to here has been handed out */
    int retry;               /* the last read failed (store busy): read again soon */
    double next_sweep;
    volatile long count;
};

static int is_final_message(const char *m)
{
    return !strcmp(m, "Fine-tune succeeded") || !strcmp(m, "Fine-tune failed") || !strcmp(m, "Fine-tune cancelled");
}

static int cmp_follower(const void *a, const void *b)
{
    return strcmp((*(follower_t *const *)a)->job_id, (*(follower_t *const *)b)->job_id);
}

/* First follower of job_id in the sorted array (n if none). */
static int hub_find(struct hub *h, const char *job_id)
{
    int lo = 0, hi = h->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(h->fl[mid]->job_id, job_id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < h->n && !strcmp(h->fl[lo]->job_id, job_id) ? lo : h->n;
}

static int group_end(struct hub *h, int i)
{
    int j = i + 1;
    while (j < h->n && !strcmp(h->fl[j]->job_id, h->fl[i]->job_id)) j++;
    return j;
}

static void follower_end(follower_t *f)
{
    if (!f->done) http_push_end(f->push);
    f->done = 1;
}

/* "data: {event}\n\n" for a visible event, NULL otherwise (free it). */
static char *event_text(const store_event_t *e)
{
    if (!fine_tunes_event_visible(e)) return NULL;
    json_t *j = fine_tunes_event_json(e);
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!t) return NULL;
    size_t n = strlen(t);
    char *s = malloc(n + 9);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, t, n);
        memcpy(s + 6 + n, "\n\n", 3);
    }
    free(t);
    return s;
}

static void deliver(follower_t *f, const store_event_t *e, const char *text)
{
    if (f->done || e->seq <= f->last_seq) return;
    f->last_seq = e->seq;
    if (text && http_push_write(f->push, text, strlen(text))) f->done = 1;   /* client gone */
    if (is_final_message(e->message)) f->saw_final = 1;
    f->check = 1;
}

/* The whole history for the fresh followers of the group [i, j): one query. */
static void hub_replay(struct hub *h, int i, int j)
{
    follower_t *first = NULL;
    for (int k = i; k < j; k++)
        if (h->fl[k]->fresh && !first) first = h->fl[k];
    if (!first) return;
    char err[CORE_ERR_LEN];
    int64_t since = 0;
    for (;;) {
        store_event_t *es = NULL;
        int n = 0;
        int rc = store_event_since(h->st, first->org_id, first->job_id, since, HUB_BATCH, &es, &n, err);
        if (rc) {   /* deleted meanwhile (or the store failed): end these streams */
            for (int k = i; k < j; k++)
                if (h->fl[k]->fresh) follower_end(h->fl[k]);
            break;
        }
        for (int e = 0; e < n; e++) {
            char *text = event_text(&es[e]);
            for (int k = i; k < j; k++)
                if (h->fl[k]->fresh) deliver(h->fl[k], &es[e], text);
            free(text);
            since = es[e].seq;
        }
        free(es);
        if (n < HUB_BATCH) break;
    }
    for (int k = i; k < j; k++) {
        h->fl[k]->fresh = 0;
        h->fl[k]->check = 1;
    }
}

/* Everything written since h->seq, to the followers of each event's job. */
static void hub_read_new(struct hub *h)
{
    char err[CORE_ERR_LEN];
    for (;;) {
        store_event_t *es = NULL;
        int n = 0;
        if (store_event_after(h->st, h->seq, HUB_BATCH, &es, &n, err)) {
            h->retry = 1;   /* in 100 ms, with or without a new tick */
            return;
        }
        h->retry = 0;
        for (int e = 0; e < n; e++) {
            h->seq = es[e].seq;
            int i = hub_find(h, es[e].job_id);
            if (i == h->n) continue;
            char *text = event_text(&es[e]);
            for (; i < h->n && !strcmp(h->fl[i]->job_id, es[e].job_id); i++) deliver(h->fl[i], &es[e], text);
            free(text);
        }
        free(es);
        if (n < HUB_BATCH) return;
    }
}

/* Status of the group [i, j): [DONE] once terminal and the final message is
 * out (or after HUB_FINAL_WAIT_S); a deleted job ends its streams. */
static void hub_check(struct hub *h, int i, int j, double now)
{
    char err[CORE_ERR_LEN];
    store_job_t job;
    int rc = store_job_get(h->st, h->fl[i]->org_id, h->fl[i]->job_id, &job, err);
    if (rc && rc != STORE_ENOTFOUND) return;   /* the store failed: try again next round */
    int terminal = rc == 0 && store_job_is_terminal(job.status);
    if (rc == 0) store_job_clear(&job);
    for (int k = i; k < j; k++) {
        follower_t *f = h->fl[k];
        f->check = 0;
        if (f->done) continue;
        if (rc) {
            follower_end(f);
            continue;
        }
        if (!terminal) continue;
        if (!f->terminal_since) f->terminal_since = now;
        if (f->saw_final || now - f->terminal_since > HUB_FINAL_WAIT_S) {
            if (http_push_write(f->push, "data: [DONE]\n\n", 14) == 0) http_push_end(f->push);
            f->done = 1;
        }
    }
}

static void hub_take_inbox(struct hub *h, int *stop)
{
    pthread_mutex_lock(&h->mu);
    *stop = h->stop;
    int add = h->n_inbox;
    if (add && h->n + add > h->cap) {
        int cap = (h->n + add) * 2;
        follower_t **p = realloc(h->fl, (size_t)cap * sizeof *p);
        if (!p) add = 0;   /* out of memory: they wait for the next round */
        else {
            h->fl = p;
            h->cap = cap;
        }
    }
    for (int i = 0; i < add; i++) {
        follower_t *f = h->inbox[i];
        f->serial = ++h->serial;
        f->fd = http_push_fd(f->push);
        /* edge-triggered: a stale watch on a socket kept alive after its
         * stream ended fires at most once, and finds no follower */
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.u64 = f->serial};
        if (f->fd >= 0 && epoll_ctl(h->hup_fd, EPOLL_CTL_ADD, f->fd, &ev)) f->fd = -1;
        h->fl[h->n++] = f;
    }
    if (add) {
        memmove(h->inbox, h->inbox + add, (size_t)(h->n_inbox - add) * sizeof *h->inbox);
        h->n_inbox -= add;
    }
    pthread_mutex_unlock(&h->mu);
    if (add) qsort(h->fl, (size_t)h->n, sizeof *h->fl, cmp_follower);
}

/* Drop finished streams; keeps the order. */
static void hub_compact(struct hub *h)
{
    int w = 0;
    for (int i = 0; i < h->n; i++) {
        follower_t *f = h->fl[i];
        if (!f->done && http_push_closed(f->push)) f->done = 1;
        if (f->done) {
            /* still open (the response holds it): the socket is this
             * follower's and may serve more requests; unwatch it */
            if (f->fd >= 0 && !http_push_closed(f->push)) epoll_ctl(h->hup_fd, EPOLL_CTL_DEL, f->fd, NULL);
            http_push_release(f->push);
            free(f);
        } else {
            h->fl[w++] = f;
        }
    }
    h->n = w;
    __atomic_store_n(&h->count, (long)w, __ATOMIC_RELAXED);
}

/* How long poll may sleep: the next ping, a pending terminal check, the sweep. */
static int hub_timeout_ms(struct hub *h, double now)
{
    double next = h->next_sweep;
    for (int i = 0; i < h->n; i++) {
        follower_t *f = h->fl[i];
        if (f->next_ping < next) next = f->next_ping;
        if ((f->terminal_since || f->saw_final) && now + 0.1 < next) next = now + 0.1;
    }
    if (h->watch_fd < 0 && now + 0.25 < next) next = now + 0.25;   /* no inotify: look every 250 ms */
    if (h->retry && now + 0.1 < next) next = now + 0.1;
    double ms = (next - now) * 1000;
    return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms + 1;
}

/* Clients that hung up: end their streams now. */
static void hub_hangups(struct hub *h)
{
    struct epoll_event evs[256];
    int k;
    while ((k = epoll_wait(h->hup_fd, evs, 256, 0)) > 0) {
        for (int e = 0; e < k; e++)
            for (int i = 0; i < h->n; i++)
                if (h->fl[i]->serial == evs[e].data.u64) {
                    follower_end(h->fl[i]);
                    break;
                }
        if (k < 256) break;
    }
}

static void *hub_main(void *arg)
{
    struct hub *h = arg;
    double ping = h->srv->opts.ping_ms / 1000.0;
    for (;;) {
        double now = time_mono();
        struct pollfd p[3] = {{h->wake_fd, POLLIN, 0}, {h->hup_fd, POLLIN, 0}, {h->watch_fd, POLLIN, 0}};
        int np = h->watch_fd >= 0 ? 3 : 2;
        int timeout = hub_timeout_ms(h, now);
        int fired = poll(p, (nfds_t)np, timeout);
        uint64_t v;
        if (fired > 0 && (p[0].revents & POLLIN) && read(h->wake_fd, &v, sizeof v) < 0) { /* drained */ }
        int dirty = h->watch_fd < 0 || h->retry;
        if (np == 3 && (p[2].revents & POLLIN)) {
            store_event_watch_drain(h->watch_fd);
            dirty = 1;
        }
        int stop;
        hub_take_inbox(h, &stop);
        if (stop) break;
        now = time_mono();
        int sweep = now >= h->next_sweep;
        if (sweep) h->next_sweep = now + HUB_SWEEP_S;
        if (fired > 0 && (p[1].revents & POLLIN)) hub_hangups(h);
        for (int i = 0; i < h->n; i = group_end(h, i)) hub_replay(h, i, group_end(h, i));
        if (dirty) hub_read_new(h);
        for (int i = 0, j; i < h->n; i = j) {
            j = group_end(h, i);
            int need = sweep;
            for (int k = i; k < j && !need; k++)
                need = h->fl[k]->check || h->fl[k]->terminal_since || h->fl[k]->saw_final;
            if (need) hub_check(h, i, j, now);
        }
        /* pings: everyone due within 20 ms goes now, so 1000 streams opened
         * over a second do not mean 1000 wakes per interval */
        for (int i = 0; i < h->n; i++) {
            follower_t *f = h->fl[i];
            if (f->done || f->next_ping > now + 0.02) continue;
            if (http_push_pending(f->push) == 0 && http_push_write(f->push, ": ping\n\n", 8)) f->done = 1;
            f->next_ping = now + ping;
        }
        hub_compact(h);
    }
    for (int i = 0; i < h->n; i++) follower_end(h->fl[i]);
    hub_compact(h);
    return NULL;
}

int hub_start(server_t *s, struct hub **out, char *err)
{
    *out = NULL;
    struct hub *h = calloc(1, sizeof *h);
    if (!h) return core_errf(err, "out of memory");
    h->srv = s;
    h->watch_fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h->hup_fd = epoll_create1(EPOLL_CLOEXEC);
    if (h->wake_fd < 0 || h->hup_fd < 0) {
        if (h->wake_fd >= 0) close(h->wake_fd);
        if (h->hup_fd >= 0) close(h->hup_fd);
        free(h);
        return core_errf(err, "cannot create the event hub's descriptors; raise the open-file limit (ulimit -n)");
    }
    if (store_open(s->data_dir, &h->st, err) || store_event_last_seq(h->st, &h->seq, err)) {
        if (h->st) store_close(h->st);
        close(h->wake_fd);
        close(h->hup_fd);
        free(h);
        return -1;
    }
    char werr[CORE_ERR_LEN];
    h->watch_fd = store_event_watch(h->st, werr);   /* without inotify: look every 250 ms */
    h->next_sweep = time_mono() + HUB_SWEEP_S;
    if (pthread_create(&h->th, NULL, hub_main, h)) {
        if (h->watch_fd >= 0) close(h->watch_fd);
        store_close(h->st);
        close(h->wake_fd);
        close(h->hup_fd);
        free(h);
        return core_errf(err, "cannot start the event hub thread");
    }
    *out = h;
    return 0;
}

static void hub_wake(struct hub *h)
{
    uint64_t one = 1;
    if (write(h->wake_fd, &one, sizeof one) < 0) { /* already pending */ }
}

int hub_follow(struct hub *h, const char *org_id, const char *job_id, http_push_t *push, char *err)
{
    follower_t *f = calloc(1, sizeof *f);
    if (!f) return core_errf(err, "out of memory");
    snprintf(f->org_id, sizeof f->org_id, "%s", org_id);
    snprintf(f->job_id, sizeof f->job_id, "%s", job_id);
    f->push = push;
    f->fresh = 1;
    f->next_ping = time_mono() + h->srv->opts.ping_ms / 1000.0;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (h->stop) rc = core_errf(err, "the server is shutting down");
    else if (h->n_inbox == h->cap_inbox) {
        int cap = h->cap_inbox ? h->cap_inbox * 2 : 64;
        follower_t **p = realloc(h->inbox, (size_t)cap * sizeof *p);
        if (!p) rc = core_errf(err, "out of memory");
        else {
            h->inbox = p;
            h->cap_inbox = cap;
        }
    }
    if (!rc) h->inbox[h->n_inbox++] = f;
    pthread_mutex_unlock(&h->mu);
    if (rc) {
        free(f);
        return rc;
    }
    hub_wake(h);
    return 0;
}

long hub_followers(struct hub *h) { return h ? __atomic_load_n(&h->count, __ATOMIC_RELAXED) : 0; }

void hub_stop(struct hub *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_mutex_unlock(&h->mu);
    hub_wake(h);
    pthread_join(h->th, NULL);
    for (int i = 0; i < h->n_inbox; i++) {   /* joined after the last round */
        http_push_end(h->inbox[i]->push);
        http_push_release(h->inbox[i]->push);
        free(h->inbox[i]);
    }
    free(h->inbox);
    free(h->fl);
    if (h->watch_fd >= 0) close(h->watch_fd);
    store_close(h->st);
    close(h->wake_fd);
    close(h->hup_fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
