/* auth.c: Authorization: Bearer sk-... -> the key's organization. Every
 * endpoint requires a key; a missing or unknown one is a 401 in OpenAI's
 * shape (code invalid_api_key). Keys are looked up by hash in the store, so
 * the secret never sits in the database.
 */
#define TUNERY_SERVER_INTERNAL
#include "server/server.h"
#include "store/store.h"
#include <string.h>
#include <strings.h>

/* "sk-abc...wxyz" as OpenAI echoes a wrong key: enough to spot a typo. */
static void key_mask(const char *key, char *out, size_t outlen)
{
    size_t n = strlen(key);
    if (n <= 8) snprintf(out, outlen, "%.*s****", (int)(n < 3 ? n : 3), key);
    else snprintf(out, outlen, "%.3s****%s", key, key + n - 4);
}

int auth_request(req_t *r)
{
    const char *h = http_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) || !h[7]) {
        http_reply_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                         "You didn't provide an API key. You need to provide your API key in an Authorization "
                         "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). Create one with "
                         "`tunery keys create --org NAME`, or use the key in DATA/initial-api-key.");
        return -1;
    }
    const char *key = h + 7;
    while (*key == ' ') key++;
    store_t *st = server_store(r);
    if (!st) return -1;
    store_org_t org;
    char err[CORE_ERR_LEN];
    int rc = store_key_auth(st, key, &org, err);
    if (rc == STORE_ENOTFOUND || (rc == 0 && !org.id[0])) {
        char masked[64];
        key_mask(key, masked, sizeof masked);
        http_reply_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                         "Incorrect API key provided: %s. List this server's keys with `tunery keys list`.", masked);
        return -1;
    }
    if (rc) {
        HTTP_500(r, "%s", err);
        return -1;
    }
    snprintf(r->org_id, sizeof r->org_id, "%s", org.id);
    snprintf(r->org_name, sizeof r->org_name, "%s", org.slug);
    return 0;
}
