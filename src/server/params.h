/* params.h: the sampling parameters /v1/completions (completions.c) and
 * /v1/chat/completions (chat.c) have in common, parsed by one piece of code
 * so that both endpoints accept and refuse the same values with the same
 * 400 (error.param names the parameter), and two steps of the run they
 * share (loading the model, ending a stream). The type checks every request
 * parameter goes through (json_opt_int, ...) are in server.h; they live in
 * params.c too.
 *
 * The strings and arrays a request keeps are copied into a params_gen_t the
 * caller owns: a streamed reply goes on producing after the request (and
 * its JSON body) is gone, when the client hangs up.
 */
#ifndef TUNERY_SERVER_PARAMS_H
#define TUNERY_SERVER_PARAMS_H

#include "server/server.h"

typedef struct {
    char *stops[GEN_MAX_STOP];   /* g->stop points here */
    int *bias_ids;               /* g->logit_bias_ids */
    float *bias;                 /* g->logit_bias */
} params_gen_t;

/* n, seed, temperature, top_p, presence_penalty, frequency_penalty, stream
 * and user: types and gross ranges (the engine's gen_request_check judges
 * the values once the model is known). 0, or -1 after replying 400. */
int params_parse_sampling(req_t *r, json_t *body, gen_request_t *g);
/* stop (a string or up to 4 strings; empty strings are dropped) and
 * logit_bias (at most 300 token ids, as decimal strings, to numbers in
 * [-100, 100]) into g, with copies in own. 0, or -1 after replying. */
int params_parse_stop_bias(req_t *r, json_t *body, gen_request_t *g, params_gen_t *own);
void params_gen_free(params_gen_t *own);

/* Two more steps both endpoints take on the compute pool. The model from
 * the cache (model_cache.c), with the x-tunery-model-cache header; NULL
 * after replying 500 naming the model. */
model_ref_t *params_model_get(req_t *r, const char *cache_id, const char *dir, const char *name);
/* The end of a streamed reply: an error event when gen_complete failed (rc
 * neither 0 nor GEN_ECANCEL) and the client is still there, then
 * "data: [DONE]"; ends the body and releases push. */
void params_stream_end(http_push_t *push, int rc, const char *err);

#endif
