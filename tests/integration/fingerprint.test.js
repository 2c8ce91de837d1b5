// system_fingerprint (OpenAI's field): a hash of the numerics version, the config, the vocabulary
// and the weights, in /info and in every reply and event of the three APIs. Every kernel path gives the
// same bits, so the fingerprint and a seeded request's bytes are the same on each; one weight
// changed changes the fingerprint.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Gptd, makeTempDir, modelPath, PORTABLE_READY_MS } from './helpers.js';

const FP = /^fp_[0-9a-f]{16}$/;
const BODY = { prompt: 'ROMEO:', max_tokens: 40, seed: 5, temperature: 0.9 };

/** What a daemon answers to the same seeded requests, and the fingerprint it puts on each. */
async function answers(gptd) {
  const info = (await gptd.get('/info')).json;
  const generate = (await gptd.post('/generate', BODY)).json;
  const completion = (await gptd.post('/v1/completions', BODY)).json;
  const gs = await gptd.stream({ ...BODY, stream: true });
  const cs = await gptd.stream({ ...BODY, stream: true, stream_options: { include_usage: true } },
    { pathname: '/v1/completions' });
  const { prompt, ...chatBody } = { ...BODY, messages: [{ role: 'user', content: 'Good morrow.' }] };
  const chat = (await gptd.post('/v1/chat/completions', chatBody)).json;
  const chatStream = await gptd.stream({ ...chatBody, stream: true }, { pathname: '/v1/chat/completions' });
  assert.ok(prompt);
  const fingerprints = new Set([info.system_fingerprint, generate.system_fingerprint,
    completion.system_fingerprint, chat.system_fingerprint]);
  for (const s of [gs, cs, chatStream]) {
    assert.ok(s.done);
    for (const e of s.events.filter((e) => e.json)) fingerprints.add(e.json.system_fingerprint);
  }
  assert.equal(fingerprints.size, 1, `one fingerprint everywhere: ${[...fingerprints]}`);
  const [fingerprint] = fingerprints;
  assert.match(fingerprint, FP);
  return {
    kernels: info.kernels,
    fingerprint,
    texts: [generate.text, completion.choices[0].text, gs.text,
      cs.events.filter((e) => e.json?.choices?.length).map((e) => e.json.choices[0].text).join(''),
      chat.choices[0].message.content],
  };
}

describe('system_fingerprint', () => {
  test('the same on every kernel path, as are a seeded request\'s bytes', async () => {
    const best = await Gptd.start();
    let first;
    try {
      first = await answers(best);
    } finally {
      await best.stop();
    }
    assert.equal(first.texts[0].length > 0, true);
    for (const t of first.texts.slice(0, 4))
      assert.equal(t, first.texts[0], 'JSON and streams, /generate and /v1/completions');
    const others = ['portable', ...(first.kernels === 'avx512' ? ['avx2'] : [])];
    assert.ok(!others.includes(first.kernels), `the best path is ${first.kernels}`);
    for (const kernels of others) {
      const gptd = await Gptd.start({ args: ['--kernels', kernels], readyTimeoutMs: PORTABLE_READY_MS });
      try {
        const a = await answers(gptd);
        assert.equal(a.kernels, kernels);
        assert.equal(a.fingerprint, first.fingerprint, `${kernels} and ${first.kernels}`);
        assert.deepEqual(a.texts, first.texts, `${kernels} and ${first.kernels} give the same bytes`);
      } finally {
        await gptd.stop();
      }
    }
  });

  test('one weight changed (one bit of one float16): another fingerprint', async () => {
    const source = fs.readFileSync(modelPath());
    const headerLen = Number(source.readBigUInt64LE(0));
    const header = JSON.parse(source.subarray(8, 8 + headerLen).toString('utf8'));
    const wte = header['transformer.wte.weight'];
    assert.ok(wte, 'the checkpoint has transformer.wte.weight');
    const changed = Buffer.from(source);
    changed[8 + headerLen + wte.data_offsets[0]] ^= 1; // the lowest bit of the first value
    const file = path.join(makeTempDir(), 'one-weight-changed.safetensors');
    fs.writeFileSync(file, changed);

    const fingerprintOf = async (model) => {
      const gptd = await Gptd.start({ model });
      try {
        return (await gptd.get('/info')).json.system_fingerprint;
      } finally {
        await gptd.stop();
      }
    };
    const original = await fingerprintOf(modelPath());
    assert.match(original, FP);
    assert.equal(await fingerprintOf(modelPath()), original, 'the same file: the same fingerprint');
    const other = await fingerprintOf(file);
    assert.match(other, FP);
    assert.notEqual(other, original);
  });
});
