/* store_events_hub.c: the one query of the server's event hub: every event
 * of every job written after a sequence number. One query per wake of the
 * event watch, whatever the number of jobs being followed (the hub then hands
 * each event to the followers of its job). Org checks were made when each
 * follower was admitted, so this query has none.
 */
#include "store/store_int.h"
#include <stdlib.h>

int store_event_after(store_t *s, int64_t since_seq, int max, store_event_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT seq, id, job_id, created_at, level, type, message, data FROM events "
                      "WHERE seq>? ORDER BY seq LIMIT ?", &st, err))
        return -1;
    sqlite3_bind_int64(st, 1, since_seq);
    sqlite3_bind_int(st, 2, max > 0 ? max : -1);
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) {
            rc = SQLITE_NOMEM;
            break;
        }
        store_event_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot read new events: %s", sqlite3_errstr(rc));
    }
    return 0;
}
