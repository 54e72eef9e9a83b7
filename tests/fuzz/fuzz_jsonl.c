/* fuzz_jsonl.c: the fine-tune data parser on arbitrary bytes. Uploaded files
 * come from anyone, so jsonl_parse_line must never crash, leak or read out
 * of bounds, and must either accept a line (with segments inside the text
 * buffer) or reject it with an error that names the line.
 *   make fuzz && build-fuzz/fuzz_jsonl -max_total_time=60 */
#include "train/train_int.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    texample_t e = {0};
    char err[CORE_ERR_LEN];
    const char *p = (const char *)data, *end = p + size;
    long ln = 0;
    int chat = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        /* a copy of exactly len bytes, so ASan sees any read past the line */
        char *line = malloc(len ? len : 1);
        memcpy(line, p, len);
        ln++;
        err[0] = 0;
        int r = jsonl_parse_line(line, len, ln, chat, &e, err);
        if (r < 0) {
            assert(!strncmp(err, "line ", 5) || strstr(err, "out of memory"));
        } else if (r == 0) {
            chat = e.is_chat;
            assert(e.nsegs > 0);
            int compl = 0;
            for (int i = 0; i < e.nsegs; i++) {
                assert(e.segs[i].off + e.segs[i].len <= e.text.len);
                compl |= e.segs[i].cls == TW_COMPLETION;
            }
            assert(compl);  /* every accepted example has something to learn */
            assert(utf8_first_invalid(e.text.data ? e.text.data : "", e.text.len) < 0);
        }
        free(line);
        p += len + (nl != NULL);
    }
    texample_free(&e);
    return 0;
}
