// ollama.test.mjs - `smoe serve` driven by the real `ollama` npm client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Ollama } from 'ollama';

import { startServer } from './server.mjs';

let srv;
let ollama;
const model = 'tiny';

before(async () => {
  srv = await startServer(['--parallel', 4, '--ctx-size', 4096, '--max-tokens', 4000]);
  ollama = new Ollama({ host: srv.url });
});

after(async () => {
  assert.equal(await srv.stop(), 0, srv.log().slice(-3000));
});

test('generate, not streamed', async () => {
  const r = await ollama.generate({ model, prompt: 'Why is the sky blue?', options: { num_predict: 6, seed: 4 } });
  assert.equal(r.done, true);
  assert.ok(['stop', 'length'].includes(r.done_reason));
  assert.equal(typeof r.response, 'string');
  assert.ok(r.eval_count <= 6);
  assert.ok(r.prompt_eval_count > 0);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) assert.equal(typeof r[k], 'number');
  assert.ok(Array.isArray(r.context));
});

test('generate, streamed, equals the non-streamed text', async () => {
  const body = { model, prompt: 'Tell me', options: { num_predict: 8, seed: 6 } };
  const one = await ollama.generate(body);
  let text = '';
  let last;
  for await (const part of await ollama.generate({ ...body, stream: true })) {
    text += part.response;
    last = part;
  }
  assert.equal(text, one.response);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, one.eval_count);
});

test('chat, streamed and not', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }];
  const one = await ollama.chat({ model, messages, options: { num_predict: 7, seed: 8 } });
  assert.equal(one.message.role, 'assistant');
  let text = '';
  for await (const part of await ollama.chat({ model, messages, options: { num_predict: 7, seed: 8 }, stream: true })) {
    text += part.message.content;
  }
  assert.equal(text, one.message.content);
});

test('stop and seed', async () => {
  const opts = { num_predict: 30, seed: 12, temperature: 1 };
  const a = await ollama.generate({ model, prompt: 'Seeded', options: opts });
  const b = await ollama.generate({ model, prompt: 'Seeded', options: opts });
  assert.equal(a.response, b.response);
  if (a.response.length > 10) {
    const stop = a.response.slice(6, 9);
    const c = await ollama.generate({ model, prompt: 'Seeded', options: { ...opts, stop: [stop] } });
    assert.equal(c.response, a.response.slice(0, a.response.indexOf(stop)));
    assert.equal(c.done_reason, 'stop');
  }
});

test('prompt_eval_count counts the tokens really processed', async () => {
  const body = { model, prompt: 'A prompt that will be cached. '.repeat(5), raw: true, options: { num_predict: 2, seed: 1 } };
  await ollama.generate(body);
  const again = await ollama.generate(body);
  assert.equal(again.prompt_eval_count, 1);
  // continuing a conversation through "context"
  const next = await ollama.generate({ model, prompt: 'More.', context: again.context, options: { num_predict: 2 } });
  assert.ok(next.prompt_eval_count < next.context.length - again.context.length + 2, JSON.stringify(next));
});

test('concurrent clients each get exactly their solo output', async () => {
  const bodies = [0, 1, 2, 3].map((i) => ({ model, prompt: `Client ${i}`, options: { num_predict: 12, seed: 30 + i } }));
  const solo = [];
  for (const b of bodies) solo.push((await ollama.generate(b)).response);
  const together = await Promise.all(bodies.map(async (b, i) => {
    if (i % 2 === 0) return (await ollama.generate(b)).response;
    let t = '';
    for await (const part of await ollama.generate({ ...b, stream: true })) t += part.response;
    return t;
  }));
  assert.deepEqual(together, solo);
});

test('abort cancels the sequence', async () => {
  await srv.waitMetric('smoe_active_sequences', (v) => v === 0);
  const m0 = await srv.metrics();
  const stream = await ollama.generate({ model, prompt: 'Forever', stream: true, options: { num_predict: 3900 } });
  let n = 0;
  await assert.rejects(async () => {
    for await (const part of stream) {
      if (part.done) break;
      if (++n === 3) stream.abort();
    }
    throw new Error('finished without the abort taking effect');
  }, (e) => e.name === 'AbortError' || /abort/i.test(e.message));
  await srv.waitMetric('smoe_active_sequences', (v) => v === 0);
  const m1 = await srv.metrics();
  assert.equal(m1.smoe_sequences_cancelled_total, m0.smoe_sequences_cancelled_total + 1);
});

test('list, show, ps, version', async () => {
  const list = await ollama.list();
  assert.deepEqual(list.models.map((m) => m.name), ['tiny:latest']);
  const show = await ollama.show({ model });
  assert.ok(show.model_info);
  const ps = await ollama.ps();
  assert.equal(ps.models[0].name, 'tiny:latest');
  const v = await ollama.version();
  assert.equal(typeof v.version, 'string');
  const load = await ollama.generate({ model, prompt: '' });
  assert.equal(load.done_reason, 'load');
});

test('errors', async () => {
  await assert.rejects(ollama.generate({ model: 'llama3', prompt: 'x' }), (e) => {
    assert.equal(e.name, 'ResponseError');
    assert.equal(e.status_code, 404);
    assert.match(e.error, /not found/);
    return true;
  });
  await assert.rejects(ollama.generate({ model, prompt: 'x', options: { temperature: 'hot' } }),
    (e) => e.status_code === 400 && /temperature/.test(e.error));
  await assert.rejects(ollama.chat({ model, messages: [{ role: 'wizard', content: 'x' }] }), (e) => e.status_code === 400);
  await assert.rejects(ollama.generate({ model, prompt: 'x', format: 'yaml' }), (e) => e.status_code === 400);
  // a body over --max-body (8 MiB): 413 in Ollama's shape, not a connection reset mid-upload
  await assert.rejects(ollama.generate({ model, prompt: 'x'.repeat(9 << 20), stream: false }), (e) => {
    assert.equal(e.status_code, 413, String(e));
    assert.match(e.error, /larger than/);
    return true;
  });
});

test('API key through headers', async () => {
  const keyed = await startServer(['--api-key', 'ollama-key']);
  try {
    const good = new Ollama({ host: keyed.url, headers: { Authorization: 'Bearer ollama-key' } });
    const bad = new Ollama({ host: keyed.url, headers: { Authorization: 'Bearer nope' } });
    const r = await good.generate({ model, prompt: 'x', options: { num_predict: 2 } });
    assert.equal(r.done, true);
    await assert.rejects(bad.generate({ model, prompt: 'x' }), (e) => e.status_code === 401);
    await assert.rejects(new Ollama({ host: keyed.url }).list(), (e) => e.status_code === 401);
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});
