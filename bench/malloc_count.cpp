// Heap allocation counting at the malloc level.
//
// The bench binary defines malloc & co. itself: the dynamic linker resolves every
// call in the process (libstdc++'s operator new, Asio's recycling allocator which
// calls aligned_alloc directly, glibc internals) to these definitions, which count
// per thread and forward to glibc's own entry points (__libc_malloc & co.).
// Counting operator new alone would miss Asio's aligned_alloc calls.
//
// The counters are thread_local in the main executable (local-exec TLS: reading
// them never allocates) and plain integers: no atomics, no cross-thread traffic,
// so the hooks cost a few instructions and do not perturb the thread scenarios.
#include "malloc_count.hpp"

#include <cerrno>
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);
}

namespace bench {
namespace {
thread_local std::uint64_t tl_allocs = 0;
thread_local std::uint64_t tl_frees = 0;
} // namespace

alloc_counts thread_alloc_counts() noexcept
{
  return {tl_allocs, tl_frees};
}
} // namespace bench

#if defined(BENCH_NO_MALLOC_COUNT)
// Sanitizer builds: the sanitizer runtime owns malloc; do not interpose.
namespace bench {
bool malloc_counting() noexcept
{
  return false;
}
} // namespace bench
#else
namespace bench {
bool malloc_counting() noexcept
{
  return true;
}
} // namespace bench
using bench::tl_allocs;
using bench::tl_frees;

extern "C" {
void* malloc(std::size_t n)
{
  ++tl_allocs;
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m)
{
  ++tl_allocs;
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n)
{
  // A realloc is a new allocation as far as the allocator's work goes.
  ++tl_allocs;
  return __libc_realloc(p, n);
}
void free(void* p)
{
  if (p)
    ++tl_frees;
  __libc_free(p);
}
void* aligned_alloc(std::size_t align, std::size_t n)
{
  ++tl_allocs;
  return __libc_memalign(align, n);
}
void* memalign(std::size_t align, std::size_t n)
{
  ++tl_allocs;
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n)
{
  if (align < sizeof(void*) || (align & (align - 1)) != 0)
    return EINVAL;
  ++tl_allocs;
  void* p = __libc_memalign(align, n);
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n)
{
  ++tl_allocs;
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n)
{
  ++tl_allocs;
  return __libc_pvalloc(n);
}
}
#endif // BENCH_NO_MALLOC_COUNT
