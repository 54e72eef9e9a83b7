// Bad input gets the right 4xx in OpenAI's JSON error shape (all four keys,
// Content-Type application/json, x-request-id), and the server keeps serving:
// malformed JSON, wrong types, unknown parameters, missing or wrong keys,
// unknown routes, huge headers, uploads over the limit (sized and chunked,
// and a 2 GiB Content-Length against the default 1 GiB), a path-like
// filename, ids holding %, +, : and SQL metacharacters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { startServer, TRAIN } from './helpers.mjs';

function assertError(r, status, param) {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
  assert.match(r.headers.get('x-request-id') || '', /^req_/);
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
  assert.ok(e.message.length > 0);
  if (param !== undefined) assert.equal(e.param, param);
}

function client(srv, key = srv.key) {
  return async (method, p, { body, headers = {}, raw } = {}) => {
    const h = { Authorization: `Bearer ${key}`, ...headers };
    let payload = raw;
    if (body !== undefined) { h['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    const res = await fetch(srv.base + p, { method, headers: h, body: payload });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, headers: res.headers, text, json };
  };
}

// A raw request on a fresh socket; resolves with the status line and body.
function rawRequest(port, head, bodyChunks = [], { closeAfter = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('error', () => resolve(data));
    s.on('close', () => resolve(data));
    s.on('connect', () => {
      s.write(head);
      for (const c of bodyChunks) s.write(c);
      if (closeAfter) s.end();
    });
    setTimeout(() => { s.destroy(); resolve(data); }, 5000);
  });
}

test('bad input: JSON, types, parameters, auth and routes', async () => {
  const srv = await startServer();
  try {
    const api = client(srv);
    const fd = new FormData();
    fd.append('file', new Blob([fs.readFileSync(TRAIN)]), 'train.jsonl');
    fd.append('purpose', 'fine-tune');
    const f = (await api('POST', '/files', { raw: fd })).json;

    assertError(await api('POST', '/fine-tunes', { raw: '{"training_file": ', headers: { 'Content-Type': 'application/json' } }), 400, null);
    assertError(await api('POST', '/fine-tunes', { raw: '[1,2]', headers: { 'Content-Type': 'application/json' } }), 400);
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, n_epochs: '4' } }), 400, 'n_epochs');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, n_epochs: 0 } }), 400, 'n_epochs');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, learning_rate_multiplier: 'big' } }), 400, 'learning_rate_multiplier');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, compute_classification_metrics: 'yes' } }), 400, 'compute_classification_metrics');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, compute_classification_metrics: true, classification_n_classes: 2 } }), 400, 'compute_classification_metrics');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, frobnicate: 1 } }), 400, 'frobnicate');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: 42 } }), 400, 'training_file');
    assertError(await api('POST', '/fine-tunes', { body: {} }), 400, 'training_file');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: 'file-nope' } }), 400, 'training_file');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, model: 'gpt-9' } }), 400, 'model');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, model: '../../etc' } }), 400, 'model');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, suffix: 'x'.repeat(41) } }), 400, 'suffix');
    assertError(await api('POST', '/fine-tunes', { body: { training_file: f.id, classification_betas: ['a'] } }), 400, 'classification_betas');
    // nulls mean "default", as the Python CLI sends them
    const ok = await api('POST', '/fine-tunes', { body: { training_file: f.id, validation_file: null, model: null, n_epochs: null, batch_size: null, learning_rate_multiplier: null, prompt_loss_weight: null, suffix: null } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.model, 'curie');
    // cancel with an empty body, whatever its content type
    for (const ct of ['application/json', 'application/x-www-form-urlencoded', undefined]) {
      const r = await fetch(`${srv.base}/fine-tunes/${ok.json.id}/cancel`, { method: 'POST', headers: { Authorization: `Bearer ${srv.key}`, ...(ct ? { 'Content-Type': ct } : {}) } });
      assert.ok([200, 400].includes(r.status));
      assert.match(r.headers.get('content-type'), /application\/json/);
    }
    // a results purpose cannot be uploaded; a bad fine-tune file is "error" with the line
    const bad = new FormData();
    bad.append('purpose', 'fine-tune');
    bad.append('file', new Blob([fs.readFileSync(path.join(path.dirname(TRAIN), 'bad.jsonl'))]), 'bad.jsonl');
    const br = (await api('POST', '/files', { raw: bad })).json;
    assert.equal(br.status, 'error');
    assert.match(br.status_details, /line 2/);
    assertError(await api('POST', '/fine-tunes', { body: { training_file: br.id } }), 400, 'training_file');
    const wp = new FormData();
    wp.append('purpose', 'fine-tune-results');
    wp.append('file', new Blob(['x']), 'x.csv');
    assertError(await api('POST', '/files', { raw: wp }), 400, 'purpose');
    const nofile = new FormData();
    nofile.append('purpose', 'fine-tune');
    assertError(await api('POST', '/files', { raw: nofile }), 400, 'file');
    assertError(await api('POST', '/files', { body: { purpose: 'fine-tune' } }), 400);

    // completions
    assertError(await api('POST', '/completions', { body: { model: 'curie', prompt: 'x', max_tokens: 'ten' } }), 400, 'max_tokens');
    assertError(await api('POST', '/completions', { body: { model: 'curie', prompt: {} } }), 400, 'prompt');
    assertError(await api('POST', '/completions', { body: { model: 'curie', prompt: 'x', stop: [1] } }), 400, 'stop');
    assertError(await api('POST', '/completions', { body: { model: 'curie', prompt: 'x', wat: true } }), 400, 'wat');
    assertError(await api('POST', '/completions', { body: { prompt: 'x' } }), 400, 'model');
    const nul = await api('POST', '/completions', { body: { model: 'curie', prompt: 'x', n: null, max_tokens: null, logprobs: null, temperature: null, top_p: null, stop: null, echo: true, stream: false } });
    assert.equal(nul.status, 200, nul.text);
    assert.ok(nul.json.choices[0].text.startsWith('x'));

    // auth
    const noKey = await fetch(srv.base + '/models');
    assertError({ status: noKey.status, headers: noKey.headers, ...(await noKey.text().then((t) => ({ text: t, json: JSON.parse(t) }))) }, 401);
    const wrong = await client(srv, 'sk-wrongwrongwrong')('GET', '/files');
    assertError(wrong, 401);
    assert.equal(wrong.json.error.code, 'invalid_api_key');

    // routes and ids
    assertError(await api('GET', '/nope'), 404);
    assertError(await api('PUT', '/files'), 404);
    assertError(await api('GET', '/v2/files'.replace('/v2', '/../v2')), 404);
    for (const id of ['%25', 'a+b', 'x%3Ay', "'%3B%20DROP%20TABLE%20files%3B--", '%22%20OR%201%3D1', 'file-%00x']) {
      const r = await api('GET', `/files/${id}`);
      assertError(r, 404);
    }
    const q = await api('GET', `/files/${encodeURIComponent("' OR '1'='1")}`);
    assert.equal(q.json.error.message, "No such File object: ' OR '1'='1");
    const plus = await api('GET', '/files/a+b');
    assert.equal(plus.json.error.message, 'No such File object: a b');
    const colon = await api('GET', '/models/curie%3Aft-x%3Ay-2020');
    assert.equal(colon.json.error.code, 'model_not_found');
    assert.match(colon.json.error.message, /curie:ft-x:y-2020/);

    // a path-like filename is a name only
    const evil = new FormData();
    evil.append('purpose', 'fine-tune');
    evil.append('file', new Blob([fs.readFileSync(TRAIN)]), '../../etc/passwd');
    const ev = (await api('POST', '/files', { raw: evil })).json;
    assert.equal(ev.filename, '../../etc/passwd');
    assert.equal((await api('GET', `/files/${ev.id}`)).json.filename, '../../etc/passwd');
    for (const name of fs.readdirSync(path.join(srv.data, 'files'))) assert.match(name, /^file-[A-Za-z0-9]{24}$/);
    assert.ok(!fs.existsSync(path.join(srv.data, 'etc')));

    // huge headers: a JSON 431, and the server goes on
    const big = await api('GET', '/models', { headers: { 'X-Big': 'b'.repeat(60000) } });
    assertError(big, 431);
    // a 2 GiB body declared against the default 1 GiB limit is refused before it is read
    const raw = await rawRequest(srv.port, `POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${srv.key}\r\n` +
      'Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 2147483648\r\n\r\n', ['--zz\r\n']);
    assert.match(raw, /^HTTP\/1\.1 413/);
    assert.match(raw, /"code":"request_too_large"/);
    assert.equal((await api('GET', '/models')).status, 200);
  } finally {
    await srv.stop();
  }
});

test('bad input: uploads over --upload-limit, sized and chunked', async () => {
  const srv = await startServer({ args: ['--upload-limit', '4096'], model: false });
  try {
    const api = client(srv);
    const fd = new FormData();
    fd.append('purpose', 'fine-tune');
    fd.append('file', new Blob(['{"prompt":"a","completion":"b"}\n'.repeat(400)]), 'big.jsonl');
    const r = await api('POST', '/files', { raw: fd });
    assertError(r, 413);
    assert.equal(r.json.error.code, 'request_too_large');
    // chunked, no Content-Length: refused once the limit is crossed
    const status = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: srv.port, path: '/v1/files', method: 'POST',
        headers: { Authorization: `Bearer ${srv.key}`, 'Content-Type': 'multipart/form-data; boundary=qq', 'Transfer-Encoding': 'chunked' } },
      (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => resolve({ code: res.statusCode, body: b, ct: res.headers['content-type'] })); });
      req.on('error', reject);
      req.write('--qq\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--qq\r\nContent-Disposition: form-data; name="file"; filename="c.jsonl"\r\n\r\n');
      for (let i = 0; i < 20; i++) req.write('x'.repeat(1000));
      req.end('\r\n--qq--\r\n');
    });
    assert.equal(status.code, 413);
    assert.match(status.ct, /application\/json/);
    assert.equal(JSON.parse(status.body).error.code, 'request_too_large');
    // nothing was stored, and a small upload still works
    assert.deepEqual((await api('GET', '/files')).json.data, []);
    assert.deepEqual(fs.readdirSync(path.join(srv.data, 'files')).filter((n) => !n.startsWith('.')), []);
    const small = new FormData();
    small.append('file', new Blob(['{"prompt":"a","completion":"b"}\n']), 's.jsonl');
    small.append('purpose', 'fine-tune');
    assert.equal((await api('POST', '/files', { raw: small })).status, 200);
  } finally {
    await srv.stop();
  }
});
