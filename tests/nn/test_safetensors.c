/* test_safetensors.c: the safetensors reader refuses every kind of broken or
 * lying file with a sentence, never a crash (the fuzz target
 * tests/fuzz/fuzz_safetensors.c explores the rest), and the writer's files
 * read back exactly. */
#include "nn/nn.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

/* build a safetensors image: 8-byte length, header text, data bytes */
static size_t image(uint8_t *out, const char *header, const void *data, size_t dlen)
{
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(n >> (8 * i));
    memcpy(out + 8, header, n);
    if (dlen) memcpy(out + 8 + n, data, dlen);
    return 8 + n + dlen;
}

static int parse(const char *header, size_t dlen, char *err)
{
    static uint8_t buf[1 << 16];
    static const uint8_t zeros[4096];
    size_t len = image(buf, header, zeros, dlen);
    st_file_t f;
    int rc = st_file_parse(&f, buf, len, err);
    if (!rc) st_file_close(&f);
    return rc;
}

static void expect_error(const char *header, size_t dlen, const char *needle)
{
    char err[CORE_ERR_LEN] = "";
    int rc = parse(header, dlen, err);
    CHECKF(rc < 0, "accepted: %s", header);
    CHECKF(strstr(err, needle) != NULL, "error \"%s\" lacks \"%s\"", err, needle);
}

static void test_valid(void)
{
    uint8_t buf[1024];
    float v[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[2] = {0x3c00, 0xc000};   /* F16 1.0, -2.0 */
    uint16_t bf[2] = {0x3f80, 0x4040};  /* BF16 1.0, 3.0 */
    uint8_t data[24 + 4 + 4];
    memcpy(data, v, 24);
    memcpy(data + 24, h, 4);
    memcpy(data + 28, bf, 4);
    size_t len = image(buf, "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                            "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                            "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[28,32]},"
                            "\"s\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[32,32]}}   ", data, sizeof data);
    st_file_t f;
    char err[CORE_ERR_LEN];
    int rc = st_file_parse(&f, buf, len, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) return;
    CHECK(f.n == 4);
    const st_tensor_t *a = st_tensor_find(&f, "a"), *b = st_tensor_find(&f, "b"), *c = st_tensor_find(&f, "c");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->nelem == 6 && a->dtype == ST_F32);
    CHECK(st_tensor_find(&f, "__metadata__") == NULL && st_tensor_find(&f, "zz") == NULL);
    float out[6];
    if (a) { CHECK(st_tensor_to_f32(a, out) == 0); CHECK(out[5] == 6.0f); }
    if (b) { CHECK(st_tensor_to_f32(b, out) == 0); CHECK(out[0] == 1.0f && out[1] == -2.0f); }
    if (c) { CHECK(st_tensor_to_f32(c, out) == 0); CHECK(out[0] == 1.0f && out[1] == 3.0f); }
    st_file_close(&f);
}

static void test_broken_files(void)
{
    char err[CORE_ERR_LEN];
    st_file_t f;
    uint8_t small[5] = {1, 2, 3, 4, 5};
    CHECK(st_file_parse(&f, small, sizeof small, err) < 0 && strstr(err, "shorter"));
    /* header length larger than the file */
    uint8_t big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(st_file_parse(&f, big, sizeof big, err) < 0 && strstr(err, "exceeds the file"));
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(st_file_parse(&f, huge, sizeof huge, err) < 0 && strstr(err, "exceeds the file"));
    expect_error("not json at all", 0, "does not start with '{'");
    expect_error("{\"a\":", 0, "not valid JSON");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{}}", 4, "not valid JSON"); /* duplicate */
    expect_error("{\"a\":[1,2]}", 0, "not an object");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative");
    /* offsets out of range, reversed, negative */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 16, "outside");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16, "outside");
    /* shape vs bytes, wrong dtype size */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "span 8 bytes");
    expect_error("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "span 16 bytes");
    /* a shape whose byte count overflows size_t */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", 16, "too large");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 16, "dimensions");
    /* overlapping tensors */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlap");
    expect_error("[1,2,3]", 0, "does not start");
    expect_error("{}x", 0, "not valid JSON");
    /* file-level: missing file, truncated file */
    CHECK(st_file_open(&f, "/nonexistent/model.safetensors", err) < 0 && strstr(err, "cannot open"));
}

static void test_writer_roundtrip(void)
{
    char dir[] = "/tmp/tunery-test-st-XXXXXX", path[128], err[CORE_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    const char *names[3] = {"first", "empty", "second.weight"};
    int64_t s0[2] = {2, 3}, s1[1] = {0}, s2[1] = {5};
    const int64_t *shapes[3] = {s0, s1, s2};
    int nd[3] = {2, 1, 1};
    float a[6] = {1, 2, 3, 4, 5, 6}, b[5] = {-1, -2, -3, -4, -5};
    st_writer_t *w;
    int rc = st_writer_open(&w, path, names, shapes, nd, 3, err);
    CHECKF(rc == 0, "%s", err);
    if (rc) return;
    CHECK(st_writer_write(w, a, 4, err) == 0);     /* in pieces */
    CHECK(st_writer_write(w, a + 4, 2, err) == 0);
    CHECK(st_writer_write(w, b, 5, err) == 0);
    CHECK(st_writer_write(w, b, 1, err) < 0);      /* more than declared */
    CHECK(st_writer_close(w, err) == 0);
    st_file_t f;
    rc = st_file_open(&f, path, err);
    CHECKF(rc == 0, "%s", err);
    if (!rc) {
        const st_tensor_t *t = st_tensor_find(&f, "second.weight");
        float out[5];
        CHECK(t && t->nelem == 5 && st_tensor_to_f32(t, out) == 0 && out[4] == -5.0f);
        t = st_tensor_find(&f, "first");
        CHECK(t && t->shape[0] == 2 && t->shape[1] == 3 && memcmp(t->data, a, 24) == 0);
        st_file_close(&f);
    }
    /* aborting leaves nothing behind; a short write is refused at close */
    rc = st_writer_open(&w, path, names, shapes, nd, 3, err);
    if (!rc) {
        CHECK(st_writer_write(w, a, 6, err) == 0);
        CHECK(st_writer_close(w, err) < 0 && strstr(err, "before all tensors"));
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", dir);
    FILE *p = popen(cmd, "r");
    int ntmp = -1;
    if (p) { CHECK(fscanf(p, "%d", &ntmp) == 1); pclose(p); }
    CHECK(ntmp == 0);
    /* the committed file is still the first one */
    rc = st_file_open(&f, path, err);
    CHECK(rc == 0 && f.n == 3);
    if (!rc) st_file_close(&f);
    /* truncate: a clean error naming the file */
    CHECK(truncate(path, 60) == 0);
    CHECK(st_file_open(&f, path, err) < 0 && strstr(err, "x.safetensors"));
    fs_rm_rf(dir, err);
}

int main(void)
{
    RUN(test_valid);
    RUN(test_broken_files);
    RUN(test_writer_roundtrip);
    return test_summary();
}
