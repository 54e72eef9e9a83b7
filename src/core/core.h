/* core: the small pieces every other directory shares.
 *
 * Error convention (DESIGN.md): a function that can fail returns 0 on success
 * or a negative code, and writes one sentence a user can act on into a
 * caller-owned buffer of at least CORE_ERR_LEN bytes. Library code never
 * prints and never exits. core_errf() formats that sentence and returns -1 so
 * a failure path is one line:  return core_errf(err, "cannot open %s: %s", p, strerror(errno));
 *
 * core depends on nothing else in tunery.
 */
#ifndef TUNERY_CORE_H
#define TUNERY_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CORE_ERR_LEN 512

/* ---- errors (err.c) ---- */
int core_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "tunery: <msg>" to stderr for command front-ends (not library code). */
void core_die_msg(const char *msg);

/* ---- growable byte buffer (buf.c) ---- */
typedef struct {
    char *data;   /* always NUL-terminated when len > 0 or after buf_reserve */
    size_t len;
    size_t cap;
} buf_t;
int buf_reserve(buf_t *b, size_t extra);               /* 0 or -1 on OOM */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_appends(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(buf_t *b);

/* ---- files (fs.c) ---- */
/* Read a whole file into a NUL-terminated malloc'd buffer. */
int fs_read_all(const char *path, char **out, size_t *len, char *err);
/* Write atomically: temp file in the same directory, fsync, rename, fsync dir.
 * A crash leaves either the old file or the new one, never half of one. */
int fs_write_atomic(const char *path, const void *data, size_t len, char *err);
/* json_dumps(j, flags) written with fs_write_atomic (json.c); j is not freed. */
struct json_t;
int fs_write_json(const char *path, const struct json_t *j, size_t flags, char *err);
/* fsync the directory that holds path (after a rename into it). */
int fs_fsync_dir_of(const char *path, char *err);
/* write(2) all n bytes, retrying short writes and EINTR. 0, or -1 with errno set. */
int fs_write_full(int fd, const void *buf, size_t n);
int fs_mkdir_p(const char *path, int mode, char *err);
/* Remove a directory tree (used for checkpoints and deleted models). */
int fs_rm_rf(const char *path, char *err);
/* Remove the entries of dir named prefix<pid> or prefix<pid>-<anything>
 * whose process <pid> no longer exists: the temporary files and directories
 * of writers that were killed. Never this process's own; errors are ignored
 * (another sweeper may win the race). */
void fs_sweep_dead(const char *dir, const char *prefix);
int fs_exists(const char *path);

/* ---- stop signals (signals.c) ---- */
/* SIGINT and SIGTERM are taken by a thread that waits for them, never by a
 * thread that computes: oneDNN's JIT sgemm is corrupted by a handler that
 * runs on its thread (see signals.c). Call these before starting any thread. */
/* Block them in the calling thread and every thread it starts afterwards. */
void core_signals_block(void);
/* Wait for one (after core_signals_block) and return its number. */
int core_signals_wait(void);
/* Block them and start a thread that calls on_stop(sig) for each one that
 * arrives, for processes whose main thread computes. 0, or -1 (no thread). */
int core_signals_watch(void (*on_stop)(int sig));

/* ---- ids and randomness for ids (id.c) ---- */
/* Writes prefix + n random [A-Za-z0-9] chars + NUL into out (size >= strlen(prefix)+n+1).
 * Uses getrandom(2); ids are not reproducible and are not meant to be. */
void id_random(char *out, const char *prefix, int n);

/* ---- reproducible randomness (id.c) ---- */
/* splitmix64: advances *state and returns the next well-mixed 64-bit value.
 * Everything seeded in tunery (initialisation, data order, sampling, the
 * pretraining windows) derives from it, so a seed means the same everywhere. */
uint64_t core_splitmix64(uint64_t *state);

/* ---- time (time.c) ---- */
int64_t time_unix(void);        /* seconds since the epoch */
double time_mono(void);         /* monotonic seconds, for measuring */
/* "YYYY-MM-DD HH:MM:SS" in local time, as the OpenAI CLI prints events. */
void time_fmt_local(int64_t t, char out[32]);
/* "YYYY-MM-DD-HH-MM-SS" in UTC, as legacy fine-tuned model names carry. */
void time_fmt_model(int64_t t, char out[32]);

/* ---- hashing (sha256.c) ---- */
void sha256(const void *data, size_t len, uint8_t out[32]);
void sha256_hex(const void *data, size_t len, char out[65]);

/* ---- where shipped data lives (paths.c) ---- */
/* The directory holding tunery's shipped data (vocab, built-in models, examples):
 * $TUNERY_SHARE if set, else <dir of the executable>/data, else the install
 * prefix's share/tunery. Never NULL. */
const char *core_share_dir(void);
/* The server's data directory: $TUNERY_DATA, else ./tunery-data. */
const char *core_data_dir(void);
/* Where the model called name lives, written into out (PATH_MAX bytes):
 * name itself if it is a directory with a config.json; else
 * <data dir>/models/<name> if that exists (fine-tuned and imported models);
 * else <share dir>/models/<name> (built-in base models). Returns -1 with err
 * naming the places looked in when none exists. */
int core_model_dir(const char *name, char *out, char *err);
/* Compatibility names (model_alias.c): when name is listed in
 * <data dir>/models/aliases.json or else <share dir>/models/aliases.json,
 * fill target (the model it stands for) and *is_chat (its data format; may
 * be NULL) and return 0; 1 when name is not an alias; -1 with err when the
 * table is broken. core_model_dir follows an alias only after no directory
 * of that name was found. */
#define CORE_ALIAS_LEN 128
int core_model_alias(const char *name, char target[CORE_ALIAS_LEN], int *is_chat, char *err);
/* Every alias (the data dir's first, then the shipped table's names not
 * already seen) in one malloc'd array (free() it); -1 with err when a table
 * is broken. */
typedef struct {
    char name[CORE_ALIAS_LEN], target[CORE_ALIAS_LEN];
    int is_chat;
} core_alias_t;
int core_model_alias_list(core_alias_t **out, int *n, char *err);

#endif
