/*
 * histogram.h - a fixed-bucket latency histogram for percentiles.
 *
 * Bucket i holds durations up to HISTOGRAM_BASE_US * 2^(i/4) microseconds
 * (four buckets per doubling: 50 us, 59 us, 71 us, 84 us, 100 us, ...);
 * the last bucket also holds everything longer (about 13 s and up).  A
 * percentile is reported as the upper bound of the bucket it falls in, so
 * it is at most 19% above the true value, never below it.  No lock: the
 * owner guards it.
 */
#ifndef CHUNKFS_HISTOGRAM_H
#define CHUNKFS_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_BUCKETS 73
#define HISTOGRAM_BASE_US 50

struct histogram {
	uint64_t count;
	uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* Count one duration of us microseconds. */
void histogram_add(struct histogram *h, uint64_t us);

/* The upper bound of bucket i, in microseconds. */
uint64_t histogram_bound_us(unsigned i);

/*
 * The q-quantile (0 < q <= 1; 0.5 for the median, 0.99 for p99) in
 * microseconds: the bound of the bucket holding it.  0 when empty.
 */
uint64_t histogram_quantile_us(const struct histogram *h, double q);

#endif
