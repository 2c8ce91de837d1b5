// Past the model's context: the window moves (--context-shift keep|exact, --context-keep K) and
// a reply goes on as if nothing happened: stream and JSON reply agree, token events keep their
// order and logprobs, stop strings that straddle a shift are still found, and a bad
// --context-keep is refused at start-up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Gptd, IS_SANITIZER_BUILD, PROMPT, freePort, modelPath, readModelMetadata, runGptd } from './helpers.js';

const T = Number(readModelMetadata().block_size);
const NO_LEAK_CHECK = IS_SANITIZER_BUILD ? { ASAN_OPTIONS: 'detect_leaks=0' } : {};

/** A stream and a JSON reply of the same seeded request: same text, events in order. */
async function streamMatchesReply(gptd, body) {
  const plain = await gptd.post('/generate', body);
  assert.equal(plain.status, 200, plain.text);
  assert.equal(plain.json.usage.completion_tokens, body.max_tokens);
  const s = await gptd.stream({ ...body, stream: true });
  assert.equal(s.status, 200);
  assert.ok(s.done, 'the stream ends with [DONE]');
  assert.equal(s.text, plain.json.text, 'streamed text equals the JSON reply');
  let last = -1;
  for (const { json: ev } of s.tokens) {
    assert.ok(ev.index > last, `index ${ev.index} after ${last}`);
    assert.ok(Number.isFinite(ev.logprob) && ev.logprob <= 0, `logprob ${ev.logprob} at ${ev.index}`);
    last = ev.index;
  }
  assert.equal(last, body.max_tokens - 1);
  assert.equal(s.final.finish_reason, 'length');
  return { plain, s };
}

describe('past the context, keep (the default)', () => {
  let gptd;
  const keep = T - 8; // a shift every 9 tokens: many shifts in one reply
  before(async () => {
    gptd = await Gptd.start({ args: ['--context-keep', String(keep)] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/info reports the rule and how many tokens a full window keeps', async () => {
    const info = await gptd.get('/info');
    assert.deepEqual(info.json.context, { shift: 'keep', keep });
  });

  test('a reply three contexts long: stream equals the JSON reply, events in order', async () => {
    await streamMatchesReply(gptd, { prompt: PROMPT, max_tokens: 3 * T, seed: 5 });
  });

  test('a stop string found after several shifts ends the reply just before it', async () => {
    const body = { prompt: PROMPT, max_tokens: 3 * T, seed: 11 };
    const full = (await gptd.post('/generate', body)).json.text;
    // a 4-character piece whose first occurrence lies past the context and across a shift point
    let at = -1;
    for (let i = 2 * T; i + 4 <= full.length && at < 0; i++) {
      const piece = full.slice(i, i + 4);
      if (full.indexOf(piece) === i) at = i;
    }
    assert.ok(at > 0, 'some 4-character piece occurs first past the context');
    const stop = full.slice(at, at + 4);
    const r = await gptd.post('/generate', { ...body, stop });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.finish_reason, 'stop');
    assert.equal(r.json.text, full.slice(0, at));
    const s = await gptd.stream({ ...body, stop, stream: true });
    assert.equal(s.text, full.slice(0, at), 'the stream holds back the stop string too');
    assert.equal(s.final.finish_reason, 'stop');
  });
});

describe('past the context, exact', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--context-shift', 'exact'] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/info reports exact and the whole context', async () => {
    assert.deepEqual((await gptd.get('/info')).json.context, { shift: 'exact', keep: T });
  });

  test('a reply past the context: stream equals the JSON reply', async () => {
    await streamMatchesReply(gptd, { prompt: PROMPT, max_tokens: T + 20, seed: 5 });
  });

  test('the rules part only past the context: the first T - prompt tokens are the same', async () => {
    const body = { prompt: PROMPT, max_tokens: T + 20, seed: 8 };
    const exact = (await gptd.post('/generate', body)).json.text;
    const keeper = await Gptd.start();
    try {
      const kept = (await keeper.post('/generate', body)).json.text;
      const inside = T - [...PROMPT].length;
      assert.equal(kept.slice(0, inside), exact.slice(0, inside));
    } finally {
      await keeper.stop();
    }
  });
});

describe('--context-shift and --context-keep at start-up', () => {
  const start = async (args, env = {}) =>
    runGptd(['--host', '127.0.0.1', '--port', String(await freePort()), '--threads', '2',
      '--model', modelPath(), ...args], { env: { ...NO_LEAK_CHECK, ...env } });

  test('--context-keep above the context: exit 2, the message gives the range', async () => {
    const r = await start(['--context-keep', String(T + 1)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`keep ${T + 1} is outside 1\\.\\.${T}`));
  });

  test('GPTD_CONTEXT_KEEP is checked the same way', async () => {
    const r = await start([], { GPTD_CONTEXT_KEEP: String(T + 5) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /outside 1\.\./);
  });

  test('a negative --context-keep and an unknown --context-shift: exit 2', async () => {
    const neg = await start(['--context-keep', '-1']);
    assert.equal(neg.code, 2, neg.stderr);
    assert.match(neg.stderr, /context-keep/);
    const bad = await start(['--context-shift', 'slide']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /"exact" or "keep", not "slide"/);
  });
});
