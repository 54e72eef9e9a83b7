/* store_keys.c: organizations and API keys. A key is shown once, at
 * creation; the store keeps only its sha256, so a leaked database does not
 * leak working keys. Authentication is one indexed lookup of that hash. */
#include "store/store_int.h"
#include <stdlib.h>
#include <string.h>

#define ORG_COLS "id, name, slug, created_at"

static void org_row(sqlite3_stmt *st, store_org_t *o)
{
    store_col_str(st, 0, o->id, sizeof o->id);
    store_col_str(st, 1, o->name, sizeof o->name);
    store_col_str(st, 2, o->slug, sizeof o->slug);
    o->created_at = sqlite3_column_int64(st, 3);
}

int store_org_create(store_t *s, const char *name, store_org_t *out, char *err)
{
    if (!name || !*name) return core_errf(err, "an organization needs a name");
    if (strlen(name) >= STORE_NAME_LEN) return core_errf(err, "organization name is too long (max %d bytes)", STORE_NAME_LEN - 1);
    store_org_t o;
    memset(&o, 0, sizeof o);
    id_random(o.id, "org-", 24);
    store_copy(o.name, sizeof o.name, name);
    store_slugify(name, o.slug, sizeof o.slug);
    if (!o.slug[0]) return core_errf(err, "organization name '%s' needs at least one letter or digit", name);
    o.created_at = time_unix();
    sqlite3_stmt *st;
    if (store_prep(s, "INSERT INTO orgs(" ORG_COLS ") VALUES(?,?,?,?)", &st, err)) return -1;
    store_bind_str(st, 1, o.id);
    store_bind_str(st, 2, o.name);
    store_bind_str(st, 3, o.slug);
    sqlite3_bind_int64(st, 4, o.created_at);
    int rc = sqlite3_step(st);
    store_finish(s, st);
    if (rc == SQLITE_CONSTRAINT) {
        core_errf(err, "an organization called '%s' already exists", name);
        return STORE_ECONFLICT;
    }
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "creating an organization");
    if (out) *out = o;
    return 0;
}

int store_org_get(store_t *s, const char *id_or_name, store_org_t *out, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " ORG_COLS " FROM orgs WHERE id=?1 OR name=?1", &st, err)) return -1;
    store_bind_str(st, 1, id_or_name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) org_row(st, out);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "reading an organization");
    core_errf(err, "no organization '%s'", id_or_name);
    return STORE_ENOTFOUND;
}

int store_org_list(store_t *s, store_org_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " ORG_COLS " FROM orgs ORDER BY created_at, id", &st, err)) return -1;
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        org_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list organizations: %s", sqlite3_errstr(rc));
    }
    return 0;
}

/* ------------------------------------------------------------------ keys */

#define KEY_COLS "id, org_id, hint, created_at, revoked_at"

static void key_row(sqlite3_stmt *st, store_key_t *k)
{
    store_col_str(st, 0, k->id, sizeof k->id);
    store_col_str(st, 1, k->org_id, sizeof k->org_id);
    store_col_str(st, 2, k->hint, sizeof k->hint);
    k->created_at = sqlite3_column_int64(st, 3);
    k->revoked_at = sqlite3_column_int64(st, 4);
}

int store_key_create(store_t *s, const char *org_id, char key_out[STORE_KEY_LEN],
                     store_key_t *out, char *err)
{
    store_org_t org;
    int rc = store_org_get(s, org_id, &org, err);
    if (rc) return rc;
    store_key_t k;
    memset(&k, 0, sizeof k);
    char key[STORE_KEY_LEN], hash[65];
    id_random(key, "sk-", 48);
    sha256_hex(key, strlen(key), hash);
    id_random(k.id, "key-", 24);
    store_copy(k.org_id, sizeof k.org_id, org.id);
    snprintf(k.hint, sizeof k.hint, "sk-%.2s...%s", key + 3, key + strlen(key) - 3);
    k.created_at = time_unix();
    sqlite3_stmt *st;
    if (store_prep(s, "INSERT INTO api_keys(id, org_id, hash, hint, created_at) VALUES(?,?,?,?,?)", &st, err))
        return -1;
    store_bind_str(st, 1, k.id);
    store_bind_str(st, 2, k.org_id);
    store_bind_str(st, 3, hash);
    store_bind_str(st, 4, k.hint);
    sqlite3_bind_int64(st, 5, k.created_at);
    if (store_done(s, st, err)) return -1;
    memcpy(key_out, key, STORE_KEY_LEN);
    if (out) *out = k;
    return 0;
}

int store_key_auth(store_t *s, const char *key, store_org_t *org, char *err)
{
    if (!key || strncmp(key, "sk-", 3) || strlen(key) >= STORE_KEY_LEN + 16) {
        core_errf(err, "Incorrect API key provided");
        return STORE_ENOTFOUND;
    }
    char hash[65];
    sha256_hex(key, strlen(key), hash);
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT o.id, o.name, o.slug, o.created_at FROM api_keys k JOIN orgs o ON o.id = k.org_id "
                      "WHERE k.hash=? AND k.revoked_at=0", &st, err))
        return -1;
    store_bind_str(st, 1, hash);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) org_row(st, org);
    store_finish(s, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return store_sqlerr(s, err, "checking an API key");
    core_errf(err, "Incorrect API key provided");
    return STORE_ENOTFOUND;
}

int store_key_list(store_t *s, const char *org_id, store_key_t **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (store_prep(s, "SELECT " KEY_COLS " FROM api_keys WHERE ?1 IS NULL OR org_id=?1 ORDER BY created_at, rowid",
                   &st, err))
        return -1;
    store_bind_nullable(st, 1, org_id);
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (store_grow((void **)out, &cap, *n, sizeof **out)) { rc = SQLITE_NOMEM; break; }
        key_row(st, &(*out)[(*n)++]);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return core_errf(err, "cannot list keys: %s", sqlite3_errstr(rc));
    }
    return 0;
}

int store_key_revoke(store_t *s, const char *key_id, char *err)
{
    sqlite3_stmt *st;
    if (store_prep(s, "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at=0", &st, err)) return -1;
    sqlite3_bind_int64(st, 1, time_unix());
    store_bind_str(st, 2, key_id);
    if (store_done(s, st, err)) return -1;
    if (sqlite3_changes(store_db(s)) == 0) {
        core_errf(err, "no active key '%s' (see `tunery keys list`)", key_id);
        return STORE_ENOTFOUND;
    }
    return 0;
}
