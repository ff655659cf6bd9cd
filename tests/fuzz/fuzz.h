/*
 * fuzz.h - what every libFuzzer target in tests/fuzz/ shares.
 */
#ifndef CHUNKFS_FUZZ_H
#define CHUNKFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep: abort (a crash libFuzzer saves) when not. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#endif
