/* fine_tunes.c: `tunery api fine_tunes.*`, the legacy fine-tunes commands the
 * fine-tuning guide is written around.
 *
 * create resolves -t/-v (file id, local path with the duplicate check and an
 * upload, or an http URL), creates the job, and follows its event stream
 * printing "[YYYY-MM-DD HH:MM:SS] message" in local time until the job ends,
 * then the closing block. Ctrl-C leaves the job running and says how to
 * resume or cancel; a broken connection says how to resume. Every line
 * printed is the original's (contract §2.3, §2.4), with `openai` → `tunery`.
 */
#include "cli/cli.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- -t / -v resolution ---- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Wait until an uploaded file leaves "uploaded"; the server refuses to train
 * on a file it has not checked yet. 0, or the exit status after printing. */
static int wait_processed(const cli_opts_t *o, const char *id)
{
    char q[512], path[600];
    cli_quote_plus(id, q, sizeof q);
    snprintf(path, sizeof path, "/files/%s", q);
    for (int waited = 0; waited < 30 * 60 * 10; waited++) {
        json_t *f;
        int rc = cli_call(o, "GET", path, NULL, &f);
        if (rc) return rc;
        const char *st = json_string_value(json_object_get(f, "status"));
        if (!st || strcmp(st, "uploaded")) {
            if (st && !strcmp(st, "error")) {
                const char *d = json_string_value(json_object_get(f, "status_details"));
                char msg[1200];
                snprintf(msg, sizeof msg, "File %s failed processing: %s. Fix the file (`tunery tools "
                         "fine_tunes.prepare_data -f FILE` shows what is wrong) and upload it again.", id,
                         d ? d : "no details given");
                json_decref(f);
                return cli_print_error(msg);
            }
            json_decref(f);
            return 0;
        }
        json_decref(f);
        usleep(100 * 1000);
    }
    return cli_print_error("File processing did not finish in 30 minutes; is the server busy?");
}

static int upload(const cli_opts_t *o, const char *name, const char *local, const void *data, size_t len,
                  char *out, size_t cap)
{
    char err[CORE_ERR_LEN];
    cli_resp_t r;
    if (cli_http_upload(o, name, local, data, len, "fine-tune", &r, err)) {
        cli_resp_free(&r);
        return cli_print_error(err);
    }
    if (r.status < 200 || r.status >= 300) { int rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
    cli_resp_free(&r);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!id) { json_decref(j); return cli_print_error("Invalid response object from API: the upload answer has no id"); }
    snprintf(out, cap, "%s", id);
    json_decref(j);
    printf("Uploaded file from %s: %s\n", name, out);
    fflush(stdout);
    return wait_processed(o, out);
}

/* The duplicate check: files with purpose fine-tune, the same base name and
 * the same size. Returns 0 and out="" to upload, 0 and out=id to reuse. */
static int find_duplicates(const cli_opts_t *o, const char *file, long long size, char *out, size_t cap)
{
    json_t *list;
    int rc = cli_call(o, "GET", "/files", NULL, &list);
    if (rc) return rc;
    json_t *data = json_object_get(list, "data"), *f;
    size_t i;
    json_t *ids = json_array();
    const char *name0 = NULL;
    json_array_foreach(data, i, f) {
        const char *purpose = json_string_value(json_object_get(f, "purpose"));
        const char *fname = json_string_value(json_object_get(f, "filename"));
        json_t *b = json_object_get(f, "bytes");
        if (!b) b = json_object_get(f, "size");
        if (!purpose || strcmp(purpose, "fine-tune") || !fname || !json_is_integer(b)) continue;
        if (strcmp(base_name(fname), base_name(file)) || json_integer_value(b) != size) continue;
        if (!name0) name0 = fname;
        json_array_append(ids, json_object_get(f, "id"));
    }
    out[0] = 0;
    if (json_array_size(ids)) {
        printf("Found potentially duplicated files with name '%s', purpose 'fine-tune' and size %lld bytes\n",
               name0, size);
        for (i = 0; i < json_array_size(ids); i++)
            printf("%s%s", i ? "\n" : "", json_string_value(json_array_get(ids, i)));
        for (;;) {
            printf("\nEnter file ID to reuse an already uploaded file, or an empty string to upload this file anyway: ");
            fflush(stdout);
            char line[512];
            if (!fgets(line, sizeof line, stdin)) { putchar('\n'); break; }
            char *s = line, *e = line + strlen(line);
            while (*s == ' ' || *s == '\t') s++;
            while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
            if (!*s) break;
            int found = 0;
            for (i = 0; i < json_array_size(ids); i++) found |= !strcmp(s, json_string_value(json_array_get(ids, i)));
            if (found) {
                printf("Using your file %s: %s\n", file, s);
                snprintf(out, cap, "%s", s);
                break;
            }
            printf("File id '%s' is not among the IDs of the potentially duplicated files\n", s);
        }
        fflush(stdout);
    }
    json_decref(ids);
    json_decref(list);
    return 0;
}

int cli_get_or_upload(const cli_opts_t *o, const char *x, int check_exists, char *out, size_t cap)
{
    char err[CORE_ERR_LEN], q[2048], path[2100];
    cli_resp_t r;
    cli_quote_plus(x, q, sizeof q);
    snprintf(path, sizeof path, "/files/%s", q);
    if (cli_http(o, "GET", path, NULL, &r, err)) { cli_resp_free(&r); return cli_print_error(err); }
    long st = r.status;
    if (st >= 200 && st < 300) { cli_resp_free(&r); snprintf(out, cap, "%s", x); return 0; }
    if (st != 400 && st != 404 && st != 415) { int rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    cli_resp_free(&r);

    struct stat sb;
    if (stat(x, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if (check_exists) {
            int rc = find_duplicates(o, x, (long long)sb.st_size, out, cap);
            if (rc || out[0]) return rc;
        }
        return upload(o, x, x, NULL, 0, out, cap);
    }
    if (!strncmp(x, "http", 4)) {
        if (cli_http_get_url(o, x, &r, err)) { cli_resp_free(&r); return cli_print_error(err); }
        if (r.status != 200) {
            cli_resp_free(&r);
            char msg[2100];
            snprintf(msg, sizeof msg, "Unable to download file from %s", x);
            return cli_print_error(msg);
        }
        int rc = upload(o, x, NULL, r.body.data ? r.body.data : "", r.body.len, out, cap);
        cli_resp_free(&r);
        return rc;
    }
    snprintf(out, cap, "%s", x);   /* let the server say what is wrong with it */
    return 0;
}

/* ---- following the event stream ---- */

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) { (void)sig; g_interrupted = 1; }

typedef struct { int error; } follow_t;

static int on_event(const char *data, size_t len, void *ud)
{
    follow_t *f = ud;
    json_t *e = json_loadb(data, len, 0, NULL);
    if (!e || json_object_get(e, "error")) { f->error = 1; json_decref(e); return 1; }
    json_t *t = json_object_get(e, "created_at");
    const char *m = json_string_value(json_object_get(e, "message"));
    char ts[32];
    time_fmt_local(json_is_number(t) ? (int64_t)json_number_value(t) : 0, ts);
    printf("[%s] %s\n", ts, m ? m : "");
    fflush(stdout);
    json_decref(e);
    return 0;
}

static int get_job(const cli_opts_t *o, const char *id, json_t **job)
{
    char q[512], path[600];
    cli_quote_plus(id, q, sizeof q);
    snprintf(path, sizeof path, "/fine-tunes/%s", q);
    return cli_call(o, "GET", path, NULL, job);
}

static int stream_events(const cli_opts_t *o, const char *id)
{
    char q[512], path[700], err[CORE_ERR_LEN];
    cli_quote_plus(id, q, sizeof q);
    snprintf(path, sizeof path, "/fine-tunes/%s/events?stream=true", q);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    g_interrupted = 0;
    follow_t f = {0};
    cli_resp_t r;
    int rc = cli_http_sse(o, "GET", path, NULL, on_event, &f, &g_interrupted, &r, err);
    sigaction(SIGINT, &old, NULL);
    json_t *job;
    if (rc == 1) {
        int jrc = get_job(o, id, &job);
        if (jrc) { cli_resp_free(&r); return jrc; }
        const char *st = json_string_value(json_object_get(job, "status"));
        printf("\nStream interrupted. Job is still %s.\n"
               "To resume the stream, run:\n\n"
               "  tunery api fine_tunes.follow -i %s\n\n"
               "To cancel your job, run:\n\n"
               "  tunery api fine_tunes.cancel -i %s\n\n", st ? st : "unknown", id, id);
        json_decref(job);
        cli_resp_free(&r);
        return 0;
    }
    if (rc == 0 && (r.status < 200 || r.status >= 300)) {
        rc = cli_print_api_error(&r);
        cli_resp_free(&r);
        return rc;
    }
    cli_resp_free(&r);
    const char *st;
    if (rc == 3) {
        /* closed without [DONE]: fine if the job is over, a drop if not */
        int jrc = get_job(o, id, &job);
        if (jrc) return jrc;
        st = json_string_value(json_object_get(job, "status"));
        rc = st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) ? 0 : -2;
        json_decref(job);
    }
    if (rc != 0) {
        if (rc == -1) fprintf(stderr, "tunery: %s\n", err);
        printf("\nStream interrupted (client disconnected).\n"
               "To resume the stream, run:\n\n"
               "  tunery api fine_tunes.follow -i %s\n\n", id);
        return 0;
    }
    int jrc = get_job(o, id, &job);
    if (jrc) return jrc;
    st = json_string_value(json_object_get(job, "status"));
    if (st && !strcmp(st, "succeeded")) {
        const char *m = json_string_value(json_object_get(job, "fine_tuned_model"));
        printf("\nJob complete! Status: succeeded \xf0\x9f\x8e\x89");
        printf("\nTry out your fine-tuned model:\n\n"
               "tunery api completions.create -m %s -p <YOUR_PROMPT>", m ? m : "None");
    } else if (st && !strcmp(st, "failed")) {
        printf("\nJob failed. The events above say why; `tunery api fine_tunes.get -i %s` shows the job, "
               "and the server keeps its log in <data dir>/jobs/%s/train.log.", id, id);
    }
    printf("\n");
    fflush(stdout);
    json_decref(job);
    return 0;
}

/* ---- commands ---- */

static int ft_create(const cli_opts_t *o, int argc, char **argv)
{
    cli_flag_t f[] = {
        CLI_FLAG("-t", "--training_file", CLI_STR, 1, "JSONL file containing prompt-completion examples for training. This can be the ID of a file uploaded through the API (e.g. file-abcde12345), a local file path, or an http(s) URL."),
        CLI_FLAG("-v", "--validation_file", CLI_STR, 0, "JSONL file containing prompt-completion examples for validation: a file ID, a local path or a URL."),
        CLI_FLAG(NULL, "--no_check_if_files_exist", CLI_BOOL, 0, "Upload local files immediately. Without it, files already uploaded with the same name and size are offered for reuse first."),
        CLI_FLAG("-m", "--model", CLI_STR, 0, "The model to start fine-tuning from (ada, babbage, curie, davinci, or a fine-tuned model; default curie)"),
        CLI_FLAG(NULL, "--suffix", CLI_STR, 0, "Up to 40 characters added to the fine-tuned model name: {base_model}:ft-{org-title}:{suffix}-{timestamp}. Punctuation and whitespace become '-', letters lower case."),
        CLI_FLAG(NULL, "--no_follow", CLI_BOOL, 0, "Return immediately after creating the job (prints the job). Otherwise, streams events and waits for the job to complete."),
        CLI_FLAG(NULL, "--n_epochs", CLI_INT, 0, "The number of epochs to train the model for (default 4)."),
        CLI_FLAG(NULL, "--batch_size", CLI_INT, 0, "The batch size to use for training (default: about 0.2% of the examples, at most 256)."),
        CLI_FLAG(NULL, "--learning_rate_multiplier", CLI_FLOAT, 0, "Multiplies the pretraining learning rate (default 0.05, 0.1 or 0.2 depending on the batch size)."),
        CLI_FLAG(NULL, "--prompt_loss_weight", CLI_FLOAT, 0, "The weight of the loss on prompt tokens relative to completion tokens (default 0.01)."),
        CLI_FLAG(NULL, "--compute_classification_metrics", CLI_BOOL, 0, "Compute classification metrics (accuracy, F-1, ...) on the validation set at the end of every epoch."),
        CLI_FLAG(NULL, "--classification_n_classes", CLI_INT, 0, "The number of classes in a classification task (needed for multiclass metrics)."),
        CLI_FLAG(NULL, "--classification_positive_class", CLI_STR, 0, "The positive class in binary classification (needed for precision, recall and F-1)."),
        CLI_FLAG(NULL, "--classification_betas", CLI_FLOATS, 0, "Compute F-beta scores at these beta values (binary classification only)."),
    };
    enum { T, V, NOCHECK, M, SUFFIX, NOFOLLOW, EPOCHS, BATCH, LR, PLW, CCM, NCLS, POS, BETAS, NF };
    int help, rc = cli_flags_parse("fine_tunes.create",
        "Create a fine-tune job, then stream its events until it completes.", f, NF, argc, argv, &help);
    if (rc || help) return rc;

    char tid[256], vid[256];
    if ((rc = cli_get_or_upload(o, f[T].str, !f[NOCHECK].set, tid, sizeof tid))) return rc;
    if (f[V].set && (rc = cli_get_or_upload(o, f[V].str, !f[NOCHECK].set, vid, sizeof vid))) return rc;

    json_t *b = json_object();
    json_object_set_new(b, "training_file", json_string(tid));
    if (f[V].set) json_object_set_new(b, "validation_file", json_string(vid));
    if (f[M].set) json_object_set_new(b, "model", json_string(f[M].str));
    if (f[SUFFIX].set) json_object_set_new(b, "suffix", json_string(f[SUFFIX].str));
    if (f[EPOCHS].set) json_object_set_new(b, "n_epochs", json_integer(f[EPOCHS].i));
    if (f[BATCH].set) json_object_set_new(b, "batch_size", json_integer(f[BATCH].i));
    if (f[LR].set) json_object_set_new(b, "learning_rate_multiplier", json_real(f[LR].f));
    if (f[PLW].set) json_object_set_new(b, "prompt_loss_weight", json_real(f[PLW].f));
    if (f[CCM].set) json_object_set_new(b, "compute_classification_metrics", json_true());
    if (f[NCLS].set) json_object_set_new(b, "classification_n_classes", json_integer(f[NCLS].i));
    if (f[POS].set) json_object_set_new(b, "classification_positive_class", json_string(f[POS].str));
    if (f[BETAS].set) {
        json_t *a = json_array();
        for (int i = 0; i < f[BETAS].nfloats; i++) json_array_append_new(a, json_real(f[BETAS].floats[i]));
        json_object_set_new(b, "classification_betas", a);
    }
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *job;
    rc = cli_call(o, "POST", "/fine-tunes", body, &job);
    free(body);
    if (rc) return rc;
    if (f[NOFOLLOW].set) {
        cli_json_print(job);
        json_decref(job);
        return 0;
    }
    char id[256];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")) ? json_string_value(json_object_get(job, "id")) : "");
    json_decref(job);
    printf("Created fine-tune: %s\n"
           "Streaming events until fine-tuning is complete...\n\n"
           "(Ctrl-C will interrupt the stream, but not cancel the fine-tune)\n", id);
    fflush(stdout);
    return stream_events(o, id);
}

static int ft_results(const cli_opts_t *o, const char *id)
{
    json_t *job;
    int rc = get_job(o, id, &job);
    if (rc) return rc;
    json_t *rf = json_object_get(job, "result_files");
    const char *fid = json_string_value(json_object_get(json_array_get(rf, 0), "id"));
    if (!fid) {
        json_decref(job);
        char msg[600];
        snprintf(msg, sizeof msg, "No results file available for fine-tune %s", id);
        return cli_print_error(msg);
    }
    char q[512], path[600], err[CORE_ERR_LEN];
    cli_quote_plus(fid, q, sizeof q);
    json_decref(job);
    snprintf(path, sizeof path, "/files/%s/content", q);
    cli_resp_t r;
    if (cli_http(o, "GET", path, NULL, &r, err)) { cli_resp_free(&r); return cli_print_error(err); }
    if (r.status < 200 || r.status >= 300) { rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    if (r.body.len) fwrite(r.body.data, 1, r.body.len, stdout);
    putchar('\n');
    cli_resp_free(&r);
    return 0;
}

int cli_fine_tunes(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    if (!strcmp(op, "create")) return ft_create(o, argc, argv);
    int help, rc;
    if (!strcmp(op, "list")) {
        rc = cli_flags_parse("fine_tunes.list", "List your organization's fine-tune jobs (GET /v1/fine-tunes).",
                             NULL, 0, argc, argv, &help);
        if (rc || help) return rc;
        return cli_call_print(o, "GET", "/fine-tunes", NULL);
    }
    static const struct { const char *op, *summary; } ops[] = {
        {"get", "Print a fine-tune job with its events (GET /v1/fine-tunes/ID)."},
        {"results", "Print the job's results file, compiled_results.csv (one row per step)."},
        {"events", "Print the job's events so far (GET /v1/fine-tunes/ID/events)."},
        {"follow", "Stream the job's events (history first) until it ends; resumes a broken stream."},
        {"cancel", "Cancel a job (POST /v1/fine-tunes/ID/cancel)."},
        {"delete", "Delete a job (DELETE /v1/fine-tunes/ID)."},
    };
    size_t k = 0;
    for (; k < sizeof ops / sizeof *ops && strcmp(op, ops[k].op); k++) {}
    if (k == sizeof ops / sizeof *ops) {
        fprintf(stderr, "tunery api: unknown command 'fine_tunes.%s'; the fine_tunes commands are create, list, "
                        "get, results, events, follow, cancel, delete\n", op);
        return 2;
    }
    cli_flag_t f[] = {
        CLI_FLAG("-i", "--id", CLI_STR, 1, "The id of the fine-tune job"),
        CLI_FLAG("-s", "--stream", CLI_BOOL, 0, "[DEPRECATED] use fine_tunes.follow instead"),
    };
    char cmd[64];
    snprintf(cmd, sizeof cmd, "fine_tunes.%s", op);
    rc = cli_flags_parse(cmd, ops[k].summary, f, !strcmp(op, "events") ? 2 : 1, argc, argv, &help);
    if (rc || help) return rc;
    const char *id = f[0].str;
    if (!strcmp(op, "follow")) return stream_events(o, id);
    if (!strcmp(op, "results")) return ft_results(o, id);
    if (f[1].set) {
        char msg[700];
        snprintf(msg, sizeof msg, "The --stream parameter is deprecated, use fine_tunes.follow instead:\n\n"
                                  "  tunery api fine_tunes.follow -i %s\n", id);
        return cli_print_error(msg);
    }
    char q[512], path[700];
    cli_quote_plus(id, q, sizeof q);
    if (!strcmp(op, "get")) snprintf(path, sizeof path, "/fine-tunes/%s", q);
    else if (!strcmp(op, "events")) snprintf(path, sizeof path, "/fine-tunes/%s/events", q);
    else if (!strcmp(op, "cancel")) snprintf(path, sizeof path, "/fine-tunes/%s/cancel", q);
    else snprintf(path, sizeof path, "/fine-tunes/%s", q);
    const char *method = !strcmp(op, "cancel") ? "POST" : !strcmp(op, "delete") ? "DELETE" : "GET";
    return cli_call_print(o, method, path, NULL);
}
