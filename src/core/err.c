/* err.c: the one way library code reports a failure (see core.h). */
#include "core/core.h"
#include <stdarg.h>

int core_errf(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, CORE_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void core_die_msg(const char *msg)
{
    fprintf(stderr, "tunery: %s\n", msg);
}
