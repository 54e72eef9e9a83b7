// Resource promises of `tunery serve`: an idle server stays under 50 MB of
// resident memory, and a completion against a model already in the cache
// does not load it again (the x-tunery-model-cache header says hit or miss),
// also when several completions run at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer } from './helpers.mjs';

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
