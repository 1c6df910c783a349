/* SPDX-License-Identifier: MIT */
/*
 * bf-pattern.h - the deterministic data of `blkfront-cli fill` / `verify`:
 * byte @off of the disk under seed @seed depends on nothing else, so any
 * sub-range of a filled range verifies, whatever the request sizes, and a
 * test can check an image file directly.
 */
#ifndef PVABI_EXAMPLES_BF_PATTERN_H
#define PVABI_EXAMPLES_BF_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64 of (8-byte word index, seed): neighbouring words and seeds
 * give unrelated bytes, so a misplaced sector never verifies. */
static inline uint64_t bf_pattern_word(uint64_t word, uint64_t seed)
{
    uint64_t z = word * 0x9e3779b97f4a7c15ull + (seed + 1) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The byte at absolute disk offset @off. */
static inline uint8_t bf_pattern_byte(uint64_t off, uint64_t seed)
{
    return (uint8_t)(bf_pattern_word(off >> 3, seed) >> ((off & 7) * 8));
}

/* Fills @buf with the bytes of [@off, @off + @len). */
static inline void bf_pattern_fill(uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len;) {
        uint64_t o = off + i, w = bf_pattern_word(o >> 3, seed);
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(w >> (b * 8));
    }
}

/* Index in @buf of the first byte that differs from the pattern, or -1. */
static inline long long bf_pattern_check(const uint8_t *buf, uint64_t off, size_t len,
                                         uint64_t seed)
{
    for (size_t i = 0; i < len;) {
        uint64_t o = off + i, w = bf_pattern_word(o >> 3, seed);
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < len; b++, i++)
            if (buf[i] != (uint8_t)(w >> (b * 8)))
                return (long long)i;
    }
    return -1;
}

#endif /* PVABI_EXAMPLES_BF_PATTERN_H */
