// POST /tokenize and /detokenize, and the vocabulary in /info, on the character model and on a
// GPT-2 directory (byte-level BPE): ids, counts and pieces, round trips, and the refusals with
// what they name. Bodies are taken as generation bodies are (413 past --body-limit).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { Gptd, REPO_ROOT, assertApiError, eventually, readModelMetadata } from './helpers.js';

const TEXT = 'First Citizen:\nBefore we proceed any further, hear me speak.\n';

describe('tokenize and detokenize: the character model', () => {
  let gptd, vocab;
  before(async () => {
    gptd = await Gptd.start({ args: ['--body-limit', '4096'] });
    vocab = [...readModelMetadata().vocab];
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/info lists the vocabulary in id order', async () => {
    const info = (await gptd.get('/info')).json;
    assert.deepEqual(info.vocabulary, { kind: 'char', size: vocab.length, tokens: vocab });
  });

  test('text to ids, one a character, with its piece; and back', async () => {
    const r = await gptd.post('/tokenize', { text: TEXT });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ['count', 'pieces', 'tokens']);
    assert.deepEqual(r.json.tokens, [...TEXT].map((c) => vocab.indexOf(c)));
    assert.deepEqual(r.json.pieces, [...TEXT]);
    assert.equal(r.json.count, [...TEXT].length);
    const back = await gptd.post('/detokenize', { tokens: r.json.tokens });
    assert.equal(back.status, 200, back.text);
    assert.deepEqual(back.json, { text: TEXT });
    // as a prompt, the same count
    const g = await gptd.post('/generate', { prompt: TEXT, max_tokens: 1 });
    assert.equal(g.json.usage.prompt_tokens, r.json.count);
    // nothing is nothing
    assert.deepEqual((await gptd.post('/tokenize', { text: '' })).json, { tokens: [], count: 0, pieces: [] });
    assert.deepEqual((await gptd.post('/detokenize', { tokens: [] })).json, { text: '' });
  });

  test('a character outside the vocabulary: 400 naming it, its position and where to look', async () => {
    const r = await gptd.post('/tokenize', { text: 'ROMEO: ¿qué?' });
    assertApiError(r, 400, /^"text": character '¿' \(U\+00BF\) at position 7\b/,
      new RegExp(`vocabulary of ${vocab.length} characters`), /GET \/info or POST \/tokenize/);
  });

  test('an id outside the vocabulary: 400 naming its index, the id and the vocabulary\'s size', async () => {
    const r = await gptd.post('/detokenize', { tokens: [0, 1, vocab.length, 2] });
    assertApiError(r, 400, /"tokens"\[2\]/, new RegExp(`id ${vocab.length}\\b`),
      new RegExp(`vocabulary of ${vocab.length} tokens`));
    assertApiError(await gptd.post('/detokenize', { tokens: [-1] }), 400, /"tokens"\[0\]/, /id -1\b/);
    assertApiError(await gptd.post('/detokenize', { tokens: [1, 2.5] }), 400, /"tokens"\[1\]/, /integer/);
    assertApiError(await gptd.post('/detokenize', { tokens: '1 2' }), 400, /"tokens"/, /array/);
  });

  test('unknown or missing fields: 400 naming the field', async () => {
    assertApiError(await gptd.post('/tokenize', { text: 'a', prompt: 'b' }), 400, /unknown field "prompt"/);
    assertApiError(await gptd.post('/tokenize', { prompt: 'b' }), 400, /unknown field "prompt"/);
    assertApiError(await gptd.post('/tokenize', {}), 400, /"text"/, /required/);
    assertApiError(await gptd.post('/detokenize', { text: 'a' }), 400, /unknown field "text"/);
    assertApiError(await gptd.post('/detokenize', {}), 400, /"tokens"/, /required/);
    assertApiError(await gptd.post('/tokenize', '{"text": "a"'), 400, /JSON/);
  });

  test('a declared body past --body-limit is refused from the headers alone', { timeout: 10_000 }, async () => {
    // headers only, over a raw socket: the 413 must come without a byte of the body
    const sock = net.connect(gptd.port, '127.0.0.1');
    await once(sock, 'connect');
    sock.write('POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
               'Content-Length: 5000\r\nConnection: close\r\n\r\n');
    let raw = '';
    sock.setEncoding('utf8').on('data', (d) => (raw += d));
    await once(sock, 'close');
    assert.match(raw, /^HTTP\/1\.1 413 /, raw.slice(0, 200));
  });

  test('bodies as generation bodies: 413 past --body-limit; POST only', async () => {
    const big = { text: 'a'.repeat(5000) };
    assertApiError(await gptd.post('/tokenize', big), 413, /4096/);
    // sent in chunks, without a Content-Length to refuse it by: the limit holds as it arrives
    const res = await gptd.fetch('/tokenize', {
      method: 'POST', body: new Blob([JSON.stringify(big)]).stream(), duplex: 'half',
    });
    const text = await res.text();
    assertApiError({ status: res.status, text, json: JSON.parse(text) }, 413, /4096/);
    assertApiError(await gptd.post('/detokenize', { tokens: new Array(3000).fill(1) }), 413, /4096/);
    const get = await gptd.get('/tokenize');
    assertApiError(get, 405, /use POST/);
    assert.equal(get.headers.get('allow'), 'POST');
    // the server still answers, and counts both endpoints
    assert.equal((await gptd.post('/tokenize', { text: 'a' })).status, 200);
    const m = await gptd.metricsWhen((m) => m.get('gptd_requests_total{endpoint="tokenize",status="413"}') === 2);
    assert.equal(m.get('gptd_requests_total{endpoint="detokenize",status="413"}'), 1);
  });
});

describe('tokenize replies and --reply-memory', () => {
  test('a reply larger than --reply-memory is refused with a 503; a smaller one is sent', async () => {
    const gptd = await Gptd.start({ args: ['--reply-memory', '1', '--body-limit', '4194304'] });
    try {
      // each 'a' costs 7 bytes of reply ("39," and "\"a\","): 1.4 MB past the 1 MB, 0.7 MB within
      assertApiError(await gptd.post('/tokenize', { text: 'a'.repeat(200_000) }), 503, /1 MB/);
      const ok = await gptd.post('/tokenize', { text: 'a'.repeat(100_000) });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.count, 100_000);
      // what the sent reply held is given back once it has gone (a moment after the client has
      // read it): the next one fits again
      const again = async () => (await gptd.post('/tokenize', { text: 'a'.repeat(100_000) })).status === 200;
      assert.ok(await eventually(again, { ms: 3000, every: 100 }));
    } finally {
      await gptd.stop();
    }
  });
});

describe('tokenize and detokenize behind --api-key', () => {
  test('need the key, as generation does', async () => {
    const gptd = await Gptd.start({ args: ['--api-key', 'k1'] });
    try {
      assertApiError(await gptd.post('/tokenize', { text: 'a' }), 401);
      assertApiError(await gptd.post('/detokenize', { tokens: [1] }), 401);
      const ok = await gptd.post('/tokenize', { text: 'a' }, { headers: { Authorization: 'Bearer k1' } });
      assert.equal(ok.status, 200, ok.text);
    } finally {
      await gptd.stop();
    }
  });
});

describe('tokenize and detokenize: a GPT-2 directory (byte-level BPE)', () => {
  const MODEL_DIR = path.join(REPO_ROOT, 'tests/reference/fixtures/hf_gpt2_f32');
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ model: MODEL_DIR });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/info gives the vocabulary\'s kind and size, not its 457 tokens', async () => {
    assert.deepEqual((await gptd.get('/info')).json.vocabulary, { kind: 'gpt2-bpe', size: 457 });
  });

  test('any text round-trips; a piece shows bytes that form no character as U+FFFD', async () => {
    const text = 'Thou art 🙂 — 你好, the end';
    const r = await gptd.post('/tokenize', { text });
    assert.equal(r.status, 200, r.text);
    const { tokens, pieces, count } = r.json;
    assert.equal(count, tokens.length);
    assert.equal(pieces.length, count);
    assert.ok(count > [...text].length && count < Buffer.byteLength(text), `${count} tokens`);
    assert.ok(pieces.includes(' the'), 'a merged token is one piece');
    assert.ok(pieces.some((p) => p.includes('\uFFFD')), 'the emoji\'s bytes are cut over tokens');
    // whole characters: the pieces join to the text
    const whole = pieces.filter((p) => !p.includes('\uFFFD')).join('');
    assert.ok(text.startsWith(whole.slice(0, 9)));
    const back = await gptd.post('/detokenize', { tokens });
    assert.deepEqual(back.json, { text });
    // as a prompt, the same count
    const g = await gptd.post('/generate', { prompt: text, max_tokens: 1 });
    assert.equal(g.json.usage.prompt_tokens, count);
    assertApiError(await gptd.post('/detokenize', { tokens: [457] }), 400, /"tokens"\[0\]/, /id 457\b/,
      /vocabulary of 457 tokens/);
  });
});
