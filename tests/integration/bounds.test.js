// Every documented bound of a request, over the wire, on every endpoint that takes the field
// (issue 26): one table of fields (docs/api.md), and fast-check picks field, endpoint and a value
// at a bound, one step past it or one step inside it (or anywhere inside). A failure prints the
// generated case and its seed, and fast-check shrinks it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Gptd, PROMPT } from './helpers.js';

const CAP = 40; // --max-tokens
const DEFAULT = 7; // --default-max-tokens
const ENDPOINTS = ['/generate', '/v1/completions'];

/** The fields with a numeric range: [lo, hi], lo excluded when loOpen; which endpoints take it. */
const FIELDS = [
  { name: 'max_tokens', int: true, lo: 0, hi: CAP, endpoints: ENDPOINTS },
  { name: 'temperature', int: false, lo: 0, hi: 100, endpoints: ENDPOINTS },
  { name: 'top_p', int: false, lo: 0, hi: 1, loOpen: true, endpoints: ENDPOINTS },
  { name: 'top_k', int: true, lo: 0, hi: 2 ** 24, endpoints: ['/generate'] },
  { name: 'seed', int: true, lo: 0, hi: 2 ** 53 - 1, endpoints: ENDPOINTS },
];

/** The next double above (dir 1) or below (dir -1) x. */
function nextDouble(x, dir) {
  if (x === 0) return dir * Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0] += BigInt(x > 0 === dir > 0 ? 1 : -1);
  return f[0];
}

/** One step from v: 1 for integers, the next double for numbers. */
const step = (field, v, dir) => (field.int ? v + dir : nextDouble(v, dir));

/** The values to try for a field, each with whether the documented range holds it. */
function candidates(field) {
  const inside = (v) => (field.loOpen ? v > field.lo : v >= field.lo) && v <= field.hi;
  const vs = [field.lo, step(field, field.lo, -1), step(field, field.lo, 1),
    field.hi, step(field, field.hi, 1), step(field, field.hi, -1)];
  if (field.hi === 2 ** 53 - 1) vs[4] = 2 ** 53; // one past, as a double can say it
  return vs.map((v) => ({ v, ok: inside(v) }));
}

/** The body for one case: the field's value, and nothing that makes the reply long. */
function bodyFor(endpoint, field, v) {
  const body = { prompt: PROMPT, max_tokens: 0, seed: 1 };
  if (endpoint === '/v1/completions') body.model = 'gptd';
  body[field.name] = v;
  return body;
}

describe('documented bounds over the wire, generated from one table', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--max-tokens', String(CAP), '--default-max-tokens', String(DEFAULT)] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('every numeric field at its bounds, one past and one inside, on every endpoint that takes it', async () => {
    const cases = FIELDS.flatMap((field) => field.endpoints.flatMap((endpoint) =>
      candidates(field).map((c) => ({ field, endpoint, ...c }))));
    // all of them, exhaustively first: the table is small
    for (const c of cases) await checkCase(gptd, c);
    // then anywhere inside and outside, chosen by fast-check
    const arb = fc.constantFrom(...FIELDS).chain((field) => fc.record({
      field: fc.constant(field),
      endpoint: fc.constantFrom(...field.endpoints),
      v: field.int ? fc.integer({ min: Math.max(-1000, field.lo - 1000), max: Math.min(field.hi + 1000, 2 ** 53 - 1) })
        : fc.double({ min: field.lo - 1, max: field.hi + 1, noNaN: true }),
    })).map((c) => ({ ...c, ok: (c.field.loOpen ? c.v > c.field.lo : c.v >= c.field.lo) && c.v <= c.field.hi }));
    await fc.assert(fc.asyncProperty(arb, (c) => checkCase(gptd, c)), { numRuns: 60, seed: 26 });
  });

  test('stop strings: 1 to 64 bytes, 1 to 4 of them, at, past and inside each bound, on both endpoints', async () => {
    const arb = fc.record({
      endpoint: fc.constantFrom(...ENDPOINTS),
      count: fc.constantFrom(1, 3, 4, 5),
      length: fc.constantFrom(1, 63, 64, 65),
      asArray: fc.boolean(),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ endpoint, count, length, asArray }) => {
      const stops = Array.from({ length: count }, (_, i) => (i === count - 1 ? 's'.repeat(length) : 'q'));
      const body = { prompt: PROMPT, max_tokens: 0, stop: count === 1 && !asArray ? stops[0] : stops };
      const ok = count <= 4 && length <= 64;
      const r = await gptd.post(endpoint, body);
      assert.equal(r.status, ok ? 200 : 400, `${endpoint} ${count} stops, the last of ${length} bytes: ${r.text}`);
      if (!ok) assert.match(r.json.error.message, /"stop"/);
    }), { numRuns: 40, seed: 26 });
  });

  test('defaults and the prompt as an array, per endpoint', async () => {
    for (const endpoint of ENDPOINTS) {
      const r = await gptd.post(endpoint, { prompt: PROMPT, seed: 3 });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.usage.completion_tokens, DEFAULT, `${endpoint}: max_tokens defaults to --default-max-tokens`);
      for (const [prompt, okOnCompletions] of [[[PROMPT], true], [[], false], [[PROMPT, PROMPT], false]]) {
        const a = await gptd.post(endpoint, { prompt, max_tokens: 0 });
        const ok = endpoint === '/v1/completions' && okOnCompletions;
        assert.equal(a.status, ok ? 200 : 400, `${endpoint} prompt ${JSON.stringify(prompt)}: ${a.text}`);
        if (!ok) assert.match(a.json.error.message, /"prompt"/);
      }
    }
  });
});

async function checkCase(gptd, { field, endpoint, v, ok }) {
  const r = await gptd.post(endpoint, bodyFor(endpoint, field, v));
  const what = `${endpoint} ${field.name} ${JSON.stringify(v)}`;
  assert.equal(r.status, ok ? 200 : 400, `${what}: ${r.text}`);
  if (!ok) {
    assert.match(r.json.error.message, new RegExp(`"${field.name}"`), what);
    return;
  }
  if (field.name === 'seed' && endpoint === '/generate') assert.equal(r.json.seed, v, `${what}: the reply's seed`);
  if (field.name === 'max_tokens') assert.equal(r.json.usage.completion_tokens, v, what);
}
