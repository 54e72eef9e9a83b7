/* files.c: `tunery api files.create|get|delete|list`, the /v1/files calls of
 * the legacy CLI, each printing the server's object as print(resp) did. */
#include "cli/cli.h"
#include <string.h>

static int files_create(const cli_opts_t *o, int argc, char **argv)
{
    cli_flag_t f[] = {
        CLI_FLAG("-f", "--file", CLI_STR, 1, "File to upload"),
        CLI_FLAG("-p", "--purpose", CLI_STR, 1, "Why are you uploading this file? (fine-tune, fine-tune-results, ...)"),
    };
    int help, rc = cli_flags_parse("files.create", "Upload a file (multipart POST /v1/files) and print the file object.",
                                   f, 2, argc, argv, &help);
    if (rc || help) return rc;
    if (!fs_exists(f[0].str)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "[Errno 2] No such file or directory: '%s'", f[0].str);
        return cli_print_error(msg);
    }
    char err[CORE_ERR_LEN];
    cli_resp_t r;
    /* The part's filename is the path as typed, as the original sent it. */
    if (cli_http_upload(o, f[0].str, f[0].str, NULL, 0, f[1].str, &r, err)) {
        cli_resp_free(&r);
        return cli_print_error(err);
    }
    if (r.status < 200 || r.status >= 300) { rc = cli_print_api_error(&r); cli_resp_free(&r); return rc; }
    json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
    cli_resp_free(&r);
    if (!j) return cli_print_error("Invalid response object from API: the upload answer is not JSON");
    cli_json_print(j);
    json_decref(j);
    return 0;
}

static int files_by_id(const cli_opts_t *o, const char *op, const char *method, int argc, char **argv)
{
    cli_flag_t f[] = {CLI_FLAG("-i", "--id", CLI_STR, 1, "The files ID")};
    char cmd[64];
    snprintf(cmd, sizeof cmd, "files.%s", op);
    int help, rc = cli_flags_parse(cmd, !strcmp(method, "GET") ? "Print a file object (GET /v1/files/ID)."
                                                               : "Delete a file (DELETE /v1/files/ID).",
                                   f, 1, argc, argv, &help);
    if (rc || help) return rc;
    char q[1024], path[1100];
    cli_quote_plus(f[0].str, q, sizeof q);
    snprintf(path, sizeof path, "/files/%s", q);
    return cli_call_print(o, method, path, NULL);
}

int cli_files(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    if (!strcmp(op, "create")) return files_create(o, argc, argv);
    if (!strcmp(op, "get")) return files_by_id(o, op, "GET", argc, argv);
    if (!strcmp(op, "delete")) return files_by_id(o, op, "DELETE", argc, argv);
    if (!strcmp(op, "list")) {
        int help, rc = cli_flags_parse("files.list", "List your files (GET /v1/files).", NULL, 0, argc, argv, &help);
        if (rc || help) return rc;
        return cli_call_print(o, "GET", "/files", NULL);
    }
    fprintf(stderr, "tunery api: unknown command 'files.%s'; the files commands are create, get, delete, list\n", op);
    return 2;
}
