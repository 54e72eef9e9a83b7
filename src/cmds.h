/* cmds.h: the entry point of every subcommand, int cmd_x(int argc, char **argv)
 * where argv[0] is the subcommand's name. Returns the process exit status.
 * Declared weak so the binary links while a directory is still being built;
 * main() reports a missing one instead of crashing. Owners:
 *   serve, keys, bench serve   server/      api, tools          cli/
 *   train                      train/       generate, bench generate, bench train  nn/
 *   tokenize, bench tokenize   tok/         worker              sched/
 *   bench finetune, pretrain   train/
 *   models                     nn/ (model directories: import, export, list) */
#ifndef TUNERY_CMDS_H
#define TUNERY_CMDS_H
#define CMD_DECL(name) int name(int argc, char **argv) __attribute__((weak))
CMD_DECL(cmd_serve);
CMD_DECL(cmd_api);
CMD_DECL(cmd_tools);
CMD_DECL(cmd_train);
CMD_DECL(cmd_generate);
CMD_DECL(cmd_tokenize);
CMD_DECL(cmd_models);
CMD_DECL(cmd_keys);
CMD_DECL(cmd_worker);
CMD_DECL(cmd_pretrain);
/* `tunery bench <what>` is dispatched by cmd_bench (src/main.c) to these: */
CMD_DECL(cmd_bench_train);
CMD_DECL(cmd_bench_generate);
CMD_DECL(cmd_bench_matmul);       /* nn/matmul_bench.c */
CMD_DECL(cmd_bench_tokenize);
CMD_DECL(cmd_bench_serve);
CMD_DECL(cmd_bench_finetune);
CMD_DECL(cmd_bench_prepare_data);   /* cli/ */
#endif
