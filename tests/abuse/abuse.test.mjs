// Abuse over the wire, bounded (about a minute): the real daemon on loopback is attacked at once
// with slowloris, idle connections, bodies that never finish, absurd and oversized headers,
// pipelined requests, 1,000 connections opened together and streams cut at random, while
// well-behaved clients keep asking for seeded generations. Throughout, /health answers within 1 s
// on a fresh connection and every completed seeded request has the right text; afterwards the
// daemon's file descriptors and RSS are back near their baseline. Last, SIGTERM under load: every
// stream ends with its final event and [DONE], and the daemon exits 0.
// A second test attacks requests after a connection's first, attention replies and framing.
// Run: make test-abuse  (GPTD_BIN overrides bin/gptd)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { Gptd, PROMPT, sleep } from '../integration/helpers.js';

const ATTACK_MS = 20_000;
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** GET /health on a fresh connection: {status, ms, refused}; status 0 when cut or over 1 s in
 * all. While the burst holds every connection slot, libmicrohttpd closes a new connection at once;
 * the probe then tries again, as a load balancer's health check would, within the same 1 s. */
async function health(port) {
  const t0 = performance.now();
  let refused = 0;
  for (;;) {
    const left = 1000 - (performance.now() - t0);
    if (left <= 0) return { status: 0, ms: performance.now() - t0, refused };
    const r = await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: left }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode }));
        res.on('error', () => resolve({ status: 0 }));
      });
      req.on('error', () => resolve({ status: 0, closed: true }));
      req.on('timeout', () => { req.destroy(); resolve({ status: 0 }); });
    });
    if (!r.closed) return { status: r.status, ms: performance.now() - t0, refused };
    refused++;
    await sleep(20);
  }
}

/** A well-behaved client's request, tried again when its connection is closed before any reply
 * (the slot limit during the burst: fetch itself rejects, "fetch failed"); a stream cut after its
 * reply began is not retried. onRefused counts each refusal. */
async function retryRefused(request, onRefused) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (e) {
      if (attempt >= 20 || !(e instanceof TypeError && e.message === 'fetch failed')) throw e;
      onRefused();
      await sleep(50);
    }
  }
}

function socket(port) {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  return s;
}

/** Raw request on a fresh socket; resolves with what came back before close (or after ms). */
function rawExchange(port, bytes, ms = 5000) {
  return new Promise((resolve) => {
    const s = socket(port);
    let data = '';
    const timer = setTimeout(() => { s.destroy(); resolve(data || 'timeout'); }, ms);
    s.setEncoding('latin1').on('data', (d) => (data += d));
    s.on('close', () => { clearTimeout(timer); resolve(data); });
    s.on('connect', () => s.write(bytes));
  });
}

test('under attack the daemon keeps serving, and recovers its resources afterwards', async (t) => {
  const gptd = await Gptd.start({ args: ['--receive-timeout', '5', '--max-tokens', '4096'] });
  const { port } = gptd;
  try {
    // references, and the resting state
    const seeds = [1, 2, 3, 4];
    const want = {};
    for (const seed of seeds) want[seed] = (await gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed })).json.text;
    await sleep(4500); // let the test client's pooled keep-alive connection go
    const base = { fds: fds(gptd.pid), rss: gptd.rssKb() };

    let attacking = true;
    const sockets = [];
    const attacks = [];
    // slowloris: a header line a second, never a blank line
    for (let i = 0; i < 50; i++) {
      const s = socket(port);
      sockets.push(s);
      s.on('connect', async () => {
        s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        for (let k = 0; attacking && !s.destroyed; k++) {
          s.write(`X-Slow-${k}: a\r\n`);
          await sleep(1000);
        }
      });
    }
    // idle connections
    for (let i = 0; i < 100; i++) sockets.push(socket(port));
    // bodies that never finish
    for (let i = 0; i < 20; i++) {
      const s = socket(port);
      sockets.push(s);
      s.on('connect', () => s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{"prompt": "'));
    }
    // absurd and oversized headers
    const headerReplies = [];
    attacks.push((async () => {
      for (let i = 0; i < 20 && attacking; i++) {
        const huge = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`;
        const many = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n' + 'X-H: 1\r\n'.repeat(20_000) + '\r\n';
        const garbage = '\x00\x01\x02 GET / HTTP/9.9\r\n\r\n';
        headerReplies.push(await rawExchange(port, [huge, many, garbage][i % 3], 3000));
      }
    })());
    // pipelined requests on one connection
    const pipelined = rawExchange(port,
      'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(3) + 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 5000);
    // 1,000 connections at once
    const burst = Promise.all(Array.from({ length: 1000 }, () =>
      rawExchange(port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 15_000)));
    // streams cut at random moments
    attacks.push((async () => {
      while (attacking) {
        await Promise.all(Array.from({ length: 8 }, async () => {
          const ac = new AbortController();
          setTimeout(() => ac.abort(), 20 + Math.random() * 400);
          await gptd.stream({ prompt: PROMPT, max_tokens: 2000, stream: true }, { signal: ac.signal }).catch(() => {});
        }));
      }
    })());
    // the monitor and the well-behaved clients
    const healthMs = [];
    let healthFailures = 0;
    let healthRefused = 0;
    attacks.push((async () => {
      while (attacking) {
        const h = await health(port);
        healthMs.push(h.ms);
        healthRefused += h.refused;
        if (h.status !== 200) healthFailures++;
        await sleep(200);
      }
    })());
    const goodMs = [];
    let wrong = 0;
    let goodRefused = 0;
    attacks.push((async () => {
      for (let i = 0; attacking; i++) {
        const seed = seeds[i % seeds.length];
        const t0 = performance.now();
        const body = { prompt: PROMPT, max_tokens: 60, seed };
        const text = await retryRefused(async () => i % 2
          ? (await gptd.post('/generate', body)).json?.text
          : (await gptd.stream({ ...body, stream: true })).text, () => goodRefused++);
        goodMs.push(performance.now() - t0);
        if (text !== want[seed]) wrong++;
      }
    })());

    await sleep(ATTACK_MS);
    attacking = false;
    for (const s of sockets) s.destroy();
    await Promise.all(attacks);
    const burstReplies = await burst;
    const pipe = await pipelined;

    const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];
    t.diagnostic(`/health: ${healthMs.length} probes, max ${Math.max(...healthMs).toFixed(0)} ms, ` +
      `${healthFailures} failed, ${healthRefused} connections refused at the slot limit and tried again`);
    t.diagnostic(`seeded requests: ${goodMs.length}, p50 ${pct(goodMs, 0.5).toFixed(0)} ms, ` +
      `p99 ${pct(goodMs, 0.99).toFixed(0)} ms, wrong text ${wrong}, ${goodRefused} refused and tried again`);
    const burstOk = burstReplies.filter((r) => r.startsWith('HTTP/1.1 200')).length;
    const burstKinds = burstReplies.reduce((m, r) => {
      const k = r.startsWith('HTTP/1.1 ') ? r.slice(9, 12) : r === 'timeout' ? 'timeout' : 'closed';
      return (m[k] = (m[k] ?? 0) + 1), m;
    }, {});
    t.diagnostic(`1,000 connections at once: ${JSON.stringify(burstKinds)}`);
    const statuses = headerReplies.map((r) => r.slice(9, 12) || 'closed');
    t.diagnostic(`absurd headers: ${JSON.stringify(statuses.reduce((m, s) => ((m[s] = (m[s] ?? 0) + 1), m), {}))}`);

    assert.equal(healthFailures, 0, '/health failed or took over 1 s');
    assert.ok(goodMs.length >= 10, `only ${goodMs.length} seeded requests completed`);
    assert.equal(wrong, 0, 'a seeded request came back with the wrong text');
    // past --max-connections (512 by default; the attack holds about 170) libmicrohttpd closes a
    // new connection at once: a refusal the client sees immediately, never a hang
    assert.equal(burstKinds.timeout, undefined, 'a connection of the burst hung');
    assert.ok(burstOk >= 300, `only ${burstOk} of the 1,000 connections were served`);
    assert.equal(burstOk + (burstKinds.closed ?? 0), 1000, JSON.stringify(burstKinds));
    assert.equal((pipe.match(/HTTP\/1\.1 200/g) ?? []).length, 4, `pipelined: ${pipe.slice(0, 300)}`);
    for (const s of statuses) assert.ok(['431', '413', '400', 'closed'].includes(s), `absurd header answered ${s}`);

    // recovery: fds back to the baseline, RSS near it, still serving
    let now;
    for (let i = 0; i < 100; i++) {
      now = { fds: fds(gptd.pid), rss: gptd.rssKb() };
      if (now.fds <= base.fds) break;
      await sleep(100);
    }
    t.diagnostic(`fds ${base.fds} -> ${now.fds}; RSS ${base.rss} -> ${now.rss} kB`);
    assert.ok(now.fds <= base.fds, `file descriptors: ${base.fds} before, ${now.fds} after`);
    assert.ok(now.rss - base.rss < 64 * 1024, `RSS grew by ${now.rss - base.rss} kB`);
    assert.equal((await gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed: 1 })).json.text, want[1]);

    // SIGTERM under load: every stream ends whole
    const streams = Array.from({ length: 16 }, () => gptd.stream({ prompt: PROMPT, max_tokens: 400, stream: true }));
    await gptd.metricsWhen((m) => m.get('gptd_active_sequences') >= 8, 10_000);
    const result = await gptd.stop();
    const ends = await Promise.all(streams);
    for (const s of ends) {
      assert.equal(s.status, 200);
      assert.ok(s.done, 'a stream ended without [DONE]');
      assert.ok(s.final, 'a stream ended without its final event');
    }
    assert.equal(result.code, 0);
  } finally {
    if (gptd.exitCode === undefined) await gptd.stop().catch(() => {});
  }
});

/** A socket whose first request (GET /health) has been answered; it stays open (keep-alive). */
async function keptAlive(port) {
  const s = socket(port);
  s.closedAt = null;
  s.got = '';
  s.setEncoding('latin1').on('data', (d) => (s.got += d));
  s.on('close', () => (s.closedAt = performance.now()));
  await once(s, 'connect');
  s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  for (let i = 0; i < 200 && !s.got.includes('{"status":"ok"}'); i++) await sleep(10);
  return s;
}

// The second round: requests after a connection's first (slow headers, slow bodies), attention
// replies of megabytes to clients that never read, and framing that could smuggle a request.
// Drips are cut within seconds, memory stays within the configured budgets, framing is refused,
// well-behaved clients are served throughout, and SIGTERM with --drain-timeout 0 ends it all in
// seconds.
test('keep-alive drips, attention amplification and framing: cut, bounded, refused; a zero drain exits at once', async (t) => {
  const REPLY_MB = 64, BODY_MB = 64;
  const gptd = await Gptd.start({
    args: ['--reply-memory', String(REPLY_MB), '--body-memory', String(BODY_MB), '--drain-timeout', '0',
           '--connection-timeout', '20'],
  });
  const open = [];
  try {
    const base = gptd.rssKb();
    const want = (await gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed: 7 })).json.text;
    // 32 connections drip a second request's headers; 16 send 600 kB of a 1 MB second body, then
    // a byte a second
    const drips = [];
    for (let i = 0; i < 48; i++) {
      const s = await keptAlive(gptd.port);
      open.push(s);
      if (i < 32) {
        s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        s.drip = () => s.write('X-Slow: 1\r\n');
      } else {
        s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n{"prompt":"' +
                'a'.repeat(600_000));
        s.drip = () => s.write('a');
      }
      drips.push(s);
    }
    const dripper = setInterval(() => { for (const s of drips) if (!s.destroyed) s.drip(); }, 1000);
    // 64 clients ask for 512 tokens with every head's weights (a 66-byte request, a ~7 MB reply)
    // and never read
    const attention = JSON.stringify({ prompt: 'ROMEO:', max_tokens: 512, attention: { layer: 5, head: 'all' } });
    for (let i = 0; i < 64; i++) {
      const s = socket(gptd.port);
      open.push(s);
      s.on('connect', () => {
        s.pause();
        s.write(`POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${attention.length}\r\n\r\n${attention}`);
      });
    }
    // framing that could smuggle a second request
    const framing = await Promise.all([
      rawExchange(gptd.port, 'POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 29\r\nContent-Length: 90\r\n\r\n' +
                  '{"prompt":"A","max_tokens":1}GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
      rawExchange(gptd.port, 'POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
      rawExchange(gptd.port, 'POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'),
      rawExchange(gptd.port, 'GET /health HTTP/1.1\r\n\r\n'),
    ]);
    // meanwhile: /health within 1 s and the seeded text, every half second for 8 s; the peak RSS
    let peak = 0, slowest = 0;
    for (let i = 0; i < 16; i++) {
      const h = await health(gptd.port);
      slowest = Math.max(slowest, h.ms);
      assert.equal(h.status, 200, `/health: ${JSON.stringify(h)}`);
      if (i % 4 === 0) {
        const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed: 7 });
        assert.equal(r.json?.text, want, `a seeded request during the attack: ${r.status} ${r.text?.slice(0, 200)}`);
      }
      peak = Math.max(peak, gptd.rssKb());
      await sleep(500);
    }
    clearInterval(dripper);
    const cut = drips.filter((s) => s.closedAt !== null).length;
    t.diagnostic(`drips cut: ${cut} of ${drips.length}; RSS ${base} -> peak ${peak} kB; slowest /health ${slowest.toFixed(0)} ms`);
    t.diagnostic(`framing: ${framing.map((f) => f.slice(0, 12)).join(', ')}`);
    assert.equal(cut, drips.length, 'every dripping second request was cut within 8 s');
    for (const f of framing) {
      assert.equal((f.match(/^HTTP\/1\.1 /gm) ?? []).length, 1, `one reply: ${f.slice(0, 300)}`);
      assert.match(f, /^HTTP\/1\.1 (400|501) /);
    }
    // what the attack may hold: the two budgets, and the 64 KV slots (64 x 3 MB) it fills
    const boundKb = (REPLY_MB + BODY_MB + 192 + 64) * 1024;
    assert.ok(peak - base < boundKb, `RSS grew by ${peak - base} kB, over ${boundKb} kB`);

    // SIGTERM with --drain-timeout 0, non-readers and streams still open: exit 0 within 5 s
    const streams = Array.from({ length: 16 }, () => gptd.stream({ prompt: PROMPT, max_tokens: 1000, stream: true }));
    await gptd.metricsWhen((m) => m.get('gptd_active_sequences') >= 8, 10_000);
    const t0 = performance.now();
    const result = await gptd.stop();
    const exitMs = performance.now() - t0;
    await Promise.all(streams);
    t.diagnostic(`SIGTERM with --drain-timeout 0 under load: exit ${result.code} after ${exitMs.toFixed(0)} ms`);
    assert.ok(exitMs < 5000, `exit took ${exitMs.toFixed(0)} ms (the bound: 2 s for last events, then the joins)`);
  } finally {
    for (const s of open) s.destroy();
    if (gptd.exitCode === undefined) await gptd.stop().catch(() => {});
  }
});
