/* sched.c: the scheduler thread of `tunery serve`. The queue is not in
 * memory but in the store (status 'queued', in creation order), so a crash
 * loses nothing; this thread only turns it into processes: it starts up to
 * max_concurrent workers, announces queue numbers, reaps exits and decides
 * what an exit means (done, interrupted -> queue again, crashed -> failed).
 *
 * Workers are children of the server, made with fork + exec of our own
 * binary. In the child, between fork and exec, only async-signal-safe calls
 * run (the server is multi-threaded); the child asks the kernel to SIGKILL
 * it if the server dies (PR_SET_PDEATHSIG), so that after a kill -9 of serve
 * no orphan keeps training while the restarted server resumes the job. */
#include "sched/sched.h"
#include "sched/sched_int.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SCHED_MAX_WORKERS 64

typedef struct {
    pid_t pid;                      /* 0 = free slot */
    char job_id[STORE_ID_LEN];
    int stopping;                   /* SIGTERM sent by sched_stop */
    double kill_at;                 /* cancelled: SIGKILL if still alive then (0 = never) */
} slot_t;

/* A cancelled worker stops at its next step; one stuck longer than this in a
 * step (or in loading a huge file) is killed, so cancel always frees the CPU. */
#define SCHED_CANCEL_GRACE 10.0

struct sched {
    char data_dir[STORE_PATH_LEN];
    char exe[PATH_MAX];
    int max_concurrent;
    store_t *store;                 /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, wake;
    slot_t slots[SCHED_MAX_WORKERS];
};

static void cpy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

void sched_worker_argv(const char *exe, const char *job_id, const char *data_dir, char *argv[6])
{
    argv[0] = (char *)exe;
    argv[1] = "worker";
    argv[2] = (char *)job_id;
    argv[3] = "--data";
    argv[4] = (char *)data_dir;
    argv[5] = NULL;
}

static void event(store_t *s, const char *job_id, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void event(store_t *s, const char *job_id, const char *level, const char *fmt, ...)
{
    char msg[STORE_TEXT_LEN], err[CORE_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Nothing to tell the user if the store is failing too; the job's status
     * is what the caller already changed. */
    store_event_add(s, job_id, level, "message", msg, NULL, NULL, err);
}

int sched_newest_checkpoint(const char *work_dir)
{
    DIR *d = opendir(work_dir);
    if (!d) return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int step, len = 0;
        if (sscanf(e->d_name, "ckpt-step-%d%n", &step, &len) == 1 && e->d_name[len] == 0 && step > best) best = step;
    }
    closedir(d);
    return best;
}

/* A cancelled job keeps its events but not its checkpoints. */
static void rm_job_dir(store_t *s, const char *job_id)
{
    char p[STORE_PATH_LEN + 64], err[CORE_ERR_LEN];
    if (!job_id[0] || strchr(job_id, '/')) return;
    store_checkpoint_delete(s, job_id, -1, err);
    snprintf(p, sizeof p, "%s/jobs/%s", store_data_dir(s), job_id);
    fs_rm_rf(p, err);
}

/* ------------------------------------------------------------------ public calls (any thread) */

int sched_enqueue(sched_t *sc, store_t *s, const char *job_id, char *err)
{
    int rc = store_job_transition(s, job_id, "validating_files", "queued", err);
    if (rc) return rc;
    store_job_t j;
    if ((rc = store_job_get(s, NULL, job_id, &j, err))) return rc;
    int pos = 0;
    if (store_job_queue_position(s, job_id, &pos, err) == 0) {
        store_job_set_queue_number(s, job_id, pos, err);
        event(s, job_id, "info", SCHED_MSG_ENQUEUED, pos);
    }
    store_job_clear(&j);
    sched_wake(sc);
    return 0;
}

/* The slot of a job's worker, with sc->mu held. */
static slot_t *slot_of(sched_t *sc, const char *job_id)
{
    for (int i = 0; i < SCHED_MAX_WORKERS; i++)
        if (sc->slots[i].pid && !strcmp(sc->slots[i].job_id, job_id)) return &sc->slots[i];
    return NULL;
}

/* Tell a running worker to look at its job's status now (cancel, pause). */
static int signal_worker(sched_t *sc, const char *job_id, int cancel)
{
    if (!sc) return 0;
    pthread_mutex_lock(&sc->mu);
    slot_t *sl = slot_of(sc, job_id);
    if (sl) {
        kill(sl->pid, SIGTERM);
        if (cancel) sl->kill_at = time_mono() + SCHED_CANCEL_GRACE;
    }
    pthread_mutex_unlock(&sc->mu);
    return sl != NULL;
}

void sched_note_wandb(store_t *s, const store_job_t *j, int only_active)
{
    if (!j->integrations || !strstr(j->integrations, "\"wandb\"")) return;
    char err[CORE_ERR_LEN];
    int exists = 1;
    if (store_event_exists(s, j->id, SCHED_MSG_WANDB, &exists, err) || exists) return;
    if (only_active) store_event_add_active(s, j->id, "warn", "message", SCHED_MSG_WANDB, NULL, NULL, err);
    else store_event_add(s, j->id, "warn", "message", SCHED_MSG_WANDB, NULL, NULL, err);
}

int sched_cancel(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err)
{
    store_job_t j;
    int rc = store_job_get(s, org_id, job_id, &j, err);
    if (rc) return rc;
    rc = store_job_transition(s, job_id, "validating_files,queued,running,paused", "cancelled", err);
    if (rc) {
        store_job_clear(&j);
        return rc;
    }
    /* A job cancelled before any worker ran still says what became of its
     * integration (once the job is terminal no worker can write it too);
     * before the terminal line, where followers stop reading. */
    sched_note_wandb(s, &j, 0);
    store_job_clear(&j);
    event(s, job_id, "info", SCHED_MSG_CANCELLED);
    /* With a worker, the reaper removes the work directory once it exits. */
    if (!signal_worker(sc, job_id, 1)) rm_job_dir(s, job_id);
    sched_wake(sc);
    return 0;
}

int sched_pause(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err)
{
    store_job_t j;
    int rc = store_job_get(s, org_id, job_id, &j, err);
    if (rc) return rc;
    store_job_clear(&j);
    rc = store_job_transition(s, job_id, "queued,running", "paused", err);
    if (rc) return rc;
    event(s, job_id, "info", SCHED_MSG_PAUSED);
    signal_worker(sc, job_id, 0);
    sched_wake(sc);
    return 0;
}

int sched_resume(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err)
{
    store_job_t j;
    int rc = store_job_get(s, org_id, job_id, &j, err);
    if (rc) return rc;
    store_job_clear(&j);
    /* If the paused worker is still writing its checkpoint, the job waits
     * in the queue until that process is gone (tick() skips a job that
     * still has a worker), then resumes from that checkpoint. */
    rc = store_job_transition(s, job_id, "paused", "queued", err);
    if (rc) return rc;
    event(s, job_id, "info", SCHED_MSG_UNPAUSED);
    sched_wake(sc);
    return 0;
}

void sched_wake(sched_t *sc)
{
    if (!sc) return;
    pthread_mutex_lock(&sc->mu);
    sc->wake = 1;
    pthread_cond_signal(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
}

int sched_running(sched_t *sc)
{
    int n = 0;
    pthread_mutex_lock(&sc->mu);
    for (int i = 0; i < SCHED_MAX_WORKERS; i++) n += sc->slots[i].pid != 0;
    pthread_mutex_unlock(&sc->mu);
    return n;
}

/* ------------------------------------------------------------------ the thread */

extern char **environ;

/* Is NAME set in env? */
static int env_has(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; *env; env++)
        if (!strncmp(*env, name, n) && (*env)[n] == '=') return 1;
    return 0;
}

/* The worker's environment. Two OpenMP settings are added unless the user
 * chose them:
 *  - OMP_WAIT_POLICY=PASSIVE: libgomp's default lets a thread that waits at
 *    a barrier spin first, and on a shared machine a spinning thread waiting
 *    for a descheduled partner burns the core the partner needed (measured:
 *    about 2x the CPU per training step, docs/bench.md section 7). It must
 *    be in the environment before libgomp initialises, so it is set here,
 *    for the exec'd worker, not in the worker itself;
 *  - OMP_NUM_THREADS = cores / max concurrent jobs when several jobs may
 *    train at once, because OpenMP teams that oversubscribe the cores spin
 *    against each other (measured: a tiny job 20x slower beside another).
 * Built before fork: the child may not allocate. */
char **sched_worker_env(char *const *base, int max_concurrent, int cores, char buf[128])
{
    int n = 0;
    while (base[n]) n++;
    char **env = malloc((size_t)(n + 3) * sizeof *env);
    if (!env) return NULL;
    memcpy(env, base, (size_t)n * sizeof *env);
    char *p = buf;
    if (!env_has(base, "OMP_WAIT_POLICY")) {
        env[n++] = p;
        p += snprintf(p, 64, "OMP_WAIT_POLICY=PASSIVE") + 1;
    }
    if (max_concurrent > 1 && !env_has(base, "OMP_NUM_THREADS")) {
        int per = cores / max_concurrent;
        env[n++] = p;
        snprintf(p, 40, "OMP_NUM_THREADS=%d", per < 1 ? 1 : per);
    }
    env[n] = NULL;
    return env;
}

/* fork + exec one worker; the child's output goes to jobs/<id>/worker.log. */
static pid_t spawn_worker(sched_t *sc, const char *job_id, char *err)
{
    char log[STORE_PATH_LEN + 64], jdir[STORE_PATH_LEN + 64];
    snprintf(jdir, sizeof jdir, "%s/jobs/%s", sc->data_dir, job_id);
    if (fs_mkdir_p(jdir, 0755, err)) return -1;
    snprintf(log, sizeof log, "%s/worker.log", jdir);
    char *argv[6];
    sched_worker_argv(sc->exe, job_id, sc->data_dir, argv);
    char envbuf[128];
    cpu_set_t set;
    int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    char **env = sched_worker_env(environ, sc->max_concurrent, cores, envbuf);
    if (!env) return core_errf(err, "cannot start a worker process: out of memory");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        return core_errf(err, "cannot start a worker process: %s", strerror(errno));
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only until exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(SCHED_EXIT_ERROR);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        close_range(3, ~0U, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(sc->exe, argv, env);
        _exit(127);
    }
    free(env);
    return pid;
}

/* Start one queued job (with sc->mu held, so cancel cannot miss the pid). */
static void start_job(sched_t *sc, slot_t *sl, const store_job_t *j)
{
    store_t *s = sc->store;
    char err[CORE_ERR_LEN];
    if (store_job_transition(s, j->id, "queued", "running", err)) return;   /* cancelled or paused meanwhile */
    int had_start = 0;
    store_event_exists(s, j->id, SCHED_MSG_STARTED, &had_start, err);
    if (!had_start) {
        event(s, j->id, "info", SCHED_MSG_STARTED);
    } else {
        char wd[STORE_PATH_LEN + 64];
        snprintf(wd, sizeof wd, "%s/jobs/%s", sc->data_dir, j->id);
        int step = sched_newest_checkpoint(wd);   /* what the worker will resume from */
        if (step > 0) event(s, j->id, "info", SCHED_MSG_RESUMED, step);
        else event(s, j->id, "info", SCHED_MSG_RESTARTED);
    }
    pid_t pid = spawn_worker(sc, j->id, err);
    if (pid < 0) {
        if (store_job_fail(s, j->id, "worker_start_failed", err, err) == 0) event(s, j->id, "error", SCHED_MSG_FAILED);
        return;
    }
    sl->pid = pid;
    sl->stopping = 0;
    sl->kill_at = 0;
    cpy(sl->job_id, sizeof sl->job_id, j->id);
    store_job_set_worker(s, j->id, pid, err);
}

/* A worker exited: decide from its exit status and the job's status. */
static void reap(sched_t *sc, slot_t *sl, int wstatus)
{
    store_t *s = sc->store;
    char err[CORE_ERR_LEN];
    store_job_t j;
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    char why[STORE_TEXT_LEN];
    if (WIFSIGNALED(wstatus)) snprintf(why, sizeof why, "the training process was killed by signal %d (%s); its log is %s/jobs/%s/worker.log",
                                       WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)), sc->data_dir, sl->job_id);
    else snprintf(why, sizeof why, "the training process exited with status %d without finishing the job; its log is %s/jobs/%s/worker.log",
                  code, sc->data_dir, sl->job_id);
    if (store_job_get(s, NULL, sl->job_id, &j, err) == 0) {
        store_job_set_worker(s, j.id, 0, err);
        if (!strcmp(j.status, "running")) {
            if (code == SCHED_EXIT_INTERRUPTED || sl->stopping) {
                store_job_transition(s, j.id, "running", "queued", err);   /* resumes from its checkpoint */
            } else if (store_job_fail(s, j.id, "worker_crashed", why, err) == 0) {
                event(s, j.id, "error", SCHED_MSG_FAILED);
            }
        } else if (!strcmp(j.status, "cancelled")) {
            rm_job_dir(s, j.id);
        }
        store_job_clear(&j);
    }
    sl->pid = 0;
    sl->job_id[0] = 0;
}

/* Legacy jobs hear their place in the line whenever it changes. */
static void announce_queue(sched_t *sc, store_job_t *q, int n)
{
    char err[CORE_ERR_LEN];
    for (int i = 0; i < n; i++) {
        if (q[i].queue_number == i) continue;
        store_job_set_queue_number(sc->store, q[i].id, i, err);
        if (q[i].api == STORE_API_LEGACY) event(sc->store, q[i].id, "info", SCHED_MSG_IN_QUEUE, i);
    }
}

static void tick(sched_t *sc)
{
    char err[CORE_ERR_LEN];
    int running = 0;
    pthread_mutex_lock(&sc->mu);
    for (int i = 0; i < SCHED_MAX_WORKERS; i++) {
        slot_t *sl = &sc->slots[i];
        if (!sl->pid) continue;
        int ws;
        pid_t r = waitpid(sl->pid, &ws, WNOHANG);
        if (r == sl->pid) reap(sc, sl, ws);
        else if (r < 0 && errno == ECHILD) reap(sc, sl, 0x7f00);   /* lost: treat as a crash */
        else {
            running++;
            if (sl->kill_at && time_mono() > sl->kill_at) kill(sl->pid, SIGKILL);
        }
    }
    if (!sc->stop) {
        store_job_t *q = NULL;
        int n = 0;
        if (store_job_queued(sc->store, &q, &n, err) == 0) {
            int k = 0;
            for (int i = 0; i < SCHED_MAX_WORKERS && running < sc->max_concurrent && k < n; i++) {
                if (sc->slots[i].pid) continue;
                while (k < n && slot_of(sc, q[k].id)) k++;   /* its last worker has not exited yet */
                if (k == n) break;
                start_job(sc, &sc->slots[i], &q[k++]);
                running += sc->slots[i].pid != 0;
            }
            store_job_free(q, n);
            /* Queue numbers after the starts, so a started job is not announced. */
            if (store_job_queued(sc->store, &q, &n, err) == 0) {
                announce_queue(sc, q, n);
                store_job_free(q, n);
            }
        }
    }
    pthread_mutex_unlock(&sc->mu);
}

static void stop_workers(sched_t *sc)
{
    pthread_mutex_lock(&sc->mu);
    for (int i = 0; i < SCHED_MAX_WORKERS; i++)
        if (sc->slots[i].pid) {
            sc->slots[i].stopping = 1;
            kill(sc->slots[i].pid, SIGTERM);
        }
    pthread_mutex_unlock(&sc->mu);
    /* Give them time to write a checkpoint, then insist. */
    double until = time_mono() + 30;
    for (;;) {
        tick(sc);
        if (sched_running(sc) == 0) break;
        if (time_mono() > until) {
            pthread_mutex_lock(&sc->mu);
            for (int i = 0; i < SCHED_MAX_WORKERS; i++)
                if (sc->slots[i].pid) kill(sc->slots[i].pid, SIGKILL);
            pthread_mutex_unlock(&sc->mu);
            until = time_mono() + 3600;
        }
        usleep(50 * 1000);
    }
}

static void *sched_main(void *arg)
{
    sched_t *sc = arg;
    for (;;) {
        tick(sc);
        pthread_mutex_lock(&sc->mu);
        if (!sc->wake && !sc->stop) {
            /* Exits are noticed by polling waitpid: 200 ms is far below
             * anything a user can see and costs nothing. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
        }
        sc->wake = 0;
        int stop = sc->stop;
        pthread_mutex_unlock(&sc->mu);
        if (stop) break;
    }
    stop_workers(sc);
    return NULL;
}

/* ------------------------------------------------------------------ start and stop */

/* Is pid a `tunery worker <job_id>` left over from a previous server? */
static int is_worker_of(int pid, const char *job_id)
{
    char p[64], cmd[4096];
    snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0) return 0;
    cmd[n] = 0;
    const char *a1 = cmd + strlen(cmd) + 1;
    if (a1 >= cmd + n || strcmp(a1, "worker")) return 0;
    const char *a2 = a1 + strlen(a1) + 1;
    return a2 < cmd + n && !strcmp(a2, job_id);
}

/* Jobs a dead server left running go back to the queue (their workers,
 * if any survived, are stopped first); jobs it left before the queue are
 * enqueued. */
static int recover(sched_t *sc, char *err)
{
    store_t *s = sc->store;
    store_job_t *js;
    int n;
    if (store_job_by_status(s, "running", &js, &n, err)) return -1;
    for (int i = 0; i < n; i++) {
        int pid = js[i].worker_pid;
        if (pid > 0 && is_worker_of(pid, js[i].id)) {
            kill(pid, SIGKILL);
            for (int t = 0; t < 100 && kill(pid, 0) == 0 && is_worker_of(pid, js[i].id); t++) usleep(10000);
        }
        store_job_set_worker(s, js[i].id, 0, err);
        store_job_transition(s, js[i].id, "running", "queued", err);
    }
    store_job_free(js, n);
    if (store_job_by_status(s, "validating_files", &js, &n, err)) return -1;
    for (int i = 0; i < n; i++) sched_enqueue(NULL, s, js[i].id, err);
    store_job_free(js, n);
    return 0;
}

int sched_start(const char *data_dir, int max_concurrent, const char *worker_exe, sched_t **out, char *err)
{
    *out = NULL;
    sched_t *sc = calloc(1, sizeof *sc);
    if (!sc) return core_errf(err, "out of memory");
    cpy(sc->data_dir, sizeof sc->data_dir, data_dir && *data_dir ? data_dir : core_data_dir());
    sc->max_concurrent = max_concurrent < 1 ? 1 : max_concurrent > SCHED_MAX_WORKERS ? SCHED_MAX_WORKERS : max_concurrent;
    if (worker_exe) {
        cpy(sc->exe, sizeof sc->exe, worker_exe);
    } else {
        ssize_t n = readlink("/proc/self/exe", sc->exe, sizeof sc->exe - 1);
        if (n <= 0) {
            free(sc);
            return core_errf(err, "cannot find the tunery executable (/proc/self/exe): %s", strerror(errno));
        }
        sc->exe[n] = 0;
    }
    if (store_open(sc->data_dir, &sc->store, err)) {
        free(sc);
        return -1;
    }
    if (recover(sc, err)) {
        store_close(sc->store);
        free(sc);
        return -1;
    }
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    int rc = pthread_create(&sc->thread, NULL, sched_main, sc);
    if (rc) {
        store_close(sc->store);
        free(sc);
        return core_errf(err, "cannot start the scheduler thread: %s", strerror(rc));
    }
    *out = sc;
    return 0;
}

void sched_stop(sched_t *sc)
{
    if (!sc) return;
    pthread_mutex_lock(&sc->mu);
    sc->stop = 1;
    pthread_cond_signal(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    pthread_join(sc->thread, NULL);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    store_close(sc->store);
    free(sc);
}
