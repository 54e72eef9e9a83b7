// helpers.mjs: start a real `tunery serve` for one test (fresh data directory,
// free loopback port, the initial key read from its first line), give it a
// tiny base model called "curie", and read SSE streams. Every test stops its
// own server.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.TUNERY_BIN || path.resolve(here, '../../tunery');
export const FIXTURES = path.join(here, 'fixtures');
export const TRAIN = path.join(FIXTURES, 'train.jsonl');

// A 1-layer, 32-channel random GPT-2 (r50k vocabulary) made by `tunery
// train` itself, copied into each data directory as models/curie. Made once
// per binary (the cache key is the binary's size and mtime), so the suites
// share it; written to a temp name and renamed, so a half-made one is never used.
let tinyModel = null;
export function tinyModelDir() {
  if (tinyModel) return tinyModel;
  const st = fs.statSync(BIN);
  const out = path.join(os.tmpdir(), `tunery-e2e-curie-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (!fs.existsSync(path.join(out, 'config.json'))) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunery-e2e-model-'));
    execFileSync(BIN, ['train', '--model', 'random:1,2,32,64', '--train', TRAIN, '--out', path.join(tmp, 'curie'),
      '--n-epochs', '1', '--seed', '1', '-q'], { stdio: ['ignore', 'ignore', 'inherit'] });
    try { fs.renameSync(path.join(tmp, 'curie'), out); } catch (e) { if (!fs.existsSync(out)) throw e; }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  tinyModel = out;
  return out;
}

// The data directories this test process made. They are removed when it
// exits with every test passed; when one failed they are kept and named on
// stderr (the store and the workers' logs are what a failure is read from).
// TUNERY_E2E_KEEP=1 keeps them always. (A CI run used to leave ~17 behind.)
const madeDirs = new Set();
process.on('exit', (code) => {
  if (!madeDirs.size) return;
  if (code !== 0 || process.env.TUNERY_E2E_KEEP) {
    process.stderr.write(`e2e: data directories kept: ${[...madeDirs].join(' ')}\n`);
    return;
  }
  for (const d of madeDirs) fs.rmSync(d, { recursive: true, force: true });
});

export async function startServer({ args = [], dataDir = null, model = true } = {}) {
  const data = dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'tunery-e2e-'));
  if (!dataDir) madeDirs.add(data);
  if (model && !fs.existsSync(path.join(data, 'models', 'curie'))) {
    fs.mkdirSync(path.join(data, 'models'), { recursive: true });
    fs.cpSync(tinyModelDir(), path.join(data, 'models', 'curie'), { recursive: true });
  }
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data', data, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const line = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(out.slice(0, nl)); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${stderr}`)); });
  });
  const m = line.match(/http:\/\/127\.0\.0\.1:(\d+)\/v1/);
  if (!m) throw new Error(`unexpected first line: ${line}`);
  const km = line.match(/initial API key: (sk-[A-Za-z0-9]+)/);
  const key = km ? km[1] : fs.readFileSync(path.join(data, 'initial-api-key'), 'utf8').trim();
  const port = Number(m[1]);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    port, key, data, proc, line,
    base: `http://127.0.0.1:${port}/v1`,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

// What the workers of a data dir wrote to stderr (jobs/*/worker.log; one
// job's if jobId is given), for failure messages: a worker that died says
// why there.
export function workerLogs(data, jobId = null) {
  const dir = path.join(data, 'jobs');
  if (!fs.existsSync(dir)) return '';
  return (jobId ? [jobId] : fs.readdirSync(dir)).map((id) => {
    const f = path.join(dir, id, 'worker.log');
    const txt = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : '';
    return txt ? `${id}/worker.log: ${txt}` : '';
  }).filter(Boolean).join('\n');
}

// Another organization's key, made with `tunery keys create`.
export function createKey(data, org) {
  const out = execFileSync(BIN, ['keys', 'create', '--org', org, '--data', data], { encoding: 'utf8' });
  const m = out.match(/sk-[A-Za-z0-9]+/);
  if (!m) throw new Error(`no key in: ${out}`);
  return m[0];
}

// Read an SSE body (a Node readable or a web stream) and return the data
// payloads in order, stopping at [DONE]; comments are counted.
export async function readSSE(body) {
  const events = [];
  let buf = '';
  let comments = 0;
  let done = false;
  const dec = new TextDecoder();
  for await (const chunk of body) {
    buf += typeof chunk === 'string' ? chunk : dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const l of block.split('\n')) {
        if (l.startsWith(':')) comments++;
        else if (l.startsWith('data:')) {
          const d = l.slice(5).trim();
          if (d === '[DONE]') done = true;
          else events.push(JSON.parse(d));
        }
      }
    }
    if (done) break;
  }
  return { events, comments, done };
}

// The legacy event messages of a successful job, as OpenAI wrote them.
export function checkLegacyEvents(assert, messages, { id, epochs, model, resultFile }) {
  let i = 0;
  assert.equal(messages[i++], `Created fine-tune: ${id}`);
  assert.match(messages[i++], /^Fine-tune costs \$\d+\.\d\d$/);
  assert.match(messages[i++], /^Fine-tune enqueued\. Queue number: \d+$/);
  while (/^Fine-tune is in the queue\. Queue number: \d+$/.test(messages[i])) i++;
  assert.equal(messages[i++], 'Fine-tune started');
  for (let e = 1; e <= epochs; e++) assert.equal(messages[i++], `Completed epoch ${e}/${epochs}`);
  assert.equal(messages[i++], `Uploaded model: ${model}`);
  assert.equal(messages[i++], `Uploaded result file: ${resultFile}`);
  assert.equal(messages[i++], 'Fine-tune succeeded');
  assert.equal(i, messages.length, `unexpected extra events: ${messages.slice(i).join(' | ')}`);
}

export const RESULTS_HEADER = 'step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,training_token_accuracy,validation_loss,validation_sequence_accuracy,validation_token_accuracy';
export const MODEL_NAME = (suffix) => new RegExp(`^curie:ft-personal${suffix ? ':' + suffix : ''}-\\d{4}-\\d\\d-\\d\\d-\\d\\d-\\d\\d-\\d\\d$`);
