// "n": several choices of one request share one prefill of the prompt (its cache rows copied)
// and decode side by side; choice i of a seeded request is the text of a single request with
// seed + i. With the official `openai` client, streaming and not, on both OpenAI endpoints.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Gptd, PROMPT, assertApiError } from './helpers.js';

const MODEL = 'gptd-shakespeare-char';

describe('n choices', () => {
  let gptd;
  let openai;
  before(async () => {
    gptd = await Gptd.start({ args: ['--max-batch', '8'] });
    openai = new OpenAI({ baseURL: `${gptd.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000 });
  });
  after(async () => {
    await gptd?.stop();
  });

  const rows = async () => (await gptd.metrics()).get('gptd_engine_rows_total');

  test('n: 4 costs one prefill: the engine runs the prompt once, and each choice once a token', async () => {
    const prompt = 'ROMEO:\nWhat light through yonder window breaks? It is the east.\n';
    const max_tokens = 30;
    const before = await rows();
    const c = await openai.completions.create({ model: MODEL, prompt, max_tokens, seed: 40, n: 4 });
    const after = await rows();
    assert.equal(c.choices.length, 4);
    assert.deepEqual(c.choices.map((x) => x.index), [0, 1, 2, 3]);
    // The first token of each choice comes from the prompt's logits; the last is not fed back.
    assert.equal(after - before, [...prompt].length + 4 * (max_tokens - 1));
    assert.equal(c.usage.prompt_tokens, [...prompt].length);
    assert.equal(c.usage.completion_tokens, 4 * max_tokens);
    // Choice i is the text of a single request with seed 40 + i.
    for (let i = 0; i < 4; i++) {
      const one = await openai.completions.create({ model: MODEL, prompt, max_tokens, seed: 40 + i });
      assert.equal(c.choices[i].text, one.choices[0].text, `choice ${i}`);
    }
    assert.ok(new Set(c.choices.map((x) => x.text)).size > 1, 'the choices differ');
  });

  test('chat n: 3, streamed and not: the same choices, each chunk naming its index', async () => {
    const params = { model: MODEL, messages: [{ role: 'user', content: 'Speak.' }], max_tokens: 60, seed: 8, n: 3 };
    const whole = await openai.chat.completions.create(params);
    assert.equal(whole.choices.length, 3);
    const texts = ['', '', ''];
    const roles = [0, 0, 0];
    const finishes = [null, null, null];
    for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) {
      for (const ch of chunk.choices) {
        texts[ch.index] += ch.delta.content ?? '';
        if (ch.delta.role) roles[ch.index]++;
        if (ch.finish_reason) finishes[ch.index] = ch.finish_reason;
      }
    }
    assert.deepEqual(roles, [1, 1, 1]);
    assert.deepEqual(texts, whole.choices.map((x) => x.message.content));
    assert.deepEqual(finishes, whole.choices.map((x) => x.finish_reason));
  });

  test('n with logprobs: each choice carries its own', async () => {
    const c = await openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 10, seed: 2, n: 2, logprobs: 2 });
    for (const ch of c.choices) assert.equal(ch.logprobs.tokens.join(''), ch.text);
  });

  test('n is held to the slots; best_of must equal n; echo takes n 1', async () => {
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, n: 9 }), 400, /"n" must be at most 8/);
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, n: 2, best_of: 3 }), 400, /"best_of"/);
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, n: 2, echo: true }), 400, /"echo"/);
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, n: 0 }), 400, /"n"/);
    const ok = await gptd.post('/v1/completions', { prompt: PROMPT, max_tokens: 3, n: 8, best_of: 8 });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.choices.length, 8);
  });
});
