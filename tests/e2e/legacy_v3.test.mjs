// The whole legacy fine-tune flow with the official openai@3.3.0 SDK (axios),
// unchanged, against a real `tunery serve`: upload (chunked, from a stream)
// -> create -> follow the event stream to "Fine-tune succeeded" -> list/get
// -> results CSV -> completions with the new model, plain and streamed ->
// cancel a second job -> delete the model -> delete the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Configuration, OpenAIApi } from 'openai3';
import { startServer, readSSE, checkLegacyEvents, TRAIN, RESULTS_HEADER, MODEL_NAME } from './helpers.mjs';

test('openai@3.3.0 drives the legacy fine-tune flow', async () => {
  const srv = await startServer();
  try {
    const api = new OpenAIApi(new Configuration({ apiKey: srv.key, basePath: srv.base }));

    const up = (await api.createFile(fs.createReadStream(TRAIN), 'fine-tune')).data;
    assert.match(up.id, /^file-[A-Za-z0-9]{24}$/);
    assert.equal(up.object, 'file');
    assert.equal(up.bytes, fs.statSync(TRAIN).size);
    assert.equal(up.filename, 'train.jsonl');
    assert.equal(up.purpose, 'fine-tune');
    assert.equal(up.status, 'processed');
    assert.equal(up.status_details, null);

    const ft = (await api.createFineTune({ training_file: up.id, model: 'curie', suffix: 'Colour Temp', n_epochs: 2, batch_size: 4 })).data;
    assert.match(ft.id, /^ft-[A-Za-z0-9]{24}$/);
    assert.equal(ft.object, 'fine-tune');
    assert.equal(ft.status, 'pending');
    assert.equal(ft.fine_tuned_model, null);
    assert.equal(ft.model, 'curie');
    assert.equal(ft.hyperparams.n_epochs, 2);
    assert.equal(ft.hyperparams.prompt_loss_weight, 0.01);
    assert.equal(ft.hyperparams.learning_rate_multiplier, null);
    assert.deepEqual(ft.training_files.map((f) => f.id), [up.id]);
    assert.deepEqual(ft.result_files, []);
    assert.equal(ft.events[0].message, `Created fine-tune: ${ft.id}`);

    const res = await api.listFineTuneEvents(ft.id, true, { responseType: 'stream' });
    assert.match(res.headers['content-type'], /text\/event-stream/);
    const { events, done } = await readSSE(res.data);
    assert.ok(done, 'the stream ends with [DONE]');

    const job = (await api.retrieveFineTune(ft.id)).data;
    assert.equal(job.status, 'succeeded');
    assert.match(job.fine_tuned_model, MODEL_NAME('colour-temp'));
    assert.equal(job.result_files.length, 1);
    assert.equal(job.result_files[0].filename, 'compiled_results.csv');
    assert.equal(job.result_files[0].purpose, 'fine-tune-results');
    assert.equal(job.hyperparams.batch_size, 4);
    assert.ok(job.updated_at >= job.created_at);
    const messages = events.map((e) => e.message);
    for (const e of events) assert.equal(e.object, 'fine-tune-event');
    checkLegacyEvents(assert, messages, { id: ft.id, epochs: 2, model: job.fine_tuned_model, resultFile: job.result_files[0].id });
    // the event list and the retrieve carry the same history
    assert.deepEqual((await api.listFineTuneEvents(ft.id)).data.data.map((e) => e.message), messages);
    assert.deepEqual(job.events.map((e) => e.message), messages);
    // following again replays everything, then [DONE]
    const again = await readSSE((await api.listFineTuneEvents(ft.id, true, { responseType: 'stream' })).data);
    assert.deepEqual(again.events.map((e) => e.message), messages);

    const list = (await api.listFineTunes()).data;
    assert.equal(list.object, 'list');
    assert.deepEqual(list.data.map((j) => j.id), [ft.id]);
    assert.equal(list.data[0].events, undefined);

    const csv = (await api.downloadFile(job.result_files[0].id)).data;
    const rows = csv.trim().split('\n');
    assert.equal(rows[0], RESULTS_HEADER);
    assert.ok(rows.length >= 3, 'one row per step');

    const model = job.fine_tuned_model;
    const c = (await api.createCompletion({ model, prompt: 'The colour red is ->', max_tokens: 4, temperature: 0, logprobs: 2, echo: true })).data;
    assert.equal(c.object, 'text_completion');
    assert.match(c.id, /^cmpl-/);
    assert.equal(c.model, model);
    assert.equal(c.choices.length, 1);
    assert.ok(c.choices[0].text.startsWith('The colour red is ->'));
    assert.ok(['stop', 'length'].includes(c.choices[0].finish_reason));
    assert.equal(c.choices[0].logprobs.tokens.length, c.usage.total_tokens);
    assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);

    const s = await api.createCompletion({ model, prompt: 'The colour blue is ->', max_tokens: 4, temperature: 0, stream: true }, { responseType: 'stream' });
    const chunks = await readSSE(s.data);
    assert.ok(chunks.done);
    assert.ok(chunks.events.length >= 1);
    for (const ch of chunks.events) assert.equal(ch.object, 'text_completion');
    const plain = (await api.createCompletion({ model, prompt: 'The colour blue is ->', max_tokens: 4, temperature: 0 })).data;
    assert.equal(chunks.events.map((ch) => ch.choices[0].text).join(''), plain.choices[0].text, 'streamed text equals the plain completion');
    assert.equal(chunks.events.at(-1).choices[0].finish_reason, plain.choices[0].finish_reason);

    // a second job, cancelled; cancelling again is a 400
    const ft2 = (await api.createFineTune({ training_file: up.id, n_epochs: 50 })).data;
    const cancelled = (await api.cancelFineTune(ft2.id)).data;
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.events.at(-1).message, 'Fine-tune cancelled');
    await assert.rejects(api.cancelFineTune(ft2.id), (e) => e.response.status === 400 && e.response.data.error.type === 'invalid_request_error');
    const follow2 = await readSSE((await api.listFineTuneEvents(ft2.id, true, { responseType: 'stream' })).data);
    assert.ok(follow2.done);
    assert.equal(follow2.events.at(-1).message, 'Fine-tune cancelled');

    // models: the new one is listed, encoded ids work, delete removes it
    const models = (await api.listModels()).data.data.map((m) => m.id);
    for (const b of ['ada', 'babbage', 'curie', 'davinci']) assert.ok(models.includes(b));
    assert.ok(models.includes(model));
    assert.equal((await api.retrieveModel(model)).data.id, model);
    const del = (await api.deleteModel(model)).data;
    assert.deepEqual(del, { id: model, object: 'model', deleted: true });
    assert.ok(!(await api.listModels()).data.data.some((m) => m.id === model));
    await assert.rejects(api.retrieveModel(model), (e) => e.response.status === 404 && e.response.data.error.code === 'model_not_found');
    await assert.rejects(api.deleteModel('curie'), (e) => e.response.status === 403);

    const fdel = (await api.deleteFile(up.id)).data;
    assert.deepEqual(fdel, { id: up.id, object: 'file', deleted: true });
    await assert.rejects(api.retrieveFile(up.id), (e) => e.response.status === 404 && e.response.data.error.message === `No such File object: ${up.id}` && e.response.data.error.param === 'id');
  } finally {
    await srv.stop();
  }
});
