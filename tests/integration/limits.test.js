// Connection limits: --connection-timeout closes an idle connection, --max-connections and
// --per-ip-connections close connections past the limit at once, and serve again once one
// closes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { Gptd, eventually, sleep } from './helpers.js';

/** An idle TCP connection to the daemon (nothing sent); resolves once connected. */
async function idle(port) {
  const s = net.connect(port, '127.0.0.1');
  s.closedAt = null;
  s.on('error', () => {});
  s.on('close', () => (s.closedAt = performance.now()));
  await once(s, 'connect');
  return s;
}

/** GET /health on a fresh connection (no pooled one): the status, or 0 when the connection is
 * refused or cut. */
function health(gptd) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: gptd.port, path: '/health', agent: false, timeout: 3000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
  });
}

describe('connection limits', () => {
  test('--connection-timeout 1: an idle connection is closed within a few seconds', async () => {
    const gptd = await Gptd.start({ args: ['--connection-timeout', '1'] });
    try {
      const t0 = performance.now();
      const s = await idle(gptd.port);
      await Promise.race([once(s, 'close'), sleep(6000)]);
      assert.ok(s.closedAt !== null, 'the idle connection is still open after 6 s');
      assert.ok(s.closedAt - t0 >= 900, `closed after ${s.closedAt - t0} ms, before the timeout`);
      s.destroy();
    } finally {
      await gptd.stop();
    }
  });

  for (const [flag, n] of [['--max-connections', 4], ['--per-ip-connections', 3]]) {
    test(`${flag} ${n}: a connection past the limit is refused, and taken once one closes`, async () => {
      const gptd = await Gptd.start({ args: [flag, String(n)] });
      try {
        assert.equal(await health(gptd), 200);
        // the test client's own keep-alive connection (from waiting for /health) closes after
        // 4 s idle; until then it would hold one of the places
        await sleep(4500);
        const open = [];
        for (let i = 0; i < n; i++) open.push(await idle(gptd.port));
        await sleep(200);
        assert.ok(open.every((s) => s.closedAt === null), `the first ${n} connections are kept`);
        // past the limit a connection is closed at once, not left waiting in the backlog
        assert.equal(await health(gptd), 0, `a connection past ${flag} ${n} was served`);
        const extra = await idle(gptd.port);
        const t0 = performance.now();
        await Promise.race([once(extra, 'close'), sleep(2000)]);
        assert.ok(extra.closedAt !== null && extra.closedAt - t0 < 1000,
                  `a connection past ${flag} ${n} was left open (not closed within 1 s)`);
        open.pop().destroy();
        let status = 0;
        for (let i = 0; i < 20 && status !== 200; i++) {
          await sleep(250);
          status = await health(gptd);
        }
        assert.equal(status, 200, 'a place freed is taken again');
        for (const s of open) s.destroy();
      } finally {
        await gptd.stop();
      }
    });
  }

  // Slowloris: clients that send one header line a second renew the idle timeout forever; the
  // receive deadline cuts them, so /health gets a place again (it hung for as long as they went
  // on before the deadline existed).
  test('--receive-timeout 2: 16 slow-header clients filling --max-connections 16 are cut; /health answers', async () => {
    const gptd = await Gptd.start({
      args: ['--max-connections', '16', '--connection-timeout', '3', '--receive-timeout', '2'],
    });
    const slow = [];
    try {
      await sleep(4500); // the test client's own pooled connection closes (see above)
      for (let i = 0; i < 16; i++) {
        const s = await idle(gptd.port);
        s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        s.drip = setInterval(() => s.destroyed || s.write('X-Slow: 1\r\n'), 1000);
        slow.push(s);
      }
      const t0 = performance.now();
      let status = 0;
      while (status !== 200 && performance.now() - t0 < 15_000) status = await health(gptd);
      assert.equal(status, 200, '/health never answered while slow clients held every place');
      for (let i = 0; i < 50 && !slow.every((s) => s.closedAt !== null); i++) await sleep(100);
      assert.ok(slow.every((s) => s.closedAt !== null), 'every slow client was cut');
    } finally {
      for (const s of slow) {
        clearInterval(s.drip);
        s.destroy();
      }
      await gptd.stop();
    }
  });

  // Every request on a keep-alive connection gets the deadline and the rate, not only the first:
  // after one quick GET /health, the same connection drips its next request.
  /** A connection that has had one GET /health answered and stays open. */
  async function keptAlive(port) {
    const s = await idle(port);
    s.setEncoding('latin1');
    s.got = '';
    s.on('data', (d) => (s.got += d));
    s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    for (let i = 0; i < 100 && !s.got.includes('{"status":"ok"}'); i++) await sleep(20);
    assert.match(s.got, /^HTTP\/1\.1 200 /, 'the first request is answered');
    return s;
  }

  /** Writes `piece` every `ms` until the socket closes or `limitMs` passes; the time it took. */
  async function dripUntilClosed(s, piece, ms, limitMs) {
    const t0 = performance.now();
    while (s.closedAt === null && performance.now() - t0 < limitMs) {
      s.write(piece);
      await sleep(ms);
    }
    return (s.closedAt ?? performance.now()) - t0;
  }

  test('--receive-timeout 3 (no rate): a keep-alive connection\'s second request, dripped, is cut at its deadline', async () => {
    const gptd = await Gptd.start({ args: ['--receive-timeout', '3', '--receive-min-rate', '0'] });
    try {
      const s = await keptAlive(gptd.port);
      await sleep(1500); // idle between requests: no deadline runs until the next request starts
      assert.equal(s.closedAt, null, 'an idle keep-alive connection is not cut by the deadline');
      s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const took = await dripUntilClosed(s, 'X-Slow: 1\r\n', 500, 15_000);
      assert.ok(s.closedAt !== null, 'a second request dripped for 15 s is still open');
      assert.ok(took >= 2500 && took <= 6000, `cut ${took.toFixed(0)} ms after its first byte`);
      assert.match(gptd.stderr + gptd.stdout, /did not send its request within 3 s/);
      s.destroy();
    } finally {
      await gptd.stop();
    }
  });

  test('--receive-min-rate: a slow body after a first request is cut within seconds and its --body-memory freed', async () => {
    // One such client holds the whole --body-memory (1 MB), so a small POST gets 503 until the
    // drip is cut; the deadline itself (60 s) is far away.
    const gptd = await Gptd.start({
      args: ['--receive-timeout', '60', '--receive-min-rate', '500', '--body-memory', '1'],
    });
    try {
      const s = await keptAlive(gptd.port);
      s.write('POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
              'Content-Length: 1000000\r\n\r\n{"prompt":"' + 'a'.repeat(999_000));
      await sleep(300);
      const held = await gptd.post('/generate', { prompt: 'ROMEO:', max_tokens: 2 });
      assert.equal(held.status, 503, 'the slow body holds --body-memory');
      const took = await dripUntilClosed(s, 'a', 1000, 20_000);
      assert.ok(s.closedAt !== null, 'a body dripping 1 byte/s for 20 s is still open');
      assert.ok(took <= 7000, `cut ${took.toFixed(0)} ms into the drip`);
      assert.match(gptd.stderr + gptd.stdout, /under --receive-min-rate: closed/);
      await eventually(async () => (await gptd.post('/generate', { prompt: 'ROMEO:', max_tokens: 2 })).status === 200,
                       { ms: 5000, every: 200 });
      s.destroy();
    } finally {
      await gptd.stop();
    }
  });
});
