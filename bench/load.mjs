#!/usr/bin/env node
// bench/load.mjs - load generator for `smoe serve`.
//
//   node bench/load.mjs [--url http://127.0.0.1:8080] [--clients N] [--duration S]
//                       [--max-tokens N] [--prompt TEXT] [--api chat|completions]
//                       [--api-key KEY] [--model ID] [--json]
//
// N clients each send streaming requests one after another (OpenAI API, SSE,
// stream_options.include_usage) for S seconds; requests still running at the
// end are waited for and counted.  Every request has its own seed, so the
// texts differ; the end-of-sequence token is banned (logit_bias) so every
// request generates exactly --max-tokens tokens.  Prints requests/s,
// generated tokens/s in aggregate (the usage chunks' completion_tokens over
// the wall time), time to first token and end-to-end latency (p50, p99,
// max), and the errors by kind (HTTP status, network error code, error
// events in the stream).  Plain Node 20: no dependencies.
//
// The load stays on the address given (loopback by default) and stops by
// itself after --duration seconds (plus the requests in flight).

const opts = {
  url: 'http://127.0.0.1:8080', clients: 1, duration: 60, maxTokens: 64, api: 'chat', apiKey: null,
  model: null, json: false,
  prompt: 'Write a long story about a lighthouse keeper who finds a message in a bottle.',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => {
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--url') opts.url = v().replace(/\/$/, '');
  else if (a === '--clients' || a === '-c') opts.clients = Number(v());
  else if (a === '--duration' || a === '-d') opts.duration = Number(v());
  else if (a === '--max-tokens' || a === '-n') opts.maxTokens = Number(v());
  else if (a === '--prompt') opts.prompt = v();
  else if (a === '--api') opts.api = v();
  else if (a === '--api-key') opts.apiKey = v();
  else if (a === '--model') opts.model = v();
  else if (a === '--json') opts.json = true;
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/load.mjs [--url URL] [--clients N] [--duration S] [--max-tokens N] '
      + '[--prompt TEXT] [--api chat|completions] [--api-key KEY] [--model ID] [--json]');
    process.exit(0);
  } else throw new Error(`unknown option ${a}`);
}
if (!(opts.clients >= 1) || !(opts.duration > 0) || !(opts.maxTokens >= 1)) throw new Error('bad --clients, --duration or --max-tokens');
if (!['chat', 'completions'].includes(opts.api)) throw new Error('--api is chat or completions');

const headers = { 'Content-Type': 'application/json' };
if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;

const results = [];      // {ok, ttft, e2e, tokens}
const errors = {};       // kind -> count
let seedCounter = 1;

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function fail(kind) { errors[kind] = (errors[kind] || 0) + 1; }

async function oneRequest() {
  const body = {
    max_tokens: opts.maxTokens, stream: true, stream_options: { include_usage: true },
    seed: seedCounter++, logit_bias: { 2: -100 },
  };
  if (opts.model) body.model = opts.model;
  const path = opts.api === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  if (opts.api === 'chat') body.messages = [{ role: 'user', content: opts.prompt }];
  else body.prompt = opts.prompt;
  const t0 = performance.now();
  let ttft = null;
  let tokens = null;
  let res;
  try {
    res = await fetch(opts.url + path, { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    fail(`network ${e.cause?.code || e.name}`);
    return;
  }
  if (res.status !== 200) {
    fail(`HTTP ${res.status}`);
    await res.arrayBuffer().catch(() => {});
    return;
  }
  const decoder = new TextDecoder();
  let buf = '';
  let done = false;
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        const obj = JSON.parse(data);
        if (obj.error) { fail(`stream error ${obj.error.code || obj.error.type}`); return; }
        if (obj.usage) tokens = obj.usage.completion_tokens;
        const c = obj.choices?.[0];
        const piece = c ? (c.delta ? c.delta.content : c.text) : null;
        if (ttft === null && piece) ttft = performance.now() - t0;
      }
    }
  } catch (e) {
    fail(`stream ${e.cause?.code || e.name}`);
    return;
  }
  if (!done || tokens === null) { fail('stream ended early'); return; }
  results.push({ ttft: ttft ?? performance.now() - t0, e2e: performance.now() - t0, tokens });
}

async function client(end) {
  while (performance.now() < end) await oneRequest();
}

async function scrape(name) {
  try {
    const r = await fetch(`${opts.url}/metrics`, { headers });
    const line = (await r.text()).split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.split(' ')[1]) : null;
  } catch { return null; }
}

const steps0 = await scrape('smoe_engine_steps_total');
const entries0 = await scrape('smoe_engine_batch_entries_total');
const start = performance.now();
const end = start + opts.duration * 1000;
await Promise.all(Array.from({ length: opts.clients }, () => client(end)));
const wall = (performance.now() - start) / 1000;
const steps1 = await scrape('smoe_engine_steps_total');
const entries1 = await scrape('smoe_engine_batch_entries_total');

const ttft = results.map((r) => r.ttft).sort((a, b) => a - b);
const e2e = results.map((r) => r.e2e).sort((a, b) => a - b);
const tokens = results.reduce((s, r) => s + r.tokens, 0);
const summary = {
  clients: opts.clients, duration_s: opts.duration, wall_s: +wall.toFixed(2), max_tokens: opts.maxTokens,
  requests: results.length, requests_per_s: +(results.length / wall).toFixed(3),
  generated_tokens: tokens, tokens_per_s: +(tokens / wall).toFixed(2),
  ttft_ms: { p50: +percentile(ttft, 50).toFixed(1), p99: +percentile(ttft, 99).toFixed(1), max: +(ttft.at(-1) ?? NaN).toFixed(1) },
  e2e_ms: { p50: +percentile(e2e, 50).toFixed(1), p99: +percentile(e2e, 99).toFixed(1), max: +(e2e.at(-1) ?? NaN).toFixed(1) },
  errors,
  engine_steps: steps1 !== null && steps0 !== null ? steps1 - steps0 : null,
  mean_batch: steps1 !== null && entries1 !== null && steps1 > steps0 ? +((entries1 - entries0) / (steps1 - steps0)).toFixed(2) : null,
};
if (opts.json) console.log(JSON.stringify(summary));
else {
  const errs = Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  console.log(`clients ${summary.clients}, ${summary.duration_s} s (wall ${summary.wall_s} s), max_tokens ${summary.max_tokens}`);
  console.log(`  requests      ${summary.requests} (${summary.requests_per_s} /s)`);
  console.log(`  generated     ${summary.generated_tokens} tokens, ${summary.tokens_per_s} tokens/s in aggregate`);
  console.log(`  TTFT          p50 ${summary.ttft_ms.p50} ms, p99 ${summary.ttft_ms.p99} ms, max ${summary.ttft_ms.max} ms`);
  console.log(`  end to end    p50 ${summary.e2e_ms.p50} ms, p99 ${summary.e2e_ms.p99} ms, max ${summary.e2e_ms.max} ms`);
  if (summary.engine_steps !== null) console.log(`  engine        ${summary.engine_steps} steps, ${summary.mean_batch} tokens per step on average`);
  console.log(`  errors        ${errs}`);
}
process.exitCode = Object.keys(errors).length ? 1 : 0;
