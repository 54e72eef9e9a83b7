/* sse.c: GET /v1/fine-tunes/{id}/events?stream=true as server-sent events.
 *
 * A follower first gets every past event (that is how `fine_tunes.follow`
 * resumes after a disconnect or a server restart), then new ones as the
 * worker writes them, woken by the store's event watch (inotify) rather than
 * by polling. While nothing happens it sends ": ping" comments so the Python
 * client's 600 s read timeout never fires, and it sends "data: [DONE]" only
 * once the job is terminal and its final event has gone out.
 *
 * The reader runs on the connection's own thread and may block there.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    server_t *srv;
    char org_id[64];
    char job_id[STORE_ID_LEN];
    int64_t last_seq;
    buf_t out;
    size_t out_pos;
    int watch_fd;
    int done;                 /* [DONE] queued */
    double next_ping;
    double terminal_since;    /* when the job was first seen terminal (0 = not yet) */
} sse_t;

static int is_final_message(const char *m)
{
    return !strcmp(m, "Fine-tune succeeded") || !strcmp(m, "Fine-tune failed") || !strcmp(m, "Fine-tune cancelled");
}

/* Append new events to s->out. Returns the number appended, -1 on error;
 * *saw_final says whether one of them was a terminal message. */
static int sse_fetch(sse_t *s, store_t *st, int *saw_final)
{
    store_event_t *es = NULL;
    int n = 0;
    char err[CORE_ERR_LEN];
    if (store_event_since(st, s->org_id, s->job_id, s->last_seq, 200, &es, &n, err)) return -1;
    int added = 0;
    for (int i = 0; i < n; i++) {
        s->last_seq = es[i].seq;
        if (!fine_tunes_event_visible(&es[i])) continue;
        json_t *j = fine_tunes_event_json(&es[i]);
        char *t = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (t) {
            buf_printf(&s->out, "data: %s\n\n", t);
            free(t);
        }
        if (is_final_message(es[i].message)) *saw_final = 1;
        added++;
    }
    free(es);
    return added;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse_t *s = cls;
    char err[CORE_ERR_LEN];
    for (;;) {
        if (s->out_pos < s->out.len) {
            size_t n = s->out.len - s->out_pos;
            if (n > max) n = max;
            memcpy(buf, s->out.data + s->out_pos, n);
            s->out_pos += n;
            if (s->out_pos == s->out.len) s->out.len = s->out_pos = 0;
            return (ssize_t)n;
        }
        if (s->done || s->srv->stopping) return -1;
        store_t *st = server_thread_store(s->srv, err);
        if (!st) return -1;
        /* status first, then events: a terminal status read here means its
         * final event is either in this fetch or about to be written */
        store_job_t j;
        int rc = store_job_get(st, s->org_id, s->job_id, &j, err);
        if (rc) return -1;   /* deleted meanwhile: end the stream */
        int terminal = store_job_is_terminal(j.status);
        store_job_clear(&j);
        int saw_final = 0;
        int added = sse_fetch(s, st, &saw_final);
        if (added < 0) return -1;
        double now = time_mono();
        if (terminal) {
            if (!s->terminal_since) s->terminal_since = now;
            /* the final message may land just after the status: wait for it briefly */
            if (saw_final || now - s->terminal_since > 2.0) {
                if (!saw_final && sse_fetch(s, st, &saw_final) < 0) return -1;
                buf_appends(&s->out, "data: [DONE]\n\n");
                s->done = 1;
                continue;
            }
        }
        if (added) continue;
        if (now >= s->next_ping) {
            buf_appends(&s->out, ": ping\n\n");
            s->next_ping = now + s->srv->opts.ping_ms / 1000.0;
            continue;
        }
        int wait_ms = (int)((s->next_ping - now) * 1000) + 1;
        if (wait_ms > 1000) wait_ms = 1000;       /* notice a server stop */
        if (terminal && wait_ms > 100) wait_ms = 100;
        if (s->watch_fd >= 0) {
            struct pollfd p = {s->watch_fd, POLLIN, 0};
            if (poll(&p, 1, wait_ms) > 0) store_event_watch_drain(s->watch_fd);
        } else {
            usleep((useconds_t)(wait_ms < 250 ? wait_ms : 250) * 1000);
        }
    }
}

static void sse_done(void *cls)
{
    sse_t *s = cls;
    if (s->watch_fd >= 0) close(s->watch_fd);
    buf_free(&s->out);
    free(s);
}

int sse_events_start(req_t *r)
{
    sse_t *s = calloc(1, sizeof *s);
    if (!s) return HTTP_500(r, "Out of memory.");
    s->srv = r->srv;
    snprintf(s->org_id, sizeof s->org_id, "%s", r->org_id);
    snprintf(s->job_id, sizeof s->job_id, "%s", r->params[0]);
    char err[CORE_ERR_LEN];
    store_t *st = server_store(r);
    s->watch_fd = st ? store_event_watch(st, err) : -1;
    s->next_ping = time_mono() + r->srv->opts.ping_ms / 1000.0;
    return http_reply_stream(r, "text/event-stream", sse_read, s, sse_done);
}
