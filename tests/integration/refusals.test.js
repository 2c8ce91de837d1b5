// Refused before any work: a request the request line and headers already condemn (wrong key,
// a declared body over --body-limit, a full queue, a foreign Origin, a non-loopback Host on a
// loopback listener) is answered without its body being read, parsed or tokenized; and all the
// bodies being received at once are bounded by --body-memory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Gptd, sleep, withTimeout } from './helpers.js';

/** Sends a raw request (headers, then `body` bytes, maybe fewer than Content-Length) and resolves
 * with {status, text} as soon as a reply has arrived whole or the server closes. */
function raw(port, head, body = '') {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      const status = Number((/^HTTP\/1\.1 (\d{3})/.exec(data) ?? [])[1] ?? 0);
      resolve({ status, text: data, socket: s });
    };
    s.setEncoding('latin1');
    s.on('data', (d) => {
      data += d;
      const m = /\r\nContent-Length: (\d+)\r\n/i.exec(data);
      const end = data.indexOf('\r\n\r\n');
      if (m && end >= 0 && data.length >= end + 4 + Number(m[1])) done();
    });
    s.on('close', done);
    s.on('error', (e) => (data ? done() : reject(e)));
    s.write(head.replace(/\n/g, '\r\n') + '\r\n\r\n');
    if (body) s.write(body);
  });
}

/** A POST /generate head declaring `length` bytes of body. */
const postHead = (port, length, extra = '') =>
  `POST /generate HTTP/1.1\nHost: 127.0.0.1:${port}\nContent-Type: application/json\n` +
  `Content-Length: ${length}${extra ? '\n' + extra : ''}`;

const answeredWithoutBody = (gptd, extra, length = 1_000_000) =>
  withTimeout(raw(gptd.port, postHead(gptd.port, length, extra)), 3000,
    'no answer while the declared body was never sent: the server waited for it');

describe('refused from the headers alone, without reading the body', () => {
  test('a wrong API key: 401 before the body', async () => {
    const gptd = await Gptd.start({ args: ['--api-key', 'k1'] });
    try {
      const r = await answeredWithoutBody(gptd, 'Authorization: Bearer nope');
      assert.equal(r.status, 401, r.text);
      r.socket.destroy();
    } finally {
      await gptd.stop();
    }
  });

  test('a declared body over --body-limit: 413 before the body', async () => {
    const gptd = await Gptd.start({ args: ['--body-limit', '10000'] });
    try {
      const r = await answeredWithoutBody(gptd, '', 10001);
      assert.equal(r.status, 413, r.text);
      assert.match(r.text, /exceeds 10000 bytes/);
      r.socket.destroy();
      const ok = await gptd.post('/generate', { prompt: 'A', max_tokens: 1 });
      assert.equal(ok.status, 200, ok.text);
    } finally {
      await gptd.stop();
    }
  });

  test('a full queue: 503 before the body', async () => {
    const gptd = await Gptd.start({ args: ['--max-batch', '1', '--max-queue', '1', '--max-tokens', '100000'] });
    const stop = new AbortController();
    try {
      // one running (a long stream), one queued behind it
      const running = gptd.stream({ prompt: 'A', max_tokens: 100000, stream: true }, { signal: stop.signal })
        .catch(() => {});
      await gptd.metricsWhen((m) => m.get('gptd_active_sequences') === 1, 10_000);
      const queued = gptd.post('/generate', { prompt: 'B', max_tokens: 1 }, { signal: stop.signal })
        .catch(() => {});
      await gptd.metricsWhen((m) => m.get('gptd_queue_depth') === 1, 10_000);
      const r = await answeredWithoutBody(gptd, '');
      assert.equal(r.status, 503, r.text);
      assert.match(r.text, /queue is full/);
      r.socket.destroy();
      stop.abort();
      await Promise.all([running, queued]);
    } finally {
      await gptd.stop();
    }
  });
});

describe('cross-site requests and DNS rebinding', () => {
  test('Origin: another site is refused with 403 before any work; our own origin and none are served', async () => {
    const gptd = await Gptd.start();
    try {
      const body = { prompt: 'A', max_tokens: 2 };
      for (const origin of ['http://evil.test', 'null', `http://127.0.0.1:${gptd.port + 1}`]) {
        const r = await gptd.post('/generate', body, { headers: { Origin: origin } });
        assert.equal(r.status, 403, `${origin}: ${r.text}`);
        assert.equal(r.json.error.type, 'forbidden');
      }
      const declared = await answeredWithoutBody(gptd, 'Origin: http://evil.test');
      assert.equal(declared.status, 403, declared.text);
      declared.socket.destroy();
      const own = await gptd.post('/generate', body, { headers: { Origin: `http://127.0.0.1:${gptd.port}` } });
      assert.equal(own.status, 200, own.text);
      const none = await gptd.post('/generate', body);
      assert.equal(none.status, 200, none.text);
      const m = await gptd.metrics();
      assert.equal(m.get('gptd_requests_total{endpoint="generate",status="403"}'), 4);
    } finally {
      await gptd.stop();
    }
  });

  test('on a loopback listener a Host that is not a loopback name gets 403; loopback names pass', async () => {
    const gptd = await Gptd.start();
    try {
      for (const host of ['evil.example', `evil.example:${gptd.port}`, '10.0.0.1', 'localhost.evil.example']) {
        const r = await raw(gptd.port, `GET /health HTTP/1.1\nHost: ${host}\nConnection: close`);
        assert.equal(r.status, 403, `${host}: ${r.text}`);
        assert.match(r.text, /DNS rebinding/);
      }
      for (const host of ['localhost', `localhost:${gptd.port}`, `127.0.0.1:${gptd.port}`, '127.1.2.3',
        '[::1]:8080', 'app.localhost']) {
        const r = await raw(gptd.port, `GET /health HTTP/1.1\nHost: ${host}\nConnection: close`);
        assert.equal(r.status, 200, `${host}: ${r.text}`);
      }
    } finally {
      await gptd.stop();
    }
  });

  test('on a listener on all addresses any Host is served (a proxy or a cluster names it)', async () => {
    const gptd = await Gptd.start({ args: ['--host', '0.0.0.0'] });
    try {
      const r = await raw(gptd.port, 'GET /health HTTP/1.1\nHost: gptd.example.com\nConnection: close');
      assert.equal(r.status, 200, r.text);
    } finally {
      await gptd.stop();
    }
  });
});

describe('--body-memory bounds the bodies being received at once', () => {
  test('a body that would pass the bound gets 503; the bound frees when the holder leaves', async () => {
    const gptd = await Gptd.start({ args: ['--body-memory', '1'] });
    try {
      const info = await gptd.get('/info');
      assert.equal(info.json.limits.body_memory_bytes, 1 << 20);
      // holds 700 KB of a 900 KB body: its buffer takes the whole megabyte
      const holder = net.connect(gptd.port, '127.0.0.1');
      holder.on('error', () => {});
      await once(holder, 'connect');
      holder.write(postHead(gptd.port, 900_000).replace(/\n/g, '\r\n') + '\r\n\r\n');
      holder.write('{"prompt": "' + 'a'.repeat(700_000));
      await sleep(500);
      const refused = await gptd.post('/generate', { prompt: 'A'.repeat(5000), max_tokens: 1 });
      assert.equal(refused.status, 503, refused.text);
      assert.match(refused.json.error.message, /too many large requests/);
      assert.equal(refused.headers.get('retry-after'), '1');
      holder.destroy();
      await sleep(500);
      const served = await gptd.post('/generate', { prompt: 'A'.repeat(5000), max_tokens: 1 });
      assert.equal(served.status, 200, served.text);
    } finally {
      await gptd.stop();
    }
  });
});
