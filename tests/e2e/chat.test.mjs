// Chat fine-tunes through the newest openai@7.x SDK against a real `tunery
// serve`: a chat file is validated at upload (a broken line is reported with
// its number), a fine_tuning job on a chat base (gpt-4o-mini, a
// compatibility name for the test's tiny local model) trains on it, and
// chat.completions.create talks to the result and to one of its checkpoint
// models, streamed and not: the streamed deltas concatenate to the
// non-streamed answer for the same seed at temperature 0, and the model
// says what it was taught. The data formats must match the base model's
// (400 param training_file both ways); a completion model is refused by
// /v1/chat/completions (400 param model) and a chat model still answers
// /v1/completions; bad messages and unknown parameters are 400s naming
// their param.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai7';
import { startServer, TRAIN } from './helpers.mjs';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

async function waitFor(what, fn, ms = 90000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function collect(iterable) {
  const out = [];
  for await (const x of iterable) out.push(x);
  return out;
}

function writeLines(dir, name, lines) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
}

// Every conversation is answered "OK." (the tiny model can learn that much).
const REPLY = 'OK.';
const convo = (i) => ({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `Item ${i}?` },
  { role: 'assistant', content: REPLY }] });

// One chat call both ways; returns the non-streamed completion after
// checking the streamed one says the same thing.
async function chatBothWays(client, model, messages) {
  const params = { model, messages, temperature: 0, seed: 42, max_completion_tokens: 8 };
  const plain = await client.chat.completions.create(params);
  assert.equal(plain.object, 'chat.completion');
  assert.match(plain.id, /^chatcmpl-/);
  assert.equal(plain.model, model);
  assert.equal(plain.choices.length, 1);
  assert.equal(plain.choices[0].message.role, 'assistant');
  assert.equal(typeof plain.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(plain.choices[0].finish_reason));
  const u = plain.usage;
  assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens, JSON.stringify(u));

  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', role = null, finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, model);
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    const c = chunk.choices[0];
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(chunks >= 3, `a role chunk, content and a finish chunk (${chunks})`);
  assert.equal(role, 'assistant');
  assert.equal(text, plain.choices[0].message.content, 'streamed deltas concatenate to the non-streamed answer');
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.deepEqual(usage, plain.usage, 'include_usage: the last chunk carries the same usage');
  return plain;
}

test('openai@7.x chat fine-tune: upload, job on a chat base, chat.completions with the model and a checkpoint', { timeout: 170000 }, async () => {
  const srv = await startServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunery-chat-'));
  try {
    const client = new OpenAI({ apiKey: srv.key, baseURL: srv.base, maxRetries: 0 });

    // A broken chat line is reported at upload with its line number.
    const broken = writeLines(dir, 'broken.jsonl', [convo(0), convo(1),
      { messages: [{ role: 'user', content: 'hi' }, { role: 'robot', content: 'beep' }] }]);
    const bad = await client.files.create({ file: fs.createReadStream(broken), purpose: 'fine-tune' });
    const badNow = await waitFor('the broken file to be validated', async () => {
      const f = await client.files.retrieve(bad.id);
      return f.status !== 'uploaded' ? f : null;
    });
    assert.equal(badNow.status, 'error');
    assert.match(badNow.status_details, /line 3/);
    assert.match(badNow.status_details, /robot/);
    await assert.rejects(client.fineTuning.jobs.create({ model: 'gpt-4o-mini', training_file: bad.id }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'training_file');

    const chatPath = writeLines(dir, 'chat.jsonl', Array.from({ length: 8 }, (_, i) => convo(i)));
    const chat = await client.files.create({ file: fs.createReadStream(chatPath), purpose: 'fine-tune' });
    const pc = await client.files.create({ file: fs.createReadStream(TRAIN), purpose: 'fine-tune' });
    for (const f of [chat, pc])
      assert.equal((await waitFor('validation', async () => {
        const x = await client.files.retrieve(f.id);
        return x.status !== 'uploaded' ? x : null;
      })).status, 'processed');

    // The data format must be the base model's, both ways.
    for (const [model, file] of [['gpt-4o-mini', pc.id], ['curie', chat.id], ['babbage-002', chat.id]])
      await assert.rejects(client.fineTuning.jobs.create({ model, training_file: file }),
        (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'training_file', `${model} + ${file}`);

    // gpt-4o-mini is listed as tunery's own compatibility name, not OpenAI's model.
    const mini = await client.models.retrieve('gpt-4o-mini');
    assert.equal(mini.owned_by, 'tunery');

    const job = await client.fineTuning.jobs.create({ model: 'gpt-4o-mini', training_file: chat.id, seed: 7, suffix: 'brief',
      hyperparameters: { n_epochs: 6, batch_size: 1, learning_rate_multiplier: 30 } });
    const done = await waitFor(`${job.id} to finish`, async () => {
      const j = await client.fineTuning.jobs.retrieve(job.id);
      return TERMINAL.has(j.status) ? j : null;
    });
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.match(done.fine_tuned_model, /^ft:gpt-4o-mini:personal:brief:[A-Za-z0-9]{8}$/);

    // The fine-tuned model answers as it was taught, and stops at the end of its turn.
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Item 3?' }];
    const answer = await chatBothWays(client, done.fine_tuned_model, messages);
    assert.equal(answer.choices[0].message.content, REPLY);
    assert.equal(answer.choices[0].finish_reason, 'stop');
    // content as text parts is the same conversation
    const parts = await client.chat.completions.create({ model: done.fine_tuned_model, temperature: 0, max_tokens: 8,
      messages: [messages[0], { role: 'user', content: [{ type: 'text', text: 'Item ' }, { type: 'text', text: '3?' }] }] });
    assert.equal(parts.choices[0].message.content, answer.choices[0].message.content);
    assert.equal(parts.usage.prompt_tokens, answer.usage.prompt_tokens);

    // A checkpoint of the job is a chat model too.
    const ckpts = await collect(client.fineTuning.jobs.checkpoints.list(job.id));
    assert.ok(ckpts.length >= 1, 'the job kept checkpoints');
    const ck = ckpts[ckpts.length - 1].fine_tuned_model_checkpoint;
    assert.match(ck, /:ckpt-step-\d+$/);
    await chatBothWays(client, ck, messages);

    // logprobs: one entry per generated token, top_logprobs as asked.
    const lp = await client.chat.completions.create({ model: done.fine_tuned_model, messages, temperature: 0, max_tokens: 8,
      logprobs: true, top_logprobs: 2 });
    const content = lp.choices[0].logprobs.content;
    assert.equal(content.length, lp.usage.completion_tokens - (lp.choices[0].finish_reason === 'stop' ? 1 : 0));
    for (const t of content) {
      assert.ok(t.logprob <= 0 && Array.isArray(t.bytes));
      assert.equal(t.top_logprobs.length, 2);
    }

    // A chat model still answers raw text on /v1/completions; a completion model is refused for chat.
    const raw = await client.completions.create({ model: done.fine_tuned_model, prompt: 'user: Item 3?\nassistant:', max_tokens: 4, temperature: 0 });
    assert.equal(raw.object, 'text_completion');
    await assert.rejects(client.chat.completions.create({ model: 'curie', messages }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === 'model' && /\/v1\/completions/.test(e.message));
    await assert.rejects(client.chat.completions.create({ model: 'ft:gpt-4o-mini:personal:none:AAAAAAAA', messages }),
      (e) => e instanceof OpenAI.NotFoundError && e.param === 'model');

    // Bad input, each a 400 naming its param.
    const cases = [
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'user', content: 'a' }, { role: 'bot', content: 'b' }] }, 'messages[1].role'],
      [{ messages: [{ role: 'user', content: 42 }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0]'],
      [{ messages, temperature: 3 }, 'temperature'],
      [{ messages, n: 0 }, 'n'],
      [{ messages, top_logprobs: 2 }, 'top_logprobs'],
      [{ messages, max_completion_tokens: 0 }, 'max_completion_tokens'],
      [{ messages, stream_options: { include_usage: true } }, 'stream_options'],
      [{ messages, functions_please: true }, 'functions_please'],
    ];
    for (const [body, param] of cases)
      await assert.rejects(client.chat.completions.create({ model: done.fine_tuned_model, ...body }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === param, `${JSON.stringify(body)} -> ${param}`);
  } finally {
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
