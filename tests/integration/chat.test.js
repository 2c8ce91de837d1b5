// POST /v1/chat/completions with the official `openai` client: the play-script template, the
// reply stopping at the next speaker's heading, streaming, usage and logprobs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { BadRequestError } from 'openai';
import { Gptd } from './helpers.js';

const MODEL = 'gptd-shakespeare-char';
const MESSAGES = [
  { role: 'system', content: 'A street in Verona.' },
  { role: 'user', content: 'Good morrow, lady.' },
  { role: 'assistant', content: 'Good morrow.' },
  { role: 'user', content: 'What news?' },
];
// docs/api.md's template: "SPEAKER:\ntext\n\n" a message (a system message has no heading), then
// the reply's speaker heading.
const TEMPLATE =
  'A street in Verona.\n\nROMEO:\nGood morrow, lady.\n\nJULIET:\nGood morrow.\n\nROMEO:\nWhat news?\n\nJULIET:\n';

describe('/v1/chat/completions', () => {
  let gptd;
  let openai;
  before(async () => {
    gptd = await Gptd.start();
    openai = new OpenAI({ baseURL: `${gptd.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000 });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('the reply is the completion of the play-script template, up to the next heading', async () => {
    const params = { model: MODEL, messages: MESSAGES, max_tokens: 300, seed: 11 };
    const c = await openai.chat.completions.create(params);
    assert.equal(c.object, 'chat.completion');
    assert.match(c.id, /^chatcmpl-/);
    assert.equal(c.choices.length, 1);
    const msg = c.choices[0].message;
    assert.equal(msg.role, 'assistant');
    assert.equal(c.usage.prompt_tokens, [...TEMPLATE].length, 'the prompt is the template, a token a character');
    // The same text from /v1/completions on the template itself, stopped at the blank line.
    const plain = await gptd.post('/v1/completions', { prompt: TEMPLATE, max_tokens: 300, seed: 11, stop: '\n\n' });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(msg.content, plain.json.choices[0].text);
    assert.equal(c.choices[0].finish_reason, plain.json.choices[0].finish_reason);
    assert.ok(!msg.content.includes('\n\n'), 'the reply ends before the next speaker');
    if (c.choices[0].finish_reason === 'stop') assert.ok(c.usage.completion_tokens > msg.content.length);
  });

  test('/info shows the template', async () => {
    const t = (await gptd.get('/info')).json.chat_template;
    assert.equal(t.user, 'ROMEO');
    assert.equal(t.assistant, 'JULIET');
    assert.equal(t.stop, '\n\n');
  });

  test('names and "speakers" change the headings', async () => {
    const base = { model: MODEL, max_tokens: 40, seed: 5 };
    const named = await openai.chat.completions.create({
      ...base,
      messages: [{ role: 'user', content: 'Peace!', name: 'MERCUTIO' }],
      speakers: { assistant: 'TYBALT' },
    });
    const plain = await gptd.post('/v1/completions', {
      prompt: 'MERCUTIO:\nPeace!\n\nTYBALT:\n', max_tokens: 40, seed: 5, stop: '\n\n',
    });
    assert.equal(named.choices[0].message.content, plain.json.choices[0].text);
    assert.equal(named.usage.prompt_tokens, [...'MERCUTIO:\nPeace!\n\nTYBALT:\n'].length);
  });

  test('streamed chunks carry the role once, then deltas that add up to the reply, then usage', async () => {
    const params = { model: MODEL, messages: MESSAGES, max_tokens: 200, seed: 11 };
    const whole = await openai.chat.completions.create(params);
    const stream = await openai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let roles = 0;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) {
        usage = chunk.usage;
        assert.deepEqual(chunk.choices, []);
        continue;
      }
      const d = chunk.choices[0].delta;
      if (d.role) roles++;
      text += d.content ?? '';
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert.equal(roles, 1, 'the role comes in the first chunk only');
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    assert.deepEqual(usage, whole.usage);
  });

  test('logprobs: each token with its top alternatives, in order, its own among them', async () => {
    const c = await openai.chat.completions.create({
      model: MODEL, messages: MESSAGES, max_tokens: 30, seed: 3, logprobs: true, top_logprobs: 5,
    });
    const content = c.choices[0].logprobs.content;
    assert.equal(content.map((t) => t.token).join(''), c.choices[0].message.content);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 5);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
      for (let i = 1; i < 5; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob);
      const own = t.top_logprobs.find((a) => a.token === t.token);
      if (own) assert.equal(own.logprob, t.logprob);
      else assert.ok(t.logprob <= t.top_logprobs[4].logprob);
    }
  });

  test('bad messages and fields are refused with a 400 naming them', async () => {
    const cases = [
      [{ messages: [] }, /"messages"/],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, /"messages"\[0\].*"role"/],
      [{ messages: [{ role: 'user' }] }, /"messages"\[0\].*"content"/],
      [{ messages: [{ role: 'user', content: 'x', name: 'A:B' }] }, /"name"/],
      [{ messages: [{ role: 'user', content: 'x', tool_calls: [] }] }, /"tool_calls"/],
      [{ messages: [{ role: 'user', content: 'x' }], tools: [] }, /"tools"/],
      [{ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } }, /"response_format"/],
      [{ messages: [{ role: 'user', content: 'x' }], echo: true }, /"echo"/],
      [{ messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, /"top_logprobs"/],
      [{ messages: [{ role: 'user', content: 'x' }], speakers: { narrator: 'X' } }, /"narrator"/],
    ];
    for (const [body, re] of cases) {
      await assert.rejects(openai.chat.completions.create({ model: MODEL, ...body }), (err) => {
        assert.ok(err instanceof BadRequestError, `${JSON.stringify(body)}: ${err}`);
        assert.match(err.message, re);
        return true;
      });
    }
  });
});
