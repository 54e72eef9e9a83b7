/* bench_prepare.c: `tunery bench prepare_data [--mb N] [--file F]`, the
 * read-and-check throughput of `tools fine_tunes.prepare_data` (issue 8
 * asks for >= 100 MB/s on a 500 MB JSONL and a peak RSS below twice the
 * file). It writes a synthetic prompt/completion JSONL of N MB (unless a
 * file is given), runs the whole check with -q and prints one JSON line:
 * wall and CPU seconds, MB/s on both, and peak RSS. On a shared machine the
 * CPU figure is the stable one.
 */
#include "cli/cli.h"
#include "cmds.h"
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Deterministic text: a small xorshift over a word list. */
static int write_synthetic(const char *path, double mb, char *err)
{
    static const char *w[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven",
                              "wizards", "quietly", "hex", "jolly", "farmers", "near", "old", "mills", "river"};
    FILE *f = fopen(path, "w");
    if (!f) return core_errf(err, "cannot write %s", path);
    uint64_t s = 88172645463325252ULL, bytes = 0, target = (uint64_t)(mb * 1e6);
    char line[4096];
    for (long i = 0; bytes < target; i++) {
        int n = snprintf(line, sizeof line, "{\"prompt\": \"");
        for (int k = 0; k < 40; k++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; n += snprintf(line + n, sizeof line - n, "%s ", w[s % 20]); }
        n += snprintf(line + n, sizeof line - n, "%ld ->\", \"completion\": \"", i);
        for (int k = 0; k < 20; k++) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; n += snprintf(line + n, sizeof line - n, " %s", w[s % 20]); }
        n += snprintf(line + n, sizeof line - n, " %ld\\n\"}\n", i);
        fwrite(line, 1, (size_t)n, f);
        bytes += (uint64_t)n;
    }
    return fclose(f) ? core_errf(err, "cannot write %s", path) : 0;
}

int cmd_bench_prepare_data(int argc, char **argv)
{
    double mb = 500;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else {
            fprintf(!strcmp(argv[i], "--help") ? stdout : stderr,
                    "usage: tunery bench prepare_data [--mb N (default 500)] [--file F.jsonl]\n"
                    "  times `tunery tools fine_tunes.prepare_data -f F -q` (read and all 15 checks) and prints one JSON line\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    char err[CORE_ERR_LEN], path[256] = "";
    if (!file) {
        snprintf(path, sizeof path, "/tmp/tunery-bench-prepare-%d.jsonl", (int)getpid());
        if (write_synthetic(path, mb, err)) { fprintf(stderr, "tunery bench: %s\n", err); return 1; }
        file = path;
    }
    struct stat sb;
    if (stat(file, &sb)) { fprintf(stderr, "tunery bench: cannot read %s\n", file); return 1; }
    FILE *null_out = fopen("/dev/null", "w"), *null_in = fopen("/dev/null", "r");
    double c0 = cpu_seconds(), t0 = time_mono();
    int rc = pd_run(file, 1, null_in, null_out, null_out);
    double wall = time_mono() - t0, cpu = cpu_seconds() - c0;
    fclose(null_out);
    fclose(null_in);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double fmb = (double)sb.st_size / 1e6;
    printf("{\"bench\":\"prepare_data\",\"file_mb\":%.1f,\"exit\":%d,\"wall_s\":%.3f,\"cpu_s\":%.3f,"
           "\"mb_per_s_wall\":%.1f,\"mb_per_s_cpu\":%.1f,\"peak_rss_mb\":%.1f,\"rss_over_file\":%.2f}\n",
           fmb, rc, wall, cpu, fmb / wall, fmb / cpu, ru.ru_maxrss / 1024.0, ru.ru_maxrss / 1024.0 / fmb);
    if (path[0]) unlink(path);
    return rc;
}
