// Nothing silently ignored: every endpoint refuses a field it does not take with a 400 naming it,
// and accepts the OpenAI fields that mean nothing here (docs/api.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Gptd, PROMPT, assertApiError } from './helpers.js';

const MSG = [{ role: 'user', content: 'Hail.' }];
const ENDPOINTS = {
  '/generate': { prompt: PROMPT, max_tokens: 2 },
  '/v1/completions': { prompt: PROMPT, max_tokens: 2 },
  '/v1/chat/completions': { messages: MSG, max_tokens: 2 },
};
// Fields other servers take that gptd does not do, and typos of its own.
const UNKNOWN = {
  '/generate': ['temprature', 'n', 'echo', 'best_of', 'suffix', 'user', 'model', 'messages', 'stream_options'],
  '/v1/completions': ['temprature', 'attention', 'messages', 'tools', 'typical_p', 'mirostat', 'top_logprobs', 'grammar'],
  '/v1/chat/completions': ['prompt', 'attention', 'echo', 'best_of', 'suffix', 'tools', 'functions', 'response_format', 'typical_p'],
};

describe('fields per endpoint', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start();
  });
  after(async () => {
    await gptd?.stop();
  });

  for (const [path, base] of Object.entries(ENDPOINTS)) {
    test(`${path} refuses every field it does not take, naming it`, async () => {
      for (const field of UNKNOWN[path]) {
        const r = await gptd.post(path, { ...base, [field]: 1 });
        assertApiError(r, 400, new RegExp(`unknown field "${field}"`));
      }
    });
  }

  test('the OpenAI fields that mean nothing here are accepted on both OpenAI endpoints', async () => {
    for (const path of ['/v1/completions', '/v1/chat/completions']) {
      const r = await gptd.post(path, { ...ENDPOINTS[path], model: 'anything', user: 'u-1', n: 1 });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
    }
    const r = await gptd.post('/v1/completions', { ...ENDPOINTS['/v1/completions'], suffix: null, best_of: 1, echo: false });
    assert.equal(r.status, 200, r.text);
  });

  test('what is not done is refused, not ignored: best_of above n, a suffix, echo with stream', async () => {
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, best_of: 2 }), 400, /"best_of"/);
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, suffix: 'x' }), 400, /"suffix"/);
    assertApiError(await gptd.post('/v1/completions', { prompt: PROMPT, echo: true, stream: true }), 400, /"echo"/);
  });

  test('sampling controls are held to their bounds, at the bound and one past it', async () => {
    const bounds = [
      ['min_p', 0, 1, -0.01, 1.01],
      ['presence_penalty', -2, 2, -2.01, 2.01],
      ['frequency_penalty', -2, 2, -2.01, 2.01],
      ['repetition_penalty', 1e-6, 10, 0, 10.01],
    ];
    for (const path of Object.keys(ENDPOINTS)) {
      for (const [field, lo, hi, below, above] of bounds) {
        for (const v of [lo, hi]) {
          const r = await gptd.post(path, { ...ENDPOINTS[path], [field]: v });
          assert.equal(r.status, 200, `${path} ${field} ${v}: ${r.text}`);
        }
        for (const v of [below, above]) assertApiError(await gptd.post(path, { ...ENDPOINTS[path], [field]: v }), 400, new RegExp(`"${field}"`));
      }
      const ok = await gptd.post(path, { ...ENDPOINTS[path], logit_bias: { 0: 100, 1: -100, a: 5 } });
      assert.equal(ok.status, 200, ok.text);
      for (const bias of [{ 0: 100.5 }, { 65: 1 }, { é: 1 }, { ab: 1 }, { 0: 'x' }, [1], { 39: 1, a: 2 }])
        assertApiError(await gptd.post(path, { ...ENDPOINTS[path], logit_bias: bias }), 400, /"logit_bias"/);
    }
  });
});
