// check_gguf.mjs FILE EXPECT_JSON: parse a GGUF file written by
// `tunery models export --format gguf` with Hugging Face's own parser
// (@huggingface/gguf) and compare what it sees with what the model is.
// Prints one line per check and closes with "gguf-check: P passed, F failed".
import { gguf, GGMLQuantizationType } from "@huggingface/gguf";

const [file, expectJson] = process.argv.slice(2);
const want = JSON.parse(expectJson);
let passed = 0, failed = 0;
function check(name, ok, detail) {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${name}${detail ? ": " + detail : ""}`); }
}
const eq = (name, got, exp) => check(name, got === exp, `got ${got}, want ${exp}`);

try {
  const { metadata: md, tensorInfos } = await gguf(file, { allowLocalFile: true });
  const n = (x) => (typeof x === "bigint" ? Number(x) : x);
  eq("version", n(md.version), 3);
  eq("general.architecture", md["general.architecture"], "gpt2");
  eq("general.name", md["general.name"], want.name);
  eq("general.file_type", n(md["general.file_type"]), want.f16 ? 1 : 0);
  eq("gpt2.context_length", n(md["gpt2.context_length"]), want.context);
  eq("gpt2.embedding_length", n(md["gpt2.embedding_length"]), want.embd);
  eq("gpt2.feed_forward_length", n(md["gpt2.feed_forward_length"]), 4 * want.embd);
  eq("gpt2.block_count", n(md["gpt2.block_count"]), want.layers);
  eq("gpt2.attention.head_count", n(md["gpt2.attention.head_count"]), want.heads);
  check("gpt2.attention.layer_norm_epsilon", Math.abs(md["gpt2.attention.layer_norm_epsilon"] - 1e-5) < 1e-9,
        `got ${md["gpt2.attention.layer_norm_epsilon"]}`);
  eq("tokenizer.ggml.model", md["tokenizer.ggml.model"], "gpt2");
  const tokens = md["tokenizer.ggml.tokens"] ?? [], merges = md["tokenizer.ggml.merges"] ?? [];
  const types = md["tokenizer.ggml.token_type"] ?? [];
  eq("token count", tokens.length, want.vocab);
  eq("token_type count", types.length, want.vocab);
  eq("merges count", merges.length, want.merges);
  eq("eos_token_id", n(md["tokenizer.ggml.eos_token_id"]), want.eos);
  eq("bos_token_id", n(md["tokenizer.ggml.bos_token_id"]), want.eos);
  eq("eos token text", tokens[want.eos], "<|endoftext|>");
  eq("eos token type (control)", n(types[want.eos]), 3);
  eq(`token ${want.space_id} (byte " " in byte-to-unicode form)`, tokens[want.space_id], "\u0120");
  eq("first merge", merges[0], "\u0120 t");
  eq("tensor count", tensorInfos.length, 4 + 12 * want.layers + (want.output ? 1 : 0));
  const C = want.embd, shapes = {
    "token_embd.weight": [C, want.vocab], "position_embd.weight": [C, want.context],
    "output_norm.weight": [C], "output_norm.bias": [C],
  };
  if (want.output) shapes["output.weight"] = [C, want.vocab];   // --output-tensor
  for (let l = 0; l < want.layers; l++) {
    Object.assign(shapes, {
      [`blk.${l}.attn_norm.weight`]: [C], [`blk.${l}.attn_norm.bias`]: [C],
      [`blk.${l}.attn_qkv.weight`]: [C, 3 * C], [`blk.${l}.attn_qkv.bias`]: [3 * C],
      [`blk.${l}.attn_output.weight`]: [C, C], [`blk.${l}.attn_output.bias`]: [C],
      [`blk.${l}.ffn_norm.weight`]: [C], [`blk.${l}.ffn_norm.bias`]: [C],
      [`blk.${l}.ffn_up.weight`]: [C, 4 * C], [`blk.${l}.ffn_up.bias`]: [4 * C],
      [`blk.${l}.ffn_down.weight`]: [4 * C, C], [`blk.${l}.ffn_down.bias`]: [C],
    });
  }
  const seen = new Set();
  for (const t of tensorInfos) {
    seen.add(t.name);
    const exp = shapes[t.name];
    if (!exp) { check(`unexpected tensor ${t.name}`, false); continue; }
    const got = t.shape.map(n);
    check(`shape of ${t.name}`, JSON.stringify(got) === JSON.stringify(exp), `got [${got}], want [${exp}]`);
    const dt = want.f16 && exp.length === 2 ? GGMLQuantizationType.F16 : GGMLQuantizationType.F32;
    check(`dtype of ${t.name}`, t.dtype === dt, `got ${t.dtype}, want ${dt}`);
    check(`offset of ${t.name} 32-aligned`, n(t.offset) % 32 === 0);
  }
  for (const name of Object.keys(shapes)) check(`tensor ${name} present`, seen.has(name));
} catch (e) {
  check("parse", false, String(e && e.stack || e));
}
console.log(`gguf-check: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
