/* libFuzzer target for `tools fine_tunes.prepare_data`: arbitrary bytes as
 * each input format (the first byte picks .jsonl/.json/.csv/.tsv/.txt), read
 * from memory, then the whole flow (-q) on the same bytes written to a file,
 * with its outputs removed again. Build: make fuzz; run: build-fuzz/fuzz_prepare_data */
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *names[] = {"in.jsonl", "in.json", "in.csv", "in.tsv", "in.txt"};
    if (size < 1) return 0;
    const char *name = names[data[0] % 5];
    data++, size--;

    pd_table_t t;
    char fmt[256], nec[128], err[CORE_ERR_LEN];
    if (pd_read_mem(name, (const char *)data, size, &t, fmt, sizeof fmt, nec, sizeof nec, err) == 0)
        for (size_t r = 0; r < t.nrows; r++)
            for (int c = 0; c < t.ncols; c++) (void)strlen(pd_cell(&t, r, c));
    pd_table_free(&t);

    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz-pd-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (fs_write_atomic(path, data, size, err)) return 0;
    FILE *null_out = fopen("/dev/null", "w"), *null_in = fopen("/dev/null", "r");
    pd_run(path, 1, null_in, null_out, null_out);
    fclose(null_out);
    fclose(null_in);
    fs_rm_rf(dir, err);
    mkdir(dir, 0700);
    return 0;
}
