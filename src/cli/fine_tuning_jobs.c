/* fine_tuning_jobs.c: `tunery api fine_tuning.jobs.*`, the current jobs API
 * (/v1/fine_tuning/jobs), with the same look as the legacy commands: JSON
 * printed as print(resp), and a follow that prints "[time] message" lines.
 * The current API has no event stream, so follow polls the events list
 * (newest first, paginated with after=) once a second.
 */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) { (void)sig; g_interrupted = 1; }

static int is_terminal(const char *st)
{
    return st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled"));
}

/* New events (oldest first) appended to out; seen remembers ids printed. */
static int collect_new_events(const cli_opts_t *o, const char *q, json_t *seen, json_t *out)
{
    char path[800], after[256] = "";
    for (int page = 0; page < 1000; page++) {
        if (after[0]) snprintf(path, sizeof path, "/fine_tuning/jobs/%s/events?limit=100&after=%s", q, after);
        else snprintf(path, sizeof path, "/fine_tuning/jobs/%s/events?limit=100", q);
        json_t *list;
        int rc = cli_call(o, "GET", path, NULL, &list);
        if (rc) return rc;
        json_t *data = json_object_get(list, "data"), *e;
        size_t i;
        int hit_seen = 0;
        json_array_foreach(data, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));
            if (id && json_object_get(seen, id)) { hit_seen = 1; break; }
            json_array_insert(out, 0, e);   /* newest first on the wire */
            if (id) snprintf(after, sizeof after, "%s", id);
        }
        int more = json_is_true(json_object_get(list, "has_more"));
        json_decref(list);
        if (hit_seen || !more || !json_array_size(data)) break;
    }
    /* out was built newest-last per page; pages go backwards in time, so the
     * later pages' (older) events must come first: sort by created_at, stable. */
    size_t n = json_array_size(out);
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0; b--) {
            json_int_t t0 = json_integer_value(json_object_get(json_array_get(out, b - 1), "created_at"));
            json_int_t t1 = json_integer_value(json_object_get(json_array_get(out, b), "created_at"));
            if (t0 <= t1) break;
            json_t *x = json_incref(json_array_get(out, b));
            json_array_remove(out, b);
            json_array_insert_new(out, b - 1, x);
        }
    return 0;
}

/* Is the job's base a chat model, so that the hint after success should be
 * chat_completions.create? A tunery server says so in GET /models/{base}
 * ("tunery": {"format": "chat"}); for ft:BASE:... the root base decides. Any
 * failure (another server, no such model) means no: the completions hint. */
static int base_is_chat(const cli_opts_t *o, const char *model)
{
    char base[256], q[800], path[900], err[CORE_ERR_LEN];
    const char *s = model && !strncmp(model, "ft:", 3) ? model + 3 : model;
    if (!s) return 0;
    snprintf(base, sizeof base, "%.*s", (int)strcspn(s, ":"), s);
    cli_quote_plus(base, q, sizeof q);
    snprintf(path, sizeof path, "/models/%s", q);
    cli_resp_t r;
    int chat = 0;
    if (cli_http(o, "GET", path, NULL, &r, err) == 0 && r.status == 200 && r.body.data) {
        json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
        const char *f = json_string_value(json_object_get(json_object_get(j, "tunery"), "format"));
        chat = f && !strcmp(f, "chat");
        json_decref(j);
    }
    cli_resp_free(&r);
    return chat;
}

static int jobs_follow(const cli_opts_t *o, const char *id)
{
    char q[512], path[700];
    cli_quote_plus(id, q, sizeof q);
    snprintf(path, sizeof path, "/fine_tuning/jobs/%s", q);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    g_interrupted = 0;
    json_t *seen = json_object(), *job = NULL;
    int rc = 0;
    for (;;) {
        json_t *fresh = json_array();
        rc = collect_new_events(o, q, seen, fresh);
        json_t *e;
        size_t i;
        json_array_foreach(fresh, i, e) {
            const char *eid = json_string_value(json_object_get(e, "id"));
            if (eid) json_object_set_new(seen, eid, json_true());
            char ts[32];
            time_fmt_local(json_integer_value(json_object_get(e, "created_at")), ts);
            const char *m = json_string_value(json_object_get(e, "message"));
            printf("[%s] %s\n", ts, m ? m : "");
        }
        fflush(stdout);
        json_decref(fresh);
        if (rc) break;
        json_decref(job);
        if ((rc = cli_call(o, "GET", path, NULL, &job))) { job = NULL; break; }
        if (is_terminal(json_string_value(json_object_get(job, "status")))) {
            /* one last look, for the events written as it ended */
            fresh = json_array();
            rc = collect_new_events(o, q, seen, fresh);
            json_array_foreach(fresh, i, e) {
                char ts[32];
                time_fmt_local(json_integer_value(json_object_get(e, "created_at")), ts);
                printf("[%s] %s\n", ts, json_string_value(json_object_get(e, "message")) ? json_string_value(json_object_get(e, "message")) : "");
            }
            json_decref(fresh);
            break;
        }
        for (int t = 0; t < 10 && !g_interrupted; t++) usleep(100 * 1000);
        if (g_interrupted) break;
    }
    sigaction(SIGINT, &old, NULL);
    if (!rc && g_interrupted) {
        const char *st = job ? json_string_value(json_object_get(job, "status")) : NULL;
        printf("\nStream interrupted. Job is still %s.\n"
               "To resume the stream, run:\n\n"
               "  tunery api fine_tuning.jobs.follow -i %s\n\n"
               "To cancel your job, run:\n\n"
               "  tunery api fine_tuning.jobs.cancel -i %s\n\n", st ? st : "unknown", id, id);
    } else if (!rc) {
        const char *st = json_string_value(json_object_get(job, "status"));
        if (st && !strcmp(st, "succeeded")) {
            const char *m = json_string_value(json_object_get(job, "fine_tuned_model"));
            printf("\nJob complete! Status: succeeded \xf0\x9f\x8e\x89\nTry out your fine-tuned model:\n\n");
            if (base_is_chat(o, json_string_value(json_object_get(job, "model"))))
                printf("tunery api chat_completions.create -m %s -g user <YOUR_MESSAGE>", m ? m : "None");
            else
                printf("tunery api completions.create -m %s -p <YOUR_PROMPT>", m ? m : "None");
        } else if (st && !strcmp(st, "failed")) {
            json_t *err = json_object_get(job, "error");
            const char *m = json_string_value(json_object_get(err, "message"));
            printf("\nJob failed.%s%s", m ? " " : "", m ? m : "");
        }
        printf("\n");
    }
    fflush(stdout);
    json_decref(job);
    json_decref(seen);
    return rc;
}

static int jobs_create(const cli_opts_t *o, int argc, char **argv)
{
    cli_flag_t f[] = {
        CLI_FLAG("-t", "--training_file", CLI_STR, 1, "JSONL training file: a file ID, a local path (uploaded first) or a URL"),
        CLI_FLAG("-v", "--validation_file", CLI_STR, 0, "JSONL validation file: a file ID, a local path or a URL"),
        CLI_FLAG(NULL, "--no_check_if_files_exist", CLI_BOOL, 0, "Upload local files without offering files of the same name and size for reuse"),
        CLI_FLAG("-m", "--model", CLI_STR, 1, "The base model, e.g. babbage-002, davinci-002, curie"),
        CLI_FLAG(NULL, "--suffix", CLI_STR, 0, "Up to 64 characters in the fine-tuned model's name"),
        CLI_FLAG(NULL, "--n_epochs", CLI_INT, 0, "hyperparameters.n_epochs (default \"auto\")"),
        CLI_FLAG(NULL, "--batch_size", CLI_INT, 0, "hyperparameters.batch_size (default \"auto\")"),
        CLI_FLAG(NULL, "--learning_rate_multiplier", CLI_FLOAT, 0, "hyperparameters.learning_rate_multiplier (default \"auto\")"),
        CLI_FLAG(NULL, "--seed", CLI_INT, 0, "Seed for reproducible training (generated when absent)"),
        CLI_FLAG(NULL, "--follow", CLI_BOOL, 0, "After creating, print events until the job ends (as fine_tuning.jobs.follow)"),
    };
    enum { T, V, NOCHECK, M, SUFFIX, EPOCHS, BATCH, LR, SEED, FOLLOW, NF };
    int help, rc = cli_flags_parse("fine_tuning.jobs.create", "Create a fine-tuning job (POST /v1/fine_tuning/jobs) and print it.",
                                   f, NF, argc, argv, &help);
    if (rc || help) return rc;
    char tid[256], vid[256];
    if ((rc = cli_get_or_upload(o, f[T].str, !f[NOCHECK].set, tid, sizeof tid))) return rc;
    if (f[V].set && (rc = cli_get_or_upload(o, f[V].str, !f[NOCHECK].set, vid, sizeof vid))) return rc;
    json_t *b = json_object(), *hp = json_object();
    json_object_set_new(b, "model", json_string(f[M].str));
    json_object_set_new(b, "training_file", json_string(tid));
    if (f[V].set) json_object_set_new(b, "validation_file", json_string(vid));
    if (f[SUFFIX].set) json_object_set_new(b, "suffix", json_string(f[SUFFIX].str));
    if (f[SEED].set) json_object_set_new(b, "seed", json_integer(f[SEED].i));
    if (f[EPOCHS].set) json_object_set_new(hp, "n_epochs", json_integer(f[EPOCHS].i));
    if (f[BATCH].set) json_object_set_new(hp, "batch_size", json_integer(f[BATCH].i));
    if (f[LR].set) json_object_set_new(hp, "learning_rate_multiplier", json_real(f[LR].f));
    if (json_object_size(hp)) json_object_set(b, "hyperparameters", hp);
    json_decref(hp);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *job;
    rc = cli_call(o, "POST", "/fine_tuning/jobs", body, &job);
    free(body);
    if (rc) return rc;
    cli_json_print(job);
    char id[256] = "";
    if (json_string_value(json_object_get(job, "id"))) snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
    json_decref(job);
    return f[FOLLOW].set ? jobs_follow(o, id) : 0;
}

int cli_fine_tuning_jobs(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    if (!strcmp(op, "create")) return jobs_create(o, argc, argv);
    if (!strcmp(op, "retrieve")) op = "get";
    if (!strcmp(op, "list_events")) op = "events";
    if (!strcmp(op, "checkpoints.list")) op = "checkpoints";
    static const struct { const char *op, *summary; int by_id, paged; } ops[] = {
        {"list", "List fine-tuning jobs, newest first (GET /v1/fine_tuning/jobs).", 0, 1},
        {"get", "Print a fine-tuning job (GET /v1/fine_tuning/jobs/ID).", 1, 0},
        {"cancel", "Cancel a job (POST /v1/fine_tuning/jobs/ID/cancel).", 1, 0},
        {"pause", "Pause a running job (POST /v1/fine_tuning/jobs/ID/pause).", 1, 0},
        {"resume", "Resume a paused job (POST /v1/fine_tuning/jobs/ID/resume).", 1, 0},
        {"events", "Print a page of the job's events, newest first (GET /v1/fine_tuning/jobs/ID/events).", 1, 1},
        {"follow", "Print the job's events as they come (polling once a second) until it ends.", 1, 0},
        {"checkpoints", "Print a page of the job's checkpoints, newest first (GET /v1/fine_tuning/jobs/ID/checkpoints).", 1, 1},
    };
    size_t k = 0;
    for (; k < sizeof ops / sizeof *ops && strcmp(op, ops[k].op); k++) {}
    if (k == sizeof ops / sizeof *ops) {
        fprintf(stderr, "tunery api: unknown command 'fine_tuning.jobs.%s'; the commands are create, list, get, "
                        "cancel, events, follow, pause, resume, checkpoints\n", op);
        return 2;
    }
    cli_flag_t f[3];
    int nf = 0;
    if (ops[k].by_id) f[nf++] = (cli_flag_t)CLI_FLAG("-i", "--id", CLI_STR, 1, "The id of the fine-tuning job");
    if (ops[k].paged) {
        f[nf++] = (cli_flag_t)CLI_FLAG("-a", "--after", CLI_STR, 0, "Return the items after this id (pagination cursor)");
        f[nf++] = (cli_flag_t)CLI_FLAG("-l", "--limit", CLI_INT, 0, "How many items to return (server default 20)");
    }
    char cmd[64];
    snprintf(cmd, sizeof cmd, "fine_tuning.jobs.%s", op);
    int help, rc = cli_flags_parse(cmd, ops[k].summary, f, nf, argc, argv, &help);
    if (rc || help) return rc;
    char q[512] = "", path[1400];
    if (ops[k].by_id) cli_quote_plus(f[0].str, q, sizeof q);
    if (!strcmp(op, "follow")) return jobs_follow(o, f[0].str);
    if (!strcmp(op, "list")) snprintf(path, sizeof path, "/fine_tuning/jobs");
    else if (!strcmp(op, "get")) snprintf(path, sizeof path, "/fine_tuning/jobs/%s", q);
    else if (!strcmp(op, "events")) snprintf(path, sizeof path, "/fine_tuning/jobs/%s/events", q);
    else if (!strcmp(op, "checkpoints")) snprintf(path, sizeof path, "/fine_tuning/jobs/%s/checkpoints", q);
    else snprintf(path, sizeof path, "/fine_tuning/jobs/%s/%s", q, op);
    if (ops[k].paged) {
        const cli_flag_t *after = &f[nf - 2], *limit = &f[nf - 1];
        char aq[512];
        size_t n = strlen(path);
        if (after->set) { cli_quote_plus(after->str, aq, sizeof aq); n += snprintf(path + n, sizeof path - n, "?after=%s", aq); }
        if (limit->set) snprintf(path + n, sizeof path - n, "%climit=%lld", after->set ? '&' : '?', limit->i);
    }
    int post = !strcmp(op, "cancel") || !strcmp(op, "pause") || !strcmp(op, "resume");
    return cli_call_print(o, post ? "POST" : "GET", path, NULL);
}
