/* metrics.c: classification metrics as OpenAI's legacy fine-tunes reported
 * them at each epoch end (classification/accuracy, precision, recall, auroc,
 * auprc, f1.0, f{beta}; multiclass: accuracy, weighted_f1_score).
 *
 * Definitions (the scikit-learn ones OpenAI's results matched; no library):
 *   predicted positive   p > 0.5
 *   precision, recall    tp/(tp+fp), tp/(tp+fn); 0 when the denominator is 0
 *   F-beta               (1+b^2) P R / (b^2 P + R); 0 when P = R = 0
 *   AUROC                Mann-Whitney U with tied scores sharing their
 *                        average rank; NaN without both classes
 *   AUPRC                average precision: sum over distinct thresholds,
 *                        high to low, of (R_k - R_{k-1}) * P_k; NaN without
 *                        positives
 *   weighted F1          per-class F1 weighted by the class's true support
 */
#include "train/train_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { double p; int y; } scored_t;

static int cmp_desc(const void *a, const void *b)
{
    double x = ((const scored_t *)a)->p, y = ((const scored_t *)b)->p;
    return x < y ? 1 : x > y ? -1 : 0;
}

static scored_t *sorted_desc(const int *y, const double *p, int n)
{
    scored_t *s = malloc((size_t)(n ? n : 1) * sizeof *s);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) { s[i].p = p[i]; s[i].y = y[i] != 0; }
    qsort(s, (size_t)n, sizeof *s, cmp_desc);
    return s;
}

double metrics_auroc(const int *y, const double *p, int n)
{
    scored_t *s = sorted_desc(y, p, n);
    if (!s) return NAN;
    /* ranks ascending: the element at sorted-desc index i has rank n - i */
    double pos_rank_sum = 0;
    long npos = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && s[j].p == s[i].p) j++;
        double avg = 0;
        for (int k = i; k < j; k++) avg += n - k;
        avg /= (j - i);
        for (int k = i; k < j; k++) if (s[k].y) { pos_rank_sum += avg; npos++; }
        i = j;
    }
    free(s);
    long nneg = n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (pos_rank_sum - (double)npos * (npos + 1) / 2) / ((double)npos * nneg);
}

double metrics_auprc(const int *y, const double *p, int n)
{
    long npos = 0;
    for (int i = 0; i < n; i++) npos += y[i] != 0;
    if (npos == 0) return NAN;
    scored_t *s = sorted_desc(y, p, n);
    if (!s) return NAN;
    double ap = 0, prev_r = 0;
    long tp = 0, fp = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && s[j].p == s[i].p) { if (s[j].y) tp++; else fp++; j++; }
        double r = (double)tp / npos, prec = (double)tp / (tp + fp);
        ap += (r - prev_r) * prec;
        prev_r = r;
        i = j;
    }
    free(s);
    return ap;
}

static double fbeta(double p, double r, double b)
{
    double b2 = b * b;
    return p + r > 0 ? (1 + b2) * p * r / (b2 * p + r) : 0;
}

void metrics_binary(const int *y, const double *p, int n, const double *betas, int nbetas, cls_metrics_t *m)
{
    long tp = 0, fp = 0, tn = 0, fn = 0;
    for (int i = 0; i < n; i++) {
        int pred = p[i] > 0.5, t = y[i] != 0;
        tp += pred && t; fp += pred && !t; tn += !pred && !t; fn += !pred && t;
    }
    memset(m, 0, sizeof *m);
    m->accuracy = n ? (double)(tp + tn) / n : NAN;
    m->precision = tp + fp ? (double)tp / (tp + fp) : 0;
    m->recall = tp + fn ? (double)tp / (tp + fn) : 0;
    m->f1 = fbeta(m->precision, m->recall, 1);
    for (int k = 0; k < nbetas && k < 16; k++) m->fbeta[k] = fbeta(m->precision, m->recall, betas[k]);
    m->auroc = metrics_auroc(y, p, n);
    m->auprc = metrics_auprc(y, p, n);
    m->weighted_f1 = NAN;
}

void metrics_multiclass(const int *y, const int *pred, int n, int k, cls_metrics_t *m)
{
    memset(m, 0, sizeof *m);
    long *tp = calloc((size_t)k * 3 + 3, sizeof *tp);
    if (!tp || n == 0) { free(tp); m->accuracy = m->weighted_f1 = NAN; return; }
    long *npred = tp + k + 1, *ntrue = npred + k + 1, correct = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] >= 0 && y[i] < k) ntrue[y[i]]++;
        if (pred[i] >= 0 && pred[i] < k) npred[pred[i]]++;
        if (y[i] == pred[i]) { correct++; if (y[i] >= 0 && y[i] < k) tp[y[i]]++; }
    }
    double wf1 = 0;
    for (int c = 0; c < k; c++) {
        double pr = npred[c] ? (double)tp[c] / npred[c] : 0, rc = ntrue[c] ? (double)tp[c] / ntrue[c] : 0;
        wf1 += ntrue[c] * fbeta(pr, rc, 1);
    }
    m->accuracy = (double)correct / n;
    m->weighted_f1 = wf1 / n;
    m->precision = m->recall = m->auroc = m->auprc = m->f1 = NAN;
    free(tp);
}
