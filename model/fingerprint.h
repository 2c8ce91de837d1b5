/* The model's fingerprint, reported as OpenAI's `system_fingerprint`: "fp_" and 16 hex digits of
 * a 64-bit hash over everything that decides which bits a request gets back:
 *   the engine's numerics version (GPTD_NUMERICS_VERSION below),
 *   the config (every GPTConfig field),
 *   the tokenizer (its kind, each token's bytes in id order, and a BPE model's merges text),
 *   the parameters as loaded, float32 (an F16 checkpoint hashes as its float32 values).
 * The kernel path, the thread count and the batch are not in it: they do not change the bits.
 * So the same request with the same seed and the same fingerprint gives the same bytes.
 *
 * The hash: FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) taken over 64-bit
 * little-endian words, then each byte of a tail shorter than a word, and finished with
 * MurmurHash3's fmix64 so that every input bit moves every digit. Word-wise is eight times faster
 * than byte-wise (GPT-2 124M's 500 MB in about 80 ms, not 600) and still always changes the hash
 * when one word changes (each step is a bijection of the state). Every integer is hashed as 8
 * little-endian bytes, every run of bytes after its length, so fields cannot run into each other.
 * Computed once at load, before the engine frees the unpacked matrices. */
#ifndef GPTD_FINGERPRINT_H
#define GPTD_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "gpt.h"
#include "tokenizer.h"

/* The engine's numerics version. Raise it whenever any kernel's or layer's results change by a
 * bit on some input (another operation order, another exp polynomial, another rounding of the
 * packed weights, another sampler draw), so that old fingerprints stop promising old bytes. */
#define GPTD_NUMERICS_VERSION 1

#define FINGERPRINT_FNV_OFFSET 0xcbf29ce484222325ull

/* "fp_" + 16 hex digits + NUL. */
#define FINGERPRINT_SIZE 20

/* FNV-1a 64 of data[0..n) continued from h (start from FINGERPRINT_FNV_OFFSET): whole 64-bit
 * little-endian words first, then the tail bytes one by one. */
uint64_t fingerprint_hash(uint64_t h, const void *data, size_t n);

/* MurmurHash3's 64-bit finaliser. */
uint64_t fingerprint_finish(uint64_t h);

/* The fingerprint of a model as loaded (its parameters still all present) into out. */
void fingerprint_model(const GPT *model, const Tokenizer *tok, char out[FINGERPRINT_SIZE]);

#endif
