#!/usr/bin/env node
// bench/soak.mjs - long-running mixed load against `smoe serve`, with checks.
//
//   node bench/soak.mjs --url http://127.0.0.1:8080 --pid PID [--clients 8]
//                       [--duration 1800] [--max-tokens 48] [--api-key KEY] [--json]
//
// N clients (default 8) each send requests one after another for --duration
// seconds (default 30 minutes; the environment variable SMOE_SOAK_SECONDS
// overrides both), picking each time one of:
//   OpenAI chat and completions streamed (SSE, usage chunk, [DONE]), a chat
//   not streamed, Ollama /api/chat and /api/generate streamed (NDJSON, last
//   line done:true), structured output (response_format json_schema, the
//   content parsed and checked against the schema's shape when it finished
//   with "stop"), tool calls (tools + tool_choice "required", only when a
//   probe at the start shows the server makes tool calls), a cancellation
//   (a stream aborted after its first few events) and a malformed request
//   (a 4xx with an error body expected).
// Afterwards it checks: zero unexpected errors (any other status, a network
// error, an error event, a stream without its final chunk / [DONE] /
// done:true, an event after the end, bad JSON); the server's resident
// memory at the end of the load within 5% of its level after the first
// minute (VmRSS in /proc/PID/status; the first half of the run when it is
// shorter than two minutes); its open file descriptors (/proc/PID/fd) back
// at their idle level once the clients' connections are closed; the
// server idle (no active or queued sequence) at the end.  Prints a summary
// and exits 1 when a check failed.  Without --pid the memory and fd checks
// are skipped (said so in the summary).  Plain Node 20: node:http only.
//
// The load stays on the address given and stops by itself.

import http from 'node:http';
import fs from 'node:fs';

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const opts = { url: 'http://127.0.0.1:8080', pid: null, clients: 8, duration: 1800, maxTokens: 48, apiKey: null,
  json: false, rssTolerance: 0.05, sample: 5 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => {
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--url') opts.url = v().replace(/\/$/, '');
  else if (a === '--pid') opts.pid = Number(v());
  else if (a === '--clients' || a === '-c') opts.clients = Number(v());
  else if (a === '--duration' || a === '-d') opts.duration = Number(v());
  else if (a === '--max-tokens' || a === '-n') opts.maxTokens = Number(v());
  else if (a === '--api-key') opts.apiKey = v();
  else if (a === '--rss-tolerance') opts.rssTolerance = Number(v());
  else if (a === '--json') opts.json = true;
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/soak.mjs [--url URL] [--pid PID] [--clients N] [--duration S] '
      + '[--max-tokens N] [--api-key KEY] [--rss-tolerance F] [--json]   (SMOE_SOAK_SECONDS overrides --duration)');
    process.exit(0);
  } else throw new Error(`unknown option ${a}`);
}
if (process.env.SMOE_SOAK_SECONDS) opts.duration = Number(process.env.SMOE_SOAK_SECONDS);
if (!(opts.clients >= 1) || !(opts.duration > 0) || !(opts.maxTokens >= 4)) throw new Error('bad --clients, --duration or --max-tokens');
const target = new URL(opts.url);

// ---------------------------------------------------------------------------
// HTTP: one keep-alive agent for all clients (destroyed at the end, so the
// server's connection count can go back to idle)
// ---------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: opts.clients + 4 });

// Sends a request; onData(chunk) sees the body as it comes.  Resolves
// {status, headers, body (when not streamed)}; rejects on network errors.
function send(method, path, body, { signal, onData, rawBody } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;
    const data = rawBody ?? (body === undefined ? null : Buffer.from(JSON.stringify(body)));
    if (data) headers['Content-Length'] = data.length;
    const req = http.request({ host: target.hostname, port: target.port, path, method, headers, agent, signal }, (res) => {
      const parts = [];
      res.on('data', (c) => (onData ? onData(c) : parts.push(c)));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('response aborted'), { code: 'ABORTED' })));
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Tallies
// ---------------------------------------------------------------------------

const counts = {};       // kind -> completed requests
const errors = {};       // error kind -> count
const examples = {};     // error kind -> first detail
let generated = 0;       // completion tokens from usage / eval_count
let cancelled = 0;
let rejected4xx = 0;
const failures = [];     // failed end checks

function ok(kind) { counts[kind] = (counts[kind] || 0) + 1; }
function err(kind, detail) {
  errors[kind] = (errors[kind] || 0) + 1;
  if (!(kind in examples)) examples[kind] = String(detail ?? '').slice(0, 300);
}

const PROMPTS = ['Tell me about lighthouses.', 'Write a haiku about rain.', 'What is 17 times 23?',
  'List three colours.', 'Summarise the history of the bicycle in one paragraph.', 'Hello!',
  'Translate "good morning" into French.', 'Describe a cat to someone who has never seen one.'];
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const seed = () => Math.floor(Math.random() * 2 ** 31);
const nTokens = () => 4 + Math.floor(Math.random() * (opts.maxTokens - 3));

// ---------------------------------------------------------------------------
// Stream parsers: every event checked, the end required
// ---------------------------------------------------------------------------

// SSE: data: lines separated by blank lines; the last is [DONE].
function sseParser() {
  let buf = '';
  const st = { events: [], done: false, bad: null };
  st.feed = (chunk) => {
    buf += chunk.toString();
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (st.bad) continue;
      if (!block.startsWith('data: ')) { st.bad = `not an SSE data event: ${block.slice(0, 80)}`; continue; }
      if (st.done) { st.bad = 'an event after [DONE]'; continue; }
      const payload = block.slice(6);
      if (payload === '[DONE]') { st.done = true; continue; }
      try { st.events.push(JSON.parse(payload)); } catch { st.bad = `bad JSON event: ${payload.slice(0, 80)}`; }
    }
  };
  st.rest = () => buf;
  return st;
}

// NDJSON: one object a line; the last has done:true.
function ndjsonParser() {
  let buf = '';
  const st = { events: [], done: false, bad: null };
  st.feed = (chunk) => {
    buf += chunk.toString();
    let at;
    while ((at = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, at);
      buf = buf.slice(at + 1);
      if (st.bad) continue;
      if (st.done) { st.bad = 'a line after done:true'; continue; }
      try {
        const o = JSON.parse(line);
        st.events.push(o);
        if (o.done === true) st.done = true;
      } catch { st.bad = `bad JSON line: ${line.slice(0, 80)}`; }
    }
  };
  st.rest = () => buf;
  return st;
}

// ---------------------------------------------------------------------------
// Request kinds
// ---------------------------------------------------------------------------

// A streamed OpenAI request (chat or completions): checks the chunks and
// returns {text, finish, toolCalls} or null after recording an error.
async function openaiStream(kind, path, body) {
  body = { ...body, stream: true, stream_options: { include_usage: true }, seed: seed() };
  const p = sseParser();
  let res;
  try { res = await send('POST', path, body, { onData: p.feed }); } catch (e) { err(`${kind}: network ${e.code || e.name}`, e.message); return null; }
  if (res.status !== 200) { err(`${kind}: HTTP ${res.status}`, p.rest()); return null; }
  if (p.bad) { err(`${kind}: malformed stream`, p.bad); return null; }
  if (!p.done || p.rest() !== '') { err(`${kind}: stream without [DONE]`, p.rest()); return null; }
  let text = '';
  let finish = null;
  let usage = null;
  const calls = [];
  for (const e of p.events) {
    if (e.error) { err(`${kind}: error event`, JSON.stringify(e.error)); return null; }
    if (e.usage) usage = e.usage;
    for (const c of e.choices || []) {
      if (finish !== null) { err(`${kind}: a chunk after the finish_reason`, JSON.stringify(e)); return null; }
      if (c.delta?.content) text += c.delta.content;
      if (c.text) text += c.text;
      for (const tc of c.delta?.tool_calls || []) {
        const at = tc.index ?? 0;
        calls[at] = calls[at] || { name: '', arguments: '' };
        if (tc.function?.name) calls[at].name += tc.function.name;
        if (tc.function?.arguments) calls[at].arguments += tc.function.arguments;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  if (finish === null) { err(`${kind}: no final chunk (finish_reason)`, JSON.stringify(p.events.at(-1))); return null; }
  if (!usage || typeof usage.completion_tokens !== 'number') { err(`${kind}: no usage chunk`, JSON.stringify(p.events.at(-1))); return null; }
  generated += usage.completion_tokens;
  return { text, finish, calls };
}

async function ollamaStream(kind, path, body) {
  body = { ...body, stream: true, options: { ...(body.options || {}), seed: seed() } };
  const p = ndjsonParser();
  let res;
  try { res = await send('POST', path, body, { onData: p.feed }); } catch (e) { err(`${kind}: network ${e.code || e.name}`, e.message); return null; }
  if (res.status !== 200) { err(`${kind}: HTTP ${res.status}`, p.rest()); return null; }
  if (p.bad) { err(`${kind}: malformed stream`, p.bad); return null; }
  if (!p.done || p.rest() !== '') { err(`${kind}: stream without done:true`, p.rest() || JSON.stringify(p.events.at(-1))); return null; }
  const last = p.events.at(-1);
  if (p.events.some((e) => e.error)) { err(`${kind}: error line`, JSON.stringify(p.events.find((e) => e.error))); return null; }
  if (!['stop', 'length'].includes(last.done_reason) || typeof last.eval_count !== 'number') { err(`${kind}: bad final line`, JSON.stringify(last)); return null; }
  generated += last.eval_count;
  const text = p.events.map((e) => e.message?.content ?? e.response ?? '').join('');
  return { last, text };
}

const SCHEMA = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' } },
  required: ['name', 'age'], additionalProperties: false };
const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 } }, required: ['city'] } } }];

const kinds = {
  async chat() {
    const r = await openaiStream('chat', '/v1/chat/completions', { messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: nTokens() });
    if (r) ok('chat');
  },
  async completions() {
    const r = await openaiStream('completions', '/v1/completions', { prompt: pick(PROMPTS), max_tokens: nTokens() });
    if (r) ok('completions');
  },
  async chat_whole() {
    let res;
    const body = { messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: nTokens(), seed: seed() };
    try { res = await send('POST', '/v1/chat/completions', body); } catch (e) { err(`chat_whole: network ${e.code || e.name}`, e.message); return; }
    let o;
    try { o = JSON.parse(res.body); } catch { err('chat_whole: bad JSON', res.body.slice(0, 200)); return; }
    if (res.status !== 200) { err(`chat_whole: HTTP ${res.status}`, res.body); return; }
    const c = o.choices?.[0];
    if (!c || typeof c.message?.content !== 'string' || !c.finish_reason || typeof o.usage?.completion_tokens !== 'number') {
      err('chat_whole: bad shape', res.body.slice(0, 200)); return;
    }
    generated += o.usage.completion_tokens;
    ok('chat_whole');
  },
  async ollama_chat() {
    const r = await ollamaStream('ollama_chat', '/api/chat', { model: OLLAMA_MODEL, messages: [{ role: 'user', content: pick(PROMPTS) }], options: { num_predict: nTokens() } });
    if (r) ok('ollama_chat');
  },
  async ollama_generate() {
    const r = await ollamaStream('ollama_generate', '/api/generate', { model: OLLAMA_MODEL, prompt: pick(PROMPTS), options: { num_predict: nTokens() } });
    if (r) ok('ollama_generate');
  },
  async structured() {
    const r = await openaiStream('structured', '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'A person as JSON.' }], max_tokens: 64,
      response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema: SCHEMA } } });
    if (!r) return;
    if (r.finish === 'stop') { // complete: must be valid against the schema's shape
      let o;
      try { o = JSON.parse(r.text); } catch { err('structured: output is not JSON', r.text); return; }
      const keys = Object.keys(o).sort().join(',');
      if (keys !== 'age,name' || typeof o.name !== 'string' || !Number.isInteger(o.age) || [...o.name].length > 12) { // maxLength counts code points
        err('structured: output does not match the schema', r.text); return;
      }
    }
    ok('structured');
  },
  async ollama_format() {
    const r = await ollamaStream('ollama_format', '/api/chat', { model: OLLAMA_MODEL, format: SCHEMA,
      messages: [{ role: 'user', content: 'A person as JSON.' }], options: { num_predict: 64 } });
    if (!r) return;
    if (r.last.done_reason === 'stop') {
      let o;
      try { o = JSON.parse(r.text); } catch { err('ollama_format: output is not JSON', r.text); return; }
      if (typeof o.name !== 'string' || !Number.isInteger(o.age)) { err('ollama_format: output does not match the schema', r.text); return; }
    }
    ok('ollama_format');
  },
  async tools() {
    const r = await openaiStream('tools', '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }], max_tokens: 64, tools: TOOLS, tool_choice: 'required' });
    if (!r) return;
    if (r.finish === 'tool_calls') {
      if (!r.calls.length || r.calls.some((c) => c.name !== 'get_weather')) { err('tools: bad tool call', JSON.stringify(r.calls)); return; }
      for (const c of r.calls) {
        try { JSON.parse(c.arguments); } catch { err('tools: arguments are not JSON', c.arguments); return; }
      }
    } else if (r.finish !== 'length') { err(`tools: finish_reason ${r.finish}`, r.text); return; }
    ok('tools');
  },
  async cancel() {
    // Abort after a few streamed events: the server must free the sequence.
    const ac = new AbortController();
    const after = 1 + Math.floor(Math.random() * 4);
    const p = sseParser();
    let events = 0;
    const body = { messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: opts.maxTokens, stream: true,
      seed: seed(), logit_bias: { 2: -100 } };
    try {
      const res = await send('POST', '/v1/chat/completions', body, { signal: ac.signal, onData: (c) => {
        p.feed(c);
        if (p.events.length >= after && events++ === 0) ac.abort();
      } });
      // ended before the abort took effect (a short answer): must be complete
      if (res.status !== 200) { err(`cancel: HTTP ${res.status}`, p.rest()); return; }
      if (!ac.signal.aborted && !p.done) { err('cancel: stream without [DONE]', p.rest()); return; }
    } catch (e) {
      if (!ac.signal.aborted) { err(`cancel: network ${e.code || e.name}`, e.message); return; }
    }
    if (p.bad) { err('cancel: malformed stream', p.bad); return; }
    cancelled++;
    ok('cancel');
  },
  async malformed() {
    const [name, method, path, b, want] = pick(MALFORMED);
    const body = typeof b === 'function' ? b() : b;
    let res;
    try { res = await send(method, path, undefined, { rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body) }); } catch (e) { err(`malformed ${name}: network ${e.code || e.name}`, e.message); return; }
    if (res.status !== want) { err(`malformed ${name}: HTTP ${res.status}, expected ${want}`, res.body); return; }
    let o;
    try { o = JSON.parse(res.body); } catch { err(`malformed ${name}: error body is not JSON`, res.body); return; }
    if (!o.error) { err(`malformed ${name}: no error in the body`, res.body); return; }
    rejected4xx++;
    ok('malformed');
  },
};

// [name, method, path, raw body (or a function making it), expected status]
const MALFORMED = [
  ['truncated JSON', 'POST', '/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"', 400],
  ['messages not an array', 'POST', '/v1/chat/completions', '{"messages": "hi"}', 400],
  ['max_tokens a string', 'POST', '/v1/completions', '{"prompt": "hi", "max_tokens": "ten"}', 400],
  ['negative temperature', 'POST', '/v1/chat/completions', '{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}', 400],
  ['bad schema', 'POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } } }), 400],
  ['deep nesting', 'POST', '/v1/chat/completions', `{"messages": ${'['.repeat(500)}${']'.repeat(500)}}`, 400],
  ['invalid UTF-8', 'POST', '/v1/completions', Buffer.from([...Buffer.from('{"prompt": "'), 0xff, 0xfe, ...Buffer.from('"}')]), 400],
  ['ollama prompt a number', 'POST', '/api/generate', () => `{"model": ${JSON.stringify(OLLAMA_MODEL)}, "prompt": 5}`, 400],
  ['ollama not JSON', 'POST', '/api/chat', 'hello', 400],
  ['unknown route', 'POST', '/v1/nothing', '{}', 404],
];

// Weighted mix (tools only when supported).
let MIX = [['chat', 4], ['completions', 3], ['chat_whole', 1], ['ollama_chat', 2], ['ollama_generate', 2],
  ['structured', 2], ['ollama_format', 1], ['tools', 2], ['cancel', 2], ['malformed', 2]];

function nextKind() {
  const total = MIX.reduce((s, [, w]) => s + w, 0);
  let r = Math.random() * total;
  for (const [k, w] of MIX) if ((r -= w) < 0) return k;
  return MIX[0][0];
}

// ---------------------------------------------------------------------------
// Server-side probes: memory, fds, metrics, tool support
// ---------------------------------------------------------------------------

function rssKiB() {
  if (!opts.pid) return null;
  const m = fs.readFileSync(`/proc/${opts.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : null;
}
function fdCount() { return opts.pid ? fs.readdirSync(`/proc/${opts.pid}/fd`).length : null; }

// Does the server make tool calls?  A non-streamed request with a named
// tool_choice: supported when the answer carries tool_calls.
async function probeTools() {
  try {
    const r = await send('POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'weather?' }], max_tokens: 200,
      seed: 1, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    if (r.status !== 200) return `HTTP ${r.status}: ${r.body.slice(0, 120)}`;
    const c = JSON.parse(r.body).choices?.[0];
    return c?.message?.tool_calls?.length ? true : `no tool_calls in the answer (finish_reason ${c?.finish_reason})`;
  } catch (e) { return e.message; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

// the Ollama model name (Ollama checks it; OpenAI requests leave it out)
let OLLAMA_MODEL = 'smoe';
try { OLLAMA_MODEL = JSON.parse((await send('GET', '/api/tags')).body).models[0].name; } catch (e) { err('setup: /api/tags', e.message); }
const toolSupport = await probeTools();
if (toolSupport !== true) MIX = MIX.filter(([k]) => k !== 'tools');
for (const s of Object.values(agent.freeSockets).flat()) s.destroy();

// idle fd level: the probe's connection closed, the server's side of it too
// (closed asynchronously: polled a little)
let fdIdle = fdCount();
for (let i = 0; i < 50 && opts.pid; i++) {
  await sleep(100);
  const n = fdCount();
  if (n >= fdIdle && i >= 5) break;
  fdIdle = Math.min(fdIdle, n);
}

const t0 = performance.now();
const end = t0 + opts.duration * 1000;
const firstMinute = Math.min(60, opts.duration / 2) * 1000;
const samples = [];      // [seconds, rss KiB, fds]
let rssMinute = null;
let fdMinute = null;
let rssEnd = null;
let fdEnd = null;
let stopSampling = false;
const sampler = (async () => {
  if (!opts.pid) return;
  while (!stopSampling) {
    const t = performance.now() - t0;
    const s = [+(t / 1000).toFixed(1), rssKiB(), fdCount()];
    samples.push(s);
    if (rssMinute === null && t >= firstMinute) { rssMinute = s[1]; fdMinute = s[2]; }
    await sleep(Math.min(opts.sample * 1000, Math.max(50, end - performance.now())));
  }
})();

let inFlight = 0;
async function client() {
  while (performance.now() < end) {
    inFlight++;
    try { await kinds[nextKind()](); } catch (e) { err(`client exception ${e.name}`, e.stack); }
    inFlight--;
  }
}
const clients = Array.from({ length: opts.clients }, () => client());
// RSS at the end of the load: sampled the moment the duration is over, with
// the clients still busy (the same state as after the first minute)
await sleep(Math.max(0, end - performance.now()));
if (opts.pid) { rssEnd = rssKiB(); fdEnd = fdCount(); if (rssMinute === null) { rssMinute = samples[0]?.[1]; fdMinute = samples[0]?.[2]; } }
await Promise.all(clients);
stopSampling = true;
await sampler;
const wall = (performance.now() - t0) / 1000;

// after the load: every connection closed, the server idle again
agent.destroy();
let fdAfter = null;
if (opts.pid) {
  for (let i = 0; i < 100; i++) {       // the server closes its sides asynchronously
    fdAfter = fdCount();
    if (fdAfter <= fdIdle) break;
    await sleep(100);
  }
}
const checkAgent = new http.Agent({ keepAlive: false });
const idleMetric = async (name) => {
  const r = await new Promise((resolve, reject) => {
    http.get({ host: target.hostname, port: target.port, path: '/metrics', agent: checkAgent,
      headers: opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : {} }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const line = r.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : null;
};
let active = null;
let queued = null;
for (let i = 0; i < 100; i++) {          // cancelled sequences leave at the next engine step
  active = await idleMetric('smoe_active_sequences').catch(() => null);
  queued = await idleMetric('smoe_queue_length').catch(() => null);
  if (active === 0 && queued === 0) break;
  await sleep(100);
}
const rssAfter = rssKiB();

// ---------------------------------------------------------------------------
// Checks and summary
// ---------------------------------------------------------------------------

const nErrors = Object.values(errors).reduce((s, n) => s + n, 0);
if (nErrors) failures.push(`${nErrors} unexpected errors`);
if (active !== 0 || queued !== 0) failures.push(`server not idle after the load: ${active} active, ${queued} queued`);
if (opts.pid) {
  const growth = rssMinute ? (rssEnd - rssMinute) / rssMinute : 0;
  if (growth > opts.rssTolerance) failures.push(`RSS grew ${(100 * growth).toFixed(1)}% (${rssMinute} -> ${rssEnd} KiB), more than ${100 * opts.rssTolerance}%`);
  if (fdAfter > fdIdle) failures.push(`open fds ${fdAfter} after the load, ${fdIdle} before it`);
}
const total = Object.values(counts).reduce((s, n) => s + n, 0);
const summary = {
  clients: opts.clients, duration_s: opts.duration, wall_s: +wall.toFixed(1),
  tools: toolSupport === true ? 'on' : `off (${toolSupport})`,
  requests: total, by_kind: counts, generated_tokens: generated, cancelled, rejected_4xx: rejected4xx,
  errors, error_examples: examples,
  rss_kib: opts.pid ? { first_minute: rssMinute, end: rssEnd, after_idle: rssAfter,
    growth_pct: rssMinute ? +((100 * (rssEnd - rssMinute)) / rssMinute).toFixed(2) : null } : 'not checked (no --pid)',
  fds: opts.pid ? { idle_before: fdIdle, first_minute: fdMinute, end_of_load: fdEnd, idle_after: fdAfter } : 'not checked (no --pid)',
  samples: opts.json ? samples : undefined,
  server_idle_after: { active, queued },
  failures,
};
if (opts.json) console.log(JSON.stringify(summary));
else {
  console.log(`soak: ${opts.clients} clients, ${opts.duration} s (wall ${summary.wall_s} s), tools ${summary.tools}`);
  console.log(`  requests   ${total}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`  tokens     ${generated} generated; ${cancelled} cancelled mid-stream; ${rejected4xx} malformed rejected with 4xx`);
  console.log(`  errors     ${nErrors ? Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join('; ') : 'none'}`);
  for (const [k, v] of Object.entries(examples)) console.log(`    e.g. ${k}: ${v}`);
  if (opts.pid) {
    console.log(`  RSS        ${rssMinute} KiB after ${firstMinute / 1000} s, ${rssEnd} KiB at the end (${summary.rss_kib.growth_pct}%), ${rssAfter} KiB idle after`);
    console.log(`  fds        ${fdIdle} idle before, ${fdMinute} after ${firstMinute / 1000} s, ${fdEnd} at the end of the load, ${fdAfter} idle after`);
  } else console.log('  RSS, fds   not checked (no --pid)');
  console.log(`  result     ${failures.length ? 'FAIL: ' + failures.join('; ') : 'PASS'}`);
}
process.exitCode = failures.length ? 1 : 0;
