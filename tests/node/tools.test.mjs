// tools.test.mjs - function calling through the real `openai` and `ollama`
// npm clients: a call made under tool_choice required / a named function,
// streamed and not, then its result sent back in the history.  Needs the
// Mistral v3 vocabulary (../shared): the synthetic model must have the
// [TOOL_CALLS] token; without it every test skips.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Ollama } from 'ollama';
import OpenAI from 'openai';

import { NO_EOS, startServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = process.env.SMOE_SHARED || path.join(here, '..', '..', '..', 'shared');
const skip = process.env.SMOE_TEST_MODEL || fs.existsSync(path.join(shared, 'tokenizers', 'mistral-v3.model'))
  ? false : 'needs ../shared/tokenizers/mistral-v3.model';

let srv;
let client;
let ollama;
const model = 'tiny';
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 10 }, days: { type: 'integer', minimum: 1, maximum: 7 } },
      required: ['city', 'days'],
      additionalProperties: false,
    },
  },
}, { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } }];
const messages = [{ role: 'user', content: 'Weather in Paris for 3 days?' }];

// what the schema demands of get_weather's arguments (random weights: only
// the constraint makes them right)
function checkArgs(name, args) {
  if (name === 'now') { assert.deepEqual(args, {}); return; }
  assert.equal(name, 'get_weather');
  assert.deepEqual(Object.keys(args).sort(), ['city', 'days']);
  assert.equal(typeof args.city, 'string');
  assert.ok([...args.city].length <= 10);
  assert.ok(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7);
}

before(async () => {
  if (skip) return;
  srv = await startServer(['--parallel', 2, '--ctx-size', 2048, '--max-tokens', 300]);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120000 });
  ollama = new Ollama({ host: srv.url });
});

after(async () => {
  if (srv) assert.equal(await srv.stop(), 0, srv.log().slice(-3000));
});

test('openai: tool call round trip, streamed and not', { skip }, async () => {
  const body = { model, messages, tools, tool_choice: 'required', max_tokens: 200, seed: 5, logit_bias: NO_EOS };
  const r = await client.chat.completions.create(body);
  const ch = r.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.content, null);
  assert.ok(ch.message.tool_calls.length >= 1);
  for (const c of ch.message.tool_calls) {
    assert.equal(c.type, 'function');
    assert.match(c.id, /^[a-zA-Z0-9]{9}$/);
    checkArgs(c.function.name, JSON.parse(c.function.arguments));
  }
  // streamed: deltas with index, id, type, name, then argument fragments
  const calls = [];
  let finish = null;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
    for (const c of chunk.choices) {
      for (const d of c.delta.tool_calls ?? []) {
        if (!calls[d.index]) calls[d.index] = { id: d.id, name: d.function.name, args: '' };
        calls[d.index].args += d.function.arguments ?? '';
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.deepEqual(calls.map((c) => [c.name, JSON.parse(c.args)]),
    ch.message.tool_calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]));
  // the results go back; the answer is text
  const history = [...messages, ch.message,
    ...ch.message.tool_calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: '{"temp": 21}' }))];
  const r2 = await client.chat.completions.create({ model, messages: history, tools, max_tokens: 5, seed: 1, logit_bias: { ...NO_EOS, 5: -100 } });
  assert.equal(typeof r2.choices[0].message.content, 'string');
  assert.equal(r2.choices[0].finish_reason, 'length');
  // a named function is the one called
  const n = await client.chat.completions.create({ ...body, tool_choice: { type: 'function', function: { name: 'now' } } });
  assert.ok(n.choices[0].message.tool_calls.length >= 1);
  for (const c of n.choices[0].message.tool_calls) assert.equal(c.function.name, 'now');
});

test('ollama: tool call round trip', { skip }, async () => {
  // Ollama has no tool_choice; smoe takes OpenAI's as an extension (the
  // random model would hardly ever start a call by itself)
  const req = { model, messages, tools, tool_choice: 'required', options: { seed: 7, num_predict: 200 } };
  const r = await ollama.chat(req);
  assert.ok(r.message.tool_calls.length >= 1);
  for (const c of r.message.tool_calls) checkArgs(c.function.name, c.function.arguments);
  const streamed = [];
  for await (const part of await ollama.chat({ ...req, stream: true })) streamed.push(...(part.message.tool_calls ?? []));
  assert.deepEqual(streamed.map((c) => c.function), r.message.tool_calls.map((c) => c.function));
  // the history as Ollama clients send it: calls without ids, results by name
  const history = [...messages, { role: 'assistant', content: '', tool_calls: r.message.tool_calls.map((c) => ({ function: c.function })) },
    ...r.message.tool_calls.map((c) => ({ role: 'tool', content: '21 degrees', tool_name: c.function.name }))];
  const r2 = await ollama.chat({ model, messages: history, tools, options: { seed: 1, num_predict: 4 } });
  assert.equal(typeof r2.message.content, 'string');
  assert.equal(r2.done, true);
});
