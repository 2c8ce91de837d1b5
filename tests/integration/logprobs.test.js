// Log-probabilities, scoring, and the sampling controls checked against their definitions, from
// the log-probabilities the server reports (docs/api.md "Logprobs and scoring").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Gptd, PROMPT, REPO_ROOT, modelPath } from './helpers.js';

const DATA = process.env.GPTD_DATA ?? path.resolve(REPO_ROOT, '../shared/data/tinyshakespeare.txt');
const CONTEXT_LOSS = path.join(REPO_ROOT, 'bin/gpt-context-loss');

/** A completions request scoring text: its token_logprobs (the first null) and top lists. */
async function score(gptd, text, top = 0) {
  const r = await gptd.post('/v1/completions', { prompt: text, max_tokens: 0, echo: true, logprobs: top });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].text, text, 'echo returns the prompt');
  return r.json.choices[0].logprobs;
}

/** The reply's text and, per token, its top_logprobs as a map text -> logprob. */
async function generateWithLogprobs(gptd, body) {
  const r = await gptd.post('/generate', { logprobs: 65, ...body });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

function counts(text) {
  const c = new Map();
  for (const ch of text) c.set(ch, (c.get(ch) ?? 0) + 1);
  return c;
}

describe('logprobs and scoring', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--context-shift', 'keep'] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('/generate logprobs 65 gives the whole distribution, in order, summing to 1', async () => {
    const j = await generateWithLogprobs(gptd, { prompt: PROMPT, max_tokens: 20, seed: 4 });
    assert.equal(j.logprobs.length, 20);
    for (const t of j.logprobs) {
      assert.equal(t.top_logprobs.length, 65);
      const mass = t.top_logprobs.reduce((s, a) => s + Math.exp(a.logprob), 0);
      assert.ok(Math.abs(mass - 1) < 1e-4, `mass ${mass}`);
      for (let i = 1; i < 65; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob);
      assert.equal(t.top_logprobs.find((a) => a.text === t.text).logprob, t.logprob);
    }
    assert.equal(j.logprobs.map((t) => t.text).join(''), j.text);
  });

  test('scoring: summed token_logprobs equal gpt-context-loss on four stretches, past the context', async () => {
    assert.ok(fs.existsSync(CONTEXT_LOSS), `${CONTEXT_LOSS} is missing: make bin/gpt-context-loss`);
    assert.ok(fs.existsSync(DATA), `${DATA} is missing (GPTD_DATA, or ../shared/data)`);
    const len = 400; // past the context of 256
    const out = execFileSync(CONTEXT_LOSS, ['--model', modelPath(), '--data', DATA, '--stretches', '4',
      '--length', String(len), '--threads', '2'], { encoding: 'utf8' });
    const row = out.split('\n').find((l) => l.startsWith('| keep '));
    assert.ok(row, out);
    const want = Number(row.split('|')[2]);
    // The same four stretches of the validation split (the last tenth of the text).
    const chars = [...fs.readFileSync(DATA, 'utf8')];
    const nTrain = Math.floor((chars.length * 9) / 10);
    const val = chars.slice(nTrain);
    let nll = 0;
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const start = Math.floor(((val.length - len) * i) / 3);
      const lp = await score(gptd, val.slice(start, start + len).join(''));
      assert.equal(lp.token_logprobs[0], null, 'nothing predicts the first character');
      for (const x of lp.token_logprobs.slice(1)) {
        nll -= x;
        n++;
      }
    }
    assert.equal(n, 4 * (len - 1));
    assert.ok(Math.abs(nll / n - want) <= 1e-4 + 5e-5, `API ${nll / n}, gpt-context-loss ${want}`);
  });

  test('echo with logprobs: the prompt scored, then the reply; top alternatives and offsets', async () => {
    const r = await gptd.post('/v1/completions', { prompt: PROMPT, max_tokens: 5, seed: 9, echo: true, logprobs: 3 });
    const lp = r.json.choices[0].logprobs;
    assert.equal(r.json.choices[0].text, lp.tokens.join(''));
    assert.equal(lp.tokens.length, [...PROMPT].length + 5);
    assert.deepEqual(lp.text_offset, lp.tokens.map((_, i) => i));
    assert.equal(lp.top_logprobs[0], null);
    for (let i = 1; i < lp.tokens.length; i++) {
      const alts = Object.values(lp.top_logprobs[i]);
      assert.equal(alts.length, 3);
      if (lp.tokens[i] in lp.top_logprobs[i]) assert.equal(lp.top_logprobs[i][lp.tokens[i]], lp.token_logprobs[i]);
    }
    // The reply's part equals the same request without echo.
    const plain = await gptd.post('/v1/completions', { prompt: PROMPT, max_tokens: 5, seed: 9, logprobs: 3 });
    assert.deepEqual(plain.json.choices[0].logprobs.token_logprobs, lp.token_logprobs.slice([...PROMPT].length));
  });
});

describe('sampling controls, checked from the log-probabilities', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start();
  });
  after(async () => {
    await gptd?.stop();
  });

  test('logit_bias -100 on a character (by character and by id) means it never appears', async () => {
    let text = '';
    for (let seed = 1; seed <= 2; seed++) {
      const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 1000, seed, logit_bias: { e: -100, 1: -100 } });
      assert.equal(r.status, 200, r.text);
      text += r.json.text;
    }
    assert.equal(text.length, 2000);
    assert.ok(!text.includes('e') && !text.includes(' '), 'token 1 is the space');
    const free = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 1000, seed: 1 });
    assert.ok(free.json.text.includes('e') && free.json.text.includes(' '), 'without the bias both appear');
  });

  // Each control against the model's own distribution at the same place (scored with echo): the
  // adjusted log-probabilities differ from the model's by the control's amount, up to one
  // normalising constant per position.
  async function adjustedAgainstModel(control, seed) {
    const j = await generateWithLogprobs(gptd, { prompt: PROMPT, max_tokens: 120, seed, ...control });
    const raw = await score(gptd, PROMPT + j.text, 20);
    const skip = [...PROMPT].length;
    return j.logprobs.map((t, i) => ({
      before: [...j.text].slice(0, i).join(''),
      adjusted: new Map(t.top_logprobs.map((a) => [a.text, a.logprob])),
      model: new Map(Object.entries(raw.top_logprobs[skip + i])),
    }));
  }

  function assertConstantShift(positions, expectedShift) {
    let checked = 0;
    for (const p of positions) {
      let c = null;
      for (const [ch, lm] of p.model) {
        const d = p.adjusted.get(ch) - lm - expectedShift(ch, p.before);
        if (c === null) c = d;
        else assert.ok(Math.abs(d - c) < 2e-4, `at ${JSON.stringify(p.before.slice(-10))}, ${JSON.stringify(ch)}: ${d} vs ${c}`);
        checked++;
      }
    }
    assert.ok(checked > 1000, `${checked} comparisons`);
  }

  test('frequency_penalty lowers a character by exactly penalty x its count so far', async () => {
    const f = 0.7;
    const positions = await adjustedAgainstModel({ frequency_penalty: f }, 21);
    assertConstantShift(positions, (ch, before) => -f * (counts(before).get(ch) ?? 0));
  });

  test('presence_penalty lowers each character already in the reply by exactly the penalty', async () => {
    const p = 1.1;
    const positions = await adjustedAgainstModel({ presence_penalty: p }, 22);
    assertConstantShift(positions, (ch, before) => (counts(before).has(ch) ? -p : 0));
  });

  test('logit_bias adds its amount to the character\'s logit', async () => {
    const positions = await adjustedAgainstModel({ logit_bias: { a: 2.5, o: -1.5 } }, 23);
    assertConstantShift(positions, (ch) => (ch === 'a' ? 2.5 : ch === 'o' ? -1.5 : 0));
  });

  test('repetition_penalty leaves unseen characters\' ratios alone and lowers every seen one', async () => {
    const positions = await adjustedAgainstModel({ repetition_penalty: 1.5 }, 24);
    let lowered = 0;
    for (const p of positions) {
      const seen = new Set([...PROMPT, ...p.before]);
      const unseen = [...p.model.keys()].filter((ch) => !seen.has(ch));
      if (unseen.length === 0) continue;
      const ref = unseen[0];
      const shift = p.adjusted.get(ref) - p.model.get(ref);
      for (const [ch, lm] of p.model) {
        const d = p.adjusted.get(ch) - lm - shift;
        if (seen.has(ch)) {
          assert.ok(d < 1e-4, `seen ${JSON.stringify(ch)} rose by ${d}`);
          if (d < -1e-3) lowered++;
        } else {
          assert.ok(Math.abs(d) < 2e-4, `unseen ${JSON.stringify(ch)} moved by ${d}`);
        }
      }
    }
    assert.ok(lowered > 100, `${lowered} seen characters lowered`);
  });

  test('min_p never samples a character below min_p times the likeliest', async () => {
    const minP = 0.3;
    const floor = (t) => Math.log(minP) + t.top_logprobs[0].logprob - 1e-5;
    const withMin = await generateWithLogprobs(gptd, { prompt: PROMPT, max_tokens: 600, seed: 31, min_p: minP });
    for (const t of withMin.logprobs) {
      const lp = t.top_logprobs.find((a) => a.text === t.text).logprob;
      assert.ok(lp >= floor(t), `${JSON.stringify(t.text)} at ${lp}, floor ${floor(t)}`);
    }
    const without = await generateWithLogprobs(gptd, { prompt: PROMPT, max_tokens: 600, seed: 31 });
    const below = without.logprobs.filter((t) => t.top_logprobs.find((a) => a.text === t.text).logprob < floor(t));
    assert.ok(below.length > 0, 'without min_p some characters fall below that floor');
  });
});
