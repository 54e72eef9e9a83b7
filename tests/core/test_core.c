/* Unit tests for core/: buffers, atomic writes, ids, sha256 vectors, time formats. */
#include "core/core.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void test_buf(void)
{
    buf_t b = {0};
    for (int i = 0; i < 1000; i++) CHECK(buf_printf(&b, "%d,", i) == 0);
    CHECK(b.len == strlen(b.data));
    CHECK(!strncmp(b.data, "0,1,2,", 6));
    buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

static void test_sha256_vectors(void)
{
    char hex[65];
    sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_atomic_write_and_read(void)
{
    char err[CORE_ERR_LEN], dir[] = "/tmp/tunery-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/a/b/c.txt", dir);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    CHECK(fs_mkdir_p(sub, 0755, err) == 0);
    CHECK(fs_write_atomic(path, "hello", 5, err) == 0);
    char *data = NULL;
    size_t n = 0;
    CHECK(fs_read_all(path, &data, &n, err) == 0);
    CHECK(n == 5 && !strcmp(data, "hello"));
    free(data);
    CHECK(fs_read_all("/nonexistent/x", &data, &n, err) < 0);
    CHECK(strstr(err, "/nonexistent/x") != NULL);
    CHECK(fs_rm_rf(dir, err) == 0);
    CHECK(!fs_exists(dir));
}

static void test_ids(void)
{
    char a[64], b[64];
    id_random(a, "file-", 24);
    id_random(b, "file-", 24);
    CHECK(strlen(a) == 29 && !strncmp(a, "file-", 5));
    CHECK(strcmp(a, b) != 0);
    for (int i = 5; i < 29; i++) CHECK((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') || (a[i] >= '0' && a[i] <= '9'));
}

static void test_splitmix64(void)
{
    /* the reference sequence of splitmix64 from state 0 (Vigna's splitmix64.c) */
    uint64_t s = 0;
    CHECK(core_splitmix64(&s) == 0xE220A8397B1DCDAFull);
    CHECK(core_splitmix64(&s) == 0x6E789E6AA1B965F4ull);
    CHECK(s == 2 * 0x9E3779B97F4A7C15ull);
}

/* fs_sweep_dead removes the leftovers of dead processes only: a child that
 * has exited stands for a killed writer. */
static void test_sweep_dead(void)
{
    char dir[] = "/tmp/tunery-test-sweep-XXXXXX", p[256], err[CORE_ERR_LEN];
    CHECK(mkdtemp(dir) != NULL);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    const char *names[] = {"%s/w-%d-abc", "%s/w-%d", "%s/w-%dx", "%s/v-%d-abc"};
    int pids[] = {(int)dead, (int)getpid(), 1};
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, names[n], dir, pids[i]);
            CHECK(mkdir(p, 0700) == 0);
            char f[300];
            snprintf(f, sizeof f, "%s/file", p);
            CHECK(fs_write_atomic(f, "x", 1, err) == 0);
        }
    fs_sweep_dead(dir, "w-");
    for (int n = 0; n < 4; n++)
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, names[n], dir, pids[i]);
            int gone = i == 0 && n < 2;   /* dead writer, name prefix<pid> or prefix<pid>-... */
            CHECKF(fs_exists(p) == !gone, "%s should %s", p, gone ? "be removed" : "stay");
        }
    CHECK(fs_rm_rf(dir, err) == 0);
}

static void test_time_formats(void)
{
    char s[32];
    time_fmt_model(0, s);
    CHECK_EQ_STR(s, "1970-01-01-00-00-00");
    time_fmt_model(1700000000, s);
    CHECK_EQ_STR(s, "2023-11-14-22-13-20");
}

int main(void)
{
    RUN(test_buf);
    RUN(test_sha256_vectors);
    RUN(test_atomic_write_and_read);
    RUN(test_ids);
    RUN(test_splitmix64);
    RUN(test_time_formats);
    RUN(test_sweep_dead);
    return test_summary();
}
