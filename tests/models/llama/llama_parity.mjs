// llama_parity.mjs GGUF EXPECTED_JSON LOGITS_KEY TOL [TEXT IDS]: load a GGUF
// written by `tunery models export` in llama.cpp (node-llama-cpp's prebuilt
// CPU build: llama.cpp's own GPT-2 loader and graph), evaluate the fixture's
// input and compare llama.cpp's next-token probabilities at every position
// with PyTorch's (softmax of expected.json's logits). With TEXT and IDS it
// also checks that llama.cpp's tokenizer, built from the GGUF's tokens and
// merges, gives tunery's ids. Closes with "llama-check: P passed, F failed".
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import fs from "node:fs";

const [file, expPath, key, tolStr, text, idsStr] = process.argv.slice(2);
const tol = Number(tolStr);
let passed = 0, failed = 0;
const check = (name, ok, detail) => {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${name}${detail ? ": " + detail : ""}`); }
};
try {
  // EXPECTED_JSON "-": only load and tokenize (a model with no reference logits)
  const exp = expPath === "-" ? null : JSON.parse(fs.readFileSync(expPath, "utf8"));
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: file });
  check("llama.cpp loads the file", true);
  if (exp) {
    check("train context", model.trainContextSize === 64, `got ${model.trainContextSize}`);
    check("eos token", model.tokens.eos === exp.vocab_size - 1, `got ${model.tokens.eos}`);
  } else {
    check("eos token 50256", model.tokens.eos === 50256, `got ${model.tokens.eos}`);
  }
  if (text !== undefined) {
    const got = Array.from(model.tokenize(text)).join(" ");
    check("llama.cpp tokenizes like tunery", got === idsStr.trim(), `llama.cpp [${got}], tunery [${idsStr.trim()}]`);
  }
  if (!exp) {
    await model.dispose();
    console.log(`llama-check: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }
  const V = exp.vocab_size, T = exp.input.length;
  const ctx = await model.createContext({ contextSize: 64 });
  const res = await ctx.getSequence().controlledEvaluate(exp.input.map((t) => [t, { generateNext: { probabilities: true } }]));
  let maxd = 0, maxl = 0, seen = 0;
  for (let t = 0; t < T; t++) {
    const lg = exp[key].slice(t * V, (t + 1) * V), m = Math.max(...lg);
    const z = lg.reduce((a, x) => a + Math.exp(x - m), 0);
    const probs = res[t]?.next?.probabilities;
    if (!probs) { check(`probabilities at position ${t}`, false); continue; }
    for (const [tok, p] of probs) {
      maxd = Math.max(maxd, Math.abs(p - Math.exp(lg[tok] - m) / z));
      maxl = Math.max(maxl, Math.abs(Math.log(p) - (lg[tok] - m - Math.log(z))));
      seen++;
    }
  }
  check("probabilities of every token at every position", seen === T * V, `got ${seen}, want ${T * V}`);
  check(`llama.cpp probabilities match PyTorch (max diff ${maxd.toExponential(2)}, tol ${tol})`, maxd <= tol);
  console.log(`llama.cpp vs PyTorch (${key}): max |p - p_ref| = ${maxd.toExponential(3)} over ${seen} probabilities, max |log p - log p_ref| = ${maxl.toExponential(3)}`);
  await ctx.dispose();
  await model.dispose();
} catch (e) {
  check("llama.cpp run", false, String((e && e.stack) || e));
}
console.log(`llama-check: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
