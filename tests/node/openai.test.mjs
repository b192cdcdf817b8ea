// openai.test.mjs - `smoe serve` driven by the real `openai` npm client.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { NO_EOS, startServer } from './server.mjs';

let srv;
let client;
const model = 'tiny';
const msgs = (content) => [{ role: 'user', content }];

before(async () => {
  srv = await startServer(['--parallel', 4, '--ctx-size', 4096, '--max-tokens', 4000]);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
});

after(async () => {
  assert.equal(await srv.stop(), 0, srv.log().slice(-3000));
});

async function streamText(stream) {
  const texts = {};
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    for (const c of chunk.choices) {
      const piece = c.delta ? c.delta.content : c.text;
      if (piece) texts[c.index] = (texts[c.index] ?? '') + piece;
    }
  }
  return { texts, chunks };
}

test('chat completion, not streamed', async () => {
  const r = await client.chat.completions.create({ model, messages: msgs('Hello'), max_tokens: 8, seed: 1, logit_bias: NO_EOS });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  const prompt = await srv.tokenize({ messages: msgs('Hello') });
  assert.equal(r.usage.prompt_tokens, prompt.length);
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.total_tokens, prompt.length + 8);
});

test('chat completion, streamed, equals the non-streamed text', async () => {
  const body = { model, messages: msgs('Stream this'), max_tokens: 12, seed: 3, logit_bias: NO_EOS };
  const full = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  const { texts, chunks } = await streamText(stream);
  assert.equal(texts[0], full.choices[0].message.content);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finals = chunks.filter((c) => c.choices.length && c.choices[0].finish_reason);
  assert.equal(finals.length, 1);
  assert.equal(finals[0].choices[0].finish_reason, 'length');
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 12);
  assert.equal(usage.usage.prompt_tokens, full.usage.prompt_tokens);
});

test('completions, streamed and not', async () => {
  const body = { model, prompt: 'Once upon a time', max_tokens: 10, seed: 5, logit_bias: NO_EOS };
  const r = await client.completions.create(body);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 10);
  const prompt = await srv.tokenize({ content: 'Once upon a time', add_special: true });
  assert.equal(r.usage.prompt_tokens, prompt.length);
  const { texts } = await streamText(await client.completions.create({ ...body, stream: true }));
  assert.equal(texts[0], r.choices[0].text);
});

test('n > 1: choice i is the solo output of seed + i', async () => {
  const body = { model, messages: msgs('Choose'), max_tokens: 8, seed: 20, n: 3, logit_bias: NO_EOS };
  const r = await client.chat.completions.create(body);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(r.usage.completion_tokens, 24);
  for (let i = 0; i < 3; i++) {
    const solo = await client.chat.completions.create({ ...body, n: 1, seed: 20 + i });
    assert.equal(r.choices[i].message.content, solo.choices[0].message.content, `choice ${i}`);
  }
  const { texts } = await streamText(await client.chat.completions.create({ ...body, stream: true }));
  assert.deepEqual([texts[0], texts[1], texts[2]], r.choices.map((c) => c.message.content));
});

test('stop strings', async () => {
  const body = { model, prompt: 'Stop me', max_tokens: 30, seed: 9, logit_bias: NO_EOS };
  const full = (await client.completions.create(body)).choices[0].text;
  assert.ok(full.length > 12, full);
  const stop = full.slice(8, 11);
  const want = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ ...body, stop: [stop] });
  assert.equal(r.choices[0].text, want);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const chat = await client.chat.completions.create({ model, messages: msgs('x'), max_tokens: 30, seed: 9, logit_bias: NO_EOS });
  const text = chat.choices[0].message.content;
  const s2 = text.slice(5, 8);
  const c2 = await client.chat.completions.create({ model, messages: msgs('x'), max_tokens: 30, seed: 9, logit_bias: NO_EOS, stop: s2 });
  assert.equal(c2.choices[0].message.content, text.slice(0, text.indexOf(s2)));
});

test('seed reproducibility', async () => {
  const body = { model, messages: msgs('Random?'), max_tokens: 10, seed: 77, temperature: 1.2 };
  const a = await client.chat.completions.create(body);
  const b = await client.chat.completions.create(body);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('usage counts the tokens really generated and the reused prompt', async () => {
  const body = { model, messages: msgs('Count my tokens please'), max_tokens: 9, seed: 2, logprobs: true, top_logprobs: 2, logit_bias: NO_EOS };
  const r = await client.chat.completions.create(body);
  assert.equal(r.choices[0].logprobs.content.length, r.usage.completion_tokens);
  for (const t of r.choices[0].logprobs.content) assert.ok(t.logprob <= 0 && t.top_logprobs.length === 2);
  // the same prompt again: all but its last token come from the cache
  const again = await client.chat.completions.create(body);
  assert.equal(again.usage.prompt_tokens_details.cached_tokens, again.usage.prompt_tokens - 1);
});

test('concurrent clients each get exactly their solo output', async () => {
  const bodies = [0, 1, 2, 3].map((i) => ({
    model, messages: msgs(`Client number ${i} ${'padding '.repeat(i * 20)}`), max_tokens: 16, seed: 50 + i, logit_bias: NO_EOS,
  }));
  const solo = [];
  for (const b of bodies) solo.push((await client.chat.completions.create(b)).choices[0].message.content);
  const m0 = await srv.metrics();
  const together = await Promise.all(bodies.map(async (b, i) => {
    if (i % 2) return (await streamText(await client.chat.completions.create({ ...b, stream: true }))).texts[0];
    return (await client.chat.completions.create(b)).choices[0].message.content;
  }));
  const m1 = await srv.metrics();
  assert.deepEqual(together, solo);
  const steps = m1.smoe_engine_steps_total - m0.smoe_engine_steps_total;
  const entries = m1.smoe_engine_batch_entries_total - m0.smoe_engine_batch_entries_total;
  assert.ok(entries > steps, `never batched: ${entries} entries in ${steps} steps`);
});

test('abort (AbortController) cancels the sequence', async () => {
  await srv.waitMetric('smoe_active_sequences', (v) => v === 0);
  const m0 = await srv.metrics();
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model, messages: msgs('Go on forever'), max_tokens: 3900, logit_bias: NO_EOS, stream: true },
    { signal: controller.signal });
  let n = 0;
  // the SDK ends the iteration quietly on an abort (or throws an AbortError)
  try {
    for await (const chunk of stream) {
      if (chunk.choices.length && ++n === 3) controller.abort();
      assert.ok(n <= 50, 'the stream went on after the abort');
    }
  } catch (e) {
    assert.ok(e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError, String(e));
  }
  assert.equal(n >= 3, true);
  await srv.waitMetric('smoe_active_sequences', (v) => v === 0);
  const m1 = await srv.metrics();
  assert.equal(m1.smoe_sequences_cancelled_total, m0.smoe_sequences_cancelled_total + 1);
  assert.ok(m1.smoe_generated_tokens_total - m0.smoe_generated_tokens_total < 3900);
  assert.ok(m1.smoe_cancel_lag_steps_max <= 1, `ran ${m1.smoe_cancel_lag_steps_max} steps after the client left`);
  assert.equal(m1.smoe_kv_cache_busy_tokens, 0);
  // the server goes on serving
  const r = await client.chat.completions.create({ model, messages: msgs('still there?'), max_tokens: 2 });
  assert.equal(r.choices.length, 1);
});

test('error shapes through the client', async () => {
  await assert.rejects(client.chat.completions.create({ model, messages: msgs('x'), temperature: 'hot' }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    assert.equal(e.type, 'invalid_request_error');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model, messages: [] }), (e) => e.status === 400 && e.param === 'messages');
  await assert.rejects(client.chat.completions.create({ model, messages: msgs('x'), max_tokens: 10 ** 6 }),
    (e) => e.status === 400 && e.param === 'max_tokens');
  await assert.rejects(client.chat.completions.create({ model, messages: msgs('x'), n: 0 }), (e) => e.status === 400 && e.param === 'n');
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: msgs('x') }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(client.models.retrieve('nope'), (e) => e instanceof OpenAI.NotFoundError);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);
  assert.equal((await client.models.retrieve(model)).id, model);
  // a huge body
  await assert.rejects(client.chat.completions.create({ model, messages: msgs('x'.repeat(9 << 20)) }), (e) => e.status === 413);
});

test('malformed JSON, invalid UTF-8 and deep nesting over raw HTTP', async () => {
  const post = async (body) => {
    const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    return { status: r.status, body: await r.json() };
  };
  for (const body of ['{', '{"model":', 'null', '[]']) {
    const r = await post(body);
    assert.equal(r.status, 400);
    assert.deepEqual(Object.keys(r.body.error), ['message', 'type', 'param', 'code']);
  }
  const bad = Buffer.concat([Buffer.from('{"model":"tiny","messages":[{"role":"user","content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]);
  assert.equal((await post(bad)).status, 400);
  const deep = `{"messages":${'['.repeat(500)}${']'.repeat(500)}}`;
  const r = await post(deep);
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /nested/);
});

test('API key', async () => {
  const keyed = await startServer(['--api-key', 'sk-test-123']);
  try {
    const good = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sk-test-123', maxRetries: 0 });
    const bad = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sk-test-124', maxRetries: 0 });
    const r = await good.chat.completions.create({ model, messages: msgs('hi'), max_tokens: 2 });
    assert.equal(r.choices.length, 1);
    await assert.rejects(bad.chat.completions.create({ model, messages: msgs('hi'), max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      return true;
    });
    assert.equal((await fetch(`${keyed.url}/health`)).status, 200);
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});

test('queue full: 503 with Retry-After', async () => {
  const small = await startServer(['--parallel', 1, '--queue', 0, '--ctx-size', 4096, '--max-tokens', 4000]);
  try {
    const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const controller = new AbortController();
    const stream = await c.completions.create({ model, prompt: 'x', max_tokens: 3900, logit_bias: NO_EOS, stream: true },
      { signal: controller.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await assert.rejects(c.completions.create({ model, prompt: 'y', max_tokens: 2 }), (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError);
      assert.equal(e.status, 503);
      assert.equal(e.headers.get('retry-after'), '1');
      assert.equal(e.code, 'queue_full');
      return true;
    });
    controller.abort();
    await small.waitMetric('smoe_active_sequences', (v) => v === 0);
  } finally {
    assert.equal(await small.stop(), 0);
  }
});
