/* Unit tests for `tunery tools fine_tunes.prepare_data`: one crafted dataset
 * per check (committed under tests/cli/fixtures/, or built here when it has
 * to be large), every input format, interactive and -q runs, the written
 * files and the train/valid split. Each run works on a copy in a temp dir,
 * because the tool writes its output next to its input. */
#include "cli/cli.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

typedef struct { int rc; char *out, *err; } run_t;

static void put_file(const char *name, const char *data, size_t len)
{
    char p[256], err[CORE_ERR_LEN];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK(fs_write_atomic(p, data, len, err) == 0);
}

static void copy_fixture(const char *name)
{
    char p[256], err[CORE_ERR_LEN], *data;
    size_t len;
    snprintf(p, sizeof p, "tests/cli/fixtures/%s", name);
    CHECKF(fs_read_all(p, &data, &len, err) == 0, "%s", err);
    put_file(name, data ? data : "", data ? len : 0);
    free(data);
}

/* Run the tool on dir/name with the answers typed on stdin (NULL: -q). */
static run_t run(const char *name, const char *answers)
{
    run_t r = {0};
    size_t on = 0, en = 0;
    FILE *out = open_memstream(&r.out, &on), *err = open_memstream(&r.err, &en);
    FILE *in = fmemopen((void *)(answers ? answers : ""), answers ? strlen(answers) + 1 : 1, "r");
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(dir) == 0);
    r.rc = pd_run(name, answers == NULL, in, out, err);
    CHECK(chdir(cwd) == 0);
    fclose(in);
    fclose(out);
    fclose(err);
    return r;
}

static void run_free(run_t *r) { free(r->out); free(r->err); }

static char *read_out(const char *name)
{
    char p[256], err[CORE_ERR_LEN], *data = NULL;
    size_t len;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (fs_read_all(p, &data, &len, err)) return NULL;
    return data;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

#define HAS(hay, needle) CHECKF(strstr((hay), (needle)) != NULL, "missing: %s", (needle))
#define HASNT(hay, needle) CHECKF(strstr((hay), (needle)) == NULL, "unexpected: %s", (needle))

static void test_clean_file_needs_nothing(void)
{
    copy_fixture("clean.jsonl");
    run_t r = run("clean.jsonl", NULL);
    CHECK_EQ_INT(r.rc, 0);
    HAS(r.out, "Analyzing...\n\n- Your file contains 3 prompt-completion pairs. In general, we recommend having at least a few hundred examples.");
    HAS(r.out, "- All prompts end with suffix ` ->`");
    HAS(r.out, "- All completions end with suffix `\\n`");
    HAS(r.out, "\n\nNo remediations found.\n");
    HAS(r.out, "> tunery api fine_tunes.create -t \"clean.jsonl\"\n");
    HAS(r.out, "Make sure to include `stop=[\"\\n\"]`");
    HAS(r.out, "it'll approximately take 2.48 minutes to train a `curie` model");   /* (16*3+128)*0.0515+140 s */
    CHECK(read_out("clean_prepared.jsonl") == NULL);
    run_free(&r);
}

static void test_num_examples_threshold(void)
{
    buf_t b = {0};
    for (int i = 0; i < 100; i++) buf_printf(&b, "{\"prompt\": \"q%d ->\", \"completion\": \" a%d\\n\"}\n", i, i);
    put_file("hundred.jsonl", b.data, b.len);
    run_t r = run("hundred.jsonl", NULL);
    HAS(r.out, "- Your file contains 100 prompt-completion pairs\n");
    HASNT(r.out, "few hundred");
    run_free(&r);
    buf_free(&b);
}

static void test_upper_case_column(void)
{
    copy_fixture("upper_column.csv");
    run_t r = run("upper_column.csv", NULL);
    CHECK_EQ_INT(r.rc, 0);
    HAS(r.out, "- Based on your file extension, your file is formatted as a CSV file");
    HAS(r.out, "- The `prompt` column/key should be lowercase");
    HAS(r.out, "- [Necessary] Your format `CSV` will be converted to `JSONL`\n");
    HAS(r.out, "- [Necessary] Lower case column name to `prompt`\n");
    char *o = read_out("upper_column_prepared.jsonl");
    CHECK(o != NULL);
    if (o) HAS(o, "{\"prompt\":\"what is 1+1 ->\",\"completion\":\" two\\n\"}\n");
    free(o);
    run_free(&r);
}

static void test_missing_column_aborts(void)
{
    copy_fixture("missing_column.jsonl");
    run_t r = run("missing_column.jsonl", NULL);
    CHECK_EQ_INT(r.rc, 1);
    CHECK_EQ_STR(r.err, "\n\nERROR in necessary_column validator: `completion` column/key is missing. Please make sure "
                        "you name your columns/keys appropriately, then retry\n\nAborting...");
    run_free(&r);
}

static void test_additional_columns(void)
{
    copy_fixture("extra_columns.jsonl");
    run_t r = run("extra_columns.jsonl", NULL);
    HAS(r.out, "Additional columns/keys present are: ['id', 'prompt_old']\n  WARNING: Some of the additional columns/keys contain `id`");
    HAS(r.out, "- [Necessary] Remove additional columns/keys: ['id', 'prompt_old']\n");
    char *o = read_out("extra_columns_prepared.jsonl");
    CHECK(o && !strstr(o, "prompt_old") && !strstr(o, "\"id\""));
    free(o);
    run_free(&r);
}

static void test_empty_completions(void)
{
    copy_fixture("empty_completions.jsonl");
    run_t r = run("empty_completions.jsonl", NULL);
    HAS(r.out, "- `completion` column/key should not contain empty strings. These are rows: [1, 3]");
    HAS(r.out, "- [Necessary] Remove 2 rows with empty completions\n");
    char *o = read_out("empty_completions_prepared.jsonl");
    CHECK_EQ_INT(count_lines(o), 3);
    free(o);
    run_free(&r);
}

static void test_duplicates_interactive(void)
{
    copy_fixture("duplicates.jsonl");
    /* decline the removal, accept writing */
    run_t r = run("duplicates.jsonl", "n\n\n");
    HAS(r.out, "- There are 2 duplicated prompt-completion sets. These are rows: [2, 4]");
    HAS(r.out, "- [Recommended] Remove 2 duplicate rows [Y/n]: ");
    HASNT(r.out, "[Y/n]: Y");
    /* nothing accepted, nothing necessary: no file, the plain suggestion */
    HAS(r.out, "You can use your file for fine-tuning:");
    CHECK(read_out("duplicates_prepared.jsonl") == NULL);
    run_free(&r);
    r = run("duplicates.jsonl", "y\n");
    char *o = read_out("duplicates_prepared.jsonl");
    CHECK_EQ_INT(count_lines(o), 3);
    free(o);
    run_free(&r);
}

static void test_decline_writing(void)
{
    copy_fixture("no_leading_space.jsonl");
    run_t r = run("no_leading_space.jsonl", "\nn\n");
    HAS(r.out, "- The completion should start with a whitespace character (` `).");
    HAS(r.out, "Your data will be written to a new JSONL file. Proceed [Y/n]: ");
    HAS(r.out, "Aborting... did not write the file\n");
    CHECK(read_out("no_leading_space_prepared.jsonl") == NULL);
    run_free(&r);
    r = run("no_leading_space.jsonl", NULL);
    char *o = read_out("no_leading_space_prepared.jsonl");
    if (o) HAS(o, "{\"prompt\":\"c ->\",\"completion\":\" three\\n\"}");
    if (o) HAS(o, "{\"prompt\":\"a ->\",\"completion\":\" one\\n\"}");
    CHECK(o != NULL);
    free(o);
    run_free(&r);
}

static void test_long_examples(void)
{
    buf_t b = {0};
    buf_appends(&b, "{\"prompt\": \"a ->\", \"completion\": \" short\\n\"}\n{\"prompt\": \"");
    for (int i = 0; i < 10000; i++) buf_appends(&b, "\xc3\xa9");   /* 10000 characters, 20000 bytes */
    buf_appends(&b, " ->\", \"completion\": \" long\\n\"}\n{\"prompt\": \"");
    for (int i = 0; i < 9994; i++) buf_appends(&b, "x");          /* 9994 + 3 + 3 = 10000: not long */
    buf_appends(&b, " ->\", \"completion\": \" b\\n\"}\n");
    put_file("long.jsonl", b.data, b.len);
    run_t r = run("long.jsonl", NULL);
    HAS(r.out, "- There are 1 examples that are very long. These are rows: [1]\nFor conditional generation, and for "
               "classification the examples shouldn't be longer than 2048 tokens.");
    HAS(r.out, "- [Recommended] Remove 1 long examples [Y/n]: Y");
    char *o = read_out("long_prepared.jsonl");
    CHECK_EQ_INT(count_lines(o), 2);
    free(o);
    run_free(&r);
    buf_free(&b);
}

static void test_upper_case_text(void)
{
    copy_fixture("upper_text.jsonl");
    run_t r = run("upper_text.jsonl", NULL);
    HAS(r.out, "- More than a third of your `prompt` column/key is uppercase. Uppercase prompts tends to perform worse");
    HAS(r.out, "- More than a third of your `completion` column/key is uppercase.");
    HAS(r.out, "- [Recommended] Lowercase all your data in column/key `prompt` [Y/n]: Y");
    char *o = read_out("upper_text_prepared.jsonl");
    if (o) HAS(o, "{\"prompt\":\"what is this ->\",\"completion\":\" a cat\\n\"}");
    CHECK(o != NULL);
    free(o);
    run_free(&r);
}

/* The separator suggestion walks " ->", \n\n###\n\n, ... past every one the
 * prompts already contain, and falls back to \n\n### =>\n\n. */
static void test_prompt_separator_fallbacks(void)
{
    static const char *contains[] = {"", "\\n", "\\n\\n###\\n\\n", "\\n\\n===\\n\\n", "\\n\\n---\\n\\n", "\\n\\n===>\\n\\n", "\\n\\n--->\\n\\n"};
    static const char *expect[] = {" ->", "\\n\\n###\\n\\n", "\\n\\n===\\n\\n", "\\n\\n---\\n\\n", "\\n\\n===>\\n\\n",
                                   "\\n\\n--->\\n\\n", "\\n\\n### =>\\n\\n"};
    for (int k = 0; k < 7; k++) {
        buf_t b = {0};
        /* row 0 carries every separator tried so far */
        buf_appends(&b, "{\"prompt\": \"first");
        for (int j = 1; j <= k; j++) buf_appends(&b, contains[j]);
        buf_appends(&b, " one\", \"completion\": \" x\\n\"}\n{\"prompt\": \"second two!\", \"completion\": \" y\\n\"}\n");
        put_file("sep.jsonl", b.data, b.len);
        run_t r = run("sep.jsonl", NULL);
        char want[128];
        snprintf(want, sizeof want, "- [Recommended] Add a suffix separator `%s` to all prompts [Y/n]: Y", expect[k]);
        HAS(r.out, want);
        HAS(r.out, "- Your data does not contain a common separator at the end of your prompts.");
        run_free(&r);
        buf_free(&b);
        char p[128];
        snprintf(p, sizeof p, "%s/sep_prepared.jsonl", dir);
        unlink(p);
    }
}

static void test_long_and_repeated_prompt_suffix(void)
{
    const char *d = "{\"prompt\": \"x END OF PROMPT >>> a END OF PROMPT >>>\", \"completion\": \" 1\\n\"}\n"
                    "{\"prompt\": \"y END OF PROMPT >>>\", \"completion\": \" 2\\n\"}\n";
    put_file("longsfx.jsonl", d, strlen(d));
    run_t r = run("longsfx.jsonl", NULL);
    HAS(r.out, "- All prompts end with suffix ` END OF PROMPT >>>`. This suffix seems very long. Consider replacing with a shorter suffix, such as ` ->`");
    HAS(r.out, "\n  WARNING: Some of your prompts contain the suffix ` END OF PROMPT >>>` more than once.");
    run_free(&r);
}

static void test_prompt_prefix(void)
{
    copy_fixture("prompt_prefix.jsonl");
    run_t r = run("prompt_prefix.jsonl", NULL);
    HAS(r.out, "- All prompts start with prefix `Classify the sentiment of this review: `. Fine-tuning doesn't require the instruction");
    HAS(r.out, "- [Recommended] Remove prefix `Classify the sentiment of this review: ` from all prompts [Y/n]: Y");
    char *o = read_out("prompt_prefix_prepared.jsonl");
    if (o) HAS(o, "{\"prompt\":\"good ->\",\"completion\":\" pos\\n\"}");
    CHECK(o != NULL);
    free(o);
    run_free(&r);
}

static void test_completion_prefix(void)
{
    copy_fixture("completion_prefix.jsonl");
    run_t r = run("completion_prefix.jsonl", NULL);
    HAS(r.out, "- All completions start with prefix ` Answer: `. Most of the time you should only add the output data into the completion, without any prefix");
    char *o = read_out("completion_prefix_prepared.jsonl");
    if (o) HAS(o, "{\"prompt\":\"b ->\",\"completion\":\" two\\n\"}");   /* one leading space kept */
    CHECK(o != NULL);
    free(o);
    run_free(&r);
}

static void test_completion_ending_fallbacks(void)
{
    copy_fixture("no_completion_ending.jsonl");
    run_t r = run("no_completion_ending.jsonl", NULL);
    HAS(r.out, "- Your data does not contain a common ending at the end of your completions.");
    HAS(r.out, "- [Recommended] Add a suffix ending `\\n` to all completions [Y/n]: Y");
    HAS(r.out, "Make sure to include `stop=[\"\\n\"]`");
    run_free(&r);
    /* completions holding "\n" and "." push the suggestion to " END" */
    const char *d = "{\"prompt\": \"a ->\", \"completion\": \" one.\\ntwo\"}\n{\"prompt\": \"b ->\", \"completion\": \" three\"}\n"
                    "{\"prompt\": \"c ->\", \"completion\": \" four\"}\n";
    put_file("ending.jsonl", d, strlen(d));
    r = run("ending.jsonl", NULL);
    HAS(r.out, "- [Recommended] Add a suffix ending ` END` to all completions [Y/n]: Y");
    run_free(&r);
}

static void test_identical_rows_abort(void)
{
    copy_fixture("identical_prompts.jsonl");
    run_t r = run("identical_prompts.jsonl", NULL);
    CHECK_EQ_INT(r.rc, 1);
    HAS(r.err, "ERROR in common_suffix validator: All prompts are identical: `same ->`\nConsider leaving the prompts blank");
    run_free(&r);
    copy_fixture("identical_completions.jsonl");
    r = run("identical_completions.jsonl", NULL);
    CHECK_EQ_INT(r.rc, 1);
    HAS(r.err, "ERROR in common_suffix validator: All completions are identical: ` same`\nEnsure completions are different, otherwise the model will just repeat ` same`");
    run_free(&r);
}

/* 10 rows, 2 classes: classification, split 8/2 with numpy's RandomState(42)
 * permutation [8 1 5 0 7 2 9 4 3 6] (pandas' df.sample(n=8, random_state=42)). */
static void test_classification_split(void)
{
    buf_t b = {0};
    for (int i = 0; i < 10; i++)
        buf_printf(&b, "{\"prompt\": \"text %d ->\", \"completion\": \" %s\"}\n", i, i % 3 ? "yes" : "no");
    put_file("cls.jsonl", b.data, b.len);
    run_t r = run("cls.jsonl", NULL);
    HAS(r.out, "- Based on your data it seems like you're trying to fine-tune a model for classification\n");
    HAS(r.out, "- [Recommended] Would you like to split into training and validation set? [Y/n]: Y");
    HAS(r.out, "Wrote modified files to `cls_prepared_train.jsonl` and `cls_prepared_valid.jsonl`");
    HAS(r.out, "> tunery api fine_tunes.create -t \"cls_prepared_train.jsonl\" -v \"cls_prepared_valid.jsonl\" "
               "--compute_classification_metrics --classification_positive_class \" yes\"\n");
    HAS(r.out, "it'll approximately take 2.57 minutes");   /* 10 * 1.44 + 140 s */
    char *tr = read_out("cls_prepared_train.jsonl"), *va = read_out("cls_prepared_valid.jsonl");
    CHECK_EQ_INT(count_lines(tr), 8);
    CHECK_EQ_INT(count_lines(va), 2);
    const char *head = "{\"prompt\":\"text 8 ->\",\"completion\":\" yes\"}\n{\"prompt\":\"text 1 ->\"";
    if (tr) CHECK(!strncmp(tr, head, strlen(head)));
    if (va) CHECK_EQ_STR(va, "{\"prompt\":\"text 3 ->\",\"completion\":\" no\"}\n{\"prompt\":\"text 6 ->\",\"completion\":\" no\"}\n");
    free(tr);
    free(va);
    run_free(&r);
    /* a second run does not overwrite: " (1)" names */
    r = run("cls.jsonl", NULL);
    HAS(r.out, "`cls_prepared_train (1).jsonl` and `cls_prepared_valid (1).jsonl`");
    run_free(&r);
    buf_free(&b);
}

/* Past 5000 rows the validation set is capped at 1000: train = n - 1000. */
static void test_split_sizes_large(void)
{
    buf_t b = {0};
    for (int i = 0; i < 6000; i++) buf_printf(&b, "{\"prompt\": \"r%d ->\", \"completion\": \" %s\"}\n", i, i % 4 ? "a" : "b");
    put_file("six.jsonl", b.data, b.len);
    run_t r = run("six.jsonl", NULL);
    HAS(r.out, "--classification_positive_class \" a\"");
    char *tr = read_out("six_prepared_train.jsonl"), *va = read_out("six_prepared_valid.jsonl");
    CHECK_EQ_INT(count_lines(tr), 5000);
    CHECK_EQ_INT(count_lines(va), 1000);
    free(tr);
    free(va);
    run_free(&r);
    buf_free(&b);
}

static void test_multiclass_flags(void)
{
    buf_t b = {0};
    for (int i = 0; i < 12; i++) buf_printf(&b, "{\"prompt\": \"t%d ->\", \"completion\": \" c%d\"}\n", i, i % 3);
    put_file("multi.jsonl", b.data, b.len);
    run_t r = run("multi.jsonl", NULL);
    HAS(r.out, "--compute_classification_metrics --classification_n_classes 3\n");
    run_free(&r);
    buf_free(&b);
}

static void test_formats(void)
{
    copy_fixture("tabs.tsv");
    run_t r = run("tabs.tsv", NULL);
    HAS(r.out, "your file is formatted as a TSV file");
    char *o = read_out("tabs_prepared.jsonl");
    if (o) HAS(o, "{\"prompt\":\"quoted\\tcell ->\",\"completion\":\" bye\\n\"}");
    CHECK(o != NULL);
    free(o);
    run_free(&r);

    copy_fixture("lines.txt");
    r = run("lines.txt", NULL);
    HAS(r.out, "- Based on your file extension, you provided a text file");
    HAS(r.out, "- [Necessary] Your format `TXT` will be converted to `JSONL`");
    HAS(r.out, "These are rows: [2]");   /* the empty line after the last newline */
    run_free(&r);

    copy_fixture("records.json");
    r = run("records.json", NULL);
    HAS(r.out, "- Your file contains 2 prompt-completion pairs");
    HAS(r.out, "No remediations found.");
    run_free(&r);

    copy_fixture("lines_in.json");
    r = run("lines_in.json", NULL);
    HAS(r.out, "- Your JSON file appears to be in a JSONL format. Your file will be converted to JSONL format");
    run_free(&r);

    copy_fixture("columns_in.jsonl");
    r = run("columns_in.jsonl", NULL);
    HAS(r.out, "- Your JSONL file appears to be in a JSON format. Your file will be converted to JSONL format");
    HAS(r.out, "- Your file contains 2 prompt-completion pairs");
    run_free(&r);
}

static void test_read_errors(void)
{
    copy_fixture("sheet.xlsx");
    run_t r = run("sheet.xlsx", NULL);
    CHECK_EQ_INT(r.rc, 1);
    HAS(r.err, "ERROR in read_any_format validator: Your file `sheet.xlsx` is an Excel workbook");
    HAS(r.err, "CSV");
    run_free(&r);
    copy_fixture("data.parquet");
    r = run("data.parquet", NULL);
    HAS(r.err, "Your file must have one of the following extensions: .CSV, .TSV, .XLSX, .TXT, .JSON or .JSONL Your file "
               "`data.parquet` ends with the extension `.parquet` which is not supported.");
    run_free(&r);
    copy_fixture("broken.jsonl");
    r = run("broken.jsonl", NULL);
    HAS(r.err, "Your file `broken.jsonl` does not appear to be in valid JSONL format. Please ensure your file is formatted as a valid JSONL file.");
    run_free(&r);
    r = run("nope.jsonl", NULL);
    CHECK_EQ_STR(r.err, "\n\nERROR in read_any_format validator: File nope.jsonl does not exist.\n\nAborting...");
    CHECK_EQ_INT(r.rc, 1);
    run_free(&r);
}

static void test_json_line_parser(void)
{
    pd_table_t t = {0};
    char *k[8], *v[8];
    const char *l = "{\"prompt\": \"a\\u00e9\\ud83d\\ude00\\\"\\\\/\", \"completion\": 5, \"x\": null}";
    CHECK_EQ_INT(pd_parse_json_line(&t, l, strlen(l), k, v, 8), 3);
    CHECK_EQ_STR(k[0], "prompt");
    CHECK_EQ_STR(v[0], "a\xc3\xa9\xf0\x9f\x98\x80\"\\/");
    CHECK_EQ_STR(v[1], "5");
    CHECK_EQ_STR(v[2], "");
    CHECK(pd_parse_json_line(&t, "[1,2]", 5, k, v, 8) < 0);
    CHECK(pd_parse_json_line(&t, "{\"a\": \"b\"} x", 12, k, v, 8) < 0);
    CHECK(pd_parse_json_line(&t, "{\"a\": \"b", 8, k, v, 8) < 0);
    pd_table_free(&t);
}

/* Reference: numpy 1.24.2, np.random.RandomState(42).permutation(n). */
static void test_numpy_permutation(void)
{
    static const size_t p10[] = {8, 1, 5, 0, 7, 2, 9, 4, 3, 6};
    static const size_t p25[] = {8, 16, 0, 23, 11, 9, 13, 1, 22, 5, 2, 12, 15, 3, 4, 20, 17, 21, 18, 24, 7, 10, 14, 19, 6};
    static const size_t p100_head[] = {83, 53, 70, 45, 44, 39, 22, 80, 10, 0, 18, 30, 73, 33, 90, 4};
    size_t out[100];
    pd_permutation(42, 10, out);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(out[i], p10[i]);
    pd_permutation(42, 25, out);
    for (int i = 0; i < 25; i++) CHECK_EQ_INT(out[i], p25[i]);
    pd_permutation(42, 100, out);
    for (int i = 0; i < 16; i++) CHECK_EQ_INT(out[i], p100_head[i]);
    CHECK_EQ_INT(out[99], 51);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tunery-pd-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(test_clean_file_needs_nothing);
    RUN(test_num_examples_threshold);
    RUN(test_upper_case_column);
    RUN(test_missing_column_aborts);
    RUN(test_additional_columns);
    RUN(test_empty_completions);
    RUN(test_duplicates_interactive);
    RUN(test_decline_writing);
    RUN(test_long_examples);
    RUN(test_upper_case_text);
    RUN(test_prompt_separator_fallbacks);
    RUN(test_long_and_repeated_prompt_suffix);
    RUN(test_prompt_prefix);
    RUN(test_completion_prefix);
    RUN(test_completion_ending_fallbacks);
    RUN(test_identical_rows_abort);
    RUN(test_classification_split);
    RUN(test_split_sizes_large);
    RUN(test_multiclass_flags);
    RUN(test_formats);
    RUN(test_read_errors);
    RUN(test_json_line_parser);
    RUN(test_numpy_permutation);
    char err[CORE_ERR_LEN];
    fs_rm_rf(dir, err);
    return test_summary();
}
