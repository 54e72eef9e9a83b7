/* router.c: the route table of the API and the path matching behind it.
 *
 * Paths are split on '/' first and each segment is percent-decoded after, so
 * an id holding an encoded '/' or ':' stays one segment; '+' decodes to a
 * space as Python's quote_plus meant it. Matching is exact: no prefix or
 * trailing-slash guessing, an unknown path is a JSON 404.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include <string.h>

const route_t server_routes[] = {
    {"POST",   "/v1/files",                    files_create,       BODY_MULTIPART},
    {"GET",    "/v1/files",                    files_list,         BODY_NONE},
    {"GET",    "/v1/files/{}",                 files_get,          BODY_NONE},
    {"DELETE", "/v1/files/{}",                 files_delete,       BODY_NONE},
    {"GET",    "/v1/files/{}/content",         files_content,      BODY_NONE},
    {"POST",   "/v1/fine-tunes",               fine_tunes_create,  BODY_JSON},
    {"GET",    "/v1/fine-tunes",               fine_tunes_list,    BODY_NONE},
    {"GET",    "/v1/fine-tunes/{}",            fine_tunes_get,     BODY_NONE},
    {"DELETE", "/v1/fine-tunes/{}",            fine_tunes_delete,  BODY_NONE},
    {"POST",   "/v1/fine-tunes/{}/cancel",     fine_tunes_cancel,  BODY_JSON},
    {"GET",    "/v1/fine-tunes/{}/events",     fine_tunes_events,  BODY_NONE},
    {"POST",   "/v1/fine_tuning/jobs",         fine_tuning_jobs_create,      BODY_JSON},
    {"GET",    "/v1/fine_tuning/jobs",         fine_tuning_jobs_list,        BODY_NONE},
    {"GET",    "/v1/fine_tuning/jobs/{}",      fine_tuning_jobs_get,         BODY_NONE},
    {"POST",   "/v1/fine_tuning/jobs/{}/cancel", fine_tuning_jobs_cancel,    BODY_JSON},
    {"POST",   "/v1/fine_tuning/jobs/{}/pause",  fine_tuning_jobs_pause,     BODY_JSON},
    {"POST",   "/v1/fine_tuning/jobs/{}/resume", fine_tuning_jobs_resume,    BODY_JSON},
    {"GET",    "/v1/fine_tuning/jobs/{}/events", fine_tuning_jobs_events,    BODY_NONE},
    {"GET",    "/v1/fine_tuning/jobs/{}/checkpoints", fine_tuning_jobs_checkpoints, BODY_NONE},
    {"GET",    "/v1/models",                   models_list,        BODY_NONE},
    {"GET",    "/v1/models/{}",                models_get,         BODY_NONE},
    {"DELETE", "/v1/models/{}",                models_delete,      BODY_NONE},
    {"POST",   "/v1/completions",              completions_create, BODY_JSON},
    {"POST",   "/v1/chat/completions",         chat_completions_create, BODY_JSON},
    {"POST",   "/v1/engines/{}/completions",   completions_engine, BODY_JSON},
    {NULL, NULL, NULL, BODY_NONE},
};

int router_match(const char *method, const char *path, const route_t **out,
                 char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_LEN], int *nparams)
{
    int path_found = 0;
    for (const route_t *rt = server_routes; rt->method; rt++) {
        if (router_match_pattern(rt->pattern, path, params, nparams)) continue;
        if (strcmp(rt->method, method)) {
            path_found = 1;
            continue;
        }
        *out = rt;
        return 0;
    }
    return path_found ? -2 : -1;
}
