#!/usr/bin/env node
// bench_tiktoken.mjs: the peers of `tunery bench tokenize`, measured the same
// way in the same run: npm tiktoken (OpenAI's Rust tokenizer compiled to
// WASM, the reference of record) and js-tiktoken (pure JavaScript), r50k_base,
// single-threaded, median of N timed encodes after one warm-up.
// Usage: node scripts/bench_tiktoken.mjs FILE [REPS] [LABEL]
// Prints one JSON line per implementation. Packages: tests/tok/node (npm ci).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'tests/tok/node/package.json'));
const [file, repsArg, label] = process.argv.slice(2);
const reps = Number(repsArg || 3);
const bytes = readFileSync(file);
const text = bytes.toString('utf8');

function bench(impl, encode) {
  encode(text);
  const times = [], cpus = [];
  let n = 0;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    n = encode(text).length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1e6);   // includes V8's GC threads: a little in tiktoken's disfavour
  }
  const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const s = med(times), cpu = med(cpus);
  console.log(JSON.stringify({ bench: 'tokenize', impl, input: label || file, bytes: bytes.length, tokens: n,
    seconds: +s.toFixed(4), mb_per_s: +(bytes.length / s / 1e6).toFixed(2), tokens_per_s: Math.round(n / s),
    cpu_seconds: +cpu.toFixed(4), cpu_mb_per_s: +(bytes.length / cpu / 1e6).toFixed(2) }));
}

const { get_encoding } = require('tiktoken');
const tt = get_encoding('r50k_base');
bench('tiktoken-wasm', (s) => tt.encode_ordinary(s));
tt.free();
const { getEncoding } = require('js-tiktoken');
const jt = getEncoding('r50k_base');
bench('js-tiktoken', (s) => jt.encode(s, [], []));
