// server.mjs - start `smoe serve` for the client-library tests.
//
// SMOE_BIN (default: build/smoe) is the binary and SMOE_TEST_MODEL the
// model; without SMOE_TEST_MODEL a tiny synthetic model is made (with the
// real Mistral v3 vocabulary when ../shared is there).  The port comes from
// the server's own "listening on" line (--port 0), readiness from its
// "ready" line: no sleeps.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
export const SMOE = process.env.SMOE_BIN || path.join(root, 'build', 'smoe');
export const EOS = 2; // </s>
export const NO_EOS = { [EOS]: -100 }; // the random model must not stop early

let madeModel = null;
function model() {
  if (process.env.SMOE_TEST_MODEL) return process.env.SMOE_TEST_MODEL;
  if (madeModel) return madeModel;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smoe-node-'));
  madeModel = path.join(dir, 'tiny.gguf');
  const shared = process.env.SMOE_SHARED || path.join(root, '..', 'shared');
  const vocab = path.join(shared, 'tokenizers', 'mistral-v3.model');
  const args = ['synth', '--preset', 'tiny', '-o', madeModel];
  if (fs.existsSync(vocab)) args.push('--vocab', vocab);
  const p = spawnSync(SMOE, args, { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`smoe synth failed: ${p.stderr}`);
  return madeModel;
}

export async function startServer(args = []) {
  const proc = spawn(SMOE, ['serve', '-m', model(), '--alias', 'tiny', '--port', '0', '-t', '1', ...args.map(String)],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let exited = null;
  const exit = new Promise((resolve) => proc.on('exit', (code, sig) => { exited = code ?? sig; resolve(exited); }));
  proc.stderr.setEncoding('utf8');
  const port = await new Promise((resolve, reject) => {
    let p = null;
    const timer = setTimeout(() => reject(new Error(`the server did not start in time:\n${log}`)), 120000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/\S+:(\d+)/);
      if (m) p = Number(m[1]);
      if (p && /smoe serve: ready/.test(log)) { clearTimeout(timer); resolve(p); }
    });
    exit.then((code) => { clearTimeout(timer); reject(new Error(`the server exited (${code}) before it was ready:\n${log}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    port, url, proc,
    log: () => log,
    // SIGTERM; resolves with the exit code, rejects on a sanitizer report
    async stop() {
      if (exited === null) proc.kill('SIGTERM');
      const code = await exit;
      if (/Sanitizer|runtime error/.test(log)) throw new Error(`sanitizer report:\n${log.slice(-4000)}`);
      return code;
    },
    async metrics() {
      const r = await fetch(`${url}/metrics`, { headers: this.headers || {} });
      const out = {};
      for (const line of (await r.text()).split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const i = line.lastIndexOf(' ');
        out[line.slice(0, i)] = Number(line.slice(i + 1));
      }
      return out;
    },
    // poll /metrics (an external process's state) until pred holds
    async waitMetric(name, pred, timeoutMs = 30000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = (await this.metrics())[name] ?? 0;
        if (pred(v)) return v;
        if (Date.now() > end) throw new Error(`${name} = ${v} did not reach the expected value`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async tokenize(body) {
      const r = await fetch(`${url}/tokenize`, { method: 'POST', body: JSON.stringify(body), headers: this.headers || {} });
      return (await r.json()).tokens;
    },
  };
}
