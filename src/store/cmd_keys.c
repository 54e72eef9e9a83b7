/* cmd_keys.c: `tunery keys`, the administrator's door to API keys. Keys
 * are created here (or once by serve's first start) because the HTTP API has
 * no endpoint that mints keys, as OpenAI's does not. The new key goes to
 * stdout alone so `KEY=$(tunery keys create --org acme)` works. */
#include "cmds.h"
#include "store/store.h"
#include <stdlib.h>
#include <string.h>

static void keys_usage(FILE *f)
{
    fprintf(f, "usage: tunery keys create --org NAME [--data DIR]   print a new API key for NAME (created if new)\n"
               "       tunery keys list [--org NAME] [--data DIR]    list keys (ids and hints, never the secrets)\n"
               "       tunery keys revoke KEY-ID [--data DIR]        stop a key from working\n"
               "The data directory defaults to $TUNERY_DATA, else ./tunery-data.\n");
}

static int fail(const char *msg)
{
    fprintf(stderr, "tunery keys: %s\n", msg);
    return 1;
}

int cmd_keys(int argc, char **argv)
{
    const char *op = NULL, *org_name = NULL, *data = NULL, *key_id = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            keys_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--org") || !strcmp(a, "--data")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tunery keys: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--org")) org_name = argv[++i];
            else data = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "tunery keys: unknown option '%s' (see tunery keys --help)\n", a);
            return 2;
        } else if (!op) {
            op = a;
        } else if (!key_id) {
            key_id = a;
        } else {
            fprintf(stderr, "tunery keys: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!op) {
        keys_usage(stderr);
        return 2;
    }
    char err[CORE_ERR_LEN];
    store_t *s;
    if (store_open(data, &s, err)) return fail(err);
    int rc = 0;
    if (!strcmp(op, "create")) {
        store_org_t org;
        store_key_t k;
        char key[STORE_KEY_LEN];
        if (!org_name || !*org_name) {
            rc = fail("create needs --org NAME (the organization the key belongs to)");
        } else if (store_org_get(s, org_name, &org, err) && store_org_create(s, org_name, &org, err) &&
                   store_org_get(s, org_name, &org, err)) {
            rc = fail(err);
        } else if (store_key_create(s, org.id, key, &k, err)) {
            rc = fail(err);
        } else {
            printf("%s\n", key);
            fprintf(stderr, "created key %s for organization '%s' (%s); it is shown only once\n", k.id, org.name, org.id);
        }
    } else if (!strcmp(op, "list")) {
        store_org_t org;
        store_key_t *keys;
        store_org_t *orgs;
        int n, norgs;
        if (org_name && store_org_get(s, org_name, &org, err)) {
            rc = fail(err);
        } else if (store_key_list(s, org_name ? org.id : NULL, &keys, &n, err)) {
            rc = fail(err);
        } else if (store_org_list(s, &orgs, &norgs, err)) {
            free(keys);
            rc = fail(err);
        } else {
            printf("%-28s %-20s %-16s %-20s %s\n", "KEY-ID", "ORG", "KEY", "CREATED", "STATUS");
            for (int i = 0; i < n; i++) {
                const char *oname = keys[i].org_id;
                for (int k = 0; k < norgs; k++)
                    if (!strcmp(orgs[k].id, keys[i].org_id)) oname = orgs[k].name;
                char when[32];
                time_fmt_local(keys[i].created_at, when);
                printf("%-28s %-20s %-16s %-20s %s\n", keys[i].id, oname, keys[i].hint, when,
                       keys[i].revoked_at ? "revoked" : "active");
            }
            free(keys);
            free(orgs);
        }
    } else if (!strcmp(op, "revoke")) {
        if (!key_id) rc = fail("revoke needs a KEY-ID (see tunery keys list)");
        else if (store_key_revoke(s, key_id, err)) rc = fail(err);
        else fprintf(stderr, "revoked %s\n", key_id);
    } else {
        fprintf(stderr, "tunery keys: unknown operation '%s' (create, list or revoke)\n", op);
        rc = 2;
    }
    store_close(s);
    return rc;
}
