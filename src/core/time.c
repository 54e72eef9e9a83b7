/* time.c: wall-clock and monotonic time, and the two timestamp formats the
 * OpenAI surface shows users. */
#include "core/core.h"
#include <time.h>

int64_t time_unix(void) { return (int64_t)time(NULL); }

double time_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void time_fmt_local(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

void time_fmt_model(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%d-%H-%M-%S", &tm);
}
