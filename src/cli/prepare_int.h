/* prepare_int.h: what prepare_data.c (reading and the 15 checks) and
 * prepare_write.c (questions about the split, the output files, the time
 * estimate, numpy's permutation) share. Private to src/cli. */
#ifndef TUNERY_CLI_PREPARE_INT_H
#define TUNERY_CLI_PREPARE_INT_H
#include "cli/cli.h"

/* ---- the data frame after the column checks: two string columns ---- */
typedef struct {
    char **p, **c;
    size_t n;
    int reindexed;   /* rows were dropped: pandas' index is no longer a RangeIndex */
    unsigned version, task_version;   /* bumped on every change; task cached per version */
    int task;
} df_t;

typedef enum { OPT_NONE, OPT_DEDUP, OPT_LONG, OPT_LOWER_P, OPT_LOWER_C, OPT_ADD_P_SUFFIX,
               OPT_RM_P_PREFIX, OPT_RM_C_PREFIX, OPT_ADD_C_SUFFIX, OPT_SPACE_START } opt_kind_t;

typedef struct {
    const char *name;
    buf_t immediate;       /* empty: none */
    char *necessary;       /* NULL: none */
    char *optional;        /* NULL: none */
    opt_kind_t kind;
    char *arg;             /* suffix to add / prefix removed */
    size_t arg_chars;
    int ws;
    buf_t long_rows;       /* the rows the long-example check named, as printed */
} rem_t;

typedef struct {
    FILE *in, *out, *errf;
    int quiet;
    pd_table_t *t;
    df_t df;
    rem_t rems[20];
    int nrem;
} pd_ctx_t;

typedef enum { TASK_OPEN, TASK_CLASS, TASK_COND } task_t;

task_t pd_infer_task(df_t *d);
/* Longest common prefix/suffix of every row, whole characters; malloc'd. */
char *pd_common_xfix(char **col, size_t n, int suffix);
/* s with each newline shown as \n; malloc'd. */
char *pd_nl_escaped(const char *s);
size_t pd_hash_unique(char **a, char **b, size_t n, unsigned char *dup, size_t stop_at);
/* "[Recommended] … [Y/n]: " and the answer (-q: Y). */
int pd_ask(pd_ctx_t *x, const char *text);
char *pd_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* The original's write_out_file: split question, files, suggested command. */
int pd_write_out(pd_ctx_t *x, const char *fname, int any_applied);
#endif
