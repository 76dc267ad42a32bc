//
// test/cancellation.cpp: the Cancellation guarantee (per-operation cancellation and
// cancel(), and their races with wake()) and the Precise readings about emit() and
// stale slots (contract.md Part 1, items 5 and 10).
//

#define BOOST_TEST_MODULE asio_waker cancellation
#include "test_support.hpp"

using namespace test;
using asio_waker::atomic_waker;

namespace {

void check_slot_cancels(asio::cancellation_type type)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal sig;
  outcome o;
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
  sig.emit(type);
  BOOST_TEST(o.calls == 0); // not inside emit()
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);

  // The cancelled wait left no permit, and a later wake becomes one.
  BOOST_TEST(w.cancel() == 0u);
  w.wake();
  outcome next;
  w.async_wait(record(next));
  run_all(ctx);
  BOOST_TEST(!next.ec);
}

} // namespace

BOOST_AUTO_TEST_SUITE(slots, *suite_timeout())

BOOST_AUTO_TEST_CASE(terminal)
{
  check_slot_cancels(asio::cancellation_type::terminal);
}
BOOST_AUTO_TEST_CASE(partial)
{
  check_slot_cancels(asio::cancellation_type::partial);
}
BOOST_AUTO_TEST_CASE(total)
{
  check_slot_cancels(asio::cancellation_type::total);
}

BOOST_AUTO_TEST_CASE(type_none_is_ignored)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal sig;
  outcome o;
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
  sig.emit(asio::cancellation_type::none);
  expect_still_pending(ctx, o);
  w.wake();
  run_all(ctx);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(cancellation_after_wake_loses)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal sig;
  outcome o;
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
  w.wake();
  sig.emit(asio::cancellation_type::terminal); // the wake already completed it
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(stale_slot_of_a_completed_wait_cancels_nothing)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal old_sig, new_sig;
  outcome first, second;
  w.async_wait(asio::bind_cancellation_slot(old_sig.slot(), record(first)));
  w.wake();
  run_all(ctx);
  BOOST_TEST(!first.ec);

  // The second wait most likely reuses the first one's memory (recycling allocator):
  // the stale handler must still not touch it.
  w.async_wait(asio::bind_cancellation_slot(new_sig.slot(), record(second)));
  old_sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(ctx, second);
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(stale_slot_of_a_replaced_wait_cancels_nothing)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal old_sig;
  outcome first, second;
  w.async_wait(asio::bind_cancellation_slot(old_sig.slot(), record(first)));
  w.async_wait(record(second)); // replaces the first; no slot of its own
  old_sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(ctx, second);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(slot_emitted_after_the_waker_is_destroyed_is_ignored)
{
  asio::io_context ctx;
  asio::cancellation_signal sig;
  outcome o;
  {
    auto w = std::make_unique<atomic_waker>(ctx);
    w->async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
  }                        // aborted: queued, its slot handler still installed
  atomic_waker other(ctx); // may well reuse the destroyed waker's memory
  outcome other_outcome;
  other.async_wait(record(other_outcome));
  sig.emit(asio::cancellation_type::terminal); // must touch neither (ASan checks)
  expect_still_pending(ctx, other_outcome);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
  other.wake();
  run_all(ctx);
  BOOST_TEST(!other_outcome.ec);
}

BOOST_AUTO_TEST_CASE(slot_emitted_after_the_context_is_destroyed_is_ignored)
{
  asio::cancellation_signal sig; // outlives the context, as a long-lived signal may
  outcome o;
  {
    asio::io_context ctx;
    atomic_waker w(ctx);
    w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
    w.wake();
    run_all(ctx);
  } // the waker, then the context and its waker service, are gone
  BOOST_TEST(o.calls == 1);
  sig.emit(asio::cancellation_type::terminal); // must touch neither (ASan checks)
  asio::io_context other;                      // may reuse the destroyed service's memory
  atomic_waker w2(other);
  outcome o2;
  w2.async_wait(record(o2));
  sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(other, o2);
  BOOST_TEST(w2.cancel() == 1u);
  run_all(other);
  BOOST_TEST(o2.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(same_slot_reused_by_the_replacing_wait_still_cancels_it)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal sig;
  outcome first, second;
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(first)));
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(second)));
  expect_still_pending(ctx, second); // and the first completes (aborted) before the emit
  BOOST_TEST(first.calls == 1);
  sig.emit(asio::cancellation_type::terminal);
  run_all(ctx);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  BOOST_TEST(second.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(coroutines, *suite_timeout())

BOOST_AUTO_TEST_CASE(timer_wins_an_awaitable_or)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  atomic_waker w(ctx);
  int timeouts = 0, wakes = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ctx, 10ms);
      auto r =
        co_await (w.async_wait(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
      (r.index() == 0 ? wakes : timeouts)++;
      // The waker still works after its wait was cancelled by the operator.
      w.wake();
      co_await w.async_wait(asio::use_awaitable);
      ++wakes;
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST(timeouts == 1);
  BOOST_TEST(wakes == 1);
}

BOOST_AUTO_TEST_CASE(wake_wins_an_awaitable_or)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  atomic_waker w(ctx);
  int index = -1;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ctx, std::chrono::hours(1));
      auto r =
        co_await (w.async_wait(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
      index = static_cast<int>(r.index());
    },
    asio::detached);
  std::thread producer([&] {
    std::this_thread::sleep_for(10ms);
    w.wake();
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(index == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(races, *suite_timeout())

// cancel() against wake() from another thread: exactly one outcome, and a wake that
// loses leaves the permit.
BOOST_AUTO_TEST_CASE(cancel_racing_wake_has_exactly_one_outcome)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  constexpr int rounds = 2000;
  int cancelled_wins = 0, wake_wins = 0;
  for (int i = 0; i < rounds; ++i)
  {
    outcome o;
    w.async_wait(record(o));
    std::atomic<bool> go{false};
    std::thread producer([&] {
      while (!go.load(std::memory_order_acquire))
      {}
      w.wake();
    });
    go.store(true, std::memory_order_release);
    const std::size_t n = w.cancel();
    producer.join();
    run_all(ctx);
    BOOST_REQUIRE(o.calls == 1);
    if (n == 1)
    {
      ++cancelled_wins;
      BOOST_REQUIRE(o.ec == asio::error::operation_aborted);
    }
    else
    {
      ++wake_wins;
      BOOST_REQUIRE(!o.ec);
    }
    // Either way the wake is not lost: a wake that lost to the cancel left a permit;
    // one that won left none. Both are checked by the next wait.
    outcome next;
    w.async_wait(record(next));
    if (n == 1)
    {
      run_all(ctx);
      BOOST_REQUIRE(next.calls == 1);
      BOOST_REQUIRE(!next.ec);
    }
    else
    {
      ctx.restart();
      ctx.poll();
      BOOST_REQUIRE(next.calls == 0);
      BOOST_REQUIRE(w.cancel() == 1u);
      run_all(ctx);
    }
  }
  BOOST_TEST_MESSAGE("cancel won " << cancelled_wins << ", wake won " << wake_wins);
  BOOST_TEST(cancelled_wins + wake_wins == rounds);
}

BOOST_AUTO_TEST_SUITE_END()
