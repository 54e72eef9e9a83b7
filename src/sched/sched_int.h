/* sched_int.h: what the scheduler and the worker share: the event texts of
 * the job lifecycle (one place, so the two processes cannot drift) and the
 * worker's exit codes, which tell the reaper what happened. */
#ifndef TUNERY_SCHED_INT_H
#define TUNERY_SCHED_INT_H

#include "store/store.h"

#define SCHED_MSG_ENQUEUED   "Fine-tune enqueued. Queue number: %d"
#define SCHED_MSG_IN_QUEUE   "Fine-tune is in the queue. Queue number: %d"
#define SCHED_MSG_STARTED    "Fine-tune started"
#define SCHED_MSG_RESUMED    "Resumed from step %d"
#define SCHED_MSG_RESTARTED  "Restarted from the beginning (no checkpoint had been written)"
#define SCHED_MSG_PAUSED     "Fine-tune paused"
#define SCHED_MSG_UNPAUSED   "Fine-tune resumed"
#define SCHED_MSG_CANCELLED  "Fine-tune cancelled"
#define SCHED_MSG_FAILED     "Fine-tune failed"
#define SCHED_MSG_SUCCEEDED  "Fine-tune succeeded"
#define SCHED_MSG_MODEL      "Uploaded model: %s"
#define SCHED_MSG_RESULTS    "Uploaded result file: %s"
#define SCHED_MSG_WANDB      "Weights & Biases integration: recorded, but this server trains offline and sends " \
                             "nothing; the metrics are in this job's events and results file"

/* The SCHED_MSG_WANDB note of a job with a wandb integration, once: the
 * worker writes it when it starts (only_active: not after a cancel), and
 * sched_cancel for a job cancelled before any worker ran, ahead of its
 * "cancelled" line. Nothing for a job without one. (sched.c) */
void sched_note_wandb(store_t *s, const store_job_t *j, int only_active);

/* Worker exit status. */
#define SCHED_EXIT_DONE        0   /* the job's outcome is in the store (succeeded, failed, paused, cancelled) */
#define SCHED_EXIT_ERROR       1   /* could not even record an outcome: the reaper marks it failed */
#define SCHED_EXIT_INTERRUPTED 3   /* stopped at a checkpoint by SIGTERM while still running: re-queue */

/* The step of the newest complete checkpoint directory (ckpt-step-N, as
 * train/ writes them: a directory with that exact name is complete) in
 * work_dir, or -1 if there is none. */
int sched_newest_checkpoint(const char *work_dir);

#endif
