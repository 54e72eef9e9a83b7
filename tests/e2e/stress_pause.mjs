// stress_pause.mjs: pauses and resumes many small jobs on one server and
// prints every worker.log that is not empty. Not part of the test command
// (it runs for minutes); run it by hand after touching the worker, the
// trainer's stop path or the scheduler's signals:
//   cd tests/e2e && N=300 node stress_pause.mjs
// Each job is paused soon after its first step, waits for its checkpoint,
// is resumed and must succeed; checkpoints and models are deleted as it goes,
// so the data dir stays small (150 jobs with them kept filled 12 GB).
// Session 6 found with it that about 1 worker in 100-300 died early in its
// run as its pause arrived (1 in 10 with OMP_NUM_THREADS=1): glibc's
// "corrupted size vs. prev_size while consolidating" in worker.log, stacks
// in oneDNN's split LM-head dinp. Session 7 found the cause: the SIGTERM
// handler ran on the training thread inside oneDNN's JIT sgemm and its frame
// clobbered the kernel's state. Stop signals are now taken by a thread that
// only waits (core/signals.c): 0 in 60 with OMP_NUM_THREADS=1 (6 in 60
// before), and tests/nn/test_signals.c checks it. worker.log has the stack
// of any crash (cmd_worker.c's crash handler).
import fs from 'node:fs';
import OpenAI from 'openai7';
import { startServer, TRAIN, workerLogs } from './helpers.mjs';
const N = Number(process.env.N || 100);
const srv = await startServer();
const client = new OpenAI({ apiKey: srv.key, baseURL: srv.base, maxRetries: 0 });
const file = await client.files.create({ file: fs.createReadStream(TRAIN), purpose: 'fine-tune' });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let bad = 0;
for (let i = 0; i < N; i++) {
  const job = await client.fineTuning.jobs.create({ model: 'curie', training_file: file.id, seed: i, hyperparameters: { n_epochs: 3, batch_size: 1 } });
  let t0 = Date.now();
  while ((await client.fineTuning.jobs.retrieve(job.id)).estimated_finish === null && Date.now() - t0 < 20000) await sleep(5 + (i % 7) * 3);
  try { await client.fineTuning.jobs.pause(job.id); } catch (e) { }
  t0 = Date.now();
  let j;
  while (Date.now() - t0 < 20000) {
    j = await client.fineTuning.jobs.retrieve(job.id);
    const cks = await client.fineTuning.jobs.checkpoints.list(job.id);
    if (j.status !== 'paused' || cks.data.length > 0) break;
    await sleep(20);
  }
  try { await client.fineTuning.jobs.resume(job.id); } catch (e) { }
  t0 = Date.now();
  while (Date.now() - t0 < 20000) {
    j = await client.fineTuning.jobs.retrieve(job.id);
    if (['succeeded', 'failed', 'cancelled'].includes(j.status)) break;
    await sleep(20);
  }
  if (j.status !== 'succeeded') { bad++; console.log('job', i, j.status, JSON.stringify(j.error)); }
  const jd = `${srv.data}/jobs/${job.id}`;
  const wl = workerLogs(srv.data, job.id);
  if (wl) console.log('job', i, wl.slice(0, 3000));
  for (const f of fs.readdirSync(jd)) if (f.startsWith('ckpt-') || f.endsWith('.safetensors')) fs.rmSync(`${jd}/${f}`, { recursive: true, force: true });
  if (j.fine_tuned_model) fs.rmSync(`${srv.data}/models/${j.fine_tuned_model}`, { recursive: true, force: true });
}
console.log('done', N, 'bad', bad);
await srv.stop();
fs.rmSync(srv.data, { recursive: true, force: true });
