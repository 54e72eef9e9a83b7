/* cmd_tokenize.c: `tunery tokenize`, the tokenizer at the command line: text
 * on stdin to ids on stdout (or ids back to text, or just the count). The
 * parity suite (tests/tok/integration.sh) drives the tokenizer through it.
 */
#include "cmds.h"
#include "tok/tok.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: tunery tokenize [--model NAME|DIR] [--decode] [--count] [--allow-special]\n"
    "       tunery tokenize [--model NAME|DIR] --save-dir DIR\n"
    "Reads stdin and writes the token ids, space-separated, to stdout.\n"
    "  --model NAME|DIR  tokenizer of a model (its tokenizer.json, or vocab.json + merges.txt);\n"
    "                    default: OpenAI's GPT-2/GPT-3 encoding r50k_base\n"
    "  --decode          read ids (separated by spaces or newlines) and write their text\n"
    "  --count           write only the number of tokens\n"
    "  --allow-special   treat special tokens written in the text (<|endoftext|>) as\n"
    "                    special; by default they are encoded as plain text\n"
    "  --save-dir DIR    write the tokenizer as Hugging Face files (vocab.json,\n"
    "                    merges.txt, tokenizer.json, tokenizer_config.json) into DIR\n"
    "  -h, --help        this text\n";

static int read_stdin(buf_t *b)
{
    for (;;) {
        if (buf_reserve(b, 1 << 20)) return -1;
        ssize_t n = read(0, b->data + b->len, b->cap - b->len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 0;
        b->len += (size_t)n;
    }
}

static int write_all(const char *p, size_t n) { return fs_write_full(1, p, n); }

static int load_model(tok_t **t, const char *model, char *err)
{
    struct stat st;
    char dir[PATH_MAX];
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode)) return tok_load_dir(t, model, err);
    if (core_model_dir(model, dir, err)) return -1;
    return tok_load_dir(t, dir, err);
}

/* writes ids space-separated; *first tracks the separator across blocks */
static int put_ids(const int *ids, size_t n, int *first)
{
    if (n == 0) return 0;
    buf_t out = {0};
    if (buf_reserve(&out, n * 7 + 2)) return -1;
    char *p = out.data;
    for (size_t i = 0; i < n; i++) {
        char tmp[12];
        int k = 0;
        unsigned v = (unsigned)ids[i];
        do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
        if (!*first) *p++ = ' ';
        *first = 0;
        while (k) *p++ = tmp[--k];
    }
    int rc = write_all(out.data, (size_t)(p - out.data));
    buf_free(&out);
    return rc;
}

/* stdin in 1 MB blocks, ids written as they are final: memory stays bounded
 * by the block and the longest piece, whatever the input's size */
static int encode_stdin(const tok_t *t, int allow, int count_only, char *err)
{
    buf_t in = {0};
    tok_ids_t ids = {0};
    size_t total = 0, used;
    int eof = 0, first = 1, rc = -1;
    while (!eof) {
        if (buf_reserve(&in, 1 << 20)) { core_errf(err, "out of memory"); goto done; }
        ssize_t n = read(0, in.data + in.len, 1 << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { core_errf(err, "cannot read stdin: %s", strerror(errno)); goto done; }
        if (n == 0) eof = 1;
        in.len += (size_t)n;
        ids.len = 0;
        if (tok_encode_stream(t, in.data, in.len, allow, eof, count_only ? NULL : &ids, &total, &used)) {
            core_errf(err, "out of memory");
            goto done;
        }
        memmove(in.data, in.data + used, in.len - used);
        in.len -= used;
        if (!count_only && put_ids(ids.ids, ids.len, &first)) { core_errf(err, "cannot write to stdout: %s", strerror(errno)); goto done; }
    }
    if (count_only) printf("%zu\n", total);
    else if (write_all("\n", 1)) { core_errf(err, "cannot write to stdout: %s", strerror(errno)); goto done; }
    rc = 0;
done:
    buf_free(&in);
    tok_ids_free(&ids);
    return rc;
}

static int decode_ids(const tok_t *t, const buf_t *in, char *err)
{
    tok_ids_t ids = {0};
    buf_t out = {0};
    int rc = -1;
    const char *s = in->data ? in->data : "";
    while (*s) {
        while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v >= tok_vocab_size(t)) {
            core_errf(err, "not a token id of this tokenizer: \"%.20s\" (ids are 0..%d)", s, tok_vocab_size(t) - 1);
            goto done;
        }
        if (ids.len == ids.cap) {
            size_t cap = ids.cap ? ids.cap * 2 : 1024;
            int *p = realloc(ids.ids, cap * sizeof *p);
            if (!p) { core_errf(err, "out of memory"); goto done; }
            ids.ids = p;
            ids.cap = cap;
        }
        ids.ids[ids.len++] = (int)v;
        s = end;
    }
    if (tok_decode(t, ids.ids, ids.len, &out)) { core_errf(err, "out of memory"); goto done; }
    if (write_all(out.data ? out.data : "", out.len)) { core_errf(err, "cannot write to stdout: %s", strerror(errno)); goto done; }
    rc = 0;
done:
    tok_ids_free(&ids);
    buf_free(&out);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *save = NULL;
    int decode = 0, count = 0, allow = 0;
    char err[CORE_ERR_LEN];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strncmp(a, "--model=", 8)) model = a + 8;
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--count")) count = 1;
        else if (!strcmp(a, "--allow-special")) allow = 1;
        else if (!strcmp(a, "--save-dir") && i + 1 < argc) save = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        else {
            fprintf(stderr, "tunery tokenize: unknown option '%s'\n%s", a, usage);
            return 2;
        }
    }
    tok_t *t = NULL;
    if (model ? load_model(&t, model, err) : !(t = (tok_t *)tok_r50k(err))) {
        fprintf(stderr, "tunery tokenize: %s\n", err);
        return 1;
    }
    buf_t in = {0};
    int rc = 1;
    if (save) {
        if (tok_save_dir(t, save, err)) { fprintf(stderr, "tunery tokenize: %s\n", err); goto done; }
    } else if (!decode) {
        if (encode_stdin(t, allow, count, err)) { fprintf(stderr, "tunery tokenize: %s\n", err); goto done; }
    } else {
        if (read_stdin(&in)) {
            fprintf(stderr, "tunery tokenize: cannot read stdin: %s\n", strerror(errno));
            goto done;
        }
        if (decode_ids(t, &in, err)) { fprintf(stderr, "tunery tokenize: %s\n", err); goto done; }
    }
    rc = 0;
done:
    buf_free(&in);
    tok_free(t);
    return rc;
}
