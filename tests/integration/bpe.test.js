// A Hugging Face GPT-2 directory served by the real daemon: the byte-level BPE tokenizer behind
// every endpoint. The model is the tiny random one of tests/reference/fixtures/hf_gpt2_f32, so
// its text is random bytes: characters split across tokens and bytes that form none, which is
// what the streams must survive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Gptd, REPO_ROOT } from './helpers.js';

const MODEL_DIR = path.join(REPO_ROOT, 'tests/reference/fixtures/hf_gpt2_f32');
const PROMPT = 'Thou art 🙂 — 你好, ʻŌlelo!\n';

/** The UTF-8 bytes of s, and whether they are valid text with nothing cut in half. */
function wholeText(s) {
  const bytes = Buffer.from(s, 'utf8');
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes) === s;
}

describe('a GPT-2 directory (byte-level BPE)', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ model: MODEL_DIR });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/info names the tokenizer and the model', async () => {
    const info = (await gptd.get('/info')).json;
    assert.deepEqual(info.tokenizer, { kind: 'gpt2-bpe', tokens: 457 });
    assert.equal(info.config.vocab_size, 457);
    assert.equal(info.config.n_layer, 2);
    assert.equal(info.config.activation, 'gelu');
    // a directory names the model unless --model-name does
    assert.equal(info.model, 'hf_gpt2_f32');
    assert.equal((await gptd.get('/v1/models')).json.data[0].id, 'hf_gpt2_f32');
  });

  test('any prompt encodes: emoji, CJK and marks no character vocabulary has', async () => {
    const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 8, seed: 1 });
    assert.equal(r.status, 200, r.text);
    // 256 byte tokens and 200 merges: more tokens than characters, fewer than bytes
    const tokens = r.json.usage.prompt_tokens;
    assert.ok(tokens > [...PROMPT].length && tokens < Buffer.byteLength(PROMPT), `${tokens} tokens`);
  });

  test('a stream is byte-identical to the JSON reply, and each event holds whole characters', async () => {
    let replaced = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const body = { prompt: PROMPT, max_tokens: 200, seed };
      const plain = await gptd.post('/generate', body);
      assert.equal(plain.status, 200, plain.text);
      const s = await gptd.stream({ ...body, stream: true });
      assert.equal(s.status, 200);
      assert.equal(s.text, plain.json.text, `seed ${seed}: the stream's text is the reply's`);
      for (const { json: ev } of s.tokens) assert.ok(wholeText(ev.text), `event ${ev.index}`);
      replaced += [...plain.json.text].filter((c) => c === '\uFFFD').length;
      const done = s.final;
      assert.ok(['length', 'stop'].includes(done.finish_reason));
      assert.equal(done.usage.completion_tokens, plain.json.usage.completion_tokens);
    }
    // random bytes: some must have been cut characters, each shown as U+FFFD in both forms
    assert.ok(replaced > 0, 'the random model wrote bytes that form no character');
  });

  test('/v1/completions and a stop string that ends inside a token', async () => {
    const body = { prompt: PROMPT, max_tokens: 60, seed: 7 };
    const full = (await gptd.post('/generate', body)).json.text;
    // a stop string taken from the middle of the reply: the reply ends just before it
    const chars = [...full].filter((c) => c !== '\uFFFD');
    const stop = chars.slice(10, 12).join('');
    const cut = await gptd.post('/generate', { ...body, stop: [stop] });
    assert.equal(cut.status, 200, cut.text);
    assert.equal(cut.json.text, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.json.finish_reason, 'stop');
    const c = await gptd.post('/v1/completions', { ...body, stop: [stop] });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.choices[0].text, cut.json.text);
    assert.equal(c.json.choices[0].finish_reason, 'stop');
  });
});
