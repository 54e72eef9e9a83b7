/* main.c: subcommand dispatch only. Each subcommand lives in the directory
 * that owns its work and is declared in src/cmds.h. */
#include "cmds.h"
#include <stdio.h>
#include <string.h>

static int cmd_bench_dispatch(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} command_t;

static const command_t commands[] = {
    {"serve",    cmd_serve,    "serve    [--listen 127.0.0.1:8080] [--data DIR]   API server + scheduler"},
    {"api",      cmd_api,      "api      <group.op> [flags]   OpenAI-CLI-compatible client (fine_tunes.*, files.*, models.*, completions.create, fine_tuning.jobs.*)"},
    {"tools",    cmd_tools,    "tools    fine_tunes.prepare_data -f FILE [-q]"},
    {"train",    cmd_train,    "train    --model M --train F [--validation F] --out DIR [hyper-parameters]   one fine-tune, no server"},
    {"generate", cmd_generate, "generate --model M -p PROMPT [sampling flags]"},
    {"tokenize", cmd_tokenize, "tokenize [--model M] [--decode] [--count]"},
    {"models",   cmd_models,   "models   list | import DIR --name N | export N --format gguf|safetensors"},
    {"keys",     cmd_keys,     "keys     create --org NAME | list | revoke KEY-ID"},
    {"bench",    cmd_bench_dispatch,    "bench    train | generate | tokenize | serve   (prints one JSON line per figure)"},
    {"pretrain", cmd_pretrain, "pretrain --corpus F --valid F --out DIR [--config L,NH,C,T]   build a base model from plain text"},
    {"worker",   cmd_worker,   "worker   JOB-ID   (run by serve: trains one job)"},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

/* `tunery bench <what>`: each figure is produced by the directory it measures. */
static int cmd_bench_dispatch(int argc, char **argv)
{
    static const command_t benches[] = {
        {"train", cmd_bench_train, "train    [--config gpt2-124M|tiny] [--batch B] [--seq T]   training step speed vs the machine's peak"},
        {"generate", cmd_bench_generate, "generate [--config gpt2-124M]   prefill and decode tokens/s vs memory bandwidth"},
        {"matmul", cmd_bench_matmul, "matmul   [--reps N] [--portable] [--bandwidth]   every matmul path at GPT-2 124M shapes, GFLOP/s"},
        {"tokenize", cmd_bench_tokenize, "tokenize [FILE]   MB/s and tokens/s of r50k encoding"},
        {"serve", cmd_bench_serve, "serve    requests/s of the HTTP server"},
        {"finetune", cmd_bench_finetune, "finetune [--examples 1000]   end-to-end fine-tune throughput (data loading and checkpoints included)"},
        {"prepare_data", cmd_bench_prepare_data, "prepare_data [--mb 500] [--file F]   MB/s and peak RSS of tools fine_tunes.prepare_data"},
    };
    for (size_t i = 0; argc >= 2 && i < sizeof benches / sizeof *benches; i++) {
        if (strcmp(argv[1], benches[i].name)) continue;
        if (!benches[i].fn) {
            fprintf(stderr, "tunery: 'bench %s' is not built into this binary yet\n", argv[1]);
            return 2;
        }
        return benches[i].fn(argc - 1, argv + 1);
    }
    FILE *f = argc >= 2 && strcmp(argv[1], "--help") ? stderr : stdout;
    if (argc >= 2 && strcmp(argv[1], "--help")) fprintf(f, "tunery: unknown benchmark '%s'\n", argv[1]);
    fprintf(f, "usage: tunery bench <what> [options]   (prints one JSON line per figure)\n");
    for (size_t i = 0; i < sizeof benches / sizeof *benches; i++) fprintf(f, "  %s\n", benches[i].usage);
    return f == stdout ? 0 : 2;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tunery <command> [options]   (tunery <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\nenvironment: OPENAI_API_KEY, OPENAI_API_BASE (default http://127.0.0.1:8080/v1),\n"
               "  OPENAI_ORGANIZATION, TUNERY_DATA (server data directory, default ./tunery-data)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tunery 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "tunery: '%s' is not built into this binary yet; see README.md for what works today\n", argv[1]);
            return 2;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "tunery: unknown command '%s'; run 'tunery --help' for the list\n", argv[1]);
    return 2;
}
