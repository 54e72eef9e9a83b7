/* tok: byte-level BPE tokenizers. The default is OpenAI's GPT-2/GPT-3
 * encoding (r50k_base, 50257 tokens, <|endoftext|> = 50256), shipped in data/
 * in tunery's own compact format; Hugging Face tokenizer.json files of BPE
 * models load too (the pre-tokenizer regex is taken from the file).
 *
 * Any byte string round-trips: decode(encode(x)) == x, invalid UTF-8 included
 * (byte-level BPE has a token for every byte). The pre-tokenizer reads each
 * byte that does not start a well-formed UTF-8 sequence as one character of
 * the class "other" (as U+FFFD would be), and BPE then encodes its byte as
 * is: nothing is replaced or dropped. tiktoken never sees such bytes (its
 * callers pass strings), so there is no reference to differ from.
 *
 * tok depends only on core/. A loaded tokenizer is immutable and safe to use
 * from many threads at once.
 */
#ifndef TUNERY_TOK_H
#define TUNERY_TOK_H

#include "core/core.h"
#include <stddef.h>

typedef struct tok tok_t;

/* Token ids, grown by the encoder. Zero-initialise; free with tok_ids_free. */
typedef struct {
    int *ids;
    size_t len, cap;
} tok_ids_t;
void tok_ids_free(tok_ids_t *v);

/* The shipped r50k tokenizer, loaded on first use and shared for the life of
 * the process (never free it). NULL and err filled if data/ is missing. */
const tok_t *tok_r50k(char *err);
/* A model directory's tokenizer: tokenizer.json, else vocab.json + merges.txt,
 * else r50k. The caller frees it with tok_free (a no-op for the shared r50k). */
int tok_load_dir(tok_t **out, const char *model_dir, char *err);
/* A Hugging Face tokenizer.json (BPE). */
int tok_load_hf(tok_t **out, const char *path, char *err);
/* Write vocab.json + merges.txt + tokenizer.json into dir, so transformers'
 * GPT2TokenizerFast / AutoTokenizer loads the model directory. */
int tok_save_dir(const tok_t *t, const char *dir, char *err);
void tok_free(tok_t *t);

int tok_vocab_size(const tok_t *t);
int tok_eot(const tok_t *t);  /* <|endoftext|> id, 50256 for r50k */

/* Append the ids of text[0..len) to out. allow_special: recognise special
 * tokens such as <|endoftext|> written in the text; otherwise they are plain
 * text. Returns 0, or -1 on out-of-memory. */
int tok_encode(const tok_t *t, const char *text, size_t len, int allow_special, tok_ids_t *out);
/* Number of tokens of text, without keeping the ids (bounded memory). */
size_t tok_count(const tok_t *t, const char *text, size_t len);
/* Streaming, for files and pipes read in blocks: appends to out (NULL: only
 * count) the ids of the longest prefix of text[0..len) whose tokens cannot
 * change whatever text follows, adds their number to *count (if not NULL),
 * and sets *used to that prefix's length; with final set, of all of it.
 * Keep text[*used..len), append the next block, call again; the ids are
 * those tok_encode gives for the whole text. A tokenizer whose
 * add_prefix_space is set gets no prefix space here. Returns 0 or -1 (OOM). */
int tok_encode_stream(const tok_t *t, const char *text, size_t len, int allow_special, int final,
                      tok_ids_t *out, size_t *count, size_t *used);
/* The tokens of a whole file (specials as plain text), read in 1 MB blocks:
 * memory is bounded by the block and the longest pre-tokenizer piece, not by
 * the file's size. For pricing a 100 MB JSONL upload. */
int tok_count_file(const tok_t *t, const char *path, size_t *count, char *err);
/* The bytes of one token (not NUL-terminated); NULL for an id out of range. */
const char *tok_piece(const tok_t *t, int id, size_t *len);
/* Append the bytes of ids to out. Returns 0, or -1 if an id is out of range
 * (nothing is appended then) or on out-of-memory. */
int tok_decode(const tok_t *t, const int *ids, size_t n, buf_t *out);

#endif
