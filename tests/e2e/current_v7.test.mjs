// The newest openai@7.x SDK against tunery: files (upload from a stream and
// from a Buffer, list with its cursor page, retrieve, content, delete),
// models (list, retrieve, 404s) and completions.create({stream: true}).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai7';
import { startServer, TRAIN } from './helpers.mjs';

test('openai@7.x: files, models and streamed completions', async () => {
  const srv = await startServer();
  try {
    const client = new OpenAI({ apiKey: srv.key, baseURL: srv.base, maxRetries: 0 });
    const a = await client.files.create({ file: fs.createReadStream(TRAIN), purpose: 'fine-tune' });
    const bytes = Buffer.from('{"prompt":"x ->","completion":" y\\n"}\n');
    const b = await client.files.create({ file: await toFile(bytes, 'from-buffer.jsonl'), purpose: 'fine-tune' });
    assert.equal(a.status, 'processed');
    assert.equal(b.filename, 'from-buffer.jsonl');
    assert.equal(b.bytes, bytes.length);
    assert.ok(a._request_id === undefined || typeof a._request_id === 'string');

    const seen = [];
    for await (const f of client.files.list({ limit: 1 })) seen.push(f.id);
    assert.deepEqual(seen.sort(), [a.id, b.id].sort(), 'the cursor page visits every file once');
    assert.equal((await client.files.retrieve(b.id)).id, b.id);
    const content = await client.files.content(b.id);
    assert.equal(Buffer.from(await content.arrayBuffer()).toString(), bytes.toString());

    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    assert.deepEqual(models.slice(0, 4), ['ada', 'babbage', 'curie', 'davinci']);
    const curie = await client.models.retrieve('curie');
    assert.equal(curie.owned_by, 'openai');
    await assert.rejects(client.models.retrieve('curie:ft-nobody-2020-01-01-00-00-00'), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);

    const stream = await client.completions.create({ model: 'curie', prompt: 'The colour red is ->', max_tokens: 5, temperature: 0, stream: true });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      text += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    const plain = await client.completions.create({ model: 'curie', prompt: 'The colour red is ->', max_tokens: 5, temperature: 0 });
    assert.equal(text, plain.choices[0].text);
    assert.equal(finish, plain.choices[0].finish_reason);
    assert.equal(plain.usage.completion_tokens <= 5, true);

    await assert.rejects(client.completions.create({ model: 'curie', prompt: 'x', temperature: 3 }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
    // a deterministic server failure (the blob vanished from disk) is a 500
    // with x-should-retry: false, so the SDK does not retry it
    fs.rmSync(path.join(srv.data, 'files', b.id));
    const retrying = new OpenAI({ apiKey: srv.key, baseURL: srv.base, maxRetries: 2 });
    const t0 = Date.now();
    await assert.rejects(retrying.files.content(b.id), (e) => e instanceof OpenAI.InternalServerError && e.headers.get('x-should-retry') === 'false');
    assert.ok(Date.now() - t0 < 1000, 'no retries');
    assert.equal((await client.files.delete(a.id)).deleted, true);
    await assert.rejects(client.files.retrieve(a.id), (e) => e instanceof OpenAI.NotFoundError);
  } finally {
    await srv.stop();
  }
});
