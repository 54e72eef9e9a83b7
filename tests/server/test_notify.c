/* test_notify.c: the threading model of `tunery serve`, in-process over real
 * loopback sockets: the compute pool runs jobs in order and finishes its
 * queue on stop; event streams hold no thread, get every event in order
 * from the hub with pings in between and [DONE] after the terminal event;
 * a client that leaves is dropped at once (its hang-up, not the next ping);
 * and the server stops cleanly with
 * streams still open (libmicrohttpd must not be stopped with a suspended
 * connection). */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include "test.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the compute pool ---- */
typedef struct {
    pthread_mutex_t mu;
    int order[64];
    int n;
} ran_t;

typedef struct {
    ran_t *ran;
    int i;
} job_arg_t;

static void job_run(void *arg)
{
    job_arg_t *a = arg;
    if (a->i == 0) usleep(50 * 1000);   /* the first is slow: the rest queue behind it */
    pthread_mutex_lock(&a->ran->mu);
    a->ran->order[a->ran->n++] = a->i;
    pthread_mutex_unlock(&a->ran->mu);
}

static void test_pool_order_and_stop(void)
{
    char err[CORE_ERR_LEN];
    struct pool *p = pool_start(1, err);
    CHECKF(p != NULL, "%s", err);
    if (!p) return;
    CHECK_EQ_INT(pool_threads(p), 1);
    ran_t ran = {.mu = PTHREAD_MUTEX_INITIALIZER};
    job_arg_t args[20];
    for (int i = 0; i < 20; i++) {
        args[i] = (job_arg_t){&ran, i};
        CHECK_EQ_INT(pool_submit(p, job_run, &args[i]), 0);
    }
    pool_stop(p);   /* runs what is queued, then joins */
    CHECK_EQ_INT(ran.n, 20);
    for (int i = 0; i < ran.n; i++) CHECK_EQ_INT(ran.order[i], i);
}

/* ---- the hub's query: every job's events after a seq ---- */
static void make_job(store_t *st, char id[STORE_ID_LEN]);

static void test_store_event_after(void)
{
    char err[CORE_ERR_LEN], dir[] = "/tmp/tunery-test-after-XXXXXX", a[STORE_ID_LEN], b[STORE_ID_LEN];
    store_t *st = NULL;
    CHECK(mkdtemp(dir) != NULL);
    char first_key[STORE_KEY_LEN];
    int created = 0;
    CHECKF(store_open(dir, &st, err) == 0 && store_bootstrap(st, first_key, &created, err) == 0, "%s", err);
    if (!st) return;
    make_job(st, a);   /* each starts with "mark-0" */
    make_job(st, b);
    int64_t base = 0;
    CHECKF(store_event_last_seq(st, &base, err) == 0, "%s", err);
    const char *order[] = {"a1", "b1", "a2", "b2", "a3"};
    for (int i = 0; i < 5; i++)
        CHECKF(store_event_add(st, order[i][0] == 'a' ? a : b, NULL, NULL, order[i], NULL, NULL, err) == 0, "%s", err);
    store_event_t *es = NULL;
    int n = 0;
    /* in pages of 2, across both jobs, in the order written */
    int64_t since = base;
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        CHECKF(store_event_after(st, since, 2, &es, &n, err) == 0, "%s", err);
        CHECK(n <= 2);
        for (int i = 0; i < n && seen < 5; i++, seen++) {
            CHECK_EQ_STR(es[i].message, order[seen]);
            CHECK_EQ_STR(es[i].job_id, order[seen][0] == 'a' ? a : b);
            CHECK(es[i].seq > since);
            since = es[i].seq;
        }
        free(es);
        if (n < 2) break;
    }
    CHECK_EQ_INT(seen, 5);
    CHECKF(store_event_after(st, since, 0, &es, &n, err) == 0, "%s", err);
    CHECK_EQ_INT(n, 0);
    free(es);
    CHECKF(store_event_after(st, 0, 0, &es, &n, err) == 0, "%s", err);
    CHECK_EQ_INT(n, 7);   /* everything, both "mark-0" included */
    free(es);
    store_close(st);
    fs_rm_rf(dir, err);
}

/* ---- streams against a real server ---- */
static server_t *srv;
static char key[128], datadir[] = "/tmp/tunery-test-notify-XXXXXX";

static long threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) v = atol(line + 8);
    if (f) fclose(f);
    return v;
}

/* A queued job with one event, made through the store (no scheduler here). */
static void make_job(store_t *st, char id[STORE_ID_LEN])
{
    char err[CORE_ERR_LEN];
    store_org_t org;
    store_file_t f;
    store_job_t j;
    memset(&j, 0, sizeof j);
    const char line[] = "{\"prompt\":\"a ->\",\"completion\":\" b\\n\"}\n";
    CHECKF(store_org_get(st, "personal", &org, err) == 0, "%s", err);
    CHECKF(store_file_put(st, org.id, "t.jsonl", "fine-tune", line, sizeof line - 1, &f, err) == 0, "%s", err);
    snprintf(j.org_id, sizeof j.org_id, "%s", org.id);
    snprintf(j.model, sizeof j.model, "curie");
    snprintf(j.training_file, sizeof j.training_file, "%s", f.id);
    snprintf(j.status, sizeof j.status, "queued");
    j.prompt_loss_weight = -1;
    j.queue_number = -1;
    CHECKF(store_job_create(st, &j, err) == 0, "%s", err);
    memcpy(id, j.id, STORE_ID_LEN);
    store_job_clear(&j);
    CHECKF(store_event_add(st, id, NULL, NULL, "mark-0", NULL, NULL, err) == 0, "%s", err);
}

typedef struct {
    int fd;
    buf_t text;
} client_t;

static int client_open(client_t *c, const char *job)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) return -1;
    char req[512];
    int n = snprintf(req, sizeof req, "GET /v1/fine-tunes/%s/events?stream=true HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\n\r\n", job, key);
    if (write(c->fd, req, (size_t)n) != n) return -1;
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    return 0;
}

/* Read whatever the clients have until each text contains want (or the
 * time is up); 1 when all do. */
static int clients_wait(client_t *cs, int n, const char *want, double seconds)
{
    double end = time_mono() + seconds;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++) {
            char buf[8192];
            ssize_t k;
            while ((k = read(cs[i].fd, buf, sizeof buf)) > 0) buf_append(&cs[i].text, buf, (size_t)k);
            if (!cs[i].text.data || !strstr(cs[i].text.data, want)) all = 0;
        }
        if (all) return 1;
        if (time_mono() > end) return 0;
        usleep(2000);
    }
}

static void client_close(client_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    buf_free(&c->text);
}

/* Index of the first occurrence of s in c's text, or -1. */
static long at(const client_t *c, const char *s)
{
    const char *p = c->text.data ? strstr(c->text.data, s) : NULL;
    return p ? p - c->text.data : -1;
}

#define NSTREAMS 64

static void test_streams_fanout_in_order(void)
{
    char err[CORE_ERR_LEN], job[STORE_ID_LEN];
    store_t *st = NULL;
    CHECKF(store_open(datadir, &st, err) == 0, "%s", err);
    if (!st) return;
    make_job(st, job);
    long t0 = threads_now();
    static client_t cs[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++) CHECK_EQ_INT(client_open(&cs[i], job), 0);
    CHECK(clients_wait(cs, NSTREAMS, "\"mark-0\"", 10));   /* the replay */
    CHECKF(threads_now() == t0, "threads: %ld before, %ld with %d streams", t0, threads_now(), NSTREAMS);
    CHECK_EQ_INT((int)hub_followers(srv->hub), NSTREAMS);
    CHECK(clients_wait(cs, NSTREAMS, ": ping\n\n", 5));      /* keep-alives while idle */
    for (int e = 1; e <= 3; e++) {
        char m[32];
        snprintf(m, sizeof m, "mark-%d", e);
        CHECKF(store_event_add(st, job, NULL, NULL, m, NULL, NULL, err) == 0, "%s", err);
    }
    CHECK(clients_wait(cs, NSTREAMS, "\"mark-3\"", 10));
    CHECKF(store_job_transition(st, job, "queued", "cancelled", err) == 0, "%s", err);
    CHECKF(store_event_add(st, job, NULL, NULL, "Fine-tune cancelled", NULL, NULL, err) == 0, "%s", err);
    CHECK(clients_wait(cs, NSTREAMS, "data: [DONE]\n\n", 10));
    CHECK(clients_wait(cs, NSTREAMS, "\r\n0\r\n\r\n", 10));   /* the chunked body ended */
    for (int i = 0; i < NSTREAMS; i++) {
        long m0 = at(&cs[i], "\"mark-0\""), m1 = at(&cs[i], "\"mark-1\""), m2 = at(&cs[i], "\"mark-2\""),
             m3 = at(&cs[i], "\"mark-3\""), fin = at(&cs[i], "\"Fine-tune cancelled\""), done = at(&cs[i], "[DONE]");
        CHECKF(m0 >= 0 && m0 < m1 && m1 < m2 && m2 < m3 && m3 < fin && fin < done, "stream %d out of order: %s", i, cs[i].text.data);
        /* exactly once each */
        CHECK(strstr(cs[i].text.data + m1 + 1, "\"mark-1\"") == NULL);
        CHECK(strstr(cs[i].text.data + done + 1, "[DONE]") == NULL);
    }
    /* a stream opened now replays and ends at once */
    client_t late;
    CHECK_EQ_INT(client_open(&late, job), 0);
    CHECK(clients_wait(&late, 1, "data: [DONE]\n\n", 10));
    CHECK(at(&late, "\"mark-0\"") >= 0 && at(&late, "\"mark-0\"") < at(&late, "\"mark-3\""));
    client_close(&late);
    for (int i = 0; i < NSTREAMS; i++) client_close(&cs[i]);
    double end = time_mono() + 5;
    while (hub_followers(srv->hub) > 0 && time_mono() < end) usleep(5000);
    CHECK_EQ_INT((int)hub_followers(srv->hub), 0);
    store_close(st);
}

static void test_client_gone_is_dropped(void)
{
    char err[CORE_ERR_LEN], job[STORE_ID_LEN];
    store_t *st = NULL;
    CHECKF(store_open(datadir, &st, err) == 0, "%s", err);
    if (!st) return;
    make_job(st, job);
    client_t cs[8];
    for (int i = 0; i < 8; i++) CHECK_EQ_INT(client_open(&cs[i], job), 0);
    CHECK(clients_wait(cs, 8, "\"mark-0\"", 10));
    CHECK_EQ_INT((int)hub_followers(srv->hub), 8);
    double t0 = time_mono();
    for (int i = 0; i < 4; i++) client_close(&cs[i]);
    /* the hang-up is seen at once, not at the next ping (2 s) */
    while (hub_followers(srv->hub) > 4 && time_mono() < t0 + 5) usleep(2000);
    CHECK_EQ_INT((int)hub_followers(srv->hub), 4);
    CHECKF(time_mono() - t0 < 1.0, "the streams of clients that left were dropped after %.2f s", time_mono() - t0);
    CHECKF(store_event_add(st, job, NULL, NULL, "mark-1", NULL, NULL, err) == 0, "%s", err);
    CHECK(clients_wait(cs + 4, 4, "\"mark-1\"", 10));
    for (int i = 4; i < 8; i++) client_close(&cs[i]);
    store_close(st);
}

/* Last: stops the server with streams open and a completion queued. */
static void test_stop_with_streams_open(void)
{
    char err[CORE_ERR_LEN], job[STORE_ID_LEN];
    store_t *st = NULL;
    CHECKF(store_open(datadir, &st, err) == 0, "%s", err);
    if (!st) return;
    make_job(st, job);
    store_close(st);
    client_t cs[16];
    for (int i = 0; i < 16; i++) CHECK_EQ_INT(client_open(&cs[i], job), 0);
    CHECK(clients_wait(cs, 16, "\"mark-0\"", 10));
    double t0 = time_mono();
    server_stop(srv);
    srv = NULL;
    CHECKF(time_mono() - t0 < 3, "stop took %.1f s", time_mono() - t0);
    /* every stream ended: its chunked body closed or the socket shut */
    for (int i = 0; i < 16; i++) {
        struct pollfd p = {cs[i].fd, POLLIN, 0};
        int ended = 0;
        double end = time_mono() + 3;
        while (!ended && time_mono() < end && poll(&p, 1, 100) >= 0) {
            char buf[4096];
            ssize_t k = read(cs[i].fd, buf, sizeof buf);
            if (k > 0) buf_append(&cs[i].text, buf, (size_t)k);
            ended = k == 0 || (k < 0 && errno != EAGAIN) || at(&cs[i], "\r\n0\r\n\r\n") >= 0;
        }
        CHECKF(ended, "stream %d still open after stop", i);
        client_close(&cs[i]);
    }
}

int main(void)
{
    char err[CORE_ERR_LEN];
    RUN(test_pool_order_and_stop);
    RUN(test_store_event_after);
    if (!mkdtemp(datadir)) return 1;
    server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.data_dir = datadir;
    o.no_scheduler = 1;
    o.ping_ms = 2000;   /* long enough to tell a hang-up noticed at once from one noticed by a ping */
    o.threads = 2;
    char *k = NULL;
    if (server_start(&srv, &o, &k, err) || !k) {
        fprintf(stderr, "server_start: %s\n", err);
        return 1;
    }
    snprintf(key, sizeof key, "%s", k);
    free(k);
    RUN(test_streams_fanout_in_order);
    RUN(test_client_gone_is_dropped);
    RUN(test_stop_with_streams_open);
    if (srv) server_stop(srv);
    fs_rm_rf(datadir, err);
    return test_summary();
}
