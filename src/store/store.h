/* store: everything `tunery serve` must not lose. Organizations, API keys,
 * uploaded files, fine-tune jobs (legacy /v1/fine-tunes and current
 * /v1/fine_tuning/jobs in one table), their events, checkpoints and the
 * fine-tuned models, in SQLite (WAL) at DATA/tunery.db, with file bytes in
 * DATA/files/<file-id> written to a temp name, fsync'd and renamed.
 *
 * Several processes write the database (serve and its workers), so every
 * call is one short transaction. A store_t may be shared by threads: each
 * thread that uses it gets its own SQLite connection on first use (closed
 * when the thread exits), so one store_t for a whole server is fine.
 *
 * Org isolation lives here: every call that takes an org_id returns
 * STORE_ENOTFOUND for an object of another org, exactly as for a missing id,
 * so a handler cannot leak another org's object by forgetting a check.
 * Pass org_id NULL only from trusted code (scheduler, worker, CLI).
 *
 * Errors follow core.h: 0 on success, a negative code with err filled.
 * STORE_ENOTFOUND -> 404, STORE_ECONFLICT -> 400 (wrong state), other -> 500.
 *
 * Strings in the row structs are NUL-terminated; "" stands for JSON null.
 * Fields marked (heap) are malloc'd: free a row with the matching *_clear,
 * an array of rows with the matching *_free.
 *
 * The header is the backend boundary: a PostgreSQL store can follow behind
 * the same calls.
 */
#ifndef TUNERY_STORE_H
#define TUNERY_STORE_H

#include "core/core.h"
#include <stdint.h>
#include <sys/types.h>

#define STORE_ENOTFOUND (-2)
#define STORE_ECONFLICT (-3)

#define STORE_ID_LEN      48    /* "file-" + 24, "ft-" + 24, "ftjob-" + 24, ... */
#define STORE_NAME_LEN    320   /* model names, base model names, filenames */
#define STORE_TEXT_LEN    1024  /* event messages, error messages, status details */
#define STORE_KEY_LEN     52    /* "sk-" + 48 + NUL */
#define STORE_PATH_LEN    1024

typedef struct store store_t;

/* ------------------------------------------------------------------ open */

/* Open (creating if needed) the store in data_dir: the directory itself,
 * files/, jobs/, models/, tunery.db in WAL mode with foreign keys and a busy
 * timeout, and the schema migrated to the current version. */
int store_open(const char *data_dir, store_t **out, char *err);
void store_close(store_t *s);
const char *store_data_dir(const store_t *s);
/* Schema version this build writes (PRAGMA user_version). */
int store_schema_version(void);

/* Server start only (not workers): delete files/.tmp-* left by a crash during
 * an upload, and blobs that have no row. Returns the number removed, or < 0. */
int store_recover_blobs(store_t *s, char *err);

/* Server start: if the store has no organization yet, create org "personal"
 * and one key, write the key to DATA/initial-api-key (mode 0600) and copy it
 * into key_out (*created = 1), so serve can print it once. Otherwise
 * *created = 0 and key_out is "". */
int store_bootstrap(store_t *s, char key_out[STORE_KEY_LEN], int *created, char *err);

/* ------------------------------------------------------------------ pages */

/* Cursor pagination as the current API does it: items strictly after the
 * item with id `after` (NULL or "" = from the start) in the listing's order,
 * at most `limit` of them (<= 0 = all). *has_more says whether more exist. */
typedef struct {
    const char *after;
    int limit;
    int ascending;   /* files only (order=asc); jobs/events/checkpoints are newest first */
} store_page_t;

/* ------------------------------------------------------------------ orgs and keys */

typedef struct {
    char id[STORE_ID_LEN];      /* "org-" + 24 alnum */
    char name[STORE_NAME_LEN];  /* as given to `keys create --org` */
    char slug[STORE_NAME_LEN];  /* lower-cased, runs of other chars -> '-': used in model names */
    int64_t created_at;
} store_org_t;

/* Create an org called name (its slug derived from it). STORE_ECONFLICT if
 * an org of that name exists. */
int store_org_create(store_t *s, const char *name, store_org_t *out, char *err);
/* By id ("org-...") or by name. */
int store_org_get(store_t *s, const char *id_or_name, store_org_t *out, char *err);
int store_org_list(store_t *s, store_org_t **out, int *n, char *err);   /* free() the array */

typedef struct {
    char id[STORE_ID_LEN];      /* "key-" + 24: what list and revoke show; never the secret */
    char org_id[STORE_ID_LEN];
    char hint[16];              /* "sk-Ab...xy9": enough to recognise a key */
    int64_t created_at;
    int64_t revoked_at;         /* 0 = active */
} store_key_t;

/* Make a new key for org_id: "sk-" + 48 alnum, written to key_out, stored
 * only as its sha256. */
int store_key_create(store_t *s, const char *org_id, char key_out[STORE_KEY_LEN],
                     store_key_t *out, char *err);
/* Which org does this bearer token belong to? STORE_ENOTFOUND for an
 * unknown or revoked key. Constant work per call (one indexed lookup). */
int store_key_auth(store_t *s, const char *key, store_org_t *org, char *err);
/* All keys (org_id NULL) or one org's, oldest first. free() the array. */
int store_key_list(store_t *s, const char *org_id, store_key_t **out, int *n, char *err);
int store_key_revoke(store_t *s, const char *key_id, char *err);

/* ------------------------------------------------------------------ files */

typedef struct {
    char id[STORE_ID_LEN];          /* "file-" + 24 alnum */
    char org_id[STORE_ID_LEN];
    int64_t bytes;
    int64_t created_at;
    char filename[STORE_NAME_LEN];  /* exactly as sent (may contain '/'); never used as a path */
    char purpose[32];
    char status[16];                /* uploaded | processed | error */
    char status_details[STORE_TEXT_LEN]; /* "" = null; the reason for error */
    /* Filled by validation (store_file_set_status), 0 before: */
    int n_examples;
    int is_chat;                    /* {"messages":[...]} lines */
    long long n_tokens;             /* training tokens per epoch, for the cost event */
} store_file_t;

/* Streaming upload: bytes go to DATA/files/.tmp-<id>; commit fsyncs, renames
 * to DATA/files/<id> and only then inserts the row (status "uploaded"). A
 * kill -9 at any point leaves no row and at most a .tmp- file that
 * store_recover_blobs removes. abort (or a failed commit) removes the temp. */
typedef struct store_blob store_blob_t;
int store_blob_begin(store_t *s, store_blob_t **out, char *err);
int store_blob_write(store_blob_t *b, const void *data, size_t len, char *err);
int64_t store_blob_size(const store_blob_t *b);
/* The temp file's path while writing (e.g. to validate before commit). */
const char *store_blob_path(const store_blob_t *b);
/* Always frees b. */
int store_blob_commit(store_t *s, store_blob_t *b, const char *org_id, const char *filename,
                      const char *purpose, store_file_t *out, char *err);
void store_blob_abort(store_blob_t *b);

/* Whole-buffer and copy-a-file forms of the same (results files, tests). */
int store_file_put(store_t *s, const char *org_id, const char *filename, const char *purpose,
                   const void *data, size_t len, store_file_t *out, char *err);
int store_file_import(store_t *s, const char *org_id, const char *filename, const char *purpose,
                      const char *src_path, store_file_t *out, char *err);

int store_file_get(store_t *s, const char *org_id, const char *id, store_file_t *out, char *err);
/* purpose NULL = any. Newest first unless page->ascending. free() the array. */
int store_file_list(store_t *s, const char *org_id, const char *purpose, const store_page_t *page,
                    store_file_t **out, int *n, int *has_more, char *err);
/* After validation: status "processed" or "error" (details = the reason). */
int store_file_set_status(store_t *s, const char *id, const char *status, const char *details,
                          int n_examples, int is_chat, long long n_tokens, char *err);
/* Row first, then the blob: a crash in between leaves an orphan blob that
 * store_recover_blobs removes, never a row without bytes. */
int store_file_delete(store_t *s, const char *org_id, const char *id, char *err);
/* DATA/files/<id> (the bytes, for /content and for training). */
void store_file_path(const store_t *s, const char *id, char out[STORE_PATH_LEN]);

/* ------------------------------------------------------------------ jobs */

enum { STORE_API_LEGACY = 0, STORE_API_JOBS = 1 };

/* Internal statuses (one set for both APIs):
 *   validating_files -> queued -> running -> succeeded | failed | cancelled
 *   running|queued -> paused -> queued (resume)
 * store_job_wire_status() maps them to the legacy names (pending, ...). */
#define STORE_JOB_ACTIVE "'validating_files','queued','running','paused'"

typedef struct {
    char id[STORE_ID_LEN];          /* "ft-" + 24 (legacy) or "ftjob-" + 24 */
    int api;                        /* STORE_API_* */
    char org_id[STORE_ID_LEN];
    char model[STORE_NAME_LEN];     /* base model as requested ("curie", or a fine-tuned name) */
    char training_file[STORE_ID_LEN];
    char validation_file[STORE_ID_LEN]; /* "" = none */
    char suffix[80];                /* "" = none; as the user gave it */
    char status[20];
    char fine_tuned_model[STORE_NAME_LEN]; /* "" until succeeded */
    char result_file[STORE_ID_LEN];    /* compiled_results.csv file id, "" until succeeded */
    char model_tag[16];             /* 8 alnum chosen at create: the {id} of ft:{base}:{org}:{suffix}:{id} */

    /* Hyper-parameters as requested. n_epochs, batch_size and
     * learning_rate_multiplier: 0 = auto; prompt_loss_weight: < 0 = default
     * (0.01), since 0 is a valid weight. */
    int n_epochs, batch_size;
    double learning_rate_multiplier, prompt_loss_weight;
    int compute_classification_metrics, classification_n_classes;
    char classification_positive_class[STORE_NAME_LEN]; /* "" = null */
    char classification_betas[256]; /* JSON array text, "" = null */
    int64_t seed; int has_seed;

    /* Resolved when the job starts (resolved = 1 from then on). */
    int resolved;
    int r_n_epochs, r_batch_size;
    double r_learning_rate_multiplier, r_prompt_loss_weight;
    int64_t r_seed;
    int total_steps;

    /* Progress and outcome. */
    int64_t created_at, updated_at, started_at, finished_at, estimated_finish; /* 0 = null */
    long long trained_tokens;       /* 0 until known; -> null in the new API until finished */
    int last_step;                  /* newest step with metrics */
    char error_code[64], error_param[64]; /* "" = null */
    char error_message[STORE_TEXT_LEN];   /* "" = no error */
    int queue_number;               /* last "queue number" announced (-1 none) */
    int worker_pid;                 /* 0 = no worker */
    int attempts;                   /* times a worker was started (resume count + 1) */

    /* New-API extras, JSON text (heap), NULL = absent. */
    char *metadata;
    char *integrations;
    char *method;
} store_job_t;

void store_job_clear(store_job_t *j);         /* frees the heap fields, zeroes j */
void store_job_free(store_job_t *arr, int n); /* clears each, frees arr */
/* "pending" for a queued/validating/paused legacy job, else the status. */
const char *store_job_wire_status(const store_job_t *j);
int store_job_is_terminal(const char *status);

/* Insert j as a new job. Fills j->id (from j->api), model_tag, created_at,
 * updated_at, and status "validating_files" unless j->status is already set
 * (sched_enqueue then moves it to queued). The caller fills the
 * rest (org_id, model, files, hyper-parameters, suffix, extras). The heap
 * fields are copied, not taken. */
int store_job_create(store_t *s, store_job_t *j, char *err);
int store_job_get(store_t *s, const char *org_id, const char *id, store_job_t *out, char *err);
/* One org's jobs of one api, newest first, cursor-paged. metadata filter:
 * only jobs whose metadata has key = value (both NULL = no filter). */
int store_job_list(store_t *s, const char *org_id, int api, const store_page_t *page,
                   const char *meta_key, const char *meta_value,
                   store_job_t **out, int *n, int *has_more, char *err);
/* Legacy DELETE: only a terminal job; its events and checkpoint rows go with
 * it (its model and result file stay). STORE_ECONFLICT while active. */
int store_job_delete(store_t *s, const char *org_id, const char *id, char *err);

/* Atomic state change: from one of the comma-separated statuses in `from`
 * (NULL = any) to `to`. STORE_ECONFLICT, with err saying the current status,
 * when the job is in another state; the caller then changes nothing else.
 * Setting a terminal status also sets finished_at. */
int store_job_transition(store_t *s, const char *id, const char *from, const char *to, char *err);
/* Record a failure: status failed (from any active status), error fields,
 * finished_at. STORE_ECONFLICT if the job is already terminal. */
int store_job_fail(store_t *s, const char *id, const char *code, const char *message, char *err);
/* Worker bookkeeping. */
int store_job_set_worker(store_t *s, const char *id, int pid, char *err);
int store_job_set_resolved(store_t *s, const char *id, int n_epochs, int batch_size,
                           double lr_multiplier, double prompt_loss_weight, int64_t seed,
                           int total_steps, char *err);
int store_job_set_progress(store_t *s, const char *id, int step, long long trained_tokens,
                           int64_t estimated_finish, char *err);
int store_job_set_queue_number(store_t *s, const char *id, int queue_number, char *err);
/* Success: running -> succeeded with the model name, result file and tokens.
 * STORE_ECONFLICT if the job is no longer running (cancelled meanwhile). */
int store_job_succeed(store_t *s, const char *id, const char *fine_tuned_model,
                      const char *result_file, long long trained_tokens, char *err);

/* Scheduler queries. Queued jobs of every org, oldest first (store_job_free). */
int store_job_queued(store_t *s, store_job_t **out, int *n, char *err);
/* Jobs in `status` of every org, oldest first (store_job_free). */
int store_job_by_status(store_t *s, const char *status, store_job_t **out, int *n, char *err);
/* How many queued jobs were created before this one (0 = next to start). */
int store_job_queue_position(store_t *s, const char *id, int *pos, char *err);

/* ------------------------------------------------------------------ events */

typedef struct {
    int64_t seq;                    /* store-wide, strictly increasing: "events since seq" for SSE */
    char id[STORE_ID_LEN];          /* "ftevent-" + 24 */
    char job_id[STORE_ID_LEN];
    int64_t created_at;
    char level[8];                  /* info | warn | error */
    char type[12];                  /* message | metrics */
    char message[STORE_TEXT_LEN];
    char data[768];                 /* JSON object text, "" = null */
} store_event_t;

/* Append an event; also bumps the job's updated_at and wakes watchers
 * (store_event_watch). level NULL = "info", type NULL = "message", data NULL
 * = null. *seq_out (may be NULL) gets the new event's seq. */
int store_event_add(store_t *s, const char *job_id, const char *level, const char *type,
                    const char *message, const char *data, int64_t *seq_out, char *err);
/* The same, but only while the job is not terminal (succeeded, failed,
 * cancelled), checked in the same transaction: a worker's training events
 * can then never land after the "Fine-tune cancelled" line another process
 * wrote (a paused job still records the steps it finishes before stopping).
 * Returns 1, writing nothing, when the job is terminal. */
int store_event_add_active(store_t *s, const char *job_id, const char *level, const char *type,
                           const char *message, const char *data, int64_t *seq_out, char *err);
/* Events of a job with seq > since_seq, oldest first, at most max (<= 0 =
 * all): legacy lists, SSE replay and live push. free() the array. */
int store_event_since(store_t *s, const char *org_id, const char *job_id, int64_t since_seq,
                      int max, store_event_t **out, int *n, char *err);
/* New API: newest first, cursor-paged. free() the array. */
int store_event_list(store_t *s, const char *org_id, const char *job_id, const store_page_t *page,
                     store_event_t **out, int *n, int *has_more, char *err);
/* Does this job already have an event with exactly this message? (the
 * worker uses it so a resumed job does not repeat "Completed epoch 2/4"). */
int store_event_exists(store_t *s, const char *job_id, const char *message, int *exists, char *err);
/* Highest event seq in the store (0 if none). */
int store_event_last_seq(store_t *s, int64_t *seq, char *err);
/* Events of every job with seq > since_seq, oldest first, at most max (<= 0
 * = all), with no org check: the server's event hub (store_events_hub.c).
 * free() the array. */
int store_event_after(store_t *s, int64_t since_seq, int max, store_event_t **out, int *n, char *err);

/* Followers without polling: a file descriptor (inotify on DATA/events.tick,
 * which every store_event_add from any process touches) that becomes readable
 * when new events may exist. Put it in poll/epoll; after it fires call
 * store_event_watch_drain, then store_event_since for each stream. close()
 * it when done. */
int store_event_watch(store_t *s, char *err);
void store_event_watch_drain(int fd);

/* ------------------------------------------------------------------ checkpoints */

typedef struct {
    char id[STORE_ID_LEN];          /* "ftckpt_" + 24 */
    char job_id[STORE_ID_LEN];
    int64_t created_at;
    int step;
    char model[STORE_NAME_LEN];     /* fine_tuned_model_checkpoint: ft:...:ckpt-step-N ("" for legacy jobs) */
    char dir[STORE_PATH_LEN];       /* DATA/jobs/<job>/ckpt-step-N */
    /* metrics; NaN = null */
    double train_loss, train_mean_token_accuracy, valid_loss, valid_mean_token_accuracy,
           full_valid_loss, full_valid_mean_token_accuracy;
} store_checkpoint_t;

/* Insert (or replace: same job and step) a checkpoint row; fills c->id and
 * created_at if empty. */
int store_checkpoint_add(store_t *s, store_checkpoint_t *c, char *err);
/* Newest first, cursor-paged. free() the array. */
int store_checkpoint_list(store_t *s, const char *org_id, const char *job_id,
                          const store_page_t *page, store_checkpoint_t **out, int *n,
                          int *has_more, char *err);
/* The newest checkpoint of a job; STORE_ENOTFOUND if none. */
int store_checkpoint_last(store_t *s, const char *job_id, store_checkpoint_t *out, char *err);
/* Forget a job's checkpoint at step (step < 0: all of the job's), e.g.
 * when the trainer pruned its directory or the job was cancelled. */
int store_checkpoint_delete(store_t *s, const char *job_id, int step, char *err);
/* A checkpoint by its model name (ft:...:ckpt-step-N), for completions. */
int store_checkpoint_by_model(store_t *s, const char *org_id, const char *model,
                              store_checkpoint_t *out, char *err);

/* Every checkpoint usable as a model (current API, model name set) of one
 * org's jobs that were not cancelled, oldest first: what /v1/models lists
 * beside the fine-tuned models. free() the array. */
int store_checkpoint_models(store_t *s, const char *org_id, store_checkpoint_t **out, int *n, char *err);

/* ------------------------------------------------------------------ models */

typedef struct {
    char id[STORE_NAME_LEN];        /* the model name: curie:ft-personal-2023-..., ft:... */
    char org_id[STORE_ID_LEN];
    char base[STORE_NAME_LEN];      /* root base model ("curie") */
    char parent[STORE_NAME_LEN];    /* model the job started from */
    char job_id[STORE_ID_LEN];
    char dir[STORE_PATH_LEN];       /* the model directory (config.json, model.safetensors, ...) */
    int64_t created;
} store_model_t;

/* Register a fine-tuned model (created = now if 0). */
int store_model_add(store_t *s, store_model_t *m, char *err);
int store_model_get(store_t *s, const char *org_id, const char *id, store_model_t *out, char *err);
/* One org's fine-tuned models (not deleted), oldest first. free() the array. */
int store_model_list(store_t *s, const char *org_id, store_model_t **out, int *n, char *err);
/* Delete the row and remove its directory (only if it lies under
 * DATA/models). Base models are not in this table:
 * for them this is STORE_ENOTFOUND and the server answers 400/403. */
int store_model_delete(store_t *s, const char *org_id, const char *id, char *err);

/* ------------------------------------------------------------------ naming helpers */

/* Lower-case, runs of anything but [a-z0-9] become one '-', no leading or
 * trailing '-': "Custom model_Name!" -> "custom-model-name". */
void store_slugify(const char *in, char *out, size_t out_len);
/* Legacy: {base}:ft-{org_slug}[:{suffix slug}]-{UTC YYYY-MM-DD-HH-MM-SS of t}. */
void store_model_name_legacy(const char *base, const char *org_slug, const char *suffix,
                             int64_t t, char out[STORE_NAME_LEN]);
/* Current: ft:{base}:{org_slug}:{suffix}:{tag}. */
void store_model_name_ft(const char *base, const char *org_slug, const char *suffix,
                         const char *tag, char out[STORE_NAME_LEN]);
/* The root base of a model name: "curie" for "curie:ft-x-...", "gpt2" for
 * "ft:gpt2:org::abc"; the name itself otherwise. */
void store_model_root(const char *model, char out[STORE_NAME_LEN]);

#endif
