/* test.h: the unit-test harness, one header, no framework.
 * A test file defines static void test_x(void) functions and a main():
 *     int main(void) { RUN(test_x); RUN(test_y); return test_summary(); }
 * CHECK() records a failure with file:line and keeps going, so one run shows
 * every broken check; the last line is "<file>: N passed, N failed", which
 * tests/run.sh adds up for CI. */
#ifndef TUNERY_TEST_H
#define TUNERY_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_passed_, test_failed_, test_cur_failed_;
static const char *test_name_;

#define CHECK(cond) do { if (!(cond)) { test_cur_failed_++; \
    fprintf(stderr, "  FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, test_name_, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { test_cur_failed_++; \
    fprintf(stderr, "  FAIL %s:%d: %s: %s: ", __FILE__, __LINE__, test_name_, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_EQ_INT(a, b) CHECKF((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define CHECK_EQ_STR(a, b) CHECKF(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define CHECK_NEAR(a, b, tol) CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

#define RUN(fn) do { test_name_ = #fn; test_cur_failed_ = 0; fn(); \
    if (test_cur_failed_) { test_failed_++; fprintf(stderr, "not ok %s\n", #fn); } \
    else { test_passed_++; fprintf(stderr, "ok %s\n", #fn); } } while (0)

static inline int test_summary(void)
{
    printf("%s: %d passed, %d failed\n", __BASE_FILE__, test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}
#endif
