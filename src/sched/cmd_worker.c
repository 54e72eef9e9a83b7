/* cmd_worker.c: `tunery worker JOB-ID --data DIR`, one fine-tune job in its
 * own process, started by the scheduler. It turns the job row into
 * train_opts_t, runs train_run with hooks that write events, metrics and
 * checkpoints to the store, and at the end registers the model and the
 * results file. Everything it does is idempotent across a kill -9 and a
 * resume: epoch events already written are not written again, metrics of
 * steps already recorded are skipped, and the model is moved into place
 * with one rename.
 *
 * Stopping: SIGTERM (sent by cancel, pause and server shutdown) only sets a
 * flag, from a thread of its own (core_signals_watch: a handler on the
 * training thread corrupts oneDNN's sgemm); should_stop then reads the
 * job's status and answers cancel (2), pause (1, after a checkpoint) or,
 * when the job is still running, a shutdown (1, and the exit status tells
 * the scheduler to queue it again). */
#include "cmds.h"
#include "sched/sched.h"
#include "sched/sched_int.h"
#include "train/train.h"
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int got_term;
static void on_term(int sig) { (void)sig; atomic_store(&got_term, 1); }

/* A worker that crashes (a fault, or glibc aborting on a corrupted heap)
 * writes where it was to stderr, which is the job's worker.log: the stack
 * of the faulting thread, then the default action (a core dump if enabled).
 * backtrace() is called once at startup so that the handler does not load
 * libgcc (malloc) on a heap that may be broken. */
static void on_crash(int sig)
{
    void *pc[64];
    int n = backtrace(pc, 64);
    static const char head[] = "tunery worker: fatal signal; stack (`addr2line -f -p -e tunery` on the +0x offsets):\n";
    ssize_t w = write(2, head, sizeof head - 1);
    (void)w;
    backtrace_symbols_fd(pc, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_handlers(void)
{
    void *pc[2];
    backtrace(pc, 2);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND;
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
}

typedef struct {
    store_t *s;
    store_job_t job;
    store_org_t org;
    char root[STORE_NAME_LEN];      /* root base model name */
    int start_step;                 /* metrics at or before this step were recorded by an earlier attempt */
    int resume_step;                /* newest checkpoint the trainer resumes from (-1 none) */
    int metrics_every;              /* current API: one metrics event every N steps */
    int total_steps;
    double t_start;
    int stop_kind;                  /* what should_stop last answered */
    double next_poll;
} worker_t;

static void wevent(worker_t *w, const char *level, const char *type, const char *data, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Every event the worker writes while training lands only if the job is
 * not terminal: a cancel from the server writes its own last line and
 * nothing of the worker's may follow it. The two terminal lines the worker
 * writes itself, after changing the status, go through wevent_final. */
static void wevent_status(worker_t *w, int only_active, const char *level, const char *type, const char *data,
                          const char *msg)
{
    char err[CORE_ERR_LEN];
    int rc = only_active ? store_event_add_active(w->s, w->job.id, level, type, msg, data, NULL, err)
                         : store_event_add(w->s, w->job.id, level, type, msg, data, NULL, err);
    if (rc < 0) fprintf(stderr, "tunery worker: cannot record event '%s': %s\n", msg, err);
}

static void wevent(worker_t *w, const char *level, const char *type, const char *data, const char *fmt, ...)
{
    char msg[STORE_TEXT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wevent_status(w, 1, level, type, data, msg);
}

static void wevent_final(worker_t *w, const char *level, const char *msg) { wevent_status(w, 0, level, "message", NULL, msg); }

/* ------------------------------------------------------------------ hooks */

static void hook_resolved(void *ctx, const train_resolved_t *r)
{
    worker_t *w = ctx;
    char err[CORE_ERR_LEN];
    w->total_steps = r->total_steps;
    w->metrics_every = r->total_steps > 100 ? r->total_steps / 100 : 1;
    if (store_job_set_resolved(w->s, w->job.id, r->n_epochs, r->batch_size, r->learning_rate_multiplier,
                               r->prompt_loss_weight, (int64_t)r->seed, r->total_steps, err))
        fprintf(stderr, "tunery worker: %s\n", err);
    /* The trainer writes an epoch's checkpoint before its "Completed epoch"
     * event; a kill between the two resumes past that epoch end, and its
     * event would be lost. Write any that are missing up to the resume point. */
    int spe = r->n_epochs > 0 ? r->total_steps / r->n_epochs : 0;
    for (int e = 1; spe > 0 && w->resume_step > 0 && e <= w->resume_step / spe; e++) {
        char msg[64];
        int exists = 1;
        snprintf(msg, sizeof msg, "Completed epoch %d/%d", e, r->n_epochs);
        if (store_event_exists(w->s, w->job.id, msg, &exists, err) == 0 && !exists)
            wevent(w, "info", "message", NULL, "%s", msg);
    }
}

static void hook_event(void *ctx, const char *level, const char *message)
{
    worker_t *w = ctx;
    char err[CORE_ERR_LEN];
    int exists = 0;
    /* After a resume the trainer may repeat "Completed epoch k/M" for an
     * epoch whose event landed before the crash but whose checkpoint did
     * not: one line per epoch, whatever happened. */
    if (!strncmp(message, "Completed epoch", 15) && store_event_exists(w->s, w->job.id, message, &exists, err) == 0 &&
        exists)
        return;
    wevent(w, level && *level ? level : "info", "message", NULL, "%s", message);
}

static void json_num(char *out, size_t len, const char *key, double v, int last)
{
    if (isnan(v)) snprintf(out, len, "\"%s\":null%s", key, last ? "" : ",");
    else snprintf(out, len, "\"%s\":%.6g%s", key, v, last ? "" : ",");
}

static void hook_metrics(void *ctx, const train_metrics_t *m)
{
    worker_t *w = ctx;
    char err[CORE_ERR_LEN];
    if (m->step <= w->start_step) return;
    if (w->job.api == STORE_API_JOBS && (m->step % w->metrics_every == 0 || m->step == w->total_steps)) {
        char data[768], a[96], b[96], c[96], d[96];
        json_num(a, sizeof a, "train_loss", m->training_loss, 0);
        json_num(b, sizeof b, "train_mean_token_accuracy", m->training_token_accuracy, 0);
        json_num(c, sizeof c, "valid_loss", m->validation_loss, 0);
        json_num(d, sizeof d, "valid_mean_token_accuracy", m->validation_token_accuracy, 1);
        snprintf(data, sizeof data, "{\"step\":%d,\"total_steps\":%d,%s%s%s%s}", m->step, w->total_steps, a, b, c, d);
        if (isnan(m->validation_loss))
            wevent(w, "info", "metrics", data, "Step %d/%d: training loss=%.4f", m->step, w->total_steps, m->training_loss);
        else
            wevent(w, "info", "metrics", data, "Step %d/%d: training loss=%.4f, validation loss=%.4f", m->step,
                   w->total_steps, m->training_loss, m->validation_loss);
    }
    int64_t eta = 0;
    double el = time_mono() - w->t_start;
    int done = m->step - w->start_step;
    if (done > 0 && w->total_steps > m->step)
        eta = time_unix() + (int64_t)(el / done * (w->total_steps - m->step)) + 1;
    if (store_job_set_progress(w->s, w->job.id, m->step, m->elapsed_tokens, eta, err))
        fprintf(stderr, "tunery worker: %s\n", err);
}

static void hook_checkpoint(void *ctx, int step, const char *ckpt_dir, const train_metrics_t *m)
{
    worker_t *w = ctx;
    char err[CORE_ERR_LEN];
    store_checkpoint_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "%s", w->job.id);
    c.step = step;
    snprintf(c.dir, sizeof c.dir, "%s", ckpt_dir);
    if (w->job.api == STORE_API_JOBS) {
        char base[STORE_NAME_LEN];
        store_model_name_ft(w->root, w->org.slug, w->job.suffix, w->job.model_tag, base);
        snprintf(c.model, sizeof c.model, "%s:ckpt-step-%d", base, step);
    }
    c.train_loss = m ? m->training_loss : NAN;
    c.train_mean_token_accuracy = m ? m->training_token_accuracy : NAN;
    c.valid_loss = m ? m->validation_loss : NAN;
    c.valid_mean_token_accuracy = m ? m->validation_token_accuracy : NAN;
    c.full_valid_loss = c.full_valid_mean_token_accuracy = NAN;
    if (store_checkpoint_add(w->s, &c, err)) {
        fprintf(stderr, "tunery worker: %s\n", err);
        return;
    }
    /* The trainer keeps only its newest few checkpoints: forget the rows of
     * the ones it removed, so every listed checkpoint can be loaded. */
    store_checkpoint_t *all;
    int n, more;
    if (store_checkpoint_list(w->s, NULL, w->job.id, NULL, &all, &n, &more, err) == 0) {
        for (int i = 0; i < n; i++)
            if (all[i].dir[0] && !fs_exists(all[i].dir)) store_checkpoint_delete(w->s, w->job.id, all[i].step, err);
        free(all);
    }
    if (w->job.api == STORE_API_JOBS && step > w->start_step) wevent(w, "info", "message", NULL, "Checkpoint created at step %d", step);
}

static int hook_should_stop(void *ctx)
{
    worker_t *w = ctx;
    double now = time_mono();
    if (!got_term && now < w->next_poll) return 0;
    w->next_poll = now + 0.5;
    store_job_t j;
    char err[CORE_ERR_LEN];
    if (store_job_get(w->s, NULL, w->job.id, &j, err)) return got_term ? 1 : 0;
    /* Terminal (cancelled): stop now. Any other status than running
     * (paused, or already queued again by a quick resume): checkpoint and
     * exit, the scheduler starts a fresh worker when it is its turn. Still
     * running but SIGTERM: server shutdown, the same. */
    int kind = 0;
    if (store_job_is_terminal(j.status)) kind = 2;
    else if (strcmp(j.status, "running") || got_term) kind = 1;
    store_job_clear(&j);
    w->stop_kind = kind;
    return kind;
}

/* ------------------------------------------------------------------ finishing */

static int job_status_is(worker_t *w, const char *status)
{
    store_job_t j;
    char err[CORE_ERR_LEN];
    if (store_job_get(w->s, NULL, w->job.id, &j, err)) return 0;
    int r = !strcmp(j.status, status);
    store_job_clear(&j);
    return r;
}

static int finish_failed(worker_t *w, const char *why)
{
    char err[CORE_ERR_LEN];
    if (store_job_fail(w->s, w->job.id, "training_failed", why, err) == 0) {
        wevent_final(w, "error", SCHED_MSG_FAILED);
        return SCHED_EXIT_DONE;
    }
    return job_status_is(w, "cancelled") ? SCHED_EXIT_DONE : SCHED_EXIT_ERROR;
}

/* Register the model, import the results, write the last events. */
static int finish_succeeded(worker_t *w, const char *out_dir, const train_result_t *res)
{
    char err[CORE_ERR_LEN], name[STORE_NAME_LEN], dest[STORE_PATH_LEN + STORE_NAME_LEN], csv[STORE_PATH_LEN + 64];
    const char *dir = store_data_dir(w->s);
    store_model_t *ms;
    int nm, mine = 0;
    name[0] = 0;
    /* A retry after a crash past the registration reuses that model. */
    if (store_model_list(w->s, w->job.org_id, &ms, &nm, err) == 0) {
        for (int i = 0; i < nm && !mine; i++)
            if (!strcmp(ms[i].job_id, w->job.id)) {
                snprintf(name, sizeof name, "%s", ms[i].id);
                mine = 1;
            }
        free(ms);
    }
    int64_t t = time_unix();
    for (int tries = 0; !mine && tries < 100; tries++, t++) {
        store_model_t other;
        if (w->job.api == STORE_API_JOBS) store_model_name_ft(w->root, w->org.slug, w->job.suffix, w->job.model_tag, name);
        else store_model_name_legacy(w->root, w->org.slug, w->job.suffix, t, name);
        snprintf(dest, sizeof dest, "%s/models/%s", dir, name);
        /* Two legacy jobs of one org finishing in the same second: the
         * second takes the next second's name. */
        if (store_model_get(w->s, NULL, name, &other, err) == STORE_ENOTFOUND && !fs_exists(dest)) break;
        if (w->job.api == STORE_API_JOBS) id_random(w->job.model_tag, "", 8);
    }
    snprintf(dest, sizeof dest, "%s/models/%s", dir, name);
    if (!mine && rename(out_dir, dest)) {
        snprintf(err, sizeof err, "cannot move the trained model into %s: %s", dest, strerror(errno));
        return finish_failed(w, err);
    }
    store_model_t m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "%s", name);
    snprintf(m.org_id, sizeof m.org_id, "%s", w->job.org_id);
    snprintf(m.base, sizeof m.base, "%s", w->root);
    snprintf(m.parent, sizeof m.parent, "%s", w->job.model);
    snprintf(m.job_id, sizeof m.job_id, "%s", w->job.id);
    snprintf(m.dir, sizeof m.dir, "%s", dest);
    if (!mine && store_model_add(w->s, &m, err)) return finish_failed(w, err);
    store_file_t f;
    memset(&f, 0, sizeof f);
    snprintf(csv, sizeof csv, "%s/jobs/%s/compiled_results.csv", dir, w->job.id);
    if (store_file_import(w->s, w->job.org_id, "compiled_results.csv", "fine-tune-results", csv, &f, err)) {
        store_model_delete(w->s, NULL, name, err);
        return finish_failed(w, "the trainer did not write compiled_results.csv");
    }
    store_file_set_status(w->s, f.id, "processed", "", 0, 0, 0, err);
    wevent(w, "info", "message", NULL, SCHED_MSG_MODEL, name);
    wevent(w, "info", "message", NULL, SCHED_MSG_RESULTS, f.id);
    /* Status first, then the last event: the event's wake-up finds the job
     * terminal, so a follower sends [DONE] right after it. */
    if (store_job_succeed(w->s, w->job.id, name, f.id, res->trained_tokens, err)) {
        /* Cancelled in the last moment: leave no model behind. */
        store_model_delete(w->s, NULL, name, err);
        return SCHED_EXIT_DONE;
    }
    wevent_final(w, "info", SCHED_MSG_SUCCEEDED);
    return SCHED_EXIT_DONE;
}

/* ------------------------------------------------------------------ main */

static void worker_usage(FILE *f)
{
    fprintf(f, "usage: tunery worker JOB-ID [--data DIR]\n"
               "Runs one fine-tune job of the store in DIR (default $TUNERY_DATA, else ./tunery-data).\n"
               "`tunery serve` starts workers itself; run one by hand only to debug a job.\n");
}

/* classification_betas is stored as JSON array text. */
static int parse_betas(const char *text, double *out, int max)
{
    if (!text || !*text) return 0;
    json_t *a = json_loads(text, 0, NULL);
    int n = 0;
    if (json_is_array(a))
        for (size_t i = 0; i < json_array_size(a) && n < max; i++) out[n++] = json_number_value(json_array_get(a, i));
    json_decref(a);
    return n;
}

static int resolve_base(worker_t *w, char out[PATH_MAX], char *err)
{
    store_model_t m;
    store_checkpoint_t c;
    if (store_model_get(w->s, w->job.org_id, w->job.model, &m, err) == 0) {
        snprintf(out, PATH_MAX, "%s", m.dir);
        return 0;
    }
    if (store_checkpoint_by_model(w->s, w->job.org_id, w->job.model, &c, err) == 0) {
        snprintf(out, PATH_MAX, "%s", c.dir);
        return 0;
    }
    return core_model_dir(w->root, out, err) == 0 || core_model_dir(w->job.model, out, err) == 0 ? 0 : -1;
}

int cmd_worker(int argc, char **argv)
{
    const char *job_id = NULL, *data = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            worker_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (argv[i][0] != '-' && !job_id) {
            job_id = argv[i];
        } else {
            fprintf(stderr, "tunery worker: unexpected argument '%s'\n", argv[i]);
            worker_usage(stderr);
            return 2;
        }
    }
    if (!job_id) {
        worker_usage(stderr);
        return 2;
    }
    if (data) setenv("TUNERY_DATA", data, 1);   /* core_model_dir looks for fine-tuned bases there */
    if (core_signals_watch(on_term)) {
        fprintf(stderr, "tunery worker: cannot start the thread that waits for SIGTERM; out of threads or memory\n");
        return 1;
    }
    crash_handlers();

    char err[CORE_ERR_LEN];
    worker_t w;
    memset(&w, 0, sizeof w);
    w.metrics_every = 1;
    if (store_open(data, &w.s, err)) {
        fprintf(stderr, "tunery worker: %s\n", err);
        return SCHED_EXIT_ERROR;
    }
    int rc = SCHED_EXIT_ERROR;
    if (store_job_get(w.s, NULL, job_id, &w.job, err) || store_org_get(w.s, w.job.org_id, &w.org, err)) {
        fprintf(stderr, "tunery worker: %s\n", err);
        goto out;
    }
    if (strcmp(w.job.status, "running")) {
        fprintf(stderr, "tunery worker: job %s is %s, not running: nothing to do\n", job_id, w.job.status);
        rc = SCHED_EXIT_DONE;
        goto out;
    }
    store_model_root(w.job.model, w.root);
    {
        store_model_t pm;   /* continued fine-tuning: the root is the parent model's root */
        if (store_model_get(w.s, w.job.org_id, w.job.model, &pm, err) == 0 && pm.base[0])
            snprintf(w.root, sizeof w.root, "%s", pm.base);
    }
    sched_note_wandb(w.s, &w.job, 1);
    w.start_step = w.job.last_step;
    w.total_steps = w.job.total_steps;
    w.t_start = time_mono();

    char base_dir[PATH_MAX], train_path[STORE_PATH_LEN], valid_path[STORE_PATH_LEN];
    char work_dir[STORE_PATH_LEN + 64], out_dir[STORE_PATH_LEN + 80];
    if (resolve_base(&w, base_dir, err)) {
        rc = finish_failed(&w, err);
        goto out;
    }
    store_file_path(w.s, w.job.training_file, train_path);
    if (w.job.validation_file[0]) store_file_path(w.s, w.job.validation_file, valid_path);
    snprintf(work_dir, sizeof work_dir, "%s/jobs/%s", store_data_dir(w.s), w.job.id);
    snprintf(out_dir, sizeof out_dir, "%s/model", work_dir);
    if (fs_mkdir_p(work_dir, 0755, err)) {
        rc = finish_failed(&w, err);
        goto out;
    }

    double betas[16];
    train_opts_t o;
    memset(&o, 0, sizeof o);
    o.base_model_dir = base_dir;
    o.train_path = train_path;
    o.valid_path = w.job.validation_file[0] ? valid_path : NULL;
    o.out_dir = out_dir;
    o.work_dir = work_dir;
    o.n_epochs = w.job.n_epochs;
    o.batch_size = w.job.batch_size;
    o.learning_rate_multiplier = w.job.learning_rate_multiplier;
    o.prompt_loss_weight = w.job.prompt_loss_weight;
    o.compute_classification_metrics = w.job.compute_classification_metrics;
    o.classification_n_classes = w.job.classification_n_classes;
    o.classification_positive_class = w.job.classification_positive_class[0] ? w.job.classification_positive_class : NULL;
    o.n_classification_betas = parse_betas(w.job.classification_betas, betas, 16);
    o.classification_betas = o.n_classification_betas ? betas : NULL;
    /* A resumed job keeps the seed it resolved the first time. */
    o.seed = (uint64_t)(w.job.resolved ? w.job.r_seed : w.job.seed);
    o.has_seed = w.job.resolved || w.job.has_seed;
    const char *every = getenv("TUNERY_CHECKPOINT_EVERY");
    o.checkpoint_every = every ? atoi(every) : 0;
    w.resume_step = sched_newest_checkpoint(work_dir);
    o.resume = w.resume_step > 0;

    train_hooks_t h = {&w, hook_resolved, hook_event, hook_metrics, hook_checkpoint, hook_should_stop};
    train_result_t res;
    memset(&res, 0, sizeof res);
    int trc = train_run(&o, &h, &res, err);
    if (trc) {
        /* A cancel can surface as an error from the trainer: that is not a failure. */
        rc = job_status_is(&w, "running") ? finish_failed(&w, err) : SCHED_EXIT_DONE;
    } else if (res.stopped) {
        rc = job_status_is(&w, "running") ? SCHED_EXIT_INTERRUPTED : SCHED_EXIT_DONE;
    } else if (!job_status_is(&w, "running")) {
        rc = SCHED_EXIT_DONE;   /* cancelled or paused while the last step ran: the store has the outcome */
    } else {
        rc = finish_succeeded(&w, out_dir, &res);
    }
out:
    store_job_clear(&w.job);
    store_close(w.s);
    return rc;
}
