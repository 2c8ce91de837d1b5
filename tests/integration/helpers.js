// Shared helpers for the gptd integration tests: start the real binary on a free loopback port,
// wait for /health, talk to it with fetch and read its server-sent events, stop it with SIGTERM
// and check how it ended. Not a test file itself (node --test only runs *.test.js here).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { createParser } from 'eventsource-parser';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The binary under test: $GPTD_BIN (relative to the cwd, else to the repo root), default bin/gptd. */
export const GPTD_BIN = (() => {
  const given = process.env.GPTD_BIN || 'bin/gptd';
  const fromCwd = path.resolve(process.cwd(), given);
  return fs.existsSync(fromCwd) ? fromCwd : path.resolve(REPO_ROOT, given);
})();

/** True when the binary is a sanitizer build (ASan/UBSan: __asan_init; ThreadSanitizer:
 * __tsan_init): slower, and its reports fail the tests. */
export const IS_SANITIZER_BUILD = (() => {
  try {
    const bin = fs.readFileSync(GPTD_BIN);
    return bin.includes('__asan_init') || bin.includes('__tsan_init');
  } catch {
    return false;
  }
})();

/** How long a start with the portable kernels may take to become ready: it measures its start-up
 * splits and groups with scalar code, which under the sanitizers on a slow machine takes over a
 * minute (80 s on a 2-core Zen 3). */
export const PORTABLE_READY_MS = 300_000;

/** The checkpoint the tests serve (a copy of it): $GPTD_TEST_MODEL, default the shipped model. */
export const SOURCE_MODEL = process.env.GPTD_TEST_MODEL
  ? path.resolve(process.cwd(), process.env.GPTD_TEST_MODEL)
  : path.join(REPO_ROOT, 'weights/shakespeare-char.safetensors');

const tempDirs = [];
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

export function makeTempDir(prefix = 'gptd-it-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

let modelCopy = null;
/** A private copy of the shipped model (the trainer keeps replacing the original). */
export function modelPath() {
  if (!modelCopy) {
    if (!fs.existsSync(SOURCE_MODEL))
      throw new Error(`no model at ${SOURCE_MODEL}: train one (bash weights/train.sh) or set GPTD_TEST_MODEL`);
    const dir = makeTempDir();
    modelCopy = path.join(dir, 'model.safetensors');
    fs.copyFileSync(SOURCE_MODEL, modelCopy); // the trainer renames a new file in: the copy is whole
  }
  return modelCopy;
}

/** The config and vocabulary stored in a safetensors file's __metadata__. */
export function readModelMetadata(file = modelPath()) {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    fs.readSync(fd, head, 0, 8, 0);
    const n = Number(head.readBigUInt64LE(0));
    const json = Buffer.alloc(n);
    fs.readSync(fd, json, 0, n, 8);
    return JSON.parse(json.toString('utf8')).__metadata__;
  } finally {
    fs.closeSync(fd);
  }
}

/** A TCP port that was free a moment ago (bound to port 0, then released). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves like `promise`, or rejects with `message` after `ms` (the timer does not outlive it). */
export async function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} (after ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the last value. */
export async function eventually(fn, { ms = 2000, every = 20 } = {}) {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || performance.now() > deadline) return v;
    await sleep(every);
  }
}

/** ThreadSanitizer builds run several times slower than ASan ones: bounds on reaction times
 * stretch for them. */
export const IS_TSAN_BUILD = (() => {
  try {
    return fs.readFileSync(GPTD_BIN).includes('__tsan_init');
  } catch {
    return false;
  }
})();

const SANITIZER_PATTERNS = [/ERROR: AddressSanitizer/, /ERROR: LeakSanitizer/, /runtime error/,
  /WARNING: ThreadSanitizer/];

/** Fails if stderr holds a sanitizer report. */
export function assertNoSanitizerReport(stderr, what = 'gptd') {
  for (const re of SANITIZER_PATTERNS)
    assert.doesNotMatch(stderr, re, `${what}: sanitizer report in stderr:\n${stderr.slice(-4000)}`);
}

/** The environment for a gptd: ours without GPTD_* (a stray GPTD_API_KEY would change every
 * answer), plus `extra`. */
function gptdEnv(extra) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GPTD_')));
  return { ...env, ...extra };
}

/** Runs gptd to completion (for start-up errors): {code, signal, stdout, stderr}. */
export async function runGptd(args, { env = {}, timeoutMs = 30_000 } = {}) {
  const child = spawn(GPTD_BIN, args, {
    cwd: REPO_ROOT,
    env: gptdEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await once(child, 'close');
  clearTimeout(timer);
  children.delete(child);
  return { code, signal, stdout, stderr };
}

/**
 * A running gptd. start() picks a free port (retrying if another process takes it first),
 * passes --host 127.0.0.1 --port N --threads 2 --model <copy> plus `args`, and waits for
 * /health to answer 200 (unless waitReady is false).
 */
/** A whole reply: {status, headers, text, json} (json undefined when the body is not JSON). */
async function readReply(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

export class Gptd {
  constructor(child, port) {
    this.child = child;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.stderr = '';
    this.stdout = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d));
    child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        children.delete(child);
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  /** wrap: a command to run gptd under (e.g. ['taskset', '-c', '0']). */
  static async start({ args = [], env = {}, model, waitReady = true, readyTimeoutMs = 60_000, wrap = [] } = {}) {
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const fullArgs = ['--host', '127.0.0.1', '--port', String(port), '--threads', '2',
        '--model', model ?? modelPath(), ...args];
      const [command, ...commandArgs] = [...wrap, GPTD_BIN, ...fullArgs];
      const child = spawn(command, commandArgs, {
        cwd: REPO_ROOT,
        env: gptdEnv(env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const server = new Gptd(child, port);
      server.args = fullArgs;
      if (!waitReady) {
        await server.waitListening(readyTimeoutMs);
        return server;
      }
      try {
        await server.waitHealthy(readyTimeoutMs);
        return server;
      } catch (err) {
        if (server.exitCode !== undefined && /in use/.test(server.stderr) && attempt < 5) continue;
        server.child.kill('SIGKILL');
        throw err;
      }
    }
  }

  /** Polls until `ok(response)` is true, or the process exits, or time runs out. */
  async #poll(ok, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined)
        throw new Error(`gptd exited (${this.exitCode ?? this.exitSignal}) before ${what}:\n${this.stderr}`);
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        if (ok(res, body)) return { status: res.status, body };
      } catch {
        // not listening yet
      }
      await sleep(25);
    }
    throw new Error(`gptd not ${what} within ${timeoutMs} ms:\n${this.stderr}`);
  }

  waitHealthy(timeoutMs = 60_000) {
    return this.#poll((res) => res.status === 200, timeoutMs, 'healthy');
  }

  waitListening(timeoutMs = 60_000) {
    return this.#poll(() => true, timeoutMs, 'listening');
  }

  /** fetch relative to the server's URL. */
  fetch(pathname, init = {}) {
    return fetch(this.url + pathname, init);
  }

  /** POST a JSON body (an object, or a string sent as is); returns {status, headers, body, json}. */
  async post(pathname, body, { headers = {}, signal } = {}) {
    const res = await this.fetch(pathname, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
      signal,
    });
    return readReply(res);
  }

  /** GET; returns {status, headers, text, json}. */
  async get(pathname, { headers = {} } = {}) {
    return readReply(await this.fetch(pathname, { headers }));
  }

  /** POST /generate (or `pathname`) and read the SSE stream: see readSse. */
  async stream(body, { pathname = '/generate', headers = {}, signal, onEvent } = {}) {
    const t0 = performance.now();
    const res = await this.fetch(pathname, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal,
    });
    if (res.status !== 200 || !(res.headers.get('content-type') || '').includes('text/event-stream')) {
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {}
      return { status: res.status, headers: res.headers, text, json, events: [] };
    }
    const out = await readSse(res, { t0, onEvent });
    return { status: res.status, headers: res.headers, ...out };
  }

  /**
   * Metrics once `ok(metrics)` holds (polling up to `ms`): request counters are updated when the
   * server has finished a response, which can be a moment after the client has read it.
   */
  async metricsWhen(ok, ms = 2000) {
    let m;
    await eventually(async () => ok((m = await this.metrics())), { ms });
    return m;
  }

  /** The /metrics text parsed: Map from 'name{labels}' (labels as sent) to number. */
  async metrics() {
    const res = await this.fetch('/metrics');
    assert.equal(res.status, 200);
    return parseMetrics(await res.text());
  }

  /** VmRSS of the daemon in kB, from /proc/<pid>/status. */
  rssKb() {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)[1]);
  }

  /**
   * SIGTERM, wait for the exit, assert exit code 0 and (sanitizer build) a clean stderr.
   * Returns {code, signal, stderr}.
   */
  async stop({ timeoutMs = 45_000, expectCode = 0, sendSignal = true } = {}) {
    if (sendSignal && this.exitCode === undefined) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    assert.equal(signal, null, `gptd killed by ${signal} (no exit within ${timeoutMs} ms?):\n${this.stderr.slice(-4000)}`);
    assert.equal(code, expectCode, `gptd exit code ${code}, expected ${expectCode}:\n${this.stderr.slice(-4000)}`);
    assertNoSanitizerReport(this.stderr);
    return { code, signal, stderr: this.stderr };
  }

  /** Stop without assertions (cleanup after a failure). */
  kill() {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
  }
}

/**
 * Reads a fetch Response carrying text/event-stream with eventsource-parser. Returns
 * {events: [{data, json, t}], tokens, final, done, text, t0, tEnd, comments}: `t` is the arrival
 * time (performance.now()) of each event, `tokens` the JSON events with an "index" (/generate)
 * or the chunks with choices (/v1/completions), `final` the last JSON event before [DONE],
 * `done` whether [DONE] arrived.
 */
export async function readSse(res, { t0 = performance.now(), onEvent } = {}) {
  const events = [];
  const comments = [];
  const parser = createParser({
    onEvent(ev) {
      const item = { data: ev.data, t: performance.now() };
      if (ev.data !== '[DONE]') item.json = JSON.parse(ev.data);
      events.push(item);
      if (onEvent) onEvent(item, events);
    },
    onComment(c) {
      comments.push(c);
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
  parser.feed(decoder.decode());
  const tEnd = performance.now();
  const done = events.length > 0 && events[events.length - 1].data === '[DONE]';
  const jsonEvents = events.filter((e) => e.json);
  const tokens = jsonEvents.filter((e) => 'index' in e.json && 'logprob' in e.json);
  const final = jsonEvents[jsonEvents.length - 1]?.json;
  const text = tokens.map((e) => e.json.text).join('');
  return { events, tokens, final, done, text, t0, tEnd, comments };
}

/** Parses Prometheus text: Map 'name{labels}' -> number, with HELP/TYPE lines in .meta. */
export function parseMetrics(text) {
  const values = new Map();
  const types = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const typeMatch = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (typeMatch) types.set(typeMatch[1], typeMatch[2]);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    values.set(m[1], Number(m[2]));
  }
  values.types = types;
  values.text = text;
  return values;
}

/** The usual checks on an error reply: status, JSON {"error":{"type","message"}}, message matching. */
export function assertApiError(reply, status, ...messagePatterns) {
  assert.equal(reply.status, status, `expected ${status}, got ${reply.status}: ${reply.text}`);
  assert.ok(reply.json && typeof reply.json === 'object', `error body is not JSON: ${reply.text}`);
  assert.equal(typeof reply.json.error?.type, 'string', `no error.type in ${reply.text}`);
  assert.equal(typeof reply.json.error?.message, 'string', `no error.message in ${reply.text}`);
  assert.ok(reply.json.error.message.length > 0);
  for (const re of messagePatterns) assert.match(reply.json.error.message, re);
  return reply.json.error;
}

/** A prompt made of characters every Shakespeare vocabulary has. */
export const PROMPT = 'ROMEO:\n';
