/* fuzz_jobs_create.c: libFuzzer target for POST /v1/fine_tuning/jobs, the
 * handler that takes the most nested user JSON (hyperparameters, method,
 * metadata, integrations). Input: a JSON body; when it is an object without
 * model or training_file, a real base model ("curie") and a processed file
 * of a throw-away store are filled in, so the fuzzer reaches past the
 * required-parameter checks. Every reply must be a job object (200) or
 * OpenAI's error body with its four keys. No scheduler: created jobs stay
 * queued. */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <stdlib.h>
#include <string.h>

static struct server srv;
static char org[STORE_ID_LEN], file_id[STORE_ID_LEN];

static void setup(void)
{
    char err[CORE_ERR_LEN], p[4200];
    snprintf(srv.data_dir, sizeof srv.data_dir, "/tmp/tunery-fuzz-jobs-XXXXXX");
    if (!mkdtemp(srv.data_dir)) abort();
    snprintf(p, sizeof p, "%s/models/curie", srv.data_dir);
    if (fs_mkdir_p(p, 0755, err)) abort();
    snprintf(p, sizeof p, "%s/models/curie/config.json", srv.data_dir);
    if (fs_write_atomic(p, "{}", 2, err)) abort();
    store_t *st = server_thread_store(&srv, err);
    char key[STORE_KEY_LEN];
    int created;
    store_org_t o;
    store_file_t f;
    const char *data = "{\"prompt\":\"a ->\",\"completion\":\" b\\n\"}\n";
    if (!st || store_bootstrap(st, key, &created, err) || store_org_get(st, "personal", &o, err) ||
        store_file_put(st, o.id, "t.jsonl", "fine-tune", data, strlen(data), &f, err) ||
        store_file_set_status(st, f.id, "processed", "", 1, 0, 6, err))
        abort();
    snprintf(org, sizeof org, "%s", o.id);
    snprintf(file_id, sizeof file_id, "%s", f.id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.data_dir[0]) setup();
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    if (!json_object_get(body, "model")) json_object_set_new(body, "model", json_string("curie"));
    if (!json_object_get(body, "training_file")) json_object_set_new(body, "training_file", json_string(file_id));
    req_t r;
    memset(&r, 0, sizeof r);
    r.srv = &srv;
    r.body = body;
    snprintf(r.org_id, sizeof r.org_id, "%s", org);
    fine_tuning_jobs_create(&r);
    if (!r.captured) abort();
    json_t *j = json_loads(r.captured, 0, NULL);
    if (!j) abort();
    if (r.captured_status == 200) {
        const char *obj = json_string_value(json_object_get(j, "object"));
        if (!obj || strcmp(obj, "fine_tuning.job") || !json_is_string(json_object_get(j, "id"))) abort();
    } else {
        json_t *e = json_object_get(j, "error");
        if (!e || !json_is_string(json_object_get(e, "message")) || json_object_size(e) != 4) abort();
    }
    json_decref(j);
    free(r.captured);
    json_decref(body);
    return 0;
}
