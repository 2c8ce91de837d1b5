// GET /metrics (Prometheus text), GET /v1/models, GET /info.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Gptd, PROMPT, readModelMetadata } from './helpers.js';

const HISTOGRAMS = ['gptd_batch_size', 'gptd_time_to_first_token_seconds', 'gptd_time_per_token_seconds',
  'gptd_step_duration_seconds'];

/** Checks one histogram's series: buckets with le, cumulative, +Inf == _count, _sum. */
function checkHistogram(m, name) {
  assert.equal(m.types.get(name), 'histogram', `# TYPE ${name} histogram`);
  const buckets = [...m.entries()]
    .filter(([k]) => k.startsWith(`${name}_bucket{`))
    .map(([k, v]) => {
      const le = /^[^{]+\{le="([^"]+)"\}$/.exec(k);
      assert.ok(le, `bucket labels: ${k}`);
      return { le: le[1] === '+Inf' ? Infinity : Number(le[1]), v };
    });
  assert.ok(buckets.length >= 2, `${name} has buckets`);
  assert.equal(buckets[buckets.length - 1].le, Infinity, `${name}: the last bucket is le="+Inf"`);
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i].le > buckets[i - 1].le, `${name}: bucket bounds increase`);
    assert.ok(buckets[i].v >= buckets[i - 1].v, `${name}: buckets are cumulative`);
  }
  const count = m.get(`${name}_count`);
  const sum = m.get(`${name}_sum`);
  assert.ok(Number.isFinite(count) && Number.isFinite(sum), `${name}_count and _sum`);
  assert.equal(buckets[buckets.length - 1].v, count, `${name}: +Inf bucket equals _count`);
  return { buckets, count, sum };
}

describe('metrics and info endpoints', () => {
  const MODEL_NAME = 'shakespeare-under-test';
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--model-name', MODEL_NAME, '--max-batch', '8', '--max-queue', '16',
      '--max-tokens', '500'] });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('GET /metrics: Prometheus text with counters, gauges and histograms that follow the traffic', async () => {
    const m0 = await gptd.metrics();
    const res = await gptd.fetch('/metrics');
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    await res.text();
    for (const [name, type] of [['gptd_requests_total', 'counter'], ['gptd_prompt_tokens_total', 'counter'],
      ['gptd_generated_tokens_total', 'counter'], ['gptd_queue_depth', 'gauge'], ['gptd_active_sequences', 'gauge']])
      assert.equal(m0.types.get(name), type, `# TYPE ${name} ${type}`);
    for (const h of HISTOGRAMS) checkHistogram(m0, h);
    assert.equal(m0.get('gptd_queue_depth'), 0);
    assert.equal(m0.get('gptd_active_sequences'), 0);

    // traffic: 3 JSON requests, 2 streams, 1 completion, 1 bad request
    const prompt = [...PROMPT].length;
    const jobs = [
      gptd.post('/generate', { prompt: PROMPT, max_tokens: 10 }),
      gptd.post('/generate', { prompt: PROMPT, max_tokens: 20 }),
      gptd.post('/generate', { prompt: PROMPT, max_tokens: 30 }),
      gptd.stream({ prompt: PROMPT, max_tokens: 15, stream: true }),
      gptd.stream({ prompt: PROMPT, max_tokens: 25, stream: true }),
      gptd.post('/v1/completions', { prompt: PROMPT, max_tokens: 12 }),
      gptd.post('/generate', { prompt: PROMPT, temperature: -1 }),
    ];
    const replies = await Promise.all(jobs);
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200, 200, 400]);
    const generated = 10 + 20 + 30 + 15 + 25 + 12;

    const key = (endpoint, status) => `gptd_requests_total{endpoint="${endpoint}",status="${status}"}`;
    const get = (m, k) => m.get(k) ?? 0;
    const m1 = await gptd.metricsWhen((m) =>
      get(m, key('generate', 200)) - get(m0, key('generate', 200)) === 5 &&
      get(m, key('completions', 200)) - get(m0, key('completions', 200)) === 1 &&
      m.get('gptd_generated_tokens_total') - m0.get('gptd_generated_tokens_total') === generated &&
      m.get('gptd_active_sequences') === 0);
    assert.equal(get(m1, key('generate', 200)) - get(m0, key('generate', 200)), 5);
    assert.equal(get(m1, key('completions', 200)) - get(m0, key('completions', 200)), 1);
    assert.equal(get(m1, key('generate', 400)) - get(m0, key('generate', 400)), 1);
    assert.ok(get(m1, key('metrics', 200)) >= 1, 'scrapes are counted too');
    assert.equal(m1.get('gptd_generated_tokens_total') - m0.get('gptd_generated_tokens_total'), generated);
    assert.equal(m1.get('gptd_prompt_tokens_total') - m0.get('gptd_prompt_tokens_total'), 6 * prompt);
    assert.equal(m1.get('gptd_queue_depth'), 0);
    assert.equal(m1.get('gptd_active_sequences'), 0);

    const h = Object.fromEntries(HISTOGRAMS.map((name) => [name, checkHistogram(m1, name)]));
    const h0 = Object.fromEntries(HISTOGRAMS.map((name) => [name, checkHistogram(m0, name)]));
    assert.equal(h.gptd_time_to_first_token_seconds.count - h0.gptd_time_to_first_token_seconds.count, 6,
      'one time-to-first-token per request that generated');
    assert.equal(h.gptd_time_per_token_seconds.count - h0.gptd_time_per_token_seconds.count, generated - 6,
      'one inter-token time per token after the first');
    assert.ok(h.gptd_step_duration_seconds.count > h0.gptd_step_duration_seconds.count);
    assert.equal(h.gptd_batch_size.count, h.gptd_step_duration_seconds.count, 'one batch size per step');
    assert.ok(h.gptd_batch_size.sum >= generated, 'every generated token was in some step');
    assert.ok(h.gptd_step_duration_seconds.sum > 0);
  });

  test('a request running alone: each of its engine steps lands in gptd_batch_size\'s le="1" bucket', async () => {
    // Tests here run one at a time and every earlier reply has arrived (a request's steps are
    // counted before its reply goes out), so each step of this request advances one sequence.
    const bucket = 'gptd_batch_size_bucket{le="1"}';
    const m0 = await gptd.metrics();
    const r = await gptd.post('/generate', { prompt: PROMPT, max_tokens: 5 });
    assert.equal(r.status, 200, r.text);
    const m1 = await gptd.metrics();
    const steps = m1.get('gptd_batch_size_count') - m0.get('gptd_batch_size_count');
    assert.ok(steps >= 5, `${steps} engine steps for 5 tokens`);
    assert.equal(m1.get('gptd_batch_size_sum') - m0.get('gptd_batch_size_sum'), steps, 'one sequence a step');
    assert.equal(m1.get(bucket) - m0.get(bucket), steps, 'an observation of 1 counts in le="1"');
  });

  test('gptd_requests_total counts 404s and 405s, labelled by endpoint and status', async () => {
    await gptd.get('/nope');
    await gptd.get('/generate');
    await gptd.get('/health');
    const m = await gptd.metricsWhen((x) => x.get('gptd_requests_total{endpoint="health",status="200"}') >= 1);
    assert.ok(m.get('gptd_requests_total{endpoint="other",status="404"}') >= 1, m.text);
    assert.ok(m.get('gptd_requests_total{endpoint="generate",status="405"}') >= 1);
    for (const k of m.keys())
      if (k.startsWith('gptd_requests_total')) assert.match(k, /^gptd_requests_total\{endpoint="[a-z]+",status="\d{3}"\}$/);
  });

  test('GET /v1/models lists the served model', async () => {
    const r = await gptd.get('/v1/models');
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data.length, 1);
    assert.equal(r.json.data[0].id, MODEL_NAME);
    assert.equal(r.json.data[0].object, 'model');
    assert.equal(typeof r.json.data[0].owned_by, 'string');
  });

  test('GET /info: the model config (as in the checkpoint) and the limits', async () => {
    const r = await gptd.get('/info');
    assert.equal(r.status, 200);
    const info = r.json;
    assert.equal(info.model, MODEL_NAME);
    assert.equal(info.status, 'ready');
    const meta = readModelMetadata();
    const c = info.config;
    for (const k of ['vocab_size', 'n_layer', 'n_head', 'n_embd', 'block_size'])
      assert.equal(c[k], Number(meta[k]), `config.${k}`);
    assert.equal(c.activation, meta.activation);
    assert.equal(c.qkv_bias, meta.qkv_bias === 'true');
    assert.equal(c.tied_head, meta.tied_head === 'true');
    assert.equal(c.vocab_size, [...meta.vocab].length);
    assert.ok(Number.isInteger(c.parameters) && c.parameters > 1e6, `parameters ${c.parameters}`);
    assert.equal(info.limits.max_batch, 8);
    assert.equal(info.limits.max_queue, 16);
    assert.equal(info.limits.max_tokens, 500);
    assert.equal(info.limits.body_limit_bytes, 1 << 20);
    assert.equal(info.limits.threads, 2);
    assert.equal(info.limits.threads_source, '--threads or GPTD_THREADS');
    assert.equal(typeof info.build?.version, 'string');
  });

  test('a prompt longer than the context keeps its last block_size tokens and says so', async () => {
    const block = (await gptd.get('/info')).json.config.block_size;
    const long = 'ROMEO: '.repeat(Math.ceil((block + 40) / 7));
    const r = await gptd.post('/generate', { prompt: long, max_tokens: 3 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.prompt_tokens, block);
    assert.equal(r.json.prompt_truncated_tokens, long.length - block);
    assert.equal(r.json.usage.completion_tokens, 3);
  });
});

// Metrics as values: the time to first token runs from the request's arrival, queue time
// included. One slot and a pause of 5 ms in every engine step (a test hook) keep the second and
// third of three requests queued behind the first for at least 60 steps on any machine; the
// histogram's sum must then be the replies' own queue_ms + prefill_ms, which it is exactly (the
// same clock readings), and would fall short by their queue time if it ran from admission.
describe('time to first token, as a value', () => {
  let gptd;
  before(async () => {
    gptd = await Gptd.start({ args: ['--max-batch', '1'], env: { GPTD_TEST_STEP_DELAY_MS: '5' } });
  });
  after(async () => {
    await gptd?.stop();
  });

  test('gptd_time_to_first_token_seconds sums queue and prefill time, from arrival', async (t) => {
    const name = 'gptd_time_to_first_token_seconds';
    const m0 = await gptd.metrics();
    const replies = await Promise.all([0, 1, 2].map((i) =>
      gptd.post('/generate', { prompt: PROMPT, max_tokens: 60, seed: i })));
    const m = await gptd.metrics();
    for (const r of replies) assert.equal(r.status, 200, r.text);
    const queued = replies.reduce((a, r) => a + r.json.timing.queue_ms, 0) / 1e3;
    const toFirst = replies.reduce((a, r) => a + r.json.timing.queue_ms + r.json.timing.prefill_ms, 0) / 1e3;
    const sum = m.get(`${name}_sum`) - (m0.get(`${name}_sum`) ?? 0);
    t.diagnostic(`queued ${queued.toFixed(3)} s in all; time to first token: histogram ${sum.toFixed(4)} s, ` +
      `replies ${toFirst.toFixed(4)} s`);
    assert.equal(m.get(`${name}_count`) - (m0.get(`${name}_count`) ?? 0), 3);
    assert.ok(queued > 0, 'two requests waited for the one slot');
    assert.ok(Math.abs(sum - toFirst) <= 1e-3 * toFirst + 1e-6,
      `the histogram's sum ${sum} s is not the replies' queue + prefill time ${toFirst} s`);
  });
});
