// Resource promises of `tunery serve`: an idle server stays under 50 MB of
// resident memory, and a completion against a model already in the cache
// does not load it again (the x-tunery-model-cache header says hit or miss),
// also when several completions run at once. `tunery models import --force`
// under a running server: the next completion loads the new weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, BIN } from './helpers.mjs';

const SHIPPED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../data/models');

const rssKiB = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/)[1]);

test('idle memory and the model cache', async () => {
  const srv = await startServer();
  try {
    const H = { Authorization: `Bearer ${srv.key}`, 'Content-Type': 'application/json' };
    assert.equal((await fetch(`${srv.base}/models`, { headers: H })).status, 200);
    const idle = rssKiB(srv.proc.pid);
    assert.ok(idle < 50 * 1024, `idle RSS ${idle} KiB`);
    const complete = async () => {
      const r = await fetch(`${srv.base}/completions`, { method: 'POST', headers: H, body: JSON.stringify({ model: 'curie', prompt: 'The colour red is ->', max_tokens: 3 }) });
      assert.equal(r.status, 200);
      await r.json();
      return r.headers.get('x-tunery-model-cache');
    };
    assert.equal(await complete(), 'miss');
    assert.equal(await complete(), 'hit');
    const many = await Promise.all([complete(), complete(), complete(), complete()]);
    assert.deepEqual(many, ['hit', 'hit', 'hit', 'hit']);
  } finally {
    await srv.stop();
  }
});

test('the model cache respects its memory bound', async () => {
  const srv = await startServer({ args: ['--model-cache', '1k'] });
  try {
    const H = { Authorization: `Bearer ${srv.key}`, 'Content-Type': 'application/json' };
    const complete = async () => {
      const r = await fetch(`${srv.base}/completions`, { method: 'POST', headers: H, body: JSON.stringify({ model: 'curie', prompt: 'x', max_tokens: 1 }) });
      assert.equal(r.status, 200);
      await r.json();
      return r.headers.get('x-tunery-model-cache');
    };
    // a 6 MB model does not fit in 1 KiB: dropped once idle, loaded again next time
    assert.deepEqual([await complete(), await complete()], ['miss', 'miss']);
  } finally {
    await srv.stop();
  }
});

test('models import --force replaces the weights a running server uses', async () => {
  const srv = await startServer({ model: false });
  try {
    const H = { Authorization: `Bearer ${srv.key}`, 'Content-Type': 'application/json' };
    const importAs = (shipped, force) => execFileSync(BIN, ['models', 'import', path.join(SHIPPED, shipped), '--name', 'swap',
      '--data', srv.data, ...(force ? ['--force'] : [])], { stdio: ['ignore', 'ignore', 'inherit'] });
    const complete = async () => {
      const r = await fetch(`${srv.base}/completions`, { method: 'POST', headers: H,
        body: JSON.stringify({ model: 'swap', prompt: 'In the beginning', max_tokens: 4, temperature: 0, logprobs: 1, echo: true }) });
      assert.equal(r.status, 200);
      const j = await r.json();
      return { cache: r.headers.get('x-tunery-model-cache'), lp: j.choices[0].logprobs.token_logprobs };
    };
    importAs('ada', false);
    const a1 = await complete();
    const a2 = await complete();
    assert.deepEqual([a1.cache, a2.cache], ['miss', 'hit']);
    assert.deepEqual(a2.lp, a1.lp);
    // the image the server mapped sits beside the weights, whole
    const image = fs.statSync(path.join(srv.data, 'models', 'swap', '.tunery-infer.f32'));
    assert.ok(image.size > 4096);
    importAs('babbage', true);
    const b1 = await complete();
    const b2 = await complete();
    assert.deepEqual([b1.cache, b2.cache], ['miss', 'hit']);
    assert.notDeepEqual(b1.lp, a1.lp);
    assert.deepEqual(b2.lp, b1.lp);
    importAs('ada', true);
    const a3 = await complete();
    assert.equal(a3.cache, 'miss');
    assert.deepEqual(a3.lp, a1.lp);
  } finally {
    await srv.stop();
  }
});
