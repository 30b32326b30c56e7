/*
 * common/bits.h - bit counting without the library call.
 *
 * Header-only and dependency-free, like common/clock.h: shm/ (the lowest layer) and the data
 * plane's body scan both count mask bits on hot paths. The build targets the baseline x86-64,
 * which cannot assume the POPCNT instruction, so __builtin_popcountll there becomes a libgcc
 * call; a function compiled for POPCNT (the AVX2 variants of shm/loads.c and shm/radix.c) turns
 * this into the instruction.
 */
#ifndef FD_COMMON_BITS_H
#define FD_COMMON_BITS_H

#include <stdint.h>

/* Bits set in x. */
static inline unsigned fd_bit_count(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    return (unsigned)((((x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL) * 0x0101010101010101ULL) >> 56);
}

#endif
