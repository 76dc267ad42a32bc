//
// test/allocation.cpp: heap allocations counted at the malloc level: the memory parts of
// Never inline and the Precise readings (contract.md Part 1, items 3 and 10: recycled
// operation memory, and wake() never allocates), and the README's "no per-wake
// allocation" promise.
//
// Asio's recycling allocator calls aligned_alloc directly, so replacing operator new
// would see nothing: this test interposes the C allocation functions themselves and
// forwards to glibc. Sanitizer runtimes interpose them too, so under ASan/TSan the
// counting is off and the suite is reported as skipped. The measured cycles run inside
// ONE io_context::run(): each run_one() starts with an empty recycling cache.
//

#define BOOST_TEST_MODULE asio_waker allocation
#include "test_support.hpp"

#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ASIO_WAKER_TEST_COUNTS_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ASIO_WAKER_TEST_COUNTS_MALLOC 0
#endif
#endif
#ifndef ASIO_WAKER_TEST_COUNTS_MALLOC
#define ASIO_WAKER_TEST_COUNTS_MALLOC 1
#endif

namespace {
thread_local long thread_allocations = 0;
std::atomic<long> all_allocations{0};
[[maybe_unused]] void count() noexcept
{
  ++thread_allocations;
  all_allocations.fetch_add(1, std::memory_order_relaxed);
}
} // namespace

#if ASIO_WAKER_TEST_COUNTS_MALLOC
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t n)
{
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m)
{
  count();
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n)
{
  count();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t a, std::size_t n)
{
  count();
  return __libc_memalign(a, n);
}
void* memalign(std::size_t a, std::size_t n)
{
  count();
  return __libc_memalign(a, n);
}
int posix_memalign(void** p, std::size_t a, std::size_t n)
{
  count();
  *p = __libc_memalign(a, n);
  return *p ? 0 : ENOMEM;
}
} // extern "C"
#endif

using namespace test;
using asio_waker::atomic_waker;

#if ASIO_WAKER_TEST_COUNTS_MALLOC
BOOST_AUTO_TEST_SUITE(allocations, *suite_timeout())
#else
BOOST_AUTO_TEST_SUITE(
  allocations, *suite_timeout() * skipped_because("a sanitizer owns malloc"))
#endif

BOOST_AUTO_TEST_CASE(steady_state_cycle_allocates_nothing)
{
  constexpr int warmup = 100, measured = 10000;
  asio::io_context ctx;
  atomic_waker w(ctx);
  long before = 0, after = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int i = 0; i < warmup + measured; ++i)
      {
        if (i == warmup)
          before = all_allocations.load();
        w.wake();
        co_await w.async_wait(asio::use_awaitable); // consumes the permit
      }
      after = all_allocations.load();
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST_MESSAGE("allocations in " << measured << " permit cycles: " << after - before);
  BOOST_TEST(after - before == 0);
}

// Two coroutines ping-pong through two wakers: every wait parks before its wake.
BOOST_AUTO_TEST_CASE(parked_cycle_allocates_nothing)
{
  constexpr int warmup = 100, measured = 10000;
  asio::io_context ctx;
  atomic_waker ping(ctx), pong(ctx);
  long before = 0, after = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      // One round more than its peer, so that it finishes (and Asio posts its
      // completion) after the measurement.
      for (int i = 0; i <= warmup + measured; ++i)
      {
        co_await ping.async_wait(asio::use_awaitable);
        pong.wake();
      }
    },
    asio::detached);
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int i = 0; i < warmup + measured; ++i)
      {
        if (i == warmup)
          before = all_allocations.load();
        ping.wake();
        co_await pong.async_wait(asio::use_awaitable);
      }
      after = all_allocations.load();
      ping.wake();
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST_MESSAGE("allocations in " << measured << " parked cycles: " << after - before);
  BOOST_TEST(after - before == 0);
}

BOOST_AUTO_TEST_CASE(callback_cycle_allocates_nothing)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  int remaining = 10000 + 100;
  long before = 0;
  std::function<void(error_code)> loop; // allocated once, outside the cycle
  loop = [&](error_code) {
    if (--remaining == 10000)
      before = all_allocations.load();
    if (remaining > 0)
    {
      w.async_wait([&](error_code ec) { loop(ec); });
      w.wake();
    }
  };
  w.async_wait([&](error_code ec) { loop(ec); });
  w.wake();
  run_all(ctx);
  BOOST_TEST(remaining == 0);
  BOOST_TEST(all_allocations.load() - before == 0);
}

BOOST_AUTO_TEST_CASE(wake_from_a_foreign_thread_allocates_nothing)
{
  // Both the concrete io_context executor and any_io_executor hand the wait to the
  // scheduler itself.
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio_waker::basic_atomic_waker<asio::io_context::executor_type> native(
    ctx.get_executor());
  constexpr int rounds = 500;
  std::atomic<int> turn{0};
  long producer_allocations = -1;

  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int i = 0; i < rounds; ++i)
      {
        co_await w.async_wait(asio::use_awaitable);
        co_await native.async_wait(asio::use_awaitable);
        turn.store(i + 1, std::memory_order_release);
      }
    },
    asio::detached);

  std::thread producer([&] {
    for (int i = 0; i < rounds; ++i)
    {
      w.wake();
      native.wake();
      if (!spin_until([&] { return turn.load(std::memory_order_acquire) > i; }))
        break;
    }
    producer_allocations = thread_allocations;
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(turn.load() == rounds);
  BOOST_TEST(producer_allocations == 0);
}

BOOST_AUTO_TEST_SUITE_END()
