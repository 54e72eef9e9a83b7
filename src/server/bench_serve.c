/* bench_serve.c: `tunery bench serve`, the HTTP server's own figures, one
 * JSON line each, every line naming the CPU:
 *   requests  GET /v1/models and GET /v1/fine-tunes/{id}: requests/s, p50
 *             and p99 latency over C keep-alive clients;
 *   disk      write + fsync of M MB into the data directory (the ceiling);
 *   upload    POST /v1/files of the same M MB, and its ratio to disk;
 *   streams   S event streams held open on one job, then events written
 *             with store_event_add, as a worker does: the time until EVERY
 *             stream has each one (max and p99), ok when all within 100 ms;
 *   memory    resident memory and threads of the idle server.
 * The server runs in this process on a free loopback port with a throw-away
 * data directory and no scheduler (the job row is made through the store),
 * so its threads and memory include the benchmark's own clients: the lines
 * say so. Every phase is bounded in count and in time.
 */
#define TUNERY_SERVER_INTERNAL
#include "cmds.h"
#include "server/server.h"
#include "nn/nn.h"
#include "store/store.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    const char *url;
    const char *auth;
    int n;
    double deadline;
    double *lat;     /* n latencies, seconds */
    int done, failures;
} worker_t;

static size_t sink(char *p, size_t sz, size_t n, void *u) { return sz * n; }

static void *bench_worker(void *arg)
{
    worker_t *w = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, w->auth);
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (int i = 0; i < w->n && time_mono() < w->deadline; i++) {
        double t0 = time_mono();
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK || (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 200)) w->failures++;
        w->lat[w->done++] = time_mono() - t0;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long proc_status(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) v = atol(line + n);
    if (f) fclose(f);
    return v;
}

/* The CPU as the other benches name it (nn_cpu_describe, without the
 * kernel choice), and how many cores this machine has. */
static const char *cpu_name(void)
{
    static char name[200];
    if (name[0]) return name;
    const char *d = nn_cpu_describe();
    int n = (int)strcspn(d, ";\"\\");
    snprintf(name, sizeof name, "%.*s, %ld CPUs", n, d, sysconf(_SC_NPROCESSORS_ONLN));
    return name;
}

/* User + system CPU time of this process so far. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* C clients, n requests in all, within seconds: one JSON line. */
static int bench_requests(const char *what, const char *url, const char *auth, int clients, int n, double seconds)
{
    worker_t *w = calloc((size_t)clients, sizeof *w);
    double *lat = calloc((size_t)n, sizeof *lat);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    if (!w || !lat || !th) {
        free(w);
        free(lat);
        free(th);
        return -1;
    }
    int per = n / clients, failures = 0, done = 0;
    double c0 = cpu_seconds(), t0 = time_mono();
    for (int i = 0; i < clients; i++) {
        w[i] = (worker_t){url, auth, per, t0 + seconds, lat + (size_t)i * per, 0, 0};
        pthread_create(&th[i], NULL, bench_worker, &w[i]);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double secs = time_mono() - t0, cpu = cpu_seconds() - c0;
    for (int i = 0; i < clients; i++) {   /* gather the latencies to the front */
        memmove(lat + done, w[i].lat, (size_t)w[i].done * sizeof *lat);
        done += w[i].done;
        failures += w[i].failures;
    }
    qsort(lat, (size_t)done, sizeof *lat, cmp_double);
    printf("{\"bench\":\"serve\",\"figure\":\"requests\",\"endpoint\":\"%s\",\"clients\":%d,\"keep_alive\":true,\"requests\":%d,"
           "\"failures\":%d,\"seconds\":%.3f,\"requests_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"target_per_s\":10000,"
           "\"cpu_us_per_request\":%.1f,\"cpu\":\"%s\",\"note\":\"clients run in the server's process, on the same cores; "
           "cpu_us_per_request is the process's CPU time (server and clients) per request, the figure a shared machine does not skew\"}\n",
           what, clients, done, failures, secs, done ? done / secs : 0, done ? lat[done / 2] * 1e3 : 0,
           done ? lat[(size_t)(done * 0.99)] * 1e3 : 0, done ? cpu / done * 1e6 : 0, cpu_name());
    fflush(stdout);
    free(w);
    free(lat);
    free(th);
    return failures;
}

/* write + fsync of bytes into dir: the disk's own speed, MB/s (0 on failure). */
static double bench_disk(const char *dir, size_t bytes)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/disk-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    size_t block = 1 << 20;
    char *buf = malloc(block);
    if (!buf) {
        close(fd);
        return 0;
    }
    memset(buf, 'x', block);
    double t0 = time_mono();
    size_t done = 0;
    while (done < bytes && fs_write_full(fd, buf, block) == 0) done += block;
    int ok = done >= bytes && fsync(fd) == 0;
    double secs = time_mono() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return ok ? done / secs / 1e6 : 0;
}

/* POST the file at path as purpose: MB/s, 0 unless the answer was 200. */
static double bench_upload(const char *url, const char *auth, const char *path, size_t bytes, const char *purpose)
{
    CURL *c = curl_easy_init();
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "purpose");
    curl_mime_data(part, purpose, CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filedata(part, path);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    double t0 = time_mono();
    long code = 0;
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    double secs = time_mono() - t0;
    curl_slist_free_all(h);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    return cc == CURLE_OK && code == 200 ? bytes / secs / 1e6 : 0;
}

static double median3(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Disk and upload alternated `rounds` times (a shared machine's disk speed
 * moves by 4x within seconds): two lines with medians and every sample. */
static int bench_upload_vs_disk(const char *dir, const char *url, const char *auth, int upload_mb, int rounds)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/upload.jsonl", dir);
    FILE *uf = fopen(path, "w");
    size_t bytes = 0;
    while (uf && bytes < (size_t)upload_mb << 20)
        bytes += (size_t)fprintf(uf, "{\"prompt\":\"The colour %zu is ->\",\"completion\":\" warm and bright %zu\\n\"}\n", bytes, bytes);
    if (uf) fclose(uf);
    double disk[16], up[16];
    char ds[256] = "", us[256] = "";
    int failures = 0;
    for (int i = 0; i < rounds; i++) {
        disk[i] = bench_disk(dir, (size_t)upload_mb << 20);
        up[i] = bench_upload(url, auth, path, bytes, "batch");
        failures += up[i] == 0;
        snprintf(ds + strlen(ds), sizeof ds - strlen(ds), "%s%.1f", i ? "," : "", disk[i]);
        snprintf(us + strlen(us), sizeof us - strlen(us), "%s%.1f", i ? "," : "", up[i]);
    }
    unlink(path);
    double d = median3(disk, rounds), u = median3(up, rounds);
    printf("{\"bench\":\"serve\",\"figure\":\"disk\",\"what\":\"write+fsync into the data directory\",\"bytes\":%zu,"
           "\"mb_per_s\":%.1f,\"samples\":[%s],\"cpu\":\"%s\",\"note\":\"median of %d, alternated with the uploads\"}\n",
           (size_t)upload_mb << 20, d, ds, cpu_name(), rounds);
    printf("{\"bench\":\"serve\",\"figure\":\"upload\",\"endpoint\":\"POST /v1/files\",\"purpose\":\"batch\",\"bytes\":%zu,"
           "\"failures\":%d,\"mb_per_s\":%.1f,\"samples\":[%s],\"of_disk\":%.2f,\"target_of_disk\":0.5,\"cpu\":\"%s\","
           "\"note\":\"median of %d; multipart parsed and streamed to a blob, fsync, rename, row\"}\n",
           bytes, failures, u, us, d > 0 ? u / d : 0, cpu_name(), rounds);
    fflush(stdout);
    return failures;
}

/* A queued job row made through the store (no scheduler runs here). */
static int bench_job(const char *dir, char id[STORE_ID_LEN], char *err)
{
    store_t *st = NULL;
    store_org_t org;
    store_file_t f;
    store_job_t j;
    memset(&j, 0, sizeof j);
    const char line[] = "{\"prompt\":\"a ->\",\"completion\":\" b\\n\"}\n";
    int rc = store_open(dir, &st, err) || store_org_get(st, "personal", &org, err) ||
             store_file_put(st, org.id, "bench.jsonl", "fine-tune", line, sizeof line - 1, &f, err);
    if (!rc) {
        snprintf(j.org_id, sizeof j.org_id, "%s", org.id);
        snprintf(j.model, sizeof j.model, "curie");
        snprintf(j.training_file, sizeof j.training_file, "%s", f.id);
        snprintf(j.status, sizeof j.status, "queued");
        j.prompt_loss_weight = -1;
        j.queue_number = -1;
        rc = store_job_create(st, &j, err) != 0;
        if (!rc) memcpy(id, j.id, STORE_ID_LEN);
        store_job_clear(&j);
    }
    if (st) store_close(st);
    return rc ? -1 : 0;
}

/* ---- event streams: raw non-blocking sockets on one epoll ---- */
typedef struct {
    int fd;
    int sent;         /* request written */
    int seen;         /* how many markers this stream has received */
    char tail[256];   /* the last bytes, so a marker split across reads is found */
    size_t tail_len;
} stream_t;

/* Read what is there; count markers "bench-mark-K" in order. -1 on EOF. */
static int stream_read(stream_t *s, int want, const char *prefix)
{
    char buf[16384 + sizeof s->tail];
    for (;;) {
        memcpy(buf, s->tail, s->tail_len);
        ssize_t n = read(s->fd, buf + s->tail_len, 16384);
        if (n == 0) return -1;
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        size_t len = s->tail_len + (size_t)n;
        buf[len] = 0;
        char want_s[64];
        for (;;) {   /* markers arrive in order: look for the next one */
            if (s->seen >= want) break;
            snprintf(want_s, sizeof want_s, "%s%d\"", prefix, s->seen);
            if (!memmem(buf, len, want_s, strlen(want_s))) break;
            s->seen++;
        }
        size_t keep = len < sizeof s->tail ? len : sizeof s->tail;
        memcpy(s->tail, buf + len - keep, keep);
        s->tail_len = keep;
    }
}

/* Wait until every open stream has `want` markers or the deadline passes;
 * arrival[i] gets the time stream i saw its last one. Returns how many did. */
static int streams_wait(int ep, stream_t *ss, int n, int want, const char *prefix, double deadline, double *arrival)
{
    int have = 0;
    for (int i = 0; i < n; i++) have += ss[i].fd >= 0 && ss[i].seen >= want;
    struct epoll_event evs[256];
    while (have < n && time_mono() < deadline) {
        int k = epoll_wait(ep, evs, 256, 50);
        double now = time_mono();
        for (int e = 0; e < k; e++) {
            stream_t *s = &ss[evs[e].data.u32];
            if (s->fd < 0) continue;
            if (!s->sent && (evs[e].events & EPOLLOUT)) continue;   /* written at connect */
            int before = s->seen;
            if (stream_read(s, want, prefix) < 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                close(s->fd);
                s->fd = -1;
                continue;
            }
            if (before < want && s->seen >= want) {
                have++;
                if (arrival) arrival[evs[e].data.u32] = now;
            }
        }
    }
    return have;
}

#define DURING_MAX 50   /* events written while the upload runs, at most (5 s) */

typedef struct {
    const char *url, *auth, *path;
    size_t bytes;
    double mbs, t_end;
    int done;
} bg_upload_t;

static void *bg_upload_main(void *arg)
{
    bg_upload_t *u = arg;
    u->mbs = bench_upload(u->url, u->auth, u->path, u->bytes, "fine-tune");
    u->t_end = time_mono();
    __atomic_store_n(&u->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A fine-tune file of about mb MB (valid lines, so it is tokenized). */
static size_t write_jsonl(const char *path, int mb)
{
    FILE *uf = fopen(path, "w");
    size_t bytes = 0;
    while (uf && bytes < (size_t)mb << 20)
        bytes += (size_t)fprintf(uf, "{\"prompt\":\"The colour %zu is ->\",\"completion\":\" warm and bright %zu\\n\"}\n", bytes, bytes);
    if (uf) fclose(uf);
    return bytes;
}

static void bench_streams(server_t *srv, const char *key, int n, int events, const char *auth, int upload_mb)
{
    char err[CORE_ERR_LEN], job[STORE_ID_LEN];
    store_t *st = NULL;
    if (bench_job(srv->data_dir, job, err) || store_open(srv->data_dir, &st, err) ||
        store_event_add(st, job, NULL, NULL, "bench-mark-0", NULL, NULL, err)) {
        fprintf(stderr, "tunery bench serve: streams: %s\n", err);
        if (st) store_close(st);
        return;
    }
    long threads_before = proc_status("Threads:");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    stream_t *ss = calloc((size_t)n, sizeof *ss);
    double *arrival = calloc((size_t)n, sizeof *arrival), *lat = calloc((size_t)n * (size_t)(events + DURING_MAX), sizeof *lat);
    char req[512];
    int rl = snprintf(req, sizeof req, "GET /v1/fine-tunes/%s/events?stream=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Authorization: Bearer %s\r\n\r\n", job, key);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int opened = 0;
    double t_open = time_mono();
    for (int i = 0; i < n && ss && arrival && lat && ep >= 0; i++) {
        ss[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (ss[i].fd < 0) {
            fprintf(stderr, "tunery bench serve: stream %d: socket: %s (open files limit?)\n", i, strerror(errno));
            for (int k = i; k < n; k++) ss[k].fd = -1;
            break;
        }
        /* blocking connect and write on loopback are immediate; then reads never block */
        if (connect(ss[i].fd, (struct sockaddr *)&sa, sizeof sa) || write(ss[i].fd, req, (size_t)rl) != rl) {
            close(ss[i].fd);
            ss[i].fd = -1;
            continue;
        }
        fcntl(ss[i].fd, F_SETFL, O_NONBLOCK);
        ss[i].sent = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, ss[i].fd, &ev);
        opened++;
    }
    /* every stream has its replay (marker 0) before the clock starts */
    int held = streams_wait(ep, ss, n, 1, "bench-mark-", time_mono() + 60, NULL);
    double open_s = time_mono() - t_open;
    long threads_held = proc_status("Threads:");
    int ok_events = 0, all = 0;
    double worst = 0;
    for (int e = 1; e <= events && held == n; e++) {
        char msg[64];
        snprintf(msg, sizeof msg, "bench-mark-%d", e);
        usleep(50 * 1000);   /* quiet in between, as events come from training */
        double t0 = time_mono();
        if (store_event_add(st, job, NULL, NULL, msg, NULL, NULL, err)) break;
        int got = streams_wait(ep, ss, n, e + 1, "bench-mark-", t0 + 5, arrival);
        for (int i = 0; i < n; i++)
            if (ss[i].fd >= 0 && ss[i].seen >= e + 1) lat[all++] = arrival[i] - t0;
        if (got == n) ok_events++;
    }
    int total = all;
    qsort(lat, (size_t)all, sizeof *lat, cmp_double);
    if (all) worst = lat[all - 1];
    int ok = held == n && ok_events == events && worst <= 0.1;
    printf("{\"bench\":\"serve\",\"figure\":\"streams\",\"endpoint\":\"GET /v1/fine-tunes/{id}/events?stream=true\",\"streams\":%d,"
           "\"opened\":%d,\"held\":%d,\"open_seconds\":%.2f,\"events\":%d,\"events_reaching_all\":%d,\"deliveries\":%d,"
           "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"within_100ms\":%s,\"threads_before\":%ld,\"threads_held\":%ld,"
           "\"followers_in_hub\":%ld,\"rss_kib\":%ld,\"cpu\":\"%s\",\"note\":\"latency from store_event_add to the event's bytes at EVERY "
           "client; threads and RSS of this process (server + one client thread)\"}\n",
           n, opened, held, open_s, events, ok_events, all, all ? lat[all / 2] * 1e3 : 0, all ? lat[(size_t)(all * 0.99)] * 1e3 : 0,
           worst * 1e3, ok ? "true" : "false", threads_before, threads_held, hub_followers(srv->hub), proc_status("VmRSS:"),
           cpu_name());
    fflush(stdout);

    /* the same while a fine-tune upload is received, validated and token-
     * counted: that work must not stall the event loops the streams live on */
    if (upload_mb > 0 && held == n) {
        char path[4200], url[128];
        snprintf(path, sizeof path, "%s/during.jsonl", srv->data_dir);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/files", server_port(srv));
        bg_upload_t u = {url, auth, path, write_jsonl(path, upload_mb), 0, 0, 0};
        pthread_t th;
        int during = 0, reached = 0;
        all = 0;
        double t_start = time_mono();
        if (pthread_create(&th, NULL, bg_upload_main, &u) == 0) {
            for (int e = events + 1;; e++) {
                char msg[64];
                snprintf(msg, sizeof msg, "bench-mark-%d", e);
                usleep(100 * 1000);
                double t0 = time_mono();
                if (store_event_add(st, job, NULL, NULL, msg, NULL, NULL, err)) break;
                int got = streams_wait(ep, ss, n, e + 1, "bench-mark-", t0 + 5, arrival);
                for (int i = 0; i < n; i++)
                    if (ss[i].fd >= 0 && ss[i].seen >= e + 1) lat[all++] = arrival[i] - t0;
                during++;
                reached += got == n;
                if (__atomic_load_n(&u.done, __ATOMIC_ACQUIRE) || during == DURING_MAX) break;
            }
            pthread_join(th, NULL);
        }
        unlink(path);
        qsort(lat, (size_t)all, sizeof *lat, cmp_double);
        printf("{\"bench\":\"serve\",\"figure\":\"streams_during_upload\",\"streams\":%d,\"upload_bytes\":%zu,\"upload_seconds\":%.2f,"
               "\"upload_mb_per_s\":%.1f,\"events\":%d,\"events_reaching_all\":%d,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"within_100ms\":%s,"
               "\"cpu\":\"%s\",\"note\":\"events written every 100 ms while a fine-tune file is uploaded, validated and token-counted\"}\n",
               n, u.bytes, u.t_end > 0 ? u.t_end - t_start : 0, u.mbs, during, reached, all ? lat[(size_t)(all * 0.99)] * 1e3 : 0,
               all ? lat[all - 1] * 1e3 : 0, all && reached == during && lat[all - 1] <= 0.1 ? "true" : "false", cpu_name());
        fflush(stdout);
    }
    (void)total;
    for (int i = 0; ss && i < n; i++)
        if (ss[i].fd >= 0) close(ss[i].fd);
    if (ep >= 0) close(ep);
    free(ss);
    free(arrival);
    free(lat);
    store_close(st);
}

static void usage(void)
{
    printf("usage: tunery bench serve [--requests N] [--clients C] [--seconds S] [--upload-mb M] [--rounds R]\n"
           "                          [--streams K] [--events E]\n"
           "  Runs a server in this process on a free loopback port with a temporary data directory and prints\n"
           "  one JSON line per figure:\n"
           "  --requests N   requests per GET endpoint (default 20000), over C keep-alive clients (default 4),\n"
           "                 each endpoint stopped after S seconds (default 10)\n"
           "  --upload-mb M  size of the upload and of the raw disk write it is compared with (default 200;\n"
           "                 0 skips them), alternated R times (default 3), medians reported\n"
           "  --streams K    event streams held open on one job (default 1000), then E events written\n"
           "                 (default 5); each must reach every stream within 100 ms\n");
}

int cmd_bench_serve(int argc, char **argv)
{
    int requests = 20000, clients = 4, upload_mb = 200, streams = 1000, events = 5, rounds = 3;
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tunery bench serve: '%s' needs a value; see --help\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(argv[i - 1], "--requests")) requests = atoi(v);
        else if (!strcmp(argv[i - 1], "--clients") || !strcmp(argv[i - 1], "--threads")) clients = atoi(v);
        else if (!strcmp(argv[i - 1], "--seconds")) seconds = atof(v);
        else if (!strcmp(argv[i - 1], "--upload-mb")) upload_mb = atoi(v);
        else if (!strcmp(argv[i - 1], "--streams")) streams = atoi(v);
        else if (!strcmp(argv[i - 1], "--events")) events = atoi(v);
        else if (!strcmp(argv[i - 1], "--rounds")) rounds = atoi(v);
        else {
            fprintf(stderr, "tunery bench serve: unknown option '%s'; see --help\n", argv[i - 1]);
            return 2;
        }
    }
    if (clients < 1 || clients > 64 || requests < clients || requests > 10000000 || seconds <= 0 || seconds > 600 ||
        upload_mb < 0 || upload_mb > 4096 || streams < 0 || streams > 100000 || events < 1 || events > 100 ||
        rounds < 1 || rounds > 15) {
        fprintf(stderr, "tunery bench serve: need 1 <= clients <= 64, clients <= requests <= 10000000, 0 < seconds <= 600, "
                        "0 <= upload-mb <= 4096, 0 <= streams <= 100000, 1 <= events <= 100, 1 <= rounds <= 15\n");
        return 2;
    }
    /* each stream is two descriptors here (client and server side) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)streams * 2 + 64 > rl.rlim_cur) {
        fprintf(stderr, "tunery bench serve: %d streams need %d open files; the limit is %llu (raise it with ulimit -n, or pass fewer --streams)\n",
                streams, streams * 2 + 64, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    char dir[] = "/tmp/tunery-bench-serve-XXXXXX", err[CORE_ERR_LEN];
    if (!mkdtemp(dir)) {
        fprintf(stderr, "tunery bench serve: cannot make a temp directory in /tmp\n");
        return 1;
    }
    server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.data_dir = dir;
    o.no_scheduler = 1;
    o.upload_limit = ((uint64_t)upload_mb + 16) << 20;
    server_t *s;
    char *key = NULL;
    if (server_start(&s, &o, &key, err)) {
        fprintf(stderr, "tunery bench serve: %s\n", err);
        fs_rm_rf(dir, err);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long idle_rss = proc_status("VmRSS:"), idle_threads = proc_status("Threads:");
    printf("{\"bench\":\"serve\",\"figure\":\"memory\",\"idle_rss_kib\":%ld,\"idle_threads\":%ld,\"http_threads\":%d,"
           "\"compute_threads\":%d,\"target_rss_kib\":51200,\"cpu\":\"%s\",\"note\":\"the idle server in this process, "
           "before any client ran\"}\n", idle_rss, idle_threads, s->opts.threads, s->opts.compute_threads, cpu_name());
    fflush(stdout);
    char auth[128], url[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    int failures = 0;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models", server_port(s));
    failures += bench_requests("GET /v1/models", url, auth, clients, requests, seconds);

    char job[STORE_ID_LEN];
    if (bench_job(dir, job, err)) {
        fprintf(stderr, "tunery bench serve: %s\n", err);
        failures++;
    } else {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/fine-tunes/%s", server_port(s), job);
        failures += bench_requests("GET /v1/fine-tunes/{id}", url, auth, clients, requests, seconds);
    }

    if (upload_mb > 0) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/files", server_port(s));
        failures += bench_upload_vs_disk(dir, url, auth, upload_mb, rounds);
    }
    if (streams > 0) bench_streams(s, key ? key : "", streams, events, auth, upload_mb < 64 ? upload_mb : 64);

    server_stop(s);
    curl_global_cleanup();
    free(key);
    fs_rm_rf(dir, err);
    return failures ? 1 : 0;
}
