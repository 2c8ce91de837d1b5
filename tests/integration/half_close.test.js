// A client that half-closes (shutdown(SHUT_WR)) after sending its request looks, on the wire,
// like one that left. By default gptd takes the FIN for leaving (the request is cancelled, its
// place freed); with --serve-half-closed it answers such clients in full and still notices a
// client that closed for good once a write draws a reset.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Gptd, sleep, withTimeout } from './helpers.js';

/** Sends one request, half-closes, and resolves with everything the server sent until it closed. */
async function halfClosed(port, body) {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(s, 'connect');
  const json = JSON.stringify(body);
  s.end(`POST /generate HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`);
  let data = '';
  s.setEncoding('utf8').on('data', (d) => (data += d));
  s.on('error', () => {});
  await withTimeout(once(s, 'close'), 30_000, 'the server kept the half-closed connection open');
  return data;
}

const BODY = { prompt: 'ROMEO:', max_tokens: 40, seed: 11 };

describe('clients that half-close after sending', () => {
  test('by default the FIN counts as leaving: no reply, the request is cancelled', async () => {
    const gptd = await Gptd.start();
    try {
      const data = await halfClosed(gptd.port, BODY);
      assert.equal(data, '', 'a reply was sent to a client taken for gone');
      await sleep(200);
      assert.match(gptd.stderr, /generate status=499 .* client_gone/);
    } finally {
      await gptd.stop();
    }
  });

  test('--serve-half-closed: the JSON reply and the stream arrive whole, with the seeded text', async () => {
    const gptd = await Gptd.start({ args: ['--serve-half-closed'] });
    try {
      const want = await gptd.post('/generate', BODY);
      assert.equal(want.status, 200, want.text);
      const data = await halfClosed(gptd.port, BODY);
      assert.match(data, /^HTTP\/1\.1 200 /);
      const reply = JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4));
      assert.equal(reply.text, want.json.text);
      const stream = await halfClosed(gptd.port, { ...BODY, stream: true });
      const pieces = [...stream.matchAll(/^data: (\{.*"text".*\})$/gm)].map((m) => JSON.parse(m[1]));
      assert.equal(pieces.filter((p) => 'index' in p).map((p) => p.text).join(''), want.json.text);
      assert.match(stream, /^data: \[DONE\]$/m);
    } finally {
      await gptd.stop();
    }
  });

  test('--serve-half-closed: a client that closes for good mid-stream still frees its slot', async () => {
    const gptd = await Gptd.start({ args: ['--serve-half-closed', '--max-tokens', '100000'] });
    try {
      const s = net.connect(gptd.port, '127.0.0.1');
      await once(s, 'connect');
      s.on('error', () => {});
      const json = JSON.stringify({ prompt: 'A', max_tokens: 100000, stream: true });
      s.write(`POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
      await once(s, 'data');
      await gptd.metricsWhen((m) => m.get('gptd_active_sequences') === 1, 5000);
      s.destroy();
      const m = await gptd.metricsWhen((m) => m.get('gptd_active_sequences') === 0, 5000);
      assert.equal(m.get('gptd_active_sequences'), 0, 'the closed client still holds its slot');
    } finally {
      await gptd.stop();
    }
  });
});
