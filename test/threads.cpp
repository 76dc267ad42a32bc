//
// test/threads.cpp: the Threads guarantee (wake() from many threads, concurrently with
// the consumer) and the Memory guarantee (contract.md Part 1, items 7 and 9). Meant to
// be run under ThreadSanitizer: the payloads below are plain data, so a missing
// happens-before edge is reported as a data race.
//

#define BOOST_TEST_MODULE asio_waker threads
#include "test_support.hpp"

#include <vector>

using namespace test;
using asio_waker::atomic_waker;

BOOST_AUTO_TEST_SUITE(memory_ordering, *suite_timeout())

// One producer hands plain data over through wake(); the consumer reads it after its
// wait completes and acknowledges.
BOOST_AUTO_TEST_CASE(plain_data_written_before_wake_is_seen_by_the_handler)
{
  constexpr int rounds = 2000;
  asio::io_context ctx;
  atomic_waker w(ctx);
  long payload = -1; // plain, not atomic
  std::atomic<int> ack{0};
  std::atomic<bool> producer_timed_out{false};
  int mismatches = 0;

  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int i = 1; i <= rounds; ++i)
      {
        co_await w.async_wait(asio::use_awaitable);
        if (payload != i)
          ++mismatches;
        ack.store(i, std::memory_order_release);
      }
    },
    asio::detached);

  std::thread producer([&] {
    for (int i = 1; i <= rounds; ++i)
    {
      payload = i;
      w.wake();
      if (!spin_until([&] { return ack.load(std::memory_order_acquire) == i; }))
        return producer_timed_out.store(true);
    }
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(!producer_timed_out.load());
  BOOST_TEST(mismatches == 0);
  BOOST_TEST(ack.load() == rounds);
}

// Several producers wake at once, each after writing its own plain slot. Some of their
// wakes only refresh a permit that is already set; the wait that consumes the permit
// must still see every one of their writes (the release sequence of the waker's word:
// a refresh that were a plain load would leave its producer's slot unpublished).
BOOST_AUTO_TEST_CASE(refreshed_permits_publish_every_producer)
{
  constexpr int producers = 4;
  constexpr int rounds = 300;
  asio::io_context ctx;
  atomic_waker w(ctx);
  std::vector<long> slot(producers, 0); // plain
  std::atomic<int> woken{0};            // counts wakes that have returned
  std::atomic<int> ack{0};
  std::atomic<bool> producer_timed_out{false};
  int mismatches = 0;

  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int r = 1; r <= rounds; ++r)
      {
        while (woken.load(std::memory_order_relaxed) < producers * r)
          co_await w.async_wait(asio::use_awaitable);
        // Every producer's wake has returned: its RMW is in the word's modification
        // order, so the permit consumed below was set or refreshed after all of them.
        w.wake();
        co_await w.async_wait(asio::use_awaitable);
        for (long v : slot)
          if (v != r)
            ++mismatches;
        ack.store(r, std::memory_order_release);
      }
    },
    asio::detached);

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int r = 1; r <= rounds; ++r)
      {
        slot[p] = r;
        w.wake();
        woken.fetch_add(1, std::memory_order_relaxed);
        w.wake(); // lets the consumer re-check `woken`; carries no data
        if (!spin_until([&] { return ack.load(std::memory_order_acquire) >= r; }))
          return producer_timed_out.store(true);
      }
    });
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_TEST(!producer_timed_out.load());
  BOOST_TEST(mismatches == 0);
  BOOST_TEST(ack.load() == rounds);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(contention, *suite_timeout())

// Producers wake flat out while the consumer keeps re-arming: no wake is lost (the
// consumer always finishes), nothing completes twice, nothing fails.
//
// Why the consumer finishes: every producer wakes once more AFTER counting itself in
// `finished`. The last of those wakes either completes the wait pending at that moment
// or leaves a permit that the next wait consumes; either way that wait's completion
// happens after the wake (the Memory guarantee), hence after the last producer counted
// itself, so the consumer then reads `finished == producers` and stops. A lost wake leaves the consumer
// parked and run_all() fails at the watchdog.
BOOST_AUTO_TEST_CASE(many_producers_no_lost_wake)
{
  constexpr int producers = 4;
  constexpr int wakes_each = 20000;
  asio::io_context ctx;
  atomic_waker w(ctx);
  std::atomic<int> finished{0};
  std::atomic<bool> stop{false};
  long completions = 0, errors = 0;

  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      while (!stop.load(std::memory_order_relaxed))
      {
        auto [ec] = co_await w.async_wait(as_tuple(asio::use_awaitable));
        ec ? ++errors : ++completions;
        if (finished.load(std::memory_order_acquire) == producers)
          stop =
            true; // every producer is done (a last wake still to come just sets a permit)
      }
    },
    asio::detached);

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&] {
      for (int i = 0; i < wakes_each; ++i)
        w.wake();
      finished.fetch_add(1, std::memory_order_release);
      w.wake(); // one wake after `finished`: the consumer's way out (see above)
    });
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_TEST(errors == 0);
  BOOST_TEST(completions >= 1);
  BOOST_TEST(completions <= long(producers) * (wakes_each + 1));
  BOOST_TEST_MESSAGE("completions: " << completions);
}

// The consumer lives on a thread_pool and is woken from plain threads, while it also
// cancels and replaces its own waits.
BOOST_AUTO_TEST_CASE(thread_pool_consumer_with_cancel_and_replace)
{
  constexpr int rounds = 3000;
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool);
  asio_waker::basic_atomic_waker<decltype(strand)> w(strand);
  std::atomic<int> successes{0}, aborts{0};
  std::atomic<bool> done{false};

  std::thread producer([&] {
    while (!done.load(std::memory_order_acquire))
      w.wake();
  });
  asio::co_spawn(
    strand,
    [&]() -> asio::awaitable<void> {
      for (int i = 0; i < rounds; ++i)
      {
        if (i % 3 == 1)
          asio::post(strand, [&] { w.cancel(); });
        if (i % 5 == 2)
          w.async_wait(
            [&](error_code ec) { ec ? ++aborts : ++successes; }); // replaced below
        auto [ec] = co_await w.async_wait(as_tuple(asio::use_awaitable));
        ec ? ++aborts : ++successes;
      }
      done = true;
    },
    asio::detached);
  const bool finished = spin_until([&] { return done.load(); });
  done = true;
  producer.join();
  BOOST_REQUIRE(finished);
  pool.join();
  BOOST_TEST(successes + aborts >= rounds);
  BOOST_TEST(successes.load() >= 1);
  BOOST_TEST_MESSAGE("successes " << successes << ", aborts " << aborts);
}

BOOST_AUTO_TEST_SUITE_END()
