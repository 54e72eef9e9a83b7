/* cmd_serve.c: `tunery serve`, the API server and its scheduler in one
 * process. Prints one line when ready (the URL, and the initial key when
 * the store was just created) and serves until SIGINT or SIGTERM, which
 * only the main thread takes (core_signals_wait; see core/signals.c).
 */
#define TUNERY_SERVER_INTERNAL
#include "cmds.h"
#include "server/server.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tunery serve [--listen HOST:PORT] [--data DIR] [--max-concurrent-jobs N]\n"
            "                    [--upload-limit BYTES] [--ping-interval MS] [--model-cache BYTES]\n"
            "                    [--threads N] [--compute-threads N]\n"
            "  --listen HOST:PORT        address to serve on (default 127.0.0.1:8080; port 0 picks a free one)\n"
            "  --data DIR                data directory (default $TUNERY_DATA or ./tunery-data)\n"
            "  --max-concurrent-jobs N   fine-tunes trained at once (default 1); each job is a worker process\n"
            "                            run with OMP_WAIT_POLICY=PASSIVE unless you set it (docs/finetune.md)\n"
            "  --upload-limit BYTES      largest request body, e.g. 1073741824 or 1G (default 1G)\n"
            "  --ping-interval MS        keep-alive comment interval of event streams (default 15000)\n"
            "  --model-cache BYTES       memory for loaded models, least recently used out (default 2G)\n"
            "  --threads N               HTTP event-loop threads (default: the number of CPUs, at least 2);\n"
            "                            event streams and waiting requests hold no thread\n"
            "  --compute-threads N       completions generated at once, each using every core (default 1)\n"
            "Environment: TUNERY_MATMUL=bf16 trains with bf16 matrix products on CPUs with AVX512_BF16\n"
            "  or AMX, 2-3x faster than the fp32 default, and runs completions' prompts in bf16 (decoding\n"
            "  stays fp32: it is bound by reading the weights) (docs/finetune.md, \"Precision\").\n"
            "Clients: OPENAI_API_BASE=http://HOST:PORT/v1 and OPENAI_API_KEY=<a key from `tunery keys create`>.\n");
}

/* "1073741824", "512M", "1G", "64k" */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    server_opts_t o;
    memset(&o, 0, sizeof o);
    static char host[256] = "127.0.0.1";
    o.host = host;
    o.port = 8080;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tunery serve: unknown option or missing value '%s'; see tunery serve --help\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--listen")) {
            const char *colon = strrchr(v, ':');
            char *end;
            long port = colon ? strtol(colon + 1, &end, 10) : -1;
            if (!colon || colon == v || *end || port < 0 || port > 65535 || (size_t)(colon - v) >= sizeof host) {
                fprintf(stderr, "tunery serve: --listen wants HOST:PORT such as 127.0.0.1:8080, got '%s'\n", v);
                return 2;
            }
            memcpy(host, v, (size_t)(colon - v));
            host[colon - v] = 0;
            o.port = (int)port;
        } else if (!strcmp(a, "--data")) {
            o.data_dir = v;
        } else if (!strcmp(a, "--max-concurrent-jobs")) {
            o.max_concurrent_jobs = atoi(v);
            if (o.max_concurrent_jobs < 1) {
                fprintf(stderr, "tunery serve: --max-concurrent-jobs must be at least 1, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--upload-limit") || !strcmp(a, "--model-cache")) {
            uint64_t x;
            if (parse_size(v, &x) || x == 0) {
                fprintf(stderr, "tunery serve: %s wants a byte count such as 1073741824 or 1G, got '%s'\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--upload-limit")) o.upload_limit = x;
            else o.model_cache_bytes = (size_t)x;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "--compute-threads")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (end == v || *end || n < 1 || n > 256) {
                fprintf(stderr, "tunery serve: %s wants a thread count from 1 to 256, got '%s'\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--threads")) o.threads = (int)n;
            else o.compute_threads = (int)n;
        } else if (!strcmp(a, "--ping-interval")) {
            o.ping_ms = atoi(v);
            if (o.ping_ms < 10) {
                fprintf(stderr, "tunery serve: --ping-interval is in milliseconds and at least 10, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "tunery serve: unknown option '%s'; see tunery serve --help\n", a);
            return 2;
        }
    }
    /* each event follower holds a socket: take every file descriptor the
     * hard limit allows */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    /* before any thread starts: no thread of the server (completions run
     * oneDNN products) takes SIGINT/SIGTERM; this one waits for them below */
    core_signals_block();

    /* model names resolve against this data directory (core_model_dir),
     * here and in the workers the scheduler starts */
    if (o.data_dir) setenv("TUNERY_DATA", o.data_dir, 1);
    server_t *s;
    char *key = NULL, err[CORE_ERR_LEN];
    if (server_start(&s, &o, &key, err)) {
        fprintf(stderr, "tunery serve: %s\n", err);
        return 1;
    }
    if (key) printf("tunery: serving http://%s:%d/v1 (data %s); initial API key: %s\n", host, server_port(s), s->data_dir, key);
    else printf("tunery: serving http://%s:%d/v1 (data %s)\n", host, server_port(s), s->data_dir);
    fflush(stdout);
    free(key);
    core_signals_wait();
    server_stop(s);
    return 0;
}
