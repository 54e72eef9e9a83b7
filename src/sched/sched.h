/* sched: runs fine-tune jobs for `tunery serve`. A thread inside the server
 * keeps the queue (a status in the store, so it survives crashes), starts up
 * to max_concurrent jobs in creation order, each as a separate process
 * `tunery worker JOB-ID --data DIR` so a crash in training never takes the
 * server down and cancel is a signal, reaps them, and writes the queue and
 * lifecycle events:
 *
 *   sched_enqueue    "Fine-tune enqueued. Queue number: N"        (legacy)
 *   scheduler thread "Fine-tune is in the queue. Queue number: N" (legacy, when N changes)
 *                    "Fine-tune started" | "Resumed from step N"
 *   worker           "Completed epoch k/M", metrics, checkpoints,
 *                    "Uploaded model: ...", "Uploaded result file: ...",
 *                    "Fine-tune succeeded"
 *   reaper           "Fine-tune failed" when a worker dies without finishing
 *   sched_cancel     "Fine-tune cancelled"
 *
 * The server writes "Created fine-tune: <id>" and "Fine-tune costs $X.XX"
 * itself (it counted the tokens), then calls sched_enqueue.
 *
 * Restart rule: sched_start re-queues jobs left `running` by a dead server;
 * their workers resume from the job's newest checkpoint. Workers die with the
 * server (PR_SET_PDEATHSIG), so a restarted server never races an orphan.
 *
 * Calls that take a store_t use the caller's store (any thread); the
 * scheduler thread opens its own.
 *
 * Followers: a job's status turns terminal just before its last event is
 * written ("Fine-tune succeeded", "... cancelled", "... failed"), and that
 * event wakes store_event_watch. So an SSE stream that sees a terminal status
 * should read the events once more before sending [DONE].
 */
#ifndef TUNERY_SCHED_H
#define TUNERY_SCHED_H

#include "store/store.h"

typedef struct sched sched_t;

/* Start the scheduler thread for the store in data_dir (re-queueing jobs
 * left running). worker_exe NULL = /proc/self/exe (the running tunery). */
int sched_start(const char *data_dir, int max_concurrent, const char *worker_exe,
                sched_t **out, char *err);
/* Stop the thread; running workers are sent SIGTERM, waited for, and their
 * jobs put back in the queue (they resume on the next start). */
void sched_stop(sched_t *sc);

/* Move a new job (validating_files) to queued, write the enqueue event
 * (legacy: "Fine-tune enqueued. Queue number: N"; current API: "Job
 * enqueued"), and wake the scheduler. sc may be NULL (no scheduler in this
 * process: the job waits for the next serve). */
int sched_enqueue(sched_t *sc, store_t *s, const char *job_id, char *err);

/* Cancel in any active state: status cancelled, "Fine-tune cancelled",
 * SIGTERM to its worker if one runs (the work directory is removed once it
 * exits). STORE_ENOTFOUND for another org's or a missing job,
 * STORE_ECONFLICT for a job that is already terminal. */
int sched_cancel(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err);

/* Current API. Pause: running|queued -> paused; a running worker stops at
 * the next step after writing a checkpoint and exits, freeing the CPU.
 * Resume: paused -> queued; the next worker continues from that checkpoint.
 * STORE_ECONFLICT when the job is not in a state that allows it. */
int sched_pause(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err);
int sched_resume(sched_t *sc, store_t *s, const char *org_id, const char *job_id, char *err);

/* Wake the thread now (e.g. after a job changed state elsewhere). */
void sched_wake(sched_t *sc);

/* Number of workers running now (for /health and tests). */
int sched_running(sched_t *sc);

/* Build the worker's arguments (exposed for tests): argv for
 * exe worker JOB-ID --data DIR, NULL-terminated, pointing into the inputs. */
void sched_worker_argv(const char *exe, const char *job_id, const char *data_dir, char *argv[6]);
/* The worker's environment (exposed for tests): base plus, where base does
 * not set them, OMP_WAIT_POLICY=PASSIVE and (max_concurrent > 1) OMP_NUM_THREADS
 * = cores / max_concurrent. The added strings live in buf; free the array
 * (not its strings). NULL when out of memory. */
char **sched_worker_env(char *const *base, int max_concurrent, int cores, char buf[128]);

#endif
