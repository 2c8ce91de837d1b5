// The official `openai` npm client against /v1/completions, with and without an API key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { APIError, AuthenticationError, BadRequestError } from 'openai';
import { Gptd, PROMPT } from './helpers.js';

const MODEL = 'gptd-shakespeare-char';

function client(gptd, apiKey) {
  // maxRetries 0: a 4xx/5xx should surface at once, not be retried by the client
  return new OpenAI({ baseURL: `${gptd.url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
}

/** Non-streamed, streamed (text equality) and usage-chunk checks with one client. */
async function checkCompletions(openai) {
  const params = { model: MODEL, prompt: PROMPT, max_tokens: 40, seed: 2024 };
  const c = await openai.completions.create(params);
  assert.equal(c.object, 'text_completion');
  assert.equal(typeof c.id, 'string');
  assert.equal(c.model, MODEL);
  assert.ok(Number.isInteger(c.created) && c.created > 1_600_000_000, `created ${c.created}`);
  assert.equal(c.choices.length, 1);
  assert.equal(c.choices[0].index, 0);
  assert.equal(c.choices[0].finish_reason, 'length');
  assert.equal([...c.choices[0].text].length, 40);
  assert.equal(c.usage.prompt_tokens, [...PROMPT].length);
  assert.equal(c.usage.completion_tokens, 40);
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + 40);

  const again = await openai.completions.create(params);
  assert.equal(again.choices[0].text, c.choices[0].text, 'the same seed gives the same text');

  const stream = await openai.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'text_completion');
    assert.equal(chunk.choices.length, 1);
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    assert.equal(chunk.usage ?? undefined, undefined, 'no usage chunk unless asked for');
  }
  assert.ok(chunks > 10, `${chunks} chunks: the text should arrive in pieces`);
  assert.equal(finish, 'length');
  assert.equal(text, c.choices[0].text, 'streamed text equals the non-streamed text');

  const withUsage = await openai.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let usage = null;
  let streamed = '';
  for await (const chunk of withUsage) {
    if (chunk.usage) {
      assert.equal(usage, null, 'one usage chunk');
      assert.deepEqual(chunk.choices, [], 'the usage chunk has no choices');
      usage = chunk.usage;
    } else {
      streamed += chunk.choices[0].text;
    }
  }
  assert.ok(usage, 'stream_options.include_usage yields a usage chunk');
  assert.equal(usage.completion_tokens, 40);
  assert.equal(usage.prompt_tokens, [...PROMPT].length);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  assert.equal(streamed, c.choices[0].text);
}

describe('openai client, server without an API key', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--model-name', MODEL] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('completions.create: non-streamed, streamed (same text for the same seed), include_usage', async () => {
    await checkCompletions(client(gptd, 'any-string-will-do'));
  });

  test('a parameter gptd does not take is a 400 naming it (APIError with status 400)', async () => {
    const openai = client(gptd, 'x');
    for (const extra of [{ tools: [] }, { typical_p: 0.9 }, { suffix: 'x' }, { best_of: 3 }]) {
      await assert.rejects(
        openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, ...extra }),
        (err) => {
          assert.ok(err instanceof APIError, `${err}`);
          assert.ok(err instanceof BadRequestError);
          assert.equal(err.status, 400);
          assert.match(err.message, new RegExp(`"${Object.keys(extra)[0]}"`));
          return true;
        });
    }
  });

  test('n: 3, logprobs, echo, the penalties and logit_bias through the client', async () => {
    const openai = client(gptd, 'x');
    const base = { model: MODEL, prompt: PROMPT, max_tokens: 50, seed: 12 };
    const three = await openai.completions.create({ ...base, n: 3 });
    assert.equal(three.choices.length, 3);
    for (let i = 0; i < 3; i++) {
      const one = await openai.completions.create({ ...base, seed: 12 + i });
      assert.equal(three.choices[i].text, one.choices[0].text, `choice ${i} is seed ${12 + i}`);
    }
    const scored = await openai.completions.create({ ...base, echo: true, logprobs: 2 });
    const lp = scored.choices[0].logprobs;
    assert.ok(scored.choices[0].text.startsWith(PROMPT));
    assert.equal(lp.tokens.join(''), scored.choices[0].text);
    assert.equal(lp.token_logprobs[0], null);
    assert.ok(lp.token_logprobs.slice(1).every((x) => x <= 0));
    const banned = await openai.completions.create({ ...base, max_tokens: 300, logit_bias: { e: -100 } });
    assert.ok(!banned.choices[0].text.includes('e'));
    const plain = await openai.completions.create(base);
    for (const params of [{ frequency_penalty: 1.5 }, { presence_penalty: 1.5 }, { repetition_penalty: 1.8 }]) {
      const c = await openai.completions.create({ ...base, ...params });
      assert.notEqual(c.choices[0].text, plain.choices[0].text, JSON.stringify(params));
    }
  });

  test('a prompt array of one string is accepted; of two is a 400', async () => {
    const openai = client(gptd, 'x');
    const c = await openai.completions.create({ model: MODEL, prompt: [PROMPT], max_tokens: 5, seed: 1 });
    assert.equal(c.usage.completion_tokens, 5);
    await assert.rejects(openai.completions.create({ model: MODEL, prompt: [PROMPT, PROMPT], max_tokens: 5 }),
      (err) => err instanceof APIError && err.status === 400);
  });

  test('temperature, top_p and stop reach the sampler: the same choices as /generate makes', async () => {
    const openai = client(gptd, 'x');
    const text = async (params) =>
      (await openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 60, seed: 7, ...params }))
        .choices[0];
    const generate = async (params) =>
      (await gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed: 7, ...params })).json.text;
    for (const params of [{ temperature: 0.4 }, { temperature: 1.7 }, { top_p: 0.5 }, { temperature: 0 }]) {
      const c = await text(params);
      assert.equal(c.text, await generate(params), `same text as /generate for ${JSON.stringify(params)}`);
    }
    // and they matter: other values, other texts
    assert.notEqual((await text({ temperature: 0.4 })).text, (await text({ temperature: 1.7 })).text);
    // a stop string ends the choice before it, with finish_reason "stop"
    const full = (await text({ temperature: 0 })).text;
    const stop = full.slice(20, 23);
    const cut = await text({ temperature: 0, stop });
    assert.equal(cut.finish_reason, 'stop');
    assert.equal(cut.text, full.slice(0, full.indexOf(stop)));
  });

  test('the OpenAI endpoints stream only on "stream": true, not on an Accept header', async () => {
    // Clients and HTTP libraries send broad Accept headers; /generate alone takes it as "stream".
    for (const [path, body] of [['/v1/completions', { prompt: PROMPT }], ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Hail.' }] }]]) {
      const r = await gptd.post(path, { ...body, max_tokens: 2, seed: 1 }, { headers: { Accept: 'text/event-stream' } });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('content-type'), /^application\/json/, path);
      assert.equal(r.json.usage.completion_tokens, 2, path);
    }
  });

  test('models.list names the served model', async () => {
    const page = await client(gptd, 'x').models.list();
    assert.deepEqual(page.data.map((m) => m.id), [MODEL]);
  });
});

describe('openai client, server with --api-key', () => {
  const KEY = 'sk-test-0123456789';
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--api-key', KEY, '--model-name', MODEL] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('the right key: completions work, streamed and not', async () => {
    await checkCompletions(client(gptd, KEY));
  });

  test('a wrong key: AuthenticationError with status 401', async () => {
    await assert.rejects(
      client(gptd, 'sk-wrong').completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5 }),
      (err) => {
        assert.ok(err instanceof AuthenticationError, `${err}`);
        assert.equal(err.status, 401);
        return true;
      });
  });
});
