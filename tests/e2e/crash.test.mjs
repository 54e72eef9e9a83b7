// kill -9 of the server: during an upload (no file row and no blob is left
// half-written), and during an event stream of a training job (after a
// restart the job resumes and succeeds, and following it again replays the
// whole history: no gaps, no duplicates, the first stream a prefix of it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startServer, readSSE, TRAIN } from './helpers.mjs';

const auth = (srv) => ({ Authorization: `Bearer ${srv.key}` });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('kill -9 during an upload leaves no file row and no blob', async () => {
  let srv = await startServer({ model: false });
  const data = srv.data;
  const sock = net.connect(srv.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.on('error', () => {});
  const total = 4 << 20;
  sock.write(`POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.key}\r\n` +
    `Content-Type: multipart/form-data; boundary=kk\r\nContent-Length: ${total}\r\n\r\n` +
    '--kk\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n' +
    '--kk\r\nContent-Disposition: form-data; name="file"; filename="half.jsonl"\r\n\r\n');
  const line = '{"prompt":"a ->","completion":" b\\n"}\n';
  sock.write(line.repeat(Math.floor((1 << 20) / line.length)));
  // wait until the server has started writing the temp blob
  const files = path.join(data, 'files');
  for (let i = 0; i < 50 && !fs.readdirSync(files).some((n) => n.startsWith('.tmp-')); i++) await sleep(50);
  assert.ok(fs.readdirSync(files).some((n) => n.startsWith('.tmp-')), 'the upload was being written');
  await srv.stop('SIGKILL');
  sock.destroy();

  srv = await startServer({ dataDir: data, model: false });
  try {
    const list = await (await fetch(`${srv.base}/files`, { headers: auth(srv) })).json();
    assert.deepEqual(list.data, []);
    assert.deepEqual(fs.readdirSync(files), [], 'the half-written blob was removed at start');
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
    fd.append('purpose', 'fine-tune');
    const up = await (await fetch(`${srv.base}/files`, { method: 'POST', headers: auth(srv), body: fd })).json();
    assert.equal(up.status, 'processed');
  } finally {
    await srv.stop();
  }
});

test('kill -9 during an event stream: the next follow replays everything', async () => {
  let srv = await startServer({ args: ['--ping-interval', '200'] });
  const data = srv.data;
  let first = [];
  let ftId;
  try {
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
    fd.append('purpose', 'fine-tune');
    const up = await (await fetch(`${srv.base}/files`, { method: 'POST', headers: auth(srv), body: fd })).json();
    const ft = await (await fetch(`${srv.base}/fine-tunes`, { method: 'POST', headers: { ...auth(srv), 'Content-Type': 'application/json' },
      body: JSON.stringify({ training_file: up.id, n_epochs: 3, batch_size: 4 }) })).json();
    ftId = ft.id;
    const res = await fetch(`${srv.base}/fine-tunes/${ft.id}/events?stream=true`, { headers: auth(srv) });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let killed = false;
    while (!killed) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!block.startsWith('data: ') || block === 'data: [DONE]') continue;
        first.push(JSON.parse(block.slice(6)).message);
        if (first.at(-1) === 'Completed epoch 1/3' && !killed) {
          killed = true;
          await srv.stop('SIGKILL');
        }
      }
    }
    assert.ok(killed, `the stream was cut while training: ${first.join(' | ')}`);
  } finally {
    await srv.stop('SIGKILL');
  }

  srv = await startServer({ dataDir: data });
  try {
    const res = await fetch(`${srv.base}/fine-tunes/${ftId}/events?stream=true`, { headers: auth(srv) });
    const { events, done } = await readSSE(res.body);
    assert.ok(done);
    const all = events.map((e) => e.message);
    assert.deepEqual(all.slice(0, first.length), first, 'the replay starts with what the first follow saw');
    assert.equal(all.at(-1), 'Fine-tune succeeded');
    for (let e = 1; e <= 3; e++) assert.equal(all.filter((m) => m === `Completed epoch ${e}/3`).length, 1, `epoch ${e} once`);
    assert.equal(new Set(all).size, all.length, `no event twice: ${all.join(' | ')}`);
    const job = await (await fetch(`${srv.base}/fine-tunes/${ftId}`, { headers: auth(srv) })).json();
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.events.map((e) => e.message), all);
  } finally {
    await srv.stop();
  }
});
