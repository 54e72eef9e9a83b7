/* server_fixture.h: where the socketless server tests start: a fresh data
 * directory under /tmp named for the test, made this process's TUNERY_DATA,
 * and a zeroed struct server pointing at it (each test adds its own store
 * contents, models and options). Include after server/server.h. */
#ifndef TUNERY_TEST_SERVER_FIXTURE_H
#define TUNERY_TEST_SERVER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fixture_data_dir(char *tmp, size_t cap, const char *name, struct server *srv)
{
    snprintf(tmp, cap, "/tmp/tunery-test-%s-XXXXXX", name);
    if (!mkdtemp(tmp)) { perror("mkdtemp"); exit(1); }
    setenv("TUNERY_DATA", tmp, 1);
    memset(srv, 0, sizeof *srv);
    snprintf(srv->data_dir, sizeof srv->data_dir, "%s", tmp);
}

#endif
