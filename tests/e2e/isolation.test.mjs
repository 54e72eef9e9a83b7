// Two organizations on one server: every endpoint refuses the other org's
// ids with the same 404 (or 400 for a referenced file) as a missing id, no
// listing shows another org's objects, and nothing one org does touches the
// other's. Keys come from `tunery keys create` while the server runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, createKey, readSSE, TRAIN } from './helpers.mjs';

async function call(srv, key, method, path, body) {
  const headers = { Authorization: `Bearer ${key}` };
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  const res = await fetch(srv.base + path, { method, headers, body: payload });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* content downloads */ }
  return { status: res.status, json, text, headers: res.headers };
}

async function upload(srv, key) {
  const fd = new FormData();
  fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
  fd.append('purpose', 'fine-tune');
  const r = await call(srv, key, 'POST', '/files', fd);
  assert.equal(r.status, 200);
  return r.json;
}

test('two organizations never see each other', async () => {
  const srv = await startServer();
  try {
    const A = srv.key;
    const B = createKey(srv.data, 'other-co');
    const fa = await upload(srv, A);
    const fb = await upload(srv, B);
    const ja = (await call(srv, A, 'POST', '/fine-tunes', { training_file: fa.id, n_epochs: 1 })).json;
    await readSSE((await fetch(`${srv.base}/fine-tunes/${ja.id}/events?stream=true`, { headers: { Authorization: `Bearer ${A}` } })).body);
    const done = (await call(srv, A, 'GET', `/fine-tunes/${ja.id}`)).json;
    assert.equal(done.status, 'succeeded');
    const model = done.fine_tuned_model;
    const resultFile = done.result_files[0].id;
    const jb = (await call(srv, B, 'POST', '/fine-tunes', { training_file: fb.id, n_epochs: 50 })).json;
    assert.notEqual(jb.organization_id, ja.organization_id);

    // listings
    assert.deepEqual((await call(srv, B, 'GET', '/files')).json.data.map((f) => f.id), [fb.id]);
    assert.deepEqual((await call(srv, B, 'GET', '/fine-tunes')).json.data.map((j) => j.id), [jb.id]);
    assert.ok(!(await call(srv, B, 'GET', '/models')).json.data.some((m) => m.id === model));
    assert.ok(!(await call(srv, A, 'GET', '/files')).json.data.some((f) => f.id === fb.id));

    // every read and write of A's objects by B is a 404 (400 for a referenced file)
    const enc = encodeURIComponent;
    const probes = [
      ['GET', `/files/${fa.id}`], ['GET', `/files/${fa.id}/content`], ['DELETE', `/files/${fa.id}`],
      ['GET', `/files/${resultFile}/content`],
      ['GET', `/fine-tunes/${ja.id}`], ['GET', `/fine-tunes/${ja.id}/events`], ['GET', `/fine-tunes/${ja.id}/events?stream=true`],
      ['POST', `/fine-tunes/${ja.id}/cancel`], ['DELETE', `/fine-tunes/${ja.id}`],
      ['GET', `/models/${enc(model)}`], ['DELETE', `/models/${enc(model)}`], ['GET', `/models/${model}`],
    ];
    for (const [m, p] of probes) {
      const r = await call(srv, B, m, p);
      assert.equal(r.status, 404, `${m} ${p} by another org`);
      assert.match(r.headers.get('content-type'), /application\/json/);
      assert.equal(typeof r.json.error.message, 'string');
    }
    const c = await call(srv, B, 'POST', '/completions', { model, prompt: 'x', max_tokens: 1 });
    assert.equal(c.status, 404);
    assert.equal(c.json.error.code, 'model_not_found');
    const e = await call(srv, B, 'POST', `/engines/${enc(model)}/completions`, { prompt: 'x', max_tokens: 1 });
    assert.equal(e.status, 404);
    const t = await call(srv, B, 'POST', '/fine-tunes', { training_file: fa.id });
    assert.equal(t.status, 400);
    assert.equal(t.json.error.param, 'training_file');
    const t2 = await call(srv, B, 'POST', '/fine-tunes', { training_file: fb.id, model });
    assert.equal(t2.status, 400);
    assert.equal(t2.json.error.param, 'model');

    // and A's objects are untouched
    assert.equal((await call(srv, A, 'GET', `/files/${fa.id}`)).status, 200);
    assert.equal((await call(srv, A, 'GET', `/fine-tunes/${ja.id}`)).json.status, 'succeeded');
    assert.equal((await call(srv, A, 'GET', `/models/${enc(model)}`)).status, 200);
    const ca = await call(srv, A, 'POST', '/completions', { model, prompt: 'x', max_tokens: 1 });
    assert.equal(ca.status, 200);
    // B's own job is B's to cancel
    assert.equal((await call(srv, B, 'POST', `/fine-tunes/${jb.id}/cancel`)).json.status, 'cancelled');
    assert.equal((await call(srv, A, 'POST', `/fine-tunes/${jb.id}/cancel`)).status, 404);
  } finally {
    await srv.stop();
  }
});
