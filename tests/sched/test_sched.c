/* test_sched.c: the scheduler's state machine and queue discipline, with a
 * stand-in worker (a shell script) where a process is needed. The real
 * worker is exercised by tests/sched/integration.sh; here we pin what the
 * scheduler itself decides: enqueue/cancel/pause/resume transitions and
 * their events, org checks, creation-order starts bounded by
 * max_concurrent, the reaper's verdict on a worker that exits early, and the
 * restart rule (running jobs re-queued, "Resumed from step N"). */
#include "sched/sched.h"
#include "sched/sched_int.h"
#include "test.h"
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], err[CORE_ERR_LEN];

static store_t *fresh(store_org_t *org)
{
    static int n;
    snprintf(dir, sizeof dir, "/tmp/tunery-test-sched-%d-%d", (int)getpid(), n++);
    fs_rm_rf(dir, err);
    store_t *s = NULL;
    CHECKF(store_open(dir, &s, err) == 0, "%s", err);
    CHECK(store_org_create(s, "personal", org, err) == 0);
    return s;
}

static void done(store_t *s)
{
    store_close(s);
    fs_rm_rf(dir, err);
}

static void job(store_t *s, const store_org_t *org, int api, store_job_t *j)
{
    memset(j, 0, sizeof *j);
    j->api = api;
    snprintf(j->org_id, sizeof j->org_id, "%s", org->id);
    snprintf(j->model, sizeof j->model, "curie");
    snprintf(j->training_file, sizeof j->training_file, "file-x");
    CHECKF(store_job_create(s, j, err) == 0, "%s", err);
}

static int last_event_is(store_t *s, const char *job_id, const char *msg)
{
    store_event_t *ev;
    int n, ok = 0;
    if (store_event_since(s, NULL, job_id, 0, 0, &ev, &n, err) == 0 && n > 0) ok = !strcmp(ev[n - 1].message, msg);
    if (!ok && n > 0) fprintf(stderr, "  last event: %s\n", ev[n - 1].message);
    free(ev);
    return ok;
}

static const char *status_of(store_t *s, const char *id)
{
    static char st[32];
    store_job_t j;
    st[0] = 0;
    if (store_job_get(s, NULL, id, &j, err) == 0) snprintf(st, sizeof st, "%s", j.status);
    store_job_clear(&j);
    return st;
}

static void test_enqueue_numbers(void)
{
    store_org_t org;
    store_t *s = fresh(&org);
    store_job_t a, b, c;
    job(s, &org, STORE_API_LEGACY, &a);
    job(s, &org, STORE_API_LEGACY, &b);
    job(s, &org, STORE_API_JOBS, &c);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    CHECK(sched_enqueue(NULL, s, b.id, err) == 0);
    CHECK(sched_enqueue(NULL, s, c.id, err) == 0);
    CHECK(last_event_is(s, a.id, "Fine-tune enqueued. Queue number: 0"));
    CHECK(last_event_is(s, b.id, "Fine-tune enqueued. Queue number: 1"));
    CHECK(last_event_is(s, c.id, "Fine-tune enqueued. Queue number: 2"));
    CHECK_EQ_STR(status_of(s, a.id), "queued");
    CHECK(sched_enqueue(NULL, s, a.id, err) == STORE_ECONFLICT);   /* only from validating_files */
    done(s);
}

static void test_cancel_pause_resume(void)
{
    store_org_t org, other;
    store_t *s = fresh(&org);
    CHECK(store_org_create(s, "other", &other, err) == 0);
    store_job_t a;
    job(s, &org, STORE_API_JOBS, &a);
    CHECK(sched_pause(NULL, s, org.id, a.id, err) == STORE_ECONFLICT);  /* not queued yet */
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    CHECK(sched_pause(NULL, s, other.id, a.id, err) == STORE_ENOTFOUND);
    CHECK(sched_pause(NULL, s, org.id, a.id, err) == 0);
    CHECK_EQ_STR(status_of(s, a.id), "paused");
    CHECK(last_event_is(s, a.id, "Fine-tune paused"));
    CHECK(sched_pause(NULL, s, org.id, a.id, err) == STORE_ECONFLICT);
    CHECK(sched_resume(NULL, s, org.id, a.id, err) == 0);
    CHECK_EQ_STR(status_of(s, a.id), "queued");
    CHECK(last_event_is(s, a.id, "Fine-tune resumed"));
    CHECK(sched_resume(NULL, s, org.id, a.id, err) == STORE_ECONFLICT);
    CHECK(sched_cancel(NULL, s, other.id, a.id, err) == STORE_ENOTFOUND);
    CHECK_EQ_STR(status_of(s, a.id), "queued");
    /* a work directory is cleaned up when no worker holds it */
    char p[512];
    snprintf(p, sizeof p, "%s/jobs/%s/ckpt-step-1", dir, a.id);
    CHECK(fs_mkdir_p(p, 0755, err) == 0);
    CHECK(sched_cancel(NULL, s, org.id, a.id, err) == 0);
    CHECK_EQ_STR(status_of(s, a.id), "cancelled");
    CHECK(last_event_is(s, a.id, "Fine-tune cancelled"));
    snprintf(p, sizeof p, "%s/jobs/%s", dir, a.id);
    CHECK(!fs_exists(p));
    CHECK(sched_cancel(NULL, s, org.id, a.id, err) == STORE_ECONFLICT);
    CHECK(sched_cancel(NULL, s, org.id, "ft-missing", err) == STORE_ENOTFOUND);
    /* paused jobs can be cancelled too */
    store_job_t b;
    job(s, &org, STORE_API_JOBS, &b);
    CHECK(sched_enqueue(NULL, s, b.id, err) == 0);
    CHECK(sched_pause(NULL, s, org.id, b.id, err) == 0);
    CHECK(sched_cancel(NULL, s, org.id, b.id, err) == 0);
    store_job_t g;
    CHECK(store_job_get(s, NULL, b.id, &g, err) == 0 && g.finished_at > 0);
    store_job_clear(&g);
    done(s);
}

static void test_worker_argv(void)
{
    char *argv[6];
    sched_worker_argv("/usr/bin/tunery", "ft-abc", "/data", argv);
    CHECK_EQ_STR(argv[0], "/usr/bin/tunery");
    CHECK_EQ_STR(argv[1], "worker");
    CHECK_EQ_STR(argv[2], "ft-abc");
    CHECK_EQ_STR(argv[3], "--data");
    CHECK_EQ_STR(argv[4], "/data");
    CHECK(argv[5] == NULL);
}

/* A stand-in worker that logs its start and end and exits without
 * finishing the job, so the reaper must mark the job failed. */
/* A stand-in worker: the shell script text, written executable to
 * dir/name; its path in path. */
static void write_worker(char *path, size_t len, const char *name, const char *text)
{
    snprintf(path, len, "%s/%s", dir, name);
    CHECK(fs_write_atomic(path, text, strlen(text), err) == 0);
    chmod(path, 0755);
}

static void fake_worker(char *path, size_t len, const char *log, double secs)
{
    char text[1024];
    snprintf(text, sizeof text, "#!/bin/sh\necho \"start $2\" >> %s\necho \"$OMP_NUM_THREADS\" > %s.omp\n"
             "sleep %.2f\necho \"end $2\" >> %s\nexit 0\n", log, log, secs, log);
    write_worker(path, len, "fake-worker.sh", text);
}

static int wait_terminal(store_t *s, store_job_t *js, int n, double secs)
{
    double until = time_mono() + secs;
    while (time_mono() < until) {
        int t = 0;
        for (int i = 0; i < n; i++) t += store_job_is_terminal(status_of(s, js[i].id));
        if (t == n) return 1;
        usleep(20000);
    }
    return 0;
}

/* Starts in creation order: the scheduler writes "Fine-tune started" when it
 * starts a job, so the events' store-wide seq numbers give the exact order.
 * The stand-in's log gives the peak number of workers alive at once. */
static void check_order(store_t *s, const char *log, store_job_t *js, int n, int max_conc)
{
    int64_t prev = 0;
    for (int i = 0; i < n; i++) {
        store_event_t *ev;
        int ne;
        int64_t at = 0;
        CHECK(store_event_since(s, NULL, js[i].id, 0, 0, &ev, &ne, err) == 0);
        for (int k = 0; k < ne; k++)
            if (!strcmp(ev[k].message, "Fine-tune started")) at = ev[k].seq;
        free(ev);
        CHECKF(at > prev, "job %d started out of creation order", i);
        prev = at;
    }
    char *text = NULL;
    CHECK(fs_read_all(log, &text, NULL, err) == 0);
    if (!text) return;
    int starts = 0, running = 0, peak = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "start ", 6)) {
            starts++;
            if (++running > peak) peak = running;
        } else {
            running--;
        }
    }
    CHECK(starts == n);
    CHECKF(peak <= max_conc && peak >= 1, "peak concurrency %d, limit %d", peak, max_conc);
    free(text);
}

static void test_queue_order(void)
{
    unsetenv("OMP_NUM_THREADS");
    for (int conc = 1; conc <= 2; conc++) {
        store_org_t org;
        store_t *s = fresh(&org);
        char exe[512], log[512];
        snprintf(log, sizeof log, "%s/order.log", dir);
        fake_worker(exe, sizeof exe, log, 0.15);
        store_job_t js[5];
        for (int i = 0; i < 5; i++) {
            job(s, &org, i % 2 ? STORE_API_JOBS : STORE_API_LEGACY, &js[i]);
            CHECK(sched_enqueue(NULL, s, js[i].id, err) == 0);
        }
        sched_t *sc;
        CHECKF(sched_start(dir, conc, exe, &sc, err) == 0, "%s", err);
        CHECK(wait_terminal(s, js, 5, 20));
        sched_stop(sc);
        check_order(s, log, js, 5, conc);
        /* several jobs at once share the cores between their OpenMP teams */
        char omp_path[600], *omp = NULL;
        snprintf(omp_path, sizeof omp_path, "%s.omp", log);
        CHECK(fs_read_all(omp_path, &omp, NULL, err) == 0);
        cpu_set_t set;
        int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        int want = cores / conc < 1 ? 1 : cores / conc;
        if (conc == 1) CHECK(omp && !strcmp(omp, "\n"));
        else CHECKF(omp && atoi(omp) == want, "OMP_NUM_THREADS=%s, expected %d", omp ? omp : "?", want);
        free(omp);
        /* the reaper's verdict: exited without finishing -> failed, with a reason */
        store_job_t g;
        CHECK(store_job_get(s, NULL, js[0].id, &g, err) == 0);
        CHECK_EQ_STR(g.status, "failed");
        CHECK(strstr(g.error_message, "exited with status 0") != NULL);
        CHECK(g.worker_pid == 0 && g.attempts == 1);
        store_job_clear(&g);
        CHECK(last_event_is(s, js[0].id, "Fine-tune failed"));
        /* the last legacy job heard its number count down to 0 */
        store_event_t *ev;
        int n, last = 5, saw = 0, down = 1;
        CHECK(store_event_since(s, NULL, js[4].id, 0, 0, &ev, &n, err) == 0);
        for (int i = 0; i < n; i++) {
            int q;
            if (sscanf(ev[i].message, "Fine-tune is in the queue. Queue number: %d", &q) == 1 ||
                sscanf(ev[i].message, "Fine-tune enqueued. Queue number: %d", &q) == 1) {
                down &= q < last;
                last = q;
                saw++;
            }
        }
        free(ev);
        CHECK(saw >= 2 && down && last == 0);
        done(s);
    }
}

static void test_restart_recovery(void)
{
    store_org_t org;
    store_t *s = fresh(&org);
    char exe[512], log[512];
    snprintf(log, sizeof log, "%s/order.log", dir);
    fake_worker(exe, sizeof exe, log, 0.01);
    /* What a kill -9 of serve leaves: a running job with a started event,
     * a checkpoint, and the pid of a process that is no worker of it. */
    store_job_t a, b;
    job(s, &org, STORE_API_LEGACY, &a);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    CHECK(store_job_transition(s, a.id, "queued", "running", err) == 0);
    CHECK(store_event_add(s, a.id, NULL, NULL, "Fine-tune started", NULL, NULL, err) == 0);
    CHECK(store_job_set_worker(s, a.id, (int)getpid(), err) == 0);
    store_checkpoint_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.job_id, sizeof c.job_id, "%s", a.id);
    c.step = 7;
    CHECK(store_checkpoint_add(s, &c, err) == 0);
    char p[512];   /* the directories decide: complete ckpt-step-7, half-written step 9 */
    snprintf(p, sizeof p, "%s/jobs/%s/ckpt-step-7", dir, a.id);
    CHECK(fs_mkdir_p(p, 0755, err) == 0);
    snprintf(p, sizeof p, "%s/jobs/%s/ckpt-step-9.tmp", dir, a.id);
    CHECK(fs_mkdir_p(p, 0755, err) == 0);
    /* and a job created but never enqueued */
    job(s, &org, STORE_API_LEGACY, &b);
    sched_t *sc;
    CHECKF(sched_start(dir, 1, exe, &sc, err) == 0, "%s", err);
    store_job_t both[2] = {a, b};
    CHECK(wait_terminal(s, both, 2, 20));
    sched_stop(sc);
    store_event_t *ev;
    int n, resumed = 0, started = 0;
    CHECK(store_event_since(s, NULL, a.id, 0, 0, &ev, &n, err) == 0);
    for (int i = 0; i < n; i++) {
        resumed += !strcmp(ev[i].message, "Resumed from step 7");
        started += !strcmp(ev[i].message, "Fine-tune started");
    }
    free(ev);
    CHECK(resumed == 1 && started == 1);
    CHECK(getpid() > 0);   /* we were not killed: our pid was not taken for a worker */
    CHECK(last_event_is(s, b.id, "Fine-tune failed"));
    CHECK(store_event_since(s, NULL, b.id, 0, 0, &ev, &n, err) == 0);
    CHECK(n >= 1 && !strcmp(ev[0].message, "Fine-tune enqueued. Queue number: 1"));   /* behind the re-queued job */
    free(ev);
    done(s);
}

/* Cancel of a running job signals its worker (here a script that exits on
 * SIGTERM), and the reaper then removes the work directory. */
static void test_cancel_signals_worker(void)
{
    store_org_t org;
    store_t *s = fresh(&org);
    char exe[512];
    write_worker(exe, sizeof exe, "term-worker.sh", "#!/bin/sh\ntrap 'exit 0' TERM\nsleep 20 &\nwait\n");
    store_job_t a;
    job(s, &org, STORE_API_LEGACY, &a);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    sched_t *sc;
    CHECKF(sched_start(dir, 1, exe, &sc, err) == 0, "%s", err);
    double until = time_mono() + 10;
    while (sched_running(sc) == 0 && time_mono() < until) usleep(10000);
    CHECK(sched_running(sc) == 1);
    char p[512];
    snprintf(p, sizeof p, "%s/jobs/%s", dir, a.id);
    CHECK(fs_exists(p));   /* the scheduler made it for the worker's log */
    double t0 = time_mono();
    CHECK(sched_cancel(sc, s, org.id, a.id, err) == 0);
    while (sched_running(sc) > 0 && time_mono() < until) usleep(10000);
    CHECKF(time_mono() - t0 < 2.0, "worker took %.1f s to stop", time_mono() - t0);
    CHECK_EQ_STR(status_of(s, a.id), "cancelled");
    CHECK(last_event_is(s, a.id, "Fine-tune cancelled"));
    CHECK(!fs_exists(p));
    sched_stop(sc);
    done(s);
}

/* Pause then an immediate resume, while the paused worker is still writing
 * its checkpoint: the job must not get a second worker until the first one
 * has exited (two writers in one work directory would corrupt it). */
static void test_quick_resume_waits_for_the_old_worker(void)
{
    store_org_t org;
    store_t *s = fresh(&org);
    char exe[512], log[512], text[1024];
    snprintf(log, sizeof log, "%s/life.log", dir);
    snprintf(text, sizeof text, "#!/bin/sh\necho start >> %s\ntrap 'sleep 0.5; echo end >> %s; exit 0' TERM\n"
             "sleep 20 &\nwait\n", log, log);
    write_worker(exe, sizeof exe, "slow-stop-worker.sh", text);
    store_job_t a;
    job(s, &org, STORE_API_JOBS, &a);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    sched_t *sc;
    CHECKF(sched_start(dir, 2, exe, &sc, err) == 0, "%s", err);
    double until = time_mono() + 10;
    while (!fs_exists(log) && time_mono() < until) usleep(10000);
    CHECK(sched_pause(sc, s, org.id, a.id, err) == 0);
    CHECK(sched_resume(sc, s, org.id, a.id, err) == 0);
    int peak = 0;
    char *t = NULL;
    while (time_mono() < until) {
        int r = sched_running(sc);
        if (r > peak) peak = r;
        free(t);
        t = NULL;
        fs_read_all(log, &t, NULL, err);
        if (t && !strcmp(t, "start\nend\nstart\n")) break;
        usleep(10000);
    }
    CHECK(peak == 1);
    CHECKF(t && !strcmp(t, "start\nend\nstart\n"), "worker lives: %s", t ? t : "(none)");
    free(t);
    CHECK(sched_cancel(sc, s, org.id, a.id, err) == 0);
    sched_stop(sc);
    done(s);
}

/* OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; OMP_NUM_THREADS
 * split between concurrent jobs unless the user chose a count. */
static void test_worker_env(void)
{
    char buf[128];
    char *base[] = {"PATH=/bin", "OMP_WAIT_POLICYX=1", NULL};
    char **e = sched_worker_env(base, 1, 8, buf);
    CHECK(e != NULL);
    CHECK_EQ_STR(e[0], "PATH=/bin");
    CHECK_EQ_STR(e[1], "OMP_WAIT_POLICYX=1");
    CHECK_EQ_STR(e[2], "OMP_WAIT_POLICY=PASSIVE");
    CHECK(e[3] == NULL);
    free(e);
    e = sched_worker_env(base, 3, 8, buf);
    CHECK_EQ_STR(e[2], "OMP_WAIT_POLICY=PASSIVE");
    CHECK_EQ_STR(e[3], "OMP_NUM_THREADS=2");
    CHECK(e[4] == NULL);
    free(e);
    char *user[] = {"OMP_WAIT_POLICY=active", "OMP_NUM_THREADS=1", NULL};
    e = sched_worker_env(user, 4, 2, buf);
    CHECK_EQ_STR(e[0], "OMP_WAIT_POLICY=active");
    CHECK_EQ_STR(e[1], "OMP_NUM_THREADS=1");
    CHECK(e[2] == NULL);
    free(e);
    char *none[] = {NULL};
    e = sched_worker_env(none, 4, 2, buf);
    CHECK_EQ_STR(e[0], "OMP_WAIT_POLICY=PASSIVE");
    CHECK_EQ_STR(e[1], "OMP_NUM_THREADS=1");   /* at least one thread each */
    CHECK(e[2] == NULL);
    free(e);
}

/* The exec'd worker really has it: a stand-in worker writes its
 * environment; with the user's own policy, that one is kept. */
static void worker_policy_seen(const char *user_policy, const char *want)
{
    store_org_t org;
    store_t *s = fresh(&org);
    char exe[512], out[512], text[1024];
    snprintf(out, sizeof out, "%s/env.txt", dir);
    snprintf(text, sizeof text, "#!/bin/sh\nenv > %s.tmp && mv %s.tmp %s\nexit 1\n", out, out, out);
    write_worker(exe, sizeof exe, "env-worker.sh", text);
    char *saved = getenv("OMP_WAIT_POLICY") ? strdup(getenv("OMP_WAIT_POLICY")) : NULL;
    if (user_policy) setenv("OMP_WAIT_POLICY", user_policy, 1);
    else unsetenv("OMP_WAIT_POLICY");
    store_job_t a;
    job(s, &org, STORE_API_LEGACY, &a);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    sched_t *sc;
    CHECKF(sched_start(dir, 1, exe, &sc, err) == 0, "%s", err);
    double until = time_mono() + 10;
    while (!fs_exists(out) && time_mono() < until) usleep(10000);
    sched_stop(sc);
    if (saved) setenv("OMP_WAIT_POLICY", saved, 1);
    else unsetenv("OMP_WAIT_POLICY");
    free(saved);
    char *env = NULL;
    size_t len;
    CHECKF(fs_read_all(out, &env, &len, err) == 0, "%s", err);
    char line[64];
    snprintf(line, sizeof line, "\nOMP_WAIT_POLICY=%s\n", want);
    CHECKF(env && (strstr(env, line) || !strncmp(env, line + 1, strlen(line + 1))), "worker env lacks %s", line + 1);
    free(env);
    done(s);
}

static void test_worker_gets_passive_wait_policy(void)
{
    worker_policy_seen(NULL, "PASSIVE");
    worker_policy_seen("ACTIVE", "ACTIVE");
}

/* A job with a wandb integration cancelled while still queued (no worker
 * ever ran) gets the "sends nothing" note, once, just before its
 * "cancelled" line; the note is not repeated if the worker wrote it
 * already, and a job without an integration gets none. */
static void test_cancel_queued_wandb_note(void)
{
    store_org_t org;
    store_t *s = fresh(&org);
    const char *integ = "[{\"type\": \"wandb\", \"wandb\": {\"project\": \"p\"}}]";
    store_job_t a, b, c;
    memset(&a, 0, sizeof a);
    a.api = STORE_API_JOBS;
    snprintf(a.org_id, sizeof a.org_id, "%s", org.id);
    snprintf(a.model, sizeof a.model, "curie");
    snprintf(a.training_file, sizeof a.training_file, "file-x");
    a.integrations = (char *)integ;
    b = a;
    CHECKF(store_job_create(s, &a, err) == 0, "%s", err);
    CHECKF(store_job_create(s, &b, err) == 0, "%s", err);
    job(s, &org, STORE_API_JOBS, &c);
    CHECK(sched_enqueue(NULL, s, a.id, err) == 0);
    CHECK(sched_enqueue(NULL, s, b.id, err) == 0);
    CHECK(sched_enqueue(NULL, s, c.id, err) == 0);
    /* b: as if its worker had started once and written the note */
    store_job_t jb;
    CHECK(store_job_get(s, NULL, b.id, &jb, err) == 0);
    sched_note_wandb(s, &jb, 1);
    store_job_clear(&jb);
    const char *ids[3] = {a.id, b.id, c.id};
    int want_notes[3] = {1, 1, 0};
    for (int k = 0; k < 3; k++) {
        CHECK(sched_cancel(NULL, s, org.id, ids[k], err) == 0);
        CHECK(last_event_is(s, ids[k], SCHED_MSG_CANCELLED));
        store_event_t *ev;
        int n = 0, notes = 0;
        CHECK(store_event_since(s, NULL, ids[k], 0, 0, &ev, &n, err) == 0);
        for (int i = 0; i < n; i++) notes += !strcmp(ev[i].message, SCHED_MSG_WANDB);
        CHECKF(notes == want_notes[k], "job %d: %d notes", k, notes);
        if (want_notes[k] && n >= 2) {
            CHECK_EQ_STR(ev[n - 2].message, SCHED_MSG_WANDB);
            CHECK_EQ_STR(ev[n - 2].level, "warn");
        }
        free(ev);
    }
    /* once terminal, a late worker's note (only_active) does not land */
    store_job_t jc;
    CHECK(store_job_get(s, NULL, c.id, &jc, err) == 0);
    jc.integrations = strdup(integ);
    sched_note_wandb(s, &jc, 1);
    CHECK(last_event_is(s, c.id, SCHED_MSG_CANCELLED));
    store_job_clear(&jc);
    done(s);
}

int main(void)
{
    RUN(test_enqueue_numbers);
    RUN(test_cancel_pause_resume);
    RUN(test_cancel_queued_wandb_note);
    RUN(test_worker_argv);
    RUN(test_worker_env);
    RUN(test_worker_gets_passive_wait_policy);
    RUN(test_queue_order);
    RUN(test_restart_recovery);
    RUN(test_cancel_signals_worker);
    RUN(test_quick_resume_waits_for_the_old_worker);
    return test_summary();
}
