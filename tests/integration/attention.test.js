// "attention" on POST /generate: every token reports the softmax weights its query used, over the
// positions of its window, as JSON and as SSE; the text does not change; bad forms are 400s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Gptd, assertApiError, eventually, sleep } from './helpers.js';

const PROMPT = 'ROMEO:';
let gptd, info, keep;

before(async () => {
  gptd = await Gptd.start();
  const all = (await gptd.get('/info')).json;
  info = all.config;
  keep = all.context.keep; // the default --context-keep, as the daemon reports it
});
after(() => gptd?.stop());

/** One token's attention: weights over [start, position), summing to 1, in order. */
function checkToken(a, { heads = 1, context = info.block_size } = {}) {
  assert.ok(Number.isInteger(a.position) && Number.isInteger(a.start));
  const n = a.position - a.start;
  assert.ok(n >= 1 && n <= context, `window of ${n} positions`);
  const rows = heads === 1 ? [a.weights] : a.weights;
  assert.equal(rows.length, heads);
  for (const row of rows) {
    assert.equal(row.length, n, 'one weight for each position the query saw, none later');
    const sum = row.reduce((x, y) => x + y, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `a row sums to ${sum}`);
    assert.ok(row.every((w) => w >= 0 && w <= 1));
  }
}

describe('attention', () => {
  test('JSON: one head, each token its row; the same text as without; positions follow the text', async () => {
    const body = { prompt: PROMPT, max_tokens: 40, seed: 5 };
    const plain = await gptd.post('/generate', body);
    const r = await gptd.post('/generate', { ...body, attention: { layer: info.n_layer - 1, head: 2 } });
    assert.equal(r.status, 200);
    assert.equal(r.json.text, plain.json.text, 'asking for attention changes no byte');
    const a = r.json.attention;
    assert.equal(a.layer, info.n_layer - 1);
    assert.equal(a.head, 2);
    assert.equal(a.tokens.length, 40);
    assert.equal(a.tokens.map((t) => t.text).join(''), r.json.text);
    a.tokens.forEach((t, i) => {
      assert.equal(t.index, i);
      assert.equal(t.attention.position, PROMPT.length + i);
      assert.equal(t.attention.start, 0, 'inside the context the window starts at the prompt');
      checkToken(t.attention);
    });
  });

  test('SSE: one event per token with its weights, stop strings included', async () => {
    const body = { prompt: PROMPT, max_tokens: 120, seed: 3, stop: ['\n\n'], stream: true,
                   attention: { layer: 0, head: 'mean' } };
    const s = await gptd.stream(body);
    assert.equal(s.status, 200);
    const json = await gptd.post('/generate', { ...body, stream: false });
    assert.equal(s.text, json.json.text);
    for (const { json: ev } of s.tokens) {
      assert.equal([...ev.text].length, 1, 'one token an event');
      assert.equal(ev.attention.position, PROMPT.length + ev.index);
      checkToken(ev.attention);
    }
    assert.deepEqual(s.tokens.map(({ json: ev }) => ev.attention),
                     json.json.attention.tokens.map((t) => t.attention), 'SSE and JSON agree');
  });

  test('past the context: the window the model really saw (keep: a shift to the last K tokens)', async () => {
    const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 300, seed: 9,
                                             attention: { layer: 1, head: 'all', top_k: 3 } });
    assert.equal(r.status, 200);
    const T = info.block_size, tokens = r.json.attention.tokens;
    let shifted = false;
    for (const t of tokens) {
      const a = t.attention;
      assert.ok(a.position - a.start <= T);
      assert.equal(a.weights.length, info.n_head);
      for (const pairs of a.weights) {
        assert.ok(pairs.length === Math.min(3, a.position - a.start));
        for (const [p, w] of pairs) assert.ok(p >= a.start && p < a.position && w > 0 && w <= 1);
        for (let i = 1; i < pairs.length; i++) assert.ok(pairs[i - 1][1] >= pairs[i][1], 'heaviest first');
      }
      if (a.start > 0) shifted = true;
    }
    assert.ok(shifted, 'some tokens came after a context shift');
    const first = tokens.find((t) => t.attention.start > 0).attention;
    assert.equal(first.position - first.start, keep, 'the first shifted window holds the K kept tokens');
  });

  test('out of range or malformed: 400 naming the field; the reply stays bounded', async () => {
    const cases = [
      [{ layer: info.n_layer, head: 0 }, /layer/],
      [{ layer: 0, head: info.n_head }, /head/],
      [{ layer: 0, head: 'max' }, /head/],
      [{ head: 0 }, /layer/],
      [{ layer: 0, head: 0, top_k: 0 }, /top_k/],
      [{ layer: 0, head: 0, extra: 1 }, /extra/],
      [[0, 0], /attention/],
    ];
    for (const [attention, re] of cases) {
      const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 5, attention });
      assertApiError(r, 400, re);
    }
    const big = await gptd.post('/generate', { max_tokens: 1000, attention: { layer: 0, head: 'all' } });
    assertApiError(big, 400, /max_tokens/, /at most 512/);
  });
});

// A 66-byte request asks for a reply of megabytes: what all attention replies hold at once is
// bounded by --reply-memory (503 past it), and a client that never reads holds its share only
// until --connection-timeout drops it.
describe('--reply-memory bounds attention replies', () => {
  const BIG = { prompt: 'ROMEO:', max_tokens: 512, attention: { layer: 0, head: 'all' } };

  /** Sends BIG on a raw socket and never reads the reply. */
  async function nonReader(port) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    s.pause(); // nothing is read: the reply stays in gptd once the kernel's buffers are full
    const body = JSON.stringify(BIG);
    s.write(`POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${body.length}\r\n\r\n${body}`);
    return s;
  }

  test('two non-reading clients hold the budget: a third attention request gets 503, a plain one 200; freed once they are dropped', async () => {
    // Each BIG reply costs 512 x 1,536 weights x 30 bytes = 23.6 MB of the budget: two fit in 50.
    const gptd = await Gptd.start({ args: ['--reply-memory', '50', '--connection-timeout', '3'] });
    const held = [];
    try {
      for (let i = 0; i < 2; i++) held.push(await nonReader(gptd.port));
      await sleep(1500); // both generated; their replies wait for readers
      const third = await gptd.post('/generate', BIG);
      assertApiError(third, 503, /attention replies/, /--reply-memory|over 50 MB/);
      const plain = await gptd.post('/generate', { prompt: 'ROMEO:', max_tokens: 20 });
      assert.equal(plain.status, 200, plain.text);
      // --connection-timeout (3 s without progress) drops the non-readers and frees the budget
      const t0 = performance.now();
      let after;
      while (performance.now() - t0 < 12_000) {
        after = await gptd.post('/generate', BIG);
        if (after.status === 200) break;
        await sleep(500);
      }
      assert.equal(after.status, 200, `the budget was not freed within 12 s: ${after.text.slice(0, 300)}`);
      assert.equal(after.json.attention.tokens.length, 512);
      assert.ok(performance.now() - t0 > 1000, 'freed before the connection timeout: not held at all?');
    } finally {
      for (const s of held) s.destroy();
      await gptd.stop();
    }
  });
});
