/* models.c: `tunery api models.list|get|delete`. Model ids of fine-tuned
 * models hold ':' and are quote_plus'ed into the path as the original did. */
#include "cli/cli.h"
#include <string.h>

int cli_models(const cli_opts_t *o, const char *op, int argc, char **argv)
{
    int help, rc;
    if (!strcmp(op, "list")) {
        rc = cli_flags_parse("models.list", "List the models you can use (GET /v1/models).", NULL, 0, argc, argv, &help);
        if (rc || help) return rc;
        return cli_call_print(o, "GET", "/models", NULL);
    }
    int get = !strcmp(op, "get");
    if (!get && strcmp(op, "delete")) {
        fprintf(stderr, "tunery api: unknown command 'models.%s'; the models commands are list, get, delete\n", op);
        return 2;
    }
    cli_flag_t f[] = {CLI_FLAG("-i", "--id", CLI_STR, 1, "The model ID")};
    rc = cli_flags_parse(get ? "models.get" : "models.delete",
                         get ? "Print a model object (GET /v1/models/ID)."
                             : "Delete a fine-tuned model (DELETE /v1/models/ID).",
                         f, 1, argc, argv, &help);
    if (rc || help) return rc;
    char q[1024], path[1100];
    cli_quote_plus(f[0].str, q, sizeof q);
    snprintf(path, sizeof path, "/models/%s", q);
    return cli_call_print(o, get ? "GET" : "DELETE", path, NULL);
}
