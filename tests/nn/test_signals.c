/* test_signals.c: stop signals arriving while oneDNN computes.
 *
 * A SIGTERM handler that ran on the thread inside oneDNN 2.6.3's JIT sgemm
 * corrupted the heap (1 pause in 10 killed its worker; core/signals.c). The
 * server and the worker now take SIGINT/SIGTERM in a thread that only waits
 * (core_signals_watch / core_signals_wait). This test does what a pause
 * does, thousands of times: SIGTERM to the process while the LM head's dinp
 * product (the shape that crashed) runs on oneDNN, and checks that every
 * result is right and the process lives. With a sigaction handler instead,
 * it dies within the first few products.
 *
 * Its own binary: core_signals_watch must run before any thread exists
 * (OpenMP's threads inherit the mask), and a thread without the mask would
 * let SIGTERM kill the process. */
#include "../test.h"
#include "core/core.h"
#include "nn/matmul_impl.h"
#include "nn/nn.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_int stops_seen, sender_done;

static void on_stop(int sig)
{
    if (sig == SIGTERM) atomic_fetch_add(&stops_seen, 1);
}

static void *sender(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 200 * 1000};
    while (!atomic_load(&sender_done)) {
        kill(getpid(), SIGTERM);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_sigterm_during_onednn_products(void)
{
    if (!mm_onednn_available()) {
        fprintf(stderr, "  skipped: oneDNN is not available on this machine\n");
        return;
    }
    enum { N = 300, C = 32, OC = 50304, PRODUCTS = 40 };
    float *dout = malloc(sizeof(float) * N * OC), *w = malloc(sizeof(float) * OC * C);
    float *dinp = malloc(sizeof(float) * N * C);
    CHECK(dout && w && dinp);
    if (!dout || !w || !dinp) return;
    for (size_t i = 0; i < (size_t)N * OC; i++) dout[i] = (float)((int)(i % 13) - 6) * 1e-3f;
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = (float)((int)(i % 7) - 3) * 1e-2f;
    /* three rows of the answer in double */
    static const int rows[3] = {0, N / 2, N - 1};
    double want[3][C];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(size_t)rows[r] * OC + o] * w[(size_t)o * C + c];
            want[r][c] = s;
        }
    memset(dinp, 0, sizeof(float) * N * C);
    if (mm_backward_path(MM_ONEDNN, NN_PREC_FP32, dinp, NULL, NULL, dout, NULL, w, N, C, OC) != 0) {
        fprintf(stderr, "  skipped: oneDNN has no JIT kernel for this product on this CPU\n");
        free(dout); free(w); free(dinp);
        return;
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sender, NULL) == 0);
    int wrong = 0, refused = 0;
    for (int p = 0; p < PRODUCTS; p++) {
        memset(dinp, 0, sizeof(float) * N * C);
        if (mm_backward_path(MM_ONEDNN, NN_PREC_FP32, dinp, NULL, NULL, dout, NULL, w, N, C, OC) != 0) refused++;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < C; c++)
                if (fabs(dinp[(size_t)rows[r] * C + c] - want[r][c]) > 1e-4) wrong++;
    }
    atomic_store(&sender_done, 1);
    pthread_join(t, NULL);
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(wrong, 0);
    /* the signals arrived (Linux merges pending ones, so fewer than sent) */
    CHECKF(atomic_load(&stops_seen) >= PRODUCTS, "only %d SIGTERMs taken", atomic_load(&stops_seen));
    free(dout);
    free(w);
    free(dinp);
}

int main(void)
{
    if (core_signals_watch(on_stop) != 0) {
        fprintf(stderr, "cannot start the signal thread\n");
        return 1;
    }
    RUN(test_sigterm_during_onednn_products);
    return test_summary();
}
