// Followers at scale: 200 event streams on one job against `tunery serve
// --threads 2`. The streams hold no thread each (the server's thread count
// stays where an idle server has it), sleeping streams burn no CPU, and when
// the job runs every stream receives every event, in order, exactly once,
// ending with a single [DONE] after the final event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startServer, TRAIN } from './helpers.mjs';

const N = Number(process.env.TUNERY_E2E_FOLLOWERS || 200);   // 1000 by hand: see docs/bench.md
const threads = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/Threads:\s+(\d+)/)[1]);
// user + system CPU seconds of a process (/proc/PID/stat fields 14 and 15)
const cpuSeconds = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One raw SSE stream: resolves with its text once the server ends it.
function follow(agent, srv, id, opened) {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, host: '127.0.0.1', port: srv.port, path: `/v1/fine-tunes/${id}/events?stream=true`,
      headers: { Authorization: `Bearer ${srv.key}` } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (!text) opened();
        text += d;
      });
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

test(`${N} followers of one job: bounded threads, no spinning, every event in order`, async () => {
  const srv = await startServer({ args: ['--threads', '2', '--max-concurrent-jobs', '1'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  try {
    const H = { Authorization: `Bearer ${srv.key}` };
    const J = { ...H, 'Content-Type': 'application/json' };
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
    fd.append('purpose', 'fine-tune');
    const f = await (await fetch(`${srv.base}/files`, { method: 'POST', headers: H, body: fd })).json();
    // the first job holds the only training slot, so the followed one waits in the queue
    const blocker = await (await fetch(`${srv.base}/fine-tunes`, { method: 'POST', headers: J, body: JSON.stringify({ training_file: f.id, n_epochs: 50 }) })).json();
    const job = await (await fetch(`${srv.base}/fine-tunes`, { method: 'POST', headers: J, body: JSON.stringify({ training_file: f.id, n_epochs: 1 }) })).json();
    await sleep(300);
    const idleThreads = threads(srv.proc.pid);

    let opened = 0;
    const streams = [];
    for (let i = 0; i < N; i++) streams.push(follow(agent, srv, job.id, () => opened++));
    for (let t = 0; t < 200 && opened < N; t++) await sleep(50);
    assert.equal(opened, N, 'every stream got its replay');
    const busyThreads = threads(srv.proc.pid);
    assert.ok(busyThreads <= idleThreads + 2, `threads: ${idleThreads} idle, ${busyThreads} with ${N} streams`);
    // sleeping streams cost no CPU: no reader spins, no store polling
    const c0 = cpuSeconds(srv.proc.pid);
    await sleep(1000);
    const spent = cpuSeconds(srv.proc.pid) - c0;
    assert.ok(spent < 0.25, `the server used ${spent} s of CPU in 1 s with ${N} idle streams`);
    console.log(`# followers: ${idleThreads} threads idle, ${busyThreads} with ${N} streams; ${spent.toFixed(2)} s CPU in 1 s idle`);

    // let the followed job run to the end
    await fetch(`${srv.base}/fine-tunes/${blocker.id}/cancel`, { method: 'POST', headers: H });
    const t1 = Date.now();
    const texts = await Promise.all(streams);
    console.log(`# followers: the job ran and all ${N} streams ended ${Date.now() - t1} ms after the cancel; RSS ${fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]} kB`);
    const list = await (await fetch(`${srv.base}/fine-tunes/${job.id}/events`, { headers: H })).json();
    const want = list.data.map((e) => JSON.stringify(e));
    assert.equal(list.data.at(-1).message, 'Fine-tune succeeded');
    for (const text of texts) {
      assert.equal((text.match(/\[DONE\]/g) || []).length, 1);
      assert.ok(text.endsWith('data: [DONE]\n\n'), 'the stream ends with [DONE]');
      const got = text.split('\n\n').filter((b) => b.startsWith('data: {')).map((b) => b.slice(6));
      assert.deepEqual(got, want, 'every event, in order, exactly once');
    }
    assert.ok(threads(srv.proc.pid) <= idleThreads + 2, 'no thread was left behind');
  } finally {
    agent.destroy();
    await srv.stop();
  }
});
