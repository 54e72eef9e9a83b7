/* cmd_tools.c: `tunery tools fine_tunes.prepare_data -f FILE [-q]`, the
 * client-side helper of the legacy CLI (`openai tools …`). The work is in
 * prepare_data.c; this file only reads the flags. */
#include "cli/cli.h"
#include "cmds.h"
#include <string.h>

static void tools_usage(FILE *f)
{
    fprintf(f,
        "usage: tunery tools fine_tunes.prepare_data -f FILE [-q]\n"
        "\n"
        "Checks a fine-tuning dataset the way `openai tools fine_tunes.prepare_data` did (15 checks:\n"
        "columns, empty completions, duplicates, long examples, upper case, separators, prefixes,\n"
        "endings, leading space), proposes each fix, and writes FILE_prepared.jsonl (or, for\n"
        "classification, FILE_prepared_train.jsonl and FILE_prepared_valid.jsonl).\n"
        "\n"
        "options:\n"
        "  -f, --file FILE   JSONL, JSON, CSV, TSV or TXT file containing prompt-completion examples to be\n"
        "                    analyzed (XLSX: export it to CSV first). This should be the local file path.\n"
        "  -q, --quiet       Auto accepts all suggestions, without asking for user input. To be used within scripts.\n");
}

int cmd_tools(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        tools_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "fine_tunes.prepare_data")) {
        fprintf(stderr, "tunery tools: unknown tool '%s'; the only one is fine_tunes.prepare_data\n", argv[1]);
        return 2;
    }
    const char *file = NULL;
    int quiet = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { tools_usage(stdout); return 0; }
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) { quiet = 1; continue; }
        if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) { file = argv[++i]; continue; }
        if (!strncmp(argv[i], "--file=", 7)) { file = argv[i] + 7; continue; }
        fprintf(stderr, "tunery tools fine_tunes.prepare_data: unrecognized argument '%s'; see --help\n", argv[i]);
        return 2;
    }
    if (!file) {
        fprintf(stderr, "tunery tools fine_tunes.prepare_data: the following arguments are required: -f/--file\n");
        return 2;
    }
    return pd_run(file, quiet, stdin, stdout, stderr);
}
