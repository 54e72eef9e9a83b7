// The legacy fine-tune flow with the official openai@4.24.4 SDK (the last
// release with fineTunes): its Stream parser follows the events, its Page
// reads the lists, and errors come back as typed APIError subclasses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai4';
import { startServer, checkLegacyEvents, TRAIN, RESULTS_HEADER, MODEL_NAME } from './helpers.mjs';

test('openai@4.24.4 drives the legacy fine-tune flow', async () => {
  const srv = await startServer();
  try {
    const client = new OpenAI({ apiKey: srv.key, baseURL: srv.base, maxRetries: 0 });
    const up = await client.files.create({ file: fs.createReadStream(TRAIN), purpose: 'fine-tune' });
    assert.equal(up.status, 'processed');
    assert.equal(up.bytes, fs.statSync(TRAIN).size);

    const ft = await client.fineTunes.create({ training_file: up.id, n_epochs: 1, hyperparameters: { n_epochs: 'auto' } });
    assert.equal(ft.status, 'pending');
    assert.equal(ft.model, 'curie', 'model defaults to curie');

    const stream = await client.fineTunes.listEvents(ft.id, { stream: true });
    const messages = [];
    for await (const ev of stream) messages.push(ev.message);

    const job = await client.fineTunes.retrieve(ft.id);
    assert.equal(job.status, 'succeeded');
    assert.match(job.fine_tuned_model, MODEL_NAME(''));
    checkLegacyEvents(assert, messages, { id: ft.id, epochs: 1, model: job.fine_tuned_model, resultFile: job.result_files[0].id });

    const page = await client.fineTunes.list();
    assert.deepEqual(page.data.map((j) => j.id), [ft.id]);
    const events = await client.fineTunes.listEvents(ft.id);
    assert.deepEqual(events.data.map((e) => e.message), messages);

    const csv = await client.files.retrieveContent(job.result_files[0].id);
    assert.equal(csv.split('\n')[0], RESULTS_HEADER);

    const model = job.fine_tuned_model;
    const c = await client.completions.create({ model, prompt: ['The colour teal is ->', 'The colour amber is ->'], max_tokens: 3, n: 2, temperature: 0.7, seed: 7 });
    assert.equal(c.choices.length, 4, 'n choices per prompt');
    assert.deepEqual(c.choices.map((ch) => ch.index), [0, 1, 2, 3]);
    const chunks = [];
    for await (const ch of await client.completions.create({ model, prompt: 'The colour navy is ->', max_tokens: 3, stream: true })) chunks.push(ch);
    assert.ok(chunks.length >= 1);
    assert.ok(chunks.at(-1).choices[0].finish_reason);

    const ft2 = await client.fineTunes.create({ training_file: up.id, n_epochs: 50 });
    const cancelled = await client.fineTunes.cancel(ft2.id);
    assert.equal(cancelled.status, 'cancelled');
    await assert.rejects(client.fineTunes.cancel(ft2.id), (e) => e instanceof OpenAI.BadRequestError);
    await assert.rejects(client.fineTunes.retrieve('ft-doesnotexist'), (e) => e instanceof OpenAI.NotFoundError);

    // 4.24.4 does not encode the ':' of a model id in the path
    assert.equal((await client.models.retrieve(model)).id, model);
    assert.deepEqual(await client.models.del(model), { id: model, object: 'model', deleted: true });
    await assert.rejects(client.models.retrieve(model), (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    assert.equal((await client.files.del(up.id)).deleted, true);
    await assert.rejects(client.files.retrieve(up.id), (e) => e instanceof OpenAI.NotFoundError && e.param === 'id');
  } finally {
    await srv.stop();
  }
});
