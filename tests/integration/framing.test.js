// HTTP framing a front proxy would normalise, refused by gptd itself (it is often reached without
// one): where a body ends must be beyond doubt, or the bytes after it could run as a second,
// smuggled request (RFC 9112, 6.3). And every error body is valid UTF-8 JSON, whatever bytes the
// request line, the headers or the JSON's field names carried.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Gptd } from './helpers.js';

/** Writes raw bytes and collects every byte back until the server closes (or 5 s pass). */
function exchange(port, bytes) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => { s.destroy(); finish(true); }, 5000);
    const finish = (timedOut = false) => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const text = buf.toString('latin1');
      resolve({ buf, text, timedOut, status: Number((/^HTTP\/1\.1 (\d{3})/.exec(text) ?? [])[1] ?? 0) });
    };
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => finish());
    s.on('error', (e) => (chunks.length ? finish() : reject(e)));
    s.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.replace(/\r?\n/g, '\r\n'), 'latin1'));
  });
}

/** The body of the one reply in `r`, checked to be valid UTF-8 JSON. */
function jsonBody(r) {
  const at = r.buf.indexOf('\r\n\r\n');
  assert.ok(at > 0, `a reply with headers: ${r.text}`);
  const body = new TextDecoder('utf-8', { fatal: true }).decode(r.buf.subarray(at + 4));
  return JSON.parse(body);
}

const replies = (r) => r.text.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];
const GEN = '{"prompt":"A","max_tokens":1}';

describe('HTTP framing', () => {
  let gptd;
  before(async () => { gptd = await Gptd.start(); });
  after(async () => { await gptd?.stop(); });

  const cases = [
    ['two Content-Length headers (the second request smuggled after the first body)', 400,
     `POST /generate HTTP/1.1\nHost: 127.0.0.1\nContent-Length: ${GEN.length}\nContent-Length: 200\n\n` +
     `${GEN}GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, /more than one Content-Length/],
    ['Content-Length with Transfer-Encoding: chunked', 400,
     `POST /generate HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n` +
     `${GEN.length.toString(16)}\r\n${GEN}\r\n0\r\n\r\n`, /both Content-Length and Transfer-Encoding/],
    ['Transfer-Encoding: gzip, chunked (a coding gptd does not know: 501, RFC 9112 6.1)', 501,
     `POST /generate HTTP/1.1\nHost: 127.0.0.1\nTransfer-Encoding: gzip, chunked\n\n` +
     `${GEN.length.toString(16)}\r\n${GEN}\r\n0\r\n\r\n`, /only "chunked" is supported/],
    ['two Transfer-Encoding headers', 501,
     `POST /generate HTTP/1.1\nHost: 127.0.0.1\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n` +
     `${GEN.length.toString(16)}\r\n${GEN}\r\n0\r\n\r\n`, /only "chunked" is supported/],
    ['HTTP/1.1 without Host', 400, 'GET /health HTTP/1.1\n\n', /needs a Host header/],
    ['two Host headers', 400, 'GET /health HTTP/1.1\nHost: 127.0.0.1\nHost: localhost\n\n',
     /more than one Host header/],
  ];
  for (const [name, status, bytes, message] of cases) {
    test(`${name}: ${status}, one reply, and the connection closed`, async () => {
      const r = await exchange(gptd.port, bytes);
      assert.equal(r.timedOut, false, `the connection was left open: ${r.text}`);
      assert.equal(r.status, status, r.text);
      assert.deepEqual(replies(r), [`HTTP/1.1 ${status}`], `exactly one reply: ${r.text}`);
      assert.match(r.text, /\r\nConnection: close\r\n/i);
      assert.match(jsonBody(r).error.message, message);
    });
  }

  test('the same bodies framed once, by one Content-Length or by chunked alone, are served', async () => {
    for (const bytes of [
      `POST /generate HTTP/1.1\nHost: 127.0.0.1\nConnection: close\nContent-Length: ${GEN.length}\n\n${GEN}`,
      `POST /generate HTTP/1.1\nHost: 127.0.0.1\nConnection: close\nTransfer-Encoding: chunked\n\n` +
        `${GEN.length.toString(16)}\r\n${GEN}\r\n0\r\n\r\n`,
      'GET /health HTTP/1.0\n\n', // HTTP/1.0 may omit Host
    ]) {
      const r = await exchange(gptd.port, bytes);
      assert.equal(r.status, 200, r.text);
      assert.equal(replies(r).length, 1);
    }
  });
});

describe('error bodies are valid UTF-8 JSON whatever came in', () => {
  let gptd;
  before(async () => { gptd = await Gptd.start(); });
  after(async () => { await gptd?.stop(); });

  const post = (body) => Buffer.concat([
    Buffer.from(`POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
                `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'),
    body]);
  const cases = [
    ['a method with a byte that is not UTF-8', 405,
     Buffer.from('G\xffT /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'latin1'), /^G\?T \/health/],
    ['a Host that is not UTF-8', 403,
     Buffer.from('GET /info HTTP/1.1\r\nHost: \xfeevil\r\nConnection: close\r\n\r\n', 'latin1'), /"\?evil"/],
    ['an Origin that is not UTF-8', 403,
     Buffer.from('GET /info HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://\xff\xfe\r\nConnection: close\r\n\r\n', 'latin1'),
     /http:\/\/\?\?/],
    ['an unknown field name that is not UTF-8', 400, post(Buffer.from('{"\xff\xfe":1}', 'latin1')), /\?\?/],
    // two names, one byte apart: whatever the message's prefix, one of them is cut inside an é
    ['a long field name of "é" cut at the message\'s end', 400,
     post(Buffer.from(`{"${'é'.repeat(400)}":1}`, 'utf8')), /éé/],
    ['a long field name of "xé" cut at the message\'s end', 400,
     post(Buffer.from(`{"x${'é'.repeat(400)}":1}`, 'utf8')), /xéé/],
  ];
  for (const [name, status, bytes, message] of cases) {
    test(`${name}: ${status} with a valid UTF-8 JSON body`, async () => {
      const r = await exchange(gptd.port, bytes);
      assert.equal(r.status, status, r.text);
      assert.match(jsonBody(r).error.message, message);
    });
  }
});
