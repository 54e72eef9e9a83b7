// parity.mjs: token ids of `tunery tokenize` against OpenAI's tiktoken
// (r50k_base, the WASM build of the Rust library: the reference of record)
// on the KJV Bible, the Debian fortunes, /usr/share/common-licenses and a
// generated set of hard strings; plus decode(encode(x)) == x on the bytes of
// each; plus the Hugging Face side (r50k saved by `tunery tokenize --save-dir`
// loads in tokenizers.js with tiktoken's ids; a Llama-3-style tokenizer.json
// gives tokenizers.js's ids). Prints "tok-parity: N passed, N failed"; exits 1
// on any failure.
// Usage: node parity.mjs TUNERY_BIN [FILE...]   (files beyond the built-in set)
import { get_encoding } from 'tiktoken';
import { spawnSync, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, existsSync, mkdirSync } from 'node:fs';

const bin = process.argv[2];
const enc = get_encoding('r50k_base');
let passed = 0, failed = 0;

function tunery(args, input) {
  const r = spawnSync(bin, ['tokenize', ...args], { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`tunery tokenize ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
const ctx = (s) => JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s);

function check(name, bytes) {
  try {
    // tiktoken takes a string: invalid UTF-8 becomes U+FFFD on the way in, so
    // ids are compared on the UTF-8 of that string; round-trip on the raw bytes.
    const text = bytes.toString('utf8');
    const utf8 = Buffer.from(text, 'utf8');
    const want = Array.from(enc.encode_ordinary(text));
    const rawIds = tunery([], bytes);
    const out = (Buffer.compare(utf8, bytes) === 0 ? rawIds : tunery([], utf8)).toString().trim();
    const got = out ? out.split(' ').map(Number) : [];
    let i = 0;
    while (i < want.length && i < got.length && want[i] === got[i]) i++;
    if (i < want.length || i < got.length) {
      const before = new TextDecoder().decode(enc.decode(Uint32Array.from(want.slice(Math.max(0, i - 5), i))));
      const wantTok = i < want.length ? new TextDecoder().decode(enc.decode(Uint32Array.from(want.slice(i, i + 3)))) : '(end)';
      console.log(`FAIL ${name}: first difference at token ${i} of ${want.length} (tunery ${got.length}): ` +
        `tiktoken ${want.slice(i, i + 3)} vs tunery ${got.slice(i, i + 3)}; after ${ctx(before)}, tiktoken reads ${ctx(wantTok)}`);
      failed++;
      return;
    }
    const rt = tunery(['--decode'], rawIds);
    if (Buffer.compare(rt, bytes) !== 0) {
      let j = 0;
      while (j < rt.length && j < bytes.length && rt[j] === bytes[j]) j++;
      console.log(`FAIL ${name}: decode(encode(x)) != x at byte ${j} of ${bytes.length}`);
      failed++;
      return;
    }
    const count = Number(tunery(['--count'], bytes).toString().trim());
    const n = rawIds.toString().trim().split(' ').filter((x) => x).length;
    if (count !== n) { console.log(`FAIL ${name}: --count ${count} != ${n} ids`); failed++; return; }
    passed++;
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
  }
}

// ---- the corpus ----
const inputs = [];
try {
  inputs.push(['kjv', execFileSync('bible', ['Gen1:1-Rev22:21'], { maxBuffer: 1 << 28 })]);
} catch (e) { console.log(`FAIL kjv: cannot run bible (install bible-kjv): ${e.message}`); failed++; }
const dirFiles = (d, keep) => existsSync(d) ? readdirSync(d).sort().map((f) => `${d}/${f}`)
  .filter((p) => statSync(p).isFile() && keep(p)) : [];
const fortunes = dirFiles('/usr/share/games/fortunes', (p) => !/\.(dat|u8)$/.test(p));
if (fortunes.length === 0) { console.log('FAIL fortunes: no fortunes files (install fortunes)'); failed++; }
for (const p of fortunes) inputs.push([p, readFileSync(p)]);
for (const p of dirFiles('/usr/share/common-licenses', () => true)) inputs.push([p, readFileSync(p)]);
for (const p of process.argv.slice(3)) inputs.push([p, readFileSync(p)]);

// generated hard strings, deterministic
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
const pick = (a) => a[rnd(a.length)];
const hard = {
  emoji: '😀 😃😄 👍🏽 🇫🇷🇩🇪 ❤️ 🏳️‍🌈 a😀b 😀😀😀😀 !😀',
  zwj: '👨‍👩‍👧‍👦 👩🏽‍💻 🧑‍🤝‍🧑 x👨‍👩‍👧y',
  cjk: '中文字符测试，这是一个句子。日本語のテキストです。한국어 텍스트입니다. 漢字かなカナ',
  combining: 'e\u0301 a\u0308\u0304 Z\u0351\u036b\u0343\u036a\u0302 n\u0303o\u0300 \u0301start',
  arabic: 'مرحبا بالعالم، هذا نص عربي. العربية ١٢٣٤٥ שלום עולם',
  digits: '1234567890'.repeat(50) + ' 3.14159265358979 1,000,000 ٠١٢٣ ²³¼ Ⅻ',
  whitespace: 'a\tb\r\nc\n\n\nd \t \r\n  e\r\r\n\t\t\tf   \n   g\u00a0h\u3000i\u2003j\u0085k\u2028l',
  spaces_before_words: '    indented  two   three\n     five\t\t tab  \n' + ' '.repeat(100) + 'word',
  contractions: "I'M DON'T WE'LL YOU'RE THEY'VE HE'D IT'S i'm don't we'll you're they've he'd it's ''s 's'S",
  feff: '\ufeffhello \ufeff world\ufeff\ufeff a\u200bb\u180ec\u200dd',
  nospace_100k: Array.from({ length: 100000 }, () => pick('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;-_/')).join(''),
  letters_100k: 'a'.repeat(100000),
  // giant pieces of every class (the linear-time encoder's territory)
  random_letters_100k: Array.from({ length: 100000 }, () => pick('abcdefghijklmnopqrstuvwxyz')).join(''),
  digits_100k: Array.from({ length: 100000 }, () => pick('0123456789')).join(''),
  cjk_100k: Array.from({ length: 33000 }, () => String.fromCodePoint(0x4e00 + rnd(0x5200))).join(''),
  emoji_100k: Array.from({ length: 25000 }, () => String.fromCodePoint(0x1f300 + rnd(0x350))).join(''),
  nospace_lines: Array.from({ length: 4 }, () => Array.from({ length: 25000 },
    () => pick('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;-_/')).join('')).join('\n'),
  text_without_spaces: 'InthebeginningGodcreatedtheheavenandtheearth.Andtheearthwaswithoutform,andvoid;'.repeat(600),
  mixed: 'The quick brown fox\'s "jumps" over—the lazy dog… ¿Qué? Ça va! Größe ΑΒΓ αβγ кириллица ♠♣♥♦ €100 ©2024 http://x.y/z?a=1&b=2 <|endoftext|> end',
  control: '\x00\x01\x02 \x1b[31mred\x1b[0m \x7f\x1c\x1d\x1e\x1f x',
  surrogate_free_astral: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈 𓀀𓀁',
  punct_runs: '!!!???...,,,;;;:::---___***+++===|||\\\\///~~~```  ...!? a!!b',
};
for (const [k, v] of Object.entries(hard)) inputs.push([`hard:${k}`, Buffer.from(v, 'utf8')]);
// random mixes of all of the above classes
const atoms = ['a', 'Z', 'é', '中', '😀', '1', '٣', ' ', '  ', '\t', '\n', '\r\n', "'s", "'", '.', '!', '\u00a0', '\ufeff', '\u0301', 'ab', 'the', ' the'];
for (let k = 0; k < 20; k++) {
  let s = '';
  for (let i = 0; i < 400; i++) s += pick(atoms);
  inputs.push([`hard:random${k}`, Buffer.from(s, 'utf8')]);
}
// invalid UTF-8 (round trip only meaningful beyond tiktoken, which sees U+FFFD)
inputs.push(['hard:invalid_utf8', Buffer.from([0x61, 0xff, 0xfe, 0x20, 0xc3, 0x28, 0xe2, 0x82, 0x20, 0xf0, 0x9f, 0x98, 0x41, 0xed, 0xa0, 0x80, 0x80, 0x62])]);

for (const [name, bytes] of inputs) check(name, bytes);

// ---- Hugging Face side: the r50k files `tunery tokenize --save-dir` writes
// must load in Hugging Face's tokenizers.js and give tiktoken's ids; and the
// Llama-3-style fixture must give the same ids in tunery and tokenizers.js
// (the regex pre-tokenizer path). Texts without U+FEFF: JavaScript's \s
// counts it as space, Rust's and tunery's do not.
const { Tokenizer } = await import('@huggingface/tokenizers');
const { mkdtempSync, rmSync, copyFileSync } = await import('node:fs');
const tmp = mkdtempSync('/tmp/tunery-tok-hf-');
function hfCheck(name, fn) {
  try {
    const msg = fn();
    if (msg) { console.log(`FAIL ${name}: ${msg}`); failed++; } else passed++;
  } catch (e) { console.log(`FAIL ${name}: ${e.message}`); failed++; }
}
const hfTexts = inputs.filter(([n]) => n.startsWith('hard:') && !/feff|invalid|random|100k/.test(n))
  .map(([n, b]) => [n, b.toString('utf8')]);
hfTexts.push(['kjv-head', inputs.length && inputs[0][0] === 'kjv' ? inputs[0][1].subarray(0, 200000).toString('utf8') : 'In the beginning']);
hfCheck('hf:save-dir', () => {
  const r = spawnSync(bin, ['tokenize', '--save-dir', `${tmp}/r50k`]);
  return r.status === 0 ? '' : `tunery tokenize --save-dir exited ${r.status}: ${r.stderr}`;
});
let hf = null;
hfCheck('hf:load-saved-r50k', () => {
  hf = new Tokenizer(JSON.parse(readFileSync(`${tmp}/r50k/tokenizer.json`, 'utf8')),
    JSON.parse(readFileSync(`${tmp}/r50k/tokenizer_config.json`, 'utf8')));
  return '';
});
for (const [name, text] of hfTexts) {
  hfCheck(`hf:r50k:${name}`, () => {
    if (!hf) return 'tokenizer did not load';
    // Hugging Face always splits out added tokens: compare with specials allowed
    const got = hf.encode(text, { add_special_tokens: false }).ids, want = Array.from(enc.encode(text, 'all'));
    let i = 0;
    while (i < want.length && got[i] === want[i]) i++;
    return i === want.length && got.length === want.length ? '' : `tokenizers.js differs from tiktoken at token ${i}: ${got.slice(i, i + 3)} vs ${want.slice(i, i + 3)}`;
  });
}
mkdirSync(`${tmp}/llama3`, { recursive: true });
copyFileSync(new URL('../fixtures/llama3_style.json', import.meta.url), `${tmp}/llama3/tokenizer.json`);
const l3 = new Tokenizer(JSON.parse(readFileSync(`${tmp}/llama3/tokenizer.json`, 'utf8')), {});
for (const [name, text] of hfTexts) {
  hfCheck(`hf:llama3-fixture:${name}`, () => {
    const want = l3.encode(text, { add_special_tokens: false }).ids;
    const out = tunery(['--model', `${tmp}/llama3`, '--allow-special'], Buffer.from(text, 'utf8')).toString().trim();
    const got = out ? out.split(' ').map(Number) : [];
    let i = 0;
    while (i < want.length && got[i] === want[i]) i++;
    return i === want.length && got.length === want.length ? '' : `tunery differs from tokenizers.js at token ${i}: ${got.slice(i, i + 3)} vs ${want.slice(i, i + 3)}`;
  });
}
rmSync(tmp, { recursive: true, force: true });
console.log(`tok-parity: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
