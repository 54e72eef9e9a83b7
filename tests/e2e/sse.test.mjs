// The legacy event stream's wire: Content-Type text/event-stream, every
// past event replayed as "data: {json}\n\n", ": ping" comments while the job
// waits in the queue, and "data: [DONE]" only once the job is terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, TRAIN } from './helpers.mjs';

test('event stream: replay, keep-alive comments, [DONE] only at the end', async () => {
  const srv = await startServer({ args: ['--ping-interval', '100', '--max-concurrent-jobs', '1'] });
  try {
    const H = { Authorization: `Bearer ${srv.key}` };
    const J = { ...H, 'Content-Type': 'application/json' };
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
    fd.append('purpose', 'fine-tune');
    const f = await (await fetch(`${srv.base}/files`, { method: 'POST', headers: H, body: fd })).json();
    const first = await (await fetch(`${srv.base}/fine-tunes`, { method: 'POST', headers: J, body: JSON.stringify({ training_file: f.id, n_epochs: 50 }) })).json();
    const second = await (await fetch(`${srv.base}/fine-tunes`, { method: 'POST', headers: J, body: JSON.stringify({ training_file: f.id }) })).json();

    const res = await fetch(`${srv.base}/fine-tunes/${second.id}/events?stream=true`, { headers: H });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    assert.match(res.headers.get('x-request-id'), /^req_/);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream stays open while the job waits');
      text += dec.decode(value, { stream: true });
      if ((text.match(/^: ping$/gm) || []).length >= 3) break;
    }
    assert.ok((text.match(/^: ping$/gm) || []).length >= 3, `keep-alive comments: ${text}`);
    assert.ok(!text.includes('[DONE]'), 'no [DONE] before the job is terminal');
    const blocks = text.split('\n\n').filter((b) => b.startsWith('data: '));
    assert.equal(JSON.parse(blocks[0].slice(6)).message, `Created fine-tune: ${second.id}`);
    for (const b of blocks) assert.equal(JSON.parse(b.slice(6)).object, 'fine-tune-event');

    await fetch(`${srv.base}/fine-tunes/${second.id}/cancel`, { method: 'POST', headers: H });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    assert.match(text, /"message":"Fine-tune cancelled".*\n\ndata: \[DONE\]\n\n$/s);
    assert.equal((text.match(/\[DONE\]/g) || []).length, 1);
    // a stream opened on a terminal job replays and ends at once
    const again = await (await fetch(`${srv.base}/fine-tunes/${second.id}/events?stream=true`, { headers: H })).text();
    assert.ok(again.startsWith(`data: {"object":"fine-tune-event","level":"info","message":"Created fine-tune: ${second.id}"`));
    assert.ok(again.endsWith('data: [DONE]\n\n'));
    // the non-stream form is the JSON list
    const list = await (await fetch(`${srv.base}/fine-tunes/${second.id}/events?stream=false`, { headers: H })).json();
    assert.equal(list.object, 'list');
    assert.equal(list.data.at(-1).message, 'Fine-tune cancelled');
    await fetch(`${srv.base}/fine-tunes/${first.id}/cancel`, { method: 'POST', headers: H });
  } finally {
    await srv.stop();
  }
});
