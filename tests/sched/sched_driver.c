/* sched_driver.c: hosts the real scheduler outside `tunery serve`, so the
 * crash tests of tests/sched/integration.sh can kill -9 the process that
 * owns the scheduler (and its real `tunery worker` children) without
 * depending on the HTTP layer. Built on demand (`make
 * build/tests/sched/sched_driver`); not a unit test (no test_ prefix).
 *
 *   sched_driver tiny-model DIR              write a small random GPT-2 (r50k vocab) to DIR
 *   sched_driver create DATA FILE MODEL API  upload FILE, create a job (api: legacy|jobs), enqueue; prints its id
 *   sched_driver run DATA TUNERY SECONDS     run the scheduler until every job is terminal (exit 0) or time is up (exit 1)
 *   sched_driver events DATA JOB             one line per event: seq<TAB>type<TAB>message
 *   sched_driver status DATA JOB             status fine_tuned_model result_file error
 *   sched_driver cancel DATA JOB             sched_cancel from another process (no signal: the worker polls)
 *   sched_driver pause|resume DATA JOB       the same for sched_pause / sched_resume
 *   sched_driver ckpts DATA JOB              one line per checkpoint: step<TAB>model<TAB>dir
 */
#include "nn/nn.h"
#include "sched/sched.h"
#include "train/train.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int die(const char *msg)
{
    fprintf(stderr, "sched_driver: %s\n", msg);
    return 1;
}

static int tiny_model(const char *dir)
{
    char err[CORE_ERR_LEN];
    gpt2_config_t c = {.max_seq_len = 64, .vocab_size = 50257, .num_layers = 2, .num_heads = 2, .channels = 32};
    gpt2_t m;
    if (gpt2_create(&m, &c, err)) return die(err);
    gpt2_init_random(&m, 1234);
    int rc = gpt2_save(&m, dir, err);
    gpt2_free(&m);
    return rc ? die(err) : 0;
}

static int create(const char *data, const char *file, const char *model, const char *api)
{
    char err[CORE_ERR_LEN], key[STORE_KEY_LEN];
    store_t *s;
    int created;
    store_org_t org;
    if (store_open(data, &s, err) || store_bootstrap(s, key, &created, err) || store_org_get(s, "personal", &org, err))
        return die(err);
    store_file_t f;
    if (store_file_import(s, org.id, "train.jsonl", "fine-tune", file, &f, err)) return die(err);
    int n, chat;
    char p[STORE_PATH_LEN];
    store_file_path(s, f.id, p);
    if (train_check_file(p, &n, &chat, err)) return die(err);
    long long tokens = train_count_tokens(p, err);
    if (tokens < 0) return die(err);
    store_file_set_status(s, f.id, "processed", "", n, chat, tokens, err);
    store_job_t j;
    memset(&j, 0, sizeof j);
    j.api = strcmp(api, "jobs") ? STORE_API_LEGACY : STORE_API_JOBS;
    snprintf(j.org_id, sizeof j.org_id, "%s", org.id);
    snprintf(j.model, sizeof j.model, "%s", model);
    snprintf(j.training_file, sizeof j.training_file, "%s", f.id);
    const char *ep = getenv("DRIVER_EPOCHS");
    j.n_epochs = ep ? atoi(ep) : 4;
    j.prompt_loss_weight = -1;
    j.seed = 42;
    j.has_seed = 1;
    if (store_job_create(s, &j, err)) return die(err);
    char msg[128];
    snprintf(msg, sizeof msg, "Created fine-tune: %s", j.id);
    store_event_add(s, j.id, NULL, NULL, msg, NULL, NULL, err);
    snprintf(msg, sizeof msg, "Fine-tune costs $%.2f", tokens * j.n_epochs / 1000.0 * 0.003);
    store_event_add(s, j.id, NULL, NULL, msg, NULL, NULL, err);
    if (sched_enqueue(NULL, s, j.id, err)) return die(err);
    printf("%s\n", j.id);
    store_close(s);
    return 0;
}

/* SIGTERM ends a run early, like the budget running out: sched_stop with
 * the jobs still active (exit 1). The test uses it to stop at a known point. */
static volatile sig_atomic_t stop_requested;
static void on_term(int sig) { (void)sig; stop_requested = 1; }

static int run(const char *data, const char *exe, double seconds)
{
    signal(SIGTERM, on_term);
    char err[CORE_ERR_LEN];
    sched_t *sc;
    store_t *s;
    if (store_open(data, &s, err)) return die(err);
    const char *conc = getenv("DRIVER_CONCURRENT");
    if (sched_start(data, conc ? atoi(conc) : 1, exe, &sc, err)) return die(err);
    double until = time_mono() + seconds;
    int rc = 1;
    while (time_mono() < until && !stop_requested) {
        usleep(100 * 1000);
        int active = 0;
        const char *st[] = {"validating_files", "queued", "running", "paused"};
        for (int i = 0; i < 4; i++) {
            store_job_t *js;
            int n;
            if (store_job_by_status(s, st[i], &js, &n, err) == 0) {
                active += n;
                store_job_free(js, n);
            }
        }
        if (!active) { rc = 0; break; }
    }
    sched_stop(sc);
    store_close(s);
    return rc;
}

static int events(const char *data, const char *job)
{
    char err[CORE_ERR_LEN];
    store_t *s;
    store_event_t *ev;
    int n;
    if (store_open(data, &s, err) || store_event_since(s, NULL, job, 0, 0, &ev, &n, err)) return die(err);
    for (int i = 0; i < n; i++) printf("%lld\t%s\t%s\n", (long long)ev[i].seq, ev[i].type, ev[i].message);
    free(ev);
    store_close(s);
    return 0;
}

static int status(const char *data, const char *job)
{
    char err[CORE_ERR_LEN];
    store_t *s;
    store_job_t j;
    if (store_open(data, &s, err) || store_job_get(s, NULL, job, &j, err)) return die(err);
    printf("%s %s %s %s\n", j.status, j.fine_tuned_model[0] ? j.fine_tuned_model : "-",
           j.result_file[0] ? j.result_file : "-", j.error_message[0] ? j.error_message : "-");
    store_job_clear(&j);
    store_close(s);
    return 0;
}

static int control(const char *op, const char *data, const char *job)
{
    char err[CORE_ERR_LEN];
    store_t *s;
    if (store_open(data, &s, err)) return die(err);
    int rc = !strcmp(op, "cancel") ? sched_cancel(NULL, s, NULL, job, err)
           : !strcmp(op, "pause")  ? sched_pause(NULL, s, NULL, job, err)
                                   : sched_resume(NULL, s, NULL, job, err);
    store_close(s);
    return rc ? die(err) : 0;
}

static int ckpts(const char *data, const char *job)
{
    char err[CORE_ERR_LEN];
    store_t *s;
    store_checkpoint_t *c;
    int n, more;
    if (store_open(data, &s, err) || store_checkpoint_list(s, NULL, job, NULL, &c, &n, &more, err)) return die(err);
    for (int i = 0; i < n; i++) printf("%d\t%s\t%s\n", c[i].step, c[i].model, c[i].dir);
    free(c);
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "tiny-model")) return tiny_model(argv[2]);
    if (argc == 6 && !strcmp(argv[1], "create")) return create(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 5 && !strcmp(argv[1], "run")) return run(argv[2], argv[3], atof(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "events")) return events(argv[2], argv[3]);
    if (argc == 4 && (!strcmp(argv[1], "cancel") || !strcmp(argv[1], "pause") || !strcmp(argv[1], "resume")))
        return control(argv[1], argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "ckpts")) return ckpts(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "status")) return status(argv[2], argv[3]);
    fprintf(stderr, "usage: see the comment at the top of tests/sched/sched_driver.c\n");
    return 2;
}
