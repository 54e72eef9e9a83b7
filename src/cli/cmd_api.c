/* cmd_api.c: `tunery api [global options] <group.op> [flags]`.
 *
 * Reads the global options and environment exactly where the legacy Python
 * CLI read them (-b/--api-base, -k/--api-key, -o/--organization, -v;
 * OPENAI_API_KEY, OPENAI_API_KEY_PATH, OPENAI_API_BASE, OPENAI_ORGANIZATION),
 * then hands the subcommand to its group's file. Also home of the small flag
 * parser every subcommand uses, so --help looks the same everywhere.
 */
#include "cli/cli.h"
#include "cmds.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_API_BASE "http://127.0.0.1:8080/v1"

/* ---- flags ---- */

void cli_flags_usage(FILE *f, const char *cmd, const char *summary,
                     const cli_flag_t *flags, int nflags)
{
    fprintf(f, "usage: tunery api %s", cmd);
    for (int i = 0; i < nflags; i++) {
        const cli_flag_t *fl = &flags[i];
        const char *n = fl->short_name ? fl->short_name : fl->long_name;
        char meta[64] = "", arg[160] = "";
        size_t k = 0;
        for (const char *c = fl->long_name + 2; *c && k + 1 < sizeof meta; c++)   /* argparse's metavar */
            meta[k++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        meta[k] = 0;
        if (fl->kind == CLI_FLOATS) snprintf(arg, sizeof arg, " %s [%s ...]", meta, meta);
        else if (fl->kind != CLI_BOOL) snprintf(arg, sizeof arg, " %s", meta);
        fprintf(f, fl->required ? " %s%s" : " [%s%s]", n, arg);
    }
    fprintf(f, "\n\n%s\n", summary);
    if (nflags) fprintf(f, "\noptions:\n");
    for (int i = 0; i < nflags; i++) {
        const cli_flag_t *fl = &flags[i];
        char names[96];
        snprintf(names, sizeof names, "%s%s%s", fl->short_name ? fl->short_name : "",
                 fl->short_name ? ", " : "", fl->long_name);
        fprintf(f, "  %-36s %s%s\n", names, fl->help, fl->required ? " (required)" : "");
    }
}

static cli_flag_t *flag_find(cli_flag_t *flags, int nflags, const char *a)
{
    for (int i = 0; i < nflags; i++)
        if ((flags[i].short_name && !strcmp(a, flags[i].short_name)) || !strcmp(a, flags[i].long_name))
            return &flags[i];
    /* argparse accepts --max-tokens and --max_tokens alike only when declared;
     * we accept both spellings of every long flag, which costs nothing. */
    if (!strncmp(a, "--", 2)) {
        for (int i = 0; i < nflags; i++) {
            const char *l = flags[i].long_name, *p = a;
            for (; *l && *p; l++, p++)
                if (*l != *p && !((*l == '-' || *l == '_') && (*p == '-' || *p == '_'))) break;
            if (!*l && !*p) return &flags[i];
        }
    }
    return NULL;
}

static int parse_number(const cli_flag_t *fl, const char *v, int is_int, long long *i, double *d)
{
    char *end;
    errno = 0;
    if (is_int) *i = strtoll(v, &end, 10);
    else *d = strtod(v, &end);
    if (!*v || *end || errno) {
        fprintf(stderr, "tunery api: argument %s: invalid %s value: '%s'\n", fl->long_name,
                is_int ? "int" : "float", v);
        return -1;
    }
    return 0;
}

int cli_flags_parse(const char *cmd, const char *summary, cli_flag_t *flags, int nflags,
                    int argc, char **argv, int *help_shown)
{
    *help_shown = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_flags_usage(stdout, cmd, summary, flags, nflags);
            *help_shown = 1;
            return 0;
        }
        const char *eq = strncmp(a, "--", 2) ? NULL : strchr(a, '=');
        char name[128];
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        cli_flag_t *fl = flag_find(flags, nflags, name);
        if (!fl) {
            fprintf(stderr, "tunery api %s: unrecognized argument '%s'; see `tunery api %s --help`\n", cmd, a, cmd);
            return 2;
        }
        fl->set = 1;
        if (fl->kind == CLI_BOOL) continue;
        if (fl->kind == CLI_FLOATS) {
            fl->nfloats = 0;
            while (i + 1 < argc && fl->nfloats < 16) {
                char *end;
                double d = strtod(argv[i + 1], &end);
                if (end == argv[i + 1] || *end) break;
                fl->floats[fl->nfloats++] = d;
                i++;
            }
            if (!fl->nfloats) {
                fprintf(stderr, "tunery api %s: argument %s: expected at least one number\n", cmd, fl->long_name);
                return 2;
            }
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "tunery api %s: argument %s: expected one argument\n", cmd, fl->long_name);
            return 2;
        }
        fl->str = v;
        if ((fl->kind == CLI_INT && parse_number(fl, v, 1, &fl->i, NULL)) ||
            (fl->kind == CLI_FLOAT && parse_number(fl, v, 0, NULL, &fl->f)))
            return 2;
    }
    for (int i = 0; i < nflags; i++) {
        if (flags[i].required && !flags[i].set) {
            fprintf(stderr, "tunery api %s: the following arguments are required: %s%s%s\n", cmd,
                    flags[i].short_name ? flags[i].short_name : "", flags[i].short_name ? "/" : "",
                    flags[i].long_name);
            return 2;
        }
    }
    return 0;
}

/* ---- global options and environment ---- */

static int read_key_file(const char *path, char *out, size_t cap, int must_sk, char *err)
{
    char *data;
    size_t n;
    if (fs_read_all(path, &data, &n, err)) return -1;
    char *s = data, *e = data + n;
    while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
    if (must_sk && (e - s < 3 || strncmp(s, "sk-", 3))) {
        free(data);
        return core_errf(err, "Malformed API key in %s.", path);
    }
    snprintf(out, cap, "%.*s", (int)(e - s), s);
    free(data);
    return 0;
}

int cli_opts_parse(cli_opts_t *o, int argc, char **argv, char *err)
{
    memset(o, 0, sizeof *o);
    const char *base = getenv("OPENAI_API_BASE"), *key = NULL, *org = getenv("OPENAI_ORGANIZATION");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { o->verbose++; continue; }
        if (!strcmp(a, "-vv")) { o->verbose += 2; continue; }
        if (!strcmp(a, "-b") || !strcmp(a, "--api-base")) dst = &base;
        else if (!strcmp(a, "-k") || !strcmp(a, "--api-key")) dst = &key;
        else if (!strcmp(a, "-o") || !strcmp(a, "--organization")) dst = &org;
        else if (!strncmp(a, "--api-base=", 11)) { base = a + 11; continue; }
        else if (!strncmp(a, "--api-key=", 10)) { key = a + 10; continue; }
        else if (!strncmp(a, "--organization=", 15)) { org = a + 15; continue; }
        else return core_errf(err, "unknown option '%s'; see `tunery api --help`", a);
        if (i + 1 >= argc) return core_errf(err, "option %s needs a value", a);
        *dst = argv[++i];
    }
    snprintf(o->api_base, sizeof o->api_base, "%s", base && *base ? base : DEFAULT_API_BASE);
    size_t n = strlen(o->api_base);
    while (n && o->api_base[n - 1] == '/') o->api_base[--n] = 0;
    if (org) snprintf(o->organization, sizeof o->organization, "%s", org);

    /* Key precedence: -k, then OPENAI_API_KEY_PATH (must hold an sk- key, as
     * the original insists), then OPENAI_API_KEY, then the first key a local
     * server wrote into its data directory. */
    const char *path = getenv("OPENAI_API_KEY_PATH");
    if (key) {
        snprintf(o->api_key, sizeof o->api_key, "%s", key);
        snprintf(o->key_source, sizeof o->key_source, "-k");
    } else if (path && *path) {
        if (read_key_file(path, o->api_key, sizeof o->api_key, 1, err)) return -1;
        snprintf(o->key_source, sizeof o->key_source, "%s", path);
    } else if ((key = getenv("OPENAI_API_KEY")) && *key) {
        snprintf(o->api_key, sizeof o->api_key, "%s", key);
        snprintf(o->key_source, sizeof o->key_source, "OPENAI_API_KEY");
    } else {
        char p[4096], e2[CORE_ERR_LEN];
        snprintf(p, sizeof p, "%s/initial-api-key", core_data_dir());
        if (fs_exists(p) && read_key_file(p, o->api_key, sizeof o->api_key, 0, e2) == 0)
            snprintf(o->key_source, sizeof o->key_source, "%s", p);
    }
    return i;
}

/* ---- dispatch ---- */

static const struct {
    const char *prefix;
    int (*fn)(const cli_opts_t *, const char *, int, char **);
} groups[] = {
    {"fine_tunes.", cli_fine_tunes},
    {"files.", cli_files},
    {"models.", cli_models},
    {"completions.", cli_completions},
    {"chat_completions.", cli_chat_completions},
    {"fine_tuning.jobs.", cli_fine_tuning_jobs},
    {"fine_tuning.job.", cli_fine_tuning_jobs},   /* v0.28 spelling */
};

static void api_usage(FILE *f)
{
    fprintf(f,
        "usage: tunery api [-b URL] [-k KEY] [-o ORG] [-v] <command> [flags]\n"
        "\n"
        "The OpenAI command-line client (openai-python 0.x `openai api`), for a tunery server\n"
        "or any OpenAI-compatible one. `tunery api <command> --help` shows a command's flags.\n"
        "\n"
        "global options (before the command):\n"
        "  -b, --api-base URL        API base, ending in /v1 (env OPENAI_API_BASE; default " DEFAULT_API_BASE ")\n"
        "  -k, --api-key KEY         API key (env OPENAI_API_KEY, or a file named by OPENAI_API_KEY_PATH;\n"
        "                            else $TUNERY_DATA/initial-api-key of a local server)\n"
        "  -o, --organization ORG    sent as OpenAI-Organization (env OPENAI_ORGANIZATION)\n"
        "  -v, --verbose             log each request to stderr; -v -v adds libcurl's trace\n"
        "\n"
        "commands:\n"
        "  fine_tunes.create    -t FILE [-v FILE] [-m MODEL] [--suffix S] [--no_follow] [hyper-parameters]\n"
        "  fine_tunes.follow    -i ID       stream a job's events until it ends (resumes a broken stream)\n"
        "  fine_tunes.list | fine_tunes.get -i ID | fine_tunes.results -i ID | fine_tunes.events -i ID\n"
        "  fine_tunes.cancel -i ID | fine_tunes.delete -i ID\n"
        "  files.create -f FILE -p PURPOSE | files.get -i ID | files.delete -i ID | files.list\n"
        "  models.list | models.get -i ID | models.delete -i ID\n"
        "  completions.create   -m MODEL [-p PROMPT] [-M N] [-t T] [-P P] [-n N] [--logprobs N] [--stop S] [--stream]\n"
        "  chat_completions.create -m MODEL -g ROLE CONTENT [-g ROLE CONTENT ...] [-M N] [-t T] [-P P] [-n N]\n"
        "                       [--stop S] [--stream]   (a chat model, e.g. gpt-4o-mini or a chat fine-tune)\n"
        "  fine_tuning.jobs.create -t FILE -m MODEL | list | get -i ID | cancel -i ID | events -i ID\n"
        "                       | follow -i ID | pause -i ID | resume -i ID | checkpoints -i ID   (the current jobs API)\n");
}

int cmd_api(int argc, char **argv)
{
    char err[CORE_ERR_LEN];
    cli_opts_t o;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { api_usage(stdout); return 0; }
    }
    int at = cli_opts_parse(&o, argc, argv, err);
    if (at < 0) return cli_print_error(err);
    if (at >= argc) { api_usage(stderr); return 2; }
    const char *cmd = argv[at];
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        size_t k = strlen(groups[g].prefix);
        if (strncmp(cmd, groups[g].prefix, k)) continue;
        /* Every call needs a key, as the Python client refused to send without one;
         * --help does not. */
        int help = 0;
        for (int i = at + 1; i < argc; i++) help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
        if (!help && !o.api_key[0])
            return cli_print_error("No API key provided. Set the environment variable OPENAI_API_KEY=<API-KEY>, "
                                   "pass -k <API-KEY>, or point OPENAI_API_KEY_PATH at a file holding it. "
                                   "Create a key with `tunery keys create --org NAME` (a new server also writes "
                                   "its first key to <data dir>/initial-api-key).");
        return groups[g].fn(&o, cmd + k, argc - at, argv + at);
    }
    fprintf(stderr, "tunery api: unknown command '%s'; run `tunery api --help` for the list\n", cmd);
    return 2;
}
