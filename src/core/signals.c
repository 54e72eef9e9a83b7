/* signals.c: the stop signals (SIGINT, SIGTERM) are taken by one thread
 * that waits for them, never by a thread that computes.
 *
 * Why: a handler that runs on a thread inside oneDNN 2.6.3's JIT sgemm
 * ("gemm:jit", which runs the LM head's dinp pieces) corrupts that product's
 * state: the kernel writes the handler's frame on the thread's stack, below
 * its stack pointer, and the sgemm then writes through clobbered values.
 * glibc reports it later ("corrupted size vs. prev_size while
 * consolidating", "free(): invalid pointer"). Session 7 measured it: a pause
 * (SIGTERM) killed 6 of 60 workers, 0 of 60 without the pause; a product run
 * under a 200 us SIGALRM crashes within 100 calls, and runs clean with the
 * same handler on an alternate stack. So every process that computes blocks
 * the stop signals before it starts any thread (threads inherit the mask)
 * and takes them with sigwait, in the main thread (serve) or in a thread of
 * its own (worker). Synchronous faults (SIGSEGV, ...) are not affected.
 */
#include "core/core.h"

#include <pthread.h>
#include <signal.h>

static void stop_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void core_signals_block(void)
{
    sigset_t set;
    stop_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int core_signals_wait(void)
{
    sigset_t set;
    stop_set(&set);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    return sig;
}

static void (*watch_on_stop)(int);   /* set once, before the thread starts */

static void *watch_main(void *arg)
{
    (void)arg;
    for (;;) watch_on_stop(core_signals_wait());
    return NULL;
}

int core_signals_watch(void (*on_stop)(int sig))
{
    core_signals_block();
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    watch_on_stop = on_stop;
    int r = pthread_create(&t, &a, watch_main, NULL);
    pthread_attr_destroy(&a);
    return r == 0 ? 0 : -1;
}
