/* sse.c: GET /v1/fine-tunes/{id}/events?stream=true as server-sent events.
 *
 * A follower first gets every past event (that is how `fine_tunes.follow`
 * resumes after a disconnect or a server restart), then new ones as the
 * worker writes them. While nothing happens it gets ": ping" comments so the
 * Python client's 600 s read timeout never fires, and "data: [DONE]" only
 * once the job is terminal and its final event has gone out.
 *
 * No thread waits here: the reply is a pushed stream (http.c) whose
 * connection sleeps suspended, and the event hub (notify.c) writes to it,
 * woken by the store's event watch rather than by polling.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"

int sse_events_start(req_t *r)
{
    http_push_t *p = http_reply_push(r, "text/event-stream");
    if (!p) return -1;
    char err[CORE_ERR_LEN];
    if (!r->srv->hub || hub_follow(r->srv->hub, r->org_id, r->params[0], p, err)) {
        http_push_end(p);   /* shutting down: the stream ends at once */
        http_push_release(p);
    }
    return 0;
}
