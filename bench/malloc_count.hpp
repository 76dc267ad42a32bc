#pragma once
// Per-thread heap allocation counters (see malloc_count.cpp).
#include <cstdint>

namespace bench {
struct alloc_counts
{
  std::uint64_t allocs =
    0; // malloc, calloc, realloc, aligned_alloc, memalign, posix_memalign, valloc
  std::uint64_t frees = 0; // free of a non-null pointer
};
// Counts of the calling thread since it started.
alloc_counts thread_alloc_counts() noexcept;
// False in sanitizer builds (BENCH_NO_MALLOC_COUNT): the counts stay 0.
bool malloc_counting() noexcept;
} // namespace bench
