/* cli: `tunery api …` and `tunery tools …`, the legacy OpenAI command-line
 * client re-done in C on libcurl, so that the fine-tuning guide written for
 * `openai api fine_tunes.create -t data.jsonl -m curie` works by typing
 * `tunery` instead of `openai`. The contract is shared/reference/openai-api.md
 * §2: flags, printed lines, error lines and exit statuses follow the Python
 * 0.x CLI (v0.28.1); where it said `openai api …` in a suggested command we
 * say `tunery api …`.
 *
 * Layout: http.c (libcurl: JSON calls, multipart upload, SSE), json_print.c
 * (JSON printed exactly as Python's json.dumps(sort_keys=True, indent=2)),
 * one file per command group, prepare_data*.c for the offline data checker.
 * Command functions print and return the exit status; everything below them
 * returns 0/-1 and fills err like the rest of tunery.
 */
#ifndef TUNERY_CLI_H
#define TUNERY_CLI_H

#include "core/core.h"
#include <jansson.h>
#include <signal.h>
#include <stdint.h>

/* ---- global options (cmd_api.c) ---- */
typedef struct {
    char api_base[1024];   /* no trailing slash; ends in /v1 */
    char api_key[512];     /* "" if none was found */
    char key_source[300];  /* where the key came from, for error messages */
    char organization[256];
    int verbose;           /* -v: log requests; -vv: libcurl's own trace */
} cli_opts_t;

/* Fill o from argv (global flags before the subcommand) and the environment.
 * Returns the index in argv of the subcommand, or -1 with err set. */
int cli_opts_parse(cli_opts_t *o, int argc, char **argv, char *err);

/* ---- HTTP (http.c) ---- */
typedef struct {
    long status;               /* 0 when the request never got an answer */
    buf_t body;
    char content_type[128];
    char organization[128];    /* OpenAI-Organization response header */
    char request_id[128];      /* request-id response header */
} cli_resp_t;

void cli_resp_free(cli_resp_t *r);

/* One request. body may be NULL (no body; a POST then sends an empty one).
 * Returns 0 when the server answered (any status, in r->status), -1 with err
 * saying where we tried to connect and what to do when it did not. */
int cli_http(const cli_opts_t *o, const char *method, const char *path,
             const char *json_body, cli_resp_t *r, char *err);

/* GET an absolute URL (fine_tunes.create -t https://…) into r. */
int cli_http_get_url(const cli_opts_t *o, const char *url, cli_resp_t *r, char *err);

/* POST /files as multipart: purpose first, then file (as the Python client
 * does), with filename as given. The content is streamed from local_path, or
 * taken from data/len when local_path is NULL. A progress bar goes to stderr
 * when it is a terminal. */
int cli_http_upload(const cli_opts_t *o, const char *filename, const char *local_path,
                    const void *data, size_t len, const char *purpose,
                    cli_resp_t *r, char *err);

/* Server-sent events: fn gets each `data:` payload (without the prefix);
 * returning non-zero stops the stream. Return values: 0 the stream ended
 * ([DONE] or the server closed it cleanly), 1 *stop became non-zero (Ctrl-C),
 * 2 fn asked to stop, 3 the server closed the stream without [DONE],
 * -1 the connection failed or broke (err set). A non-2xx
 * answer returns 0 with r->status and r->body set and fn never called. */
typedef int (*cli_sse_fn)(const char *data, size_t len, void *ud);
int cli_http_sse(const cli_opts_t *o, const char *method, const char *path,
                 const char *json_body, cli_sse_fn fn, void *ud,
                 volatile sig_atomic_t *stop, cli_resp_t *r, char *err);

/* quote_plus: what the Python client does to ids in paths. out >= 3*len+1. */
void cli_quote_plus(const char *s, char *out, size_t cap);

/* ---- the error lines of the original CLI (http.c) ---- */
/* "[organization=o] Error: <message> (HTTP status code: N)" from an answer
 * whose status is not 2xx. Returns 1 (the exit status). */
int cli_print_api_error(const cli_resp_t *r);
/* "Error: <msg>" for errors the CLI raises itself (no HTTP status). */
int cli_print_error(const char *msg);

/* Do a request and parse a 2xx JSON answer into *out. On any failure the
 * error line is printed and 1 returned (the exit status); 0 on success. */
int cli_call(const cli_opts_t *o, const char *method, const char *path,
             const char *json_body, json_t **out);
/* cli_call + print the answer as the CLI's print(resp) does. */
int cli_call_print(const cli_opts_t *o, const char *method, const char *path,
                   const char *json_body);

/* ---- JSON output (json_print.c) ---- */
/* json.dumps(v, sort_keys=True, indent=2) as Python 3 writes it (ensure_ascii,
 * float repr, ", " never at line ends). Appends to b; 0 or -1 on OOM. */
int cli_json_dump(const json_t *v, buf_t *b);
/* print(obj): the dump plus a newline on stdout. */
void cli_json_print(const json_t *v);
/* Python's repr() of a float, e.g. 0.1, 1.0, 1e-05, 1e+16. out >= 32. */
void cli_py_float(double d, char *out, size_t cap);
/* Python's repr() of a str, e.g. 'abc' or "it's". Appends to b. */
int cli_py_repr_str(const char *s, buf_t *b);

/* ---- command groups ---- */
int cli_fine_tunes(const cli_opts_t *o, const char *op, int argc, char **argv);
int cli_files(const cli_opts_t *o, const char *op, int argc, char **argv);
int cli_models(const cli_opts_t *o, const char *op, int argc, char **argv);
int cli_completions(const cli_opts_t *o, const char *op, int argc, char **argv);
int cli_chat_completions(const cli_opts_t *o, const char *op, int argc, char **argv);
int cli_fine_tuning_jobs(const cli_opts_t *o, const char *op, int argc, char **argv);

/* Resolve -t/-v of a create: a file id, a local path (duplicate check, then
 * upload and wait until processed), or an http(s) URL. Writes the file id to
 * out. Prints what the original prints. 0, or the exit status after printing
 * the error. (fine_tunes.c, shared with fine_tuning_jobs.c) */
int cli_get_or_upload(const cli_opts_t *o, const char *x, int check_exists,
                      char *out, size_t cap);

/* ---- a tiny flag parser shared by the commands (cmd_api.c) ---- */
typedef enum { CLI_STR, CLI_INT, CLI_FLOAT, CLI_BOOL, CLI_FLOATS } cli_flag_kind_t;
typedef struct {
    const char *short_name;  /* "-t" or NULL */
    const char *long_name;   /* "--training_file" */
    cli_flag_kind_t kind;
    int required;
    const char *help;
    /* filled by cli_flags_parse */
    int set;
    const char *str;
    long long i;
    double f;
    double floats[16];
    int nfloats;
} cli_flag_t;

/* A table entry: CLI_FLAG("-t", "--training_file", CLI_STR, 1, "help"). */
#define CLI_FLAG(s, l, k, req, h) {(s), (l), (k), (req), (h), 0, NULL, 0, 0, {0}, 0}

/* Parse argv[1..] against flags (argv[0] is the command name). Prints usage
 * and returns 0 on --help (*help_shown = 1), prints the error and returns 2
 * on a bad flag, 0 on success. */
int cli_flags_parse(const char *cmd, const char *summary, cli_flag_t *flags, int nflags,
                    int argc, char **argv, int *help_shown);
void cli_flags_usage(FILE *f, const char *cmd, const char *summary,
                     const cli_flag_t *flags, int nflags);

/* ---- completions.create and chat_completions.create (generate.c) ---- */
/* How a generation command's body is built: key <- flags[flag], a JSON
 * null when unset (a CLI_BOOL is true or false). Ends with {NULL, 0}. */
typedef struct {
    const char *key;
    int flag;
} cli_gen_key_t;
void cli_gen_body(json_t *body, const cli_flag_t *flags, const cli_gen_key_t *keys);
/* What differs between the two in the request path and the printing. */
typedef struct {
    const char *endpoint;       /* "completions" or "chat/completions" */
    const char *title;          /* "===== <title> i =====" before each of n > 1 choices */
    const char *object;         /* NULL: choice.text; else choice.<object>.content */
    const char *stream_object;  /* the same for a streamed chunk */
    int newline_streamed;       /* a newline after each streamed choice too (n > 1) */
} cli_gen_style_t;
/* POST body (freed here) to /<endpoint> or /engines/<engine>/<endpoint>,
 * streamed or not, and print the choices; returns the exit status. */
int cli_gen_post(const cli_opts_t *o, const cli_gen_style_t *st, const char *engine, int stream, char *body);

/* ---- prepare_data (prepare_data.c, prepare_read.c) ---- */
/* A table as pandas would hold it after read_*(dtype=str).fillna(""):
 * named columns, every cell a string. Strings live in an arena of big blocks
 * so a 500 MB file costs about 500 MB plus a few pointers per row. */
typedef struct pd_block pd_block_t;
typedef struct {
    char **cols;            /* column names, in order of first appearance */
    int ncols;
    char ***cells;          /* cells[row][col] for col < rowlen[row]; else "" */
    int *rowlen;
    size_t nrows, cap;
    pd_block_t *arena;
} pd_table_t;

/* The cell, "" when the row has no such column. */
const char *pd_cell(const pd_table_t *t, size_t row, int col);

/* Read .jsonl .json .csv .tsv .txt as the original's read_any_format did.
 * fmt_msg/necessary get the notes it prints for non-JSONL inputs (left ""
 * when there are none). Returns 0, or -1 with err holding the message the
 * original printed as "ERROR in read_any_format validator: <err>". */
int pd_read_any(const char *fname, pd_table_t *t, char *fmt_msg, size_t fmt_cap,
                char *necessary, size_t nec_cap, char *err);
/* Same, from memory, with the format given by a file name (fuzzing, tests). */
int pd_read_mem(const char *fname, const char *data, size_t len, pd_table_t *t,
                char *fmt_msg, size_t fmt_cap, char *necessary, size_t nec_cap, char *err);
void pd_table_free(pd_table_t *t);
/* A string kept as long as the table (remediations make new strings). */
char *pd_strndup(pd_table_t *t, const char *s, size_t n);

/* One JSON object on one line into (keys, values) as strings; the fast path
 * of JSONL reading. Returns the number of pairs, or -1 if the line is not a
 * JSON object. Strings are unescaped into the table's arena. */
int pd_parse_json_line(pd_table_t *t, const char *s, size_t n, char **keys, char **vals, int max);

/* The whole `tools fine_tunes.prepare_data` flow on an already opened
 * input/output pair, so that tests can drive it with scripted answers.
 * Returns the exit status. */
int pd_run(const char *fname, int quiet, FILE *in, FILE *out, FILE *errf);

/* Shuffle as numpy's RandomState(seed).permutation(n) does (MT19937 +
 * legacy bounded draws), so splits equal pandas' sample(random_state=42). */
void pd_permutation(uint32_t seed, size_t n, size_t *out);

#endif
