/* bench_serve.c: `tunery bench serve`, the HTTP server's own figures, one
 * JSON line each: requests/s and latency of an authenticated JSON endpoint
 * over keep-alive connections, upload throughput of a multipart file
 * (parsed, written, fsync'd, validated), and the idle server's resident
 * memory. The server runs in this process on a free loopback port with a
 * throw-away data directory and no scheduler.
 */
#define TUNERY_SERVER_INTERNAL
#include "cmds.h"
#include "server/server.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *url;
    const char *auth;
    int n;
    double *lat;     /* n latencies, seconds */
    int failures;
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
    for (int i = 0; i < w->n; i++) {
        double t0 = time_mono();
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK || (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 200)) w->failures++;
        w->lat[i] = time_mono() - t0;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* POST the file at path as purpose; one JSON line. */
static void bench_upload(const char *url, const char *auth, const char *path, size_t bytes,
                         const char *purpose, const char *note)
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
    printf("{\"bench\":\"serve\",\"figure\":\"upload\",\"endpoint\":\"POST /v1/files\",\"purpose\":\"%s\",\"bytes\":%zu,"
           "\"status\":%ld,\"seconds\":%.3f,\"mb_per_s\":%.1f,\"note\":\"%s\"}\n",
           purpose, bytes, cc == CURLE_OK ? code : -1L, secs, bytes / secs / 1e6, note);
    curl_slist_free_all(h);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

int cmd_bench_serve(int argc, char **argv)
{
    int requests = 4000, threads = 2, upload_mb = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: tunery bench serve [--requests N] [--threads T] [--upload-mb M]\n"
                   "  JSON lines: GET /v1/models requests/s and latency over T keep-alive clients,\n"
                   "  POST /v1/files throughput for an M MiB fine-tune file, idle server RSS.\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tunery bench serve: '%s' needs a value; see --help\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--requests")) requests = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--upload-mb")) upload_mb = atoi(argv[++i]);
        else {
            fprintf(stderr, "tunery bench serve: unknown option '%s'; see --help\n", argv[i]);
            return 2;
        }
    }
    if (requests < threads || threads < 1 || threads > 64 || upload_mb < 1) {
        fprintf(stderr, "tunery bench serve: need 1 <= threads <= 64, requests >= threads, upload-mb >= 1\n");
        return 2;
    }
    char dir[] = "/tmp/tunery-bench-serve-XXXXXX", err[CORE_ERR_LEN];
    if (!mkdtemp(dir)) {
        fprintf(stderr, "tunery bench serve: cannot make a temp directory\n");
        return 1;
    }
    server_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.data_dir = dir;
    o.no_scheduler = 1;
    server_t *s;
    char *key = NULL;
    if (server_start(&s, &o, &key, err)) {
        fprintf(stderr, "tunery bench serve: %s\n", err);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char auth[128], url[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    long idle = rss_kib();

    /* 1. requests/s */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/models", server_port(s));
    worker_t *w = calloc((size_t)threads, sizeof *w);
    double *lat = calloc((size_t)requests, sizeof *lat);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int per = requests / threads, failures = 0;
    double t0 = time_mono();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){url, auth, per, lat + (size_t)i * per, 0};
        pthread_create(&th[i], NULL, bench_worker, &w[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    double secs = time_mono() - t0;
    int done = per * threads;
    qsort(lat, (size_t)done, sizeof *lat, cmp_double);
    printf("{\"bench\":\"serve\",\"figure\":\"requests\",\"endpoint\":\"GET /v1/models\",\"clients\":%d,\"requests\":%d,"
           "\"failures\":%d,\"seconds\":%.3f,\"requests_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
           threads, done, failures, secs, done / secs, lat[done / 2] * 1e3, lat[(size_t)(done * 0.99)] * 1e3);

    /* 2. upload throughput: a valid fine-tune file of upload_mb MiB */
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/upload.jsonl", dir);
    FILE *f = fopen(path, "w");
    size_t bytes = 0;
    while (f && bytes < (size_t)upload_mb << 20)
        bytes += (size_t)fprintf(f, "{\"prompt\":\"The colour %zu is ->\",\"completion\":\" warm and bright %zu\\n\"}\n", bytes, bytes);
    if (f) fclose(f);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/files", server_port(s));
    bench_upload(url, auth, path, bytes, "batch", "stream to a blob, fsync, rename");
    bench_upload(url, auth, path, bytes, "fine-tune", "the same plus JSONL validation and r50k token count");

    printf("{\"bench\":\"serve\",\"figure\":\"memory\",\"idle_rss_kib\":%ld,\"after_bench_rss_kib\":%ld,"
           "\"note\":\"this process also holds the benchmark's curl clients\"}\n", idle, rss_kib());
    server_stop(s);
    curl_global_cleanup();
    free(w);
    free(lat);
    free(th);
    free(key);
    fs_rm_rf(dir, err);
    return failures ? 1 : 0;
}
