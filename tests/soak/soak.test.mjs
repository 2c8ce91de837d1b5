// Soak: mixed JSON and SSE traffic with random parameters at the edge of capacity for
// GPTD_SOAK_SECONDS (default 1,800; CI runs 120). 10% of clients leave mid-request, 2% send
// malformed requests, 5% ask for attention weights. Pass: no request lost (each accepted one completes with a whole reply, or
// its client left), no crash, RSS flat after the first third (under 8 MB of growth; the slopes
// over the second half are reported) and every descriptor returned once the clients leave.
// p99 time to first token is reported per tenth of the run.
// Run: make soak  (SOAK_SECONDS=120 make soak for the short form; GPTD_BIN overrides bin/gptd)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Gptd, PROMPT, sleep } from '../integration/helpers.js';

const SECONDS = Number(process.env.GPTD_SOAK_SECONDS ?? 1800);
const CLIENTS = 24; // above --max-batch 16: a queue always forms
const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** Least-squares slope of y over x (per unit of x). */
function slope(points) {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const num = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return den ? num / den : 0;
}

const pick = (a) => a[Math.floor(Math.random() * a.length)];
const MALFORMED = ['{"prompt": ', '{"max_tokens": "many"}', '[1,2]', '{"prompt": "\u00ff\u00fe"}',
  '{"temperature": -1}', '{"stop": ["a","b","c","d","e"]}', '\u0000'];

test(`soak: ${SECONDS} s of mixed traffic`, { timeout: (SECONDS + 300) * 1000 }, async (t) => {
  const gptd = await Gptd.start({ args: ['--max-batch', '16', '--max-queue', '64', '--max-tokens', '600'] });
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const stats = { ok: 0, left: 0, malformed: 0, refused: 0, lost: [] };
  const ttft = []; // [seconds into the run, ms]
  const samples = []; // [seconds, rss kB, fds]
  let running = true;
  try {
    const sampler = (async () => {
      while (running) {
        samples.push([elapsed(), gptd.rssKb(), fds(gptd.pid)]);
        await sleep(1000);
      }
    })();
    const client = async () => {
      while (running) {
        const r = Math.random();
        if (r < 0.02) { // malformed
          const res = await gptd.fetch('/generate', { method: 'POST', body: pick(MALFORMED) });
          await res.text();
          if (res.status !== 400) stats.lost.push(`malformed body answered ${res.status}`);
          stats.malformed++;
          continue;
        }
        const body = {
          prompt: PROMPT + 'x'.repeat(Math.floor(Math.random() * 200)).replace(/x/g, () => pick('abcde ')),
          max_tokens: 1 + Math.floor(Math.random() * 400),
          temperature: pick([0, 0.5, 0.8, 1, 1.3]),
          top_k: pick([0, 0, 5, 40]),
          top_p: pick([1, 1, 0.9]),
          seed: Math.floor(Math.random() * 1e9),
        };
        if (Math.random() < 0.3) body.stop = pick(['\n\n', 'e', 'KING']);
        // 5% ask for attention weights (one head, the mean, or every head's, top-k or all); at
        // most 64 tokens, so one reply's transient megabytes do not read as RSS growth
        if (Math.random() < 0.05) {
          body.max_tokens = Math.min(body.max_tokens, 64);
          body.attention = { layer: Math.floor(Math.random() * 6), head: pick([0, 3, 'mean', 'all']) };
          if (Math.random() < 0.5) body.attention.top_k = pick([1, 8, 64]);
        }
        const leave = r < 0.12; // 10% of the well-formed leave mid-request
        const ac = new AbortController();
        if (leave) setTimeout(() => ac.abort(), Math.random() * 300);
        const sent = performance.now();
        try {
          if (Math.random() < 0.5) {
            const s = await gptd.stream({ ...body, stream: true }, {
              signal: ac.signal,
              onEvent: (ev, events) => { if (events.length === 1) ttft.push([elapsed(), performance.now() - sent]); },
            });
            if (s.status === 503) { stats.refused++; continue; }
            if (s.status !== 200 || !s.done || !s.final?.finish_reason) stats.lost.push(`stream: ${s.status} ${s.text ?? ''}`.slice(0, 200));
            // one event per token, except that text held back for a possible stop string goes out
            // with a later token (and a stop string's own tokens never do)
            else if (body.stop ? s.tokens.length > s.final.usage.completion_tokens
              : s.tokens.length !== s.final.usage.completion_tokens) stats.lost.push('stream: events disagree with usage');
            else if (body.attention && s.tokens.some((ev) => !ev.json.attention)) stats.lost.push('stream: a token event without its attention');
            else stats.ok++;
          } else {
            const res = await gptd.post('/generate', body, { signal: ac.signal });
            if (res.status === 503) { stats.refused++; continue; }
            if (res.status !== 200 || typeof res.json?.text !== 'string') stats.lost.push(`json: ${res.status} ${res.text}`.slice(0, 200));
            else if (body.attention && !(body.stop ? res.json.attention?.tokens?.length <= res.json.usage.completion_tokens
              : res.json.attention?.tokens?.length === res.json.usage.completion_tokens)) {
              stats.lost.push(`json: ${res.json.attention?.tokens?.length} attention tokens, ${res.json.usage.completion_tokens} in usage`);
            }
            else stats.ok++;
          }
        } catch (err) {
          if (ac.signal.aborted) stats.left++;
          else stats.lost.push(`client error: ${err.message}`);
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);
    await sleep(SECONDS * 1000);
    running = false;
    await Promise.all(clients);
    await sampler;

    const half = samples.filter((s) => s[0] >= SECONDS / 2);
    const rssSlope = slope(half.map((s) => [s[0], s[1]])) * 60; // kB per minute
    const fdSlope = slope(half.map((s) => [s[0], s[2]])) * 60;
    t.diagnostic(`requests: ${stats.ok} completed, ${stats.left} left, ${stats.malformed} malformed, ` +
      `${stats.refused} refused (queue full), ${stats.lost.length} lost`);
    t.diagnostic(`RSS ${samples[0][1]} -> ${samples.at(-1)[1]} kB, slope over the second half ` +
      `${rssSlope.toFixed(1)} kB/min; fds ${samples[0][2]} -> ${samples.at(-1)[2]}, slope ${fdSlope.toFixed(2)}/min`);
    const p99 = (a) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * 0.99))];
    const tenths = Array.from({ length: 10 }, (_, i) =>
      ttft.filter(([s]) => s >= (i * SECONDS) / 10 && s < ((i + 1) * SECONDS) / 10).map(([, ms]) => ms));
    t.diagnostic(`p99 time to first token by tenth of the run (ms): ${tenths.map((a) => (a.length ? p99(a).toFixed(0) : '-')).join(' ')}`);

    // flat: RSS may settle during the first third (allocator arenas, caches), not grow after it;
    // every connection's descriptor is gone once the clients' keep-alive connections close
    const third = samples.find((s) => s[0] >= SECONDS / 3);
    const growth = samples.at(-1)[1] - third[1];
    await sleep(5000);
    const fdsAfter = fds(gptd.pid);
    t.diagnostic(`RSS growth after the first third: ${growth} kB; fds after the clients left: ${fdsAfter}`);
    assert.deepEqual(stats.lost, [], 'requests lost');
    assert.ok(stats.ok > 0, 'nothing completed');
    assert.ok(growth < 8192, `RSS grew by ${growth} kB after the first third`);
    assert.ok(fdsAfter <= samples[0][2] + 1, `fds: ${samples[0][2]} at the start, ${fdsAfter} at the end`);
  } finally {
    running = false;
    const r = await gptd.stop();
    assert.equal(r.code, 0, 'the daemon did not exit cleanly');
  }
});
