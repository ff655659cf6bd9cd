/* histogram.c - see histogram.h. */
#include "histogram.h"

uint64_t histogram_bound_us(unsigned i)
{
	/* 2^(i/4) from a table of the four fractional steps: no libm. */
	static const double step[4] = {1.0, 1.189207115002721, 1.414213562373095,
	                               1.681792830507429};

	return (uint64_t)((double)HISTOGRAM_BASE_US * (double)(1ull << (i / 4)) * step[i % 4] +
	                  0.5);
}

void histogram_add(struct histogram *h, uint64_t us)
{
	unsigned i = 0;

	while (i + 1 < HISTOGRAM_BUCKETS && us > histogram_bound_us(i))
		i++;
	h->buckets[i]++;
	h->count++;
}

uint64_t histogram_quantile_us(const struct histogram *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	/* The smallest value with at least q of the samples at or below it. */
	rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++; /* rounded up */
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			return histogram_bound_us(i);
	}
	return histogram_bound_us(HISTOGRAM_BUCKETS - 1);
}
