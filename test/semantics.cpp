//
// test/semantics.cpp: the guarantees Permit, One waiter, Never inline and Work, and
// the Precise readings about the permit and the allocator (contract.md Part 1, items
// 1-4 and 10). Executors other than io_context's: executors.cpp.
// semantics_portable.cpp runs this file again with the portable hand-off forced.
//

#ifndef BOOST_TEST_MODULE
#define BOOST_TEST_MODULE asio_waker semantics
#endif
#include "test_support.hpp"

#include <new>

using namespace test;
using asio_waker::atomic_waker;

BOOST_AUTO_TEST_SUITE(permit, *suite_timeout())

BOOST_AUTO_TEST_CASE(wake_before_wait_stores_a_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  outcome o;
  w.async_wait(record(o));
  BOOST_TEST(o.calls == 0); // never inline, even with the permit present
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(wakes_coalesce_into_one_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  for (int i = 0; i < 5; ++i)
    w.wake();
  outcome first, second;
  w.async_wait(record(first));
  run_all(ctx);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(!first.ec);

  // The five wakes left ONE permit: a second wait stays pending.
  w.async_wait(record(second));
  expect_still_pending(ctx, second);
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(wake_completes_a_pending_wait_without_leaving_a_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome a, b;
  w.async_wait(record(a));
  w.wake();
  BOOST_TEST(a.calls == 0); // not inside wake()
  run_all(ctx);
  BOOST_TEST(a.calls == 1);
  BOOST_TEST(!a.ec);

  w.async_wait(record(b));
  expect_still_pending(ctx, b); // no spurious completion
  BOOST_TEST(w.cancel() == 1u);
  run_all(ctx);
  BOOST_TEST(b.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(wake_with_completion_queued_is_a_new_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome a, b;
  w.async_wait(record(a));
  w.wake(); // completes a (queued, not yet run)
  w.wake(); // nobody waits any more: stores the permit
  run_all(ctx);
  BOOST_TEST(a.calls == 1);
  w.async_wait(record(b));
  run_all(ctx);
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(!b.ec);
}

BOOST_AUTO_TEST_CASE(cancel_never_clears_the_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  BOOST_TEST(w.cancel() == 0u);
  outcome o;
  w.async_wait(record(o));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(a_wait_that_consumed_the_permit_is_completed)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  outcome o;
  w.async_wait(record(o));
  BOOST_TEST(w.cancel() == 0u); // already completed, though its handler has not run
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(cancel_after_wake_returns_zero_and_the_handler_succeeds)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  w.async_wait(record(o));
  w.wake();
  BOOST_TEST(w.cancel() == 0u);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(one_waiter, *suite_timeout())

BOOST_AUTO_TEST_CASE(a_new_wait_aborts_the_pending_one)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome first, second;
  w.async_wait(record(first));
  w.async_wait(record(second));
  BOOST_TEST(first.calls == 0); // the abort is not inline either
  expect_still_pending(ctx, second);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(cancel_returns_one_then_zero)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  BOOST_TEST(w.cancel() == 0u);
  w.async_wait(record(o));
  BOOST_TEST(w.cancel() == 1u);
  BOOST_TEST(w.cancel() == 0u);
  BOOST_TEST(o.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);

  // The waker keeps working, and the cancelled wait left no permit behind.
  outcome again;
  w.async_wait(record(again));
  expect_still_pending(ctx, again);
  w.wake();
  run_all(ctx);
  BOOST_TEST(again.calls == 1);
  BOOST_TEST(!again.ec);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(where_handlers_run, *suite_timeout())

BOOST_AUTO_TEST_CASE(default_executor_is_the_wakers)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  std::thread::id ran_on;
  w.async_wait([&](error_code) { ran_on = std::this_thread::get_id(); });
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST((ran_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(associated_executor_runs_the_handler)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  atomic_waker w(ctx);
  bool in_strand = false;
  int calls = 0;
  w.async_wait(asio::bind_executor(strand, [&](error_code ec) {
    ++calls;
    in_strand = strand.running_in_this_thread();
    BOOST_TEST(!ec);
  }));
  w.wake();
  run_all(ctx);
  BOOST_TEST(calls == 1);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(waker_on_a_strand_runs_handlers_in_the_strand)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  asio_waker::basic_atomic_waker<asio::strand<asio::io_context::executor_type>> w(strand);
  bool in_strand = false;
  w.async_wait([&](error_code) { in_strand = strand.running_in_this_thread(); });
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(outstanding_work, *suite_timeout())

BOOST_AUTO_TEST_CASE(run_does_not_return_while_a_wait_is_pending)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  w.async_wait(record(o));
  expect_still_pending(ctx, o); // the pending wait is outstanding work

  std::thread producer([&] {
    std::this_thread::sleep_for(30ms);
    w.wake();
  });
  ctx.restart();
  ctx.run_for(watchdog); // returns once the woken handler ran and no work is left
  producer.join();
  BOOST_TEST(ctx.stopped());
  BOOST_TEST(o.calls == 1);
}

BOOST_AUTO_TEST_CASE(work_is_counted_on_the_handlers_executor)
{
  asio::io_context waker_ctx, handler_ctx;
  atomic_waker w(waker_ctx);
  outcome o;
  w.async_wait(asio::bind_executor(handler_ctx, record(o)));
  expect_still_pending(handler_ctx, o); // work counted on the handler's executor too

  w.wake();
  run_all(waker_ctx);
  BOOST_TEST(o.calls == 0); // dispatched to handler_ctx, not run here
  run_all(handler_ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(no_work_without_a_pending_wait)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  ctx.run_for(watchdog);
  BOOST_TEST(ctx.stopped()); // a stored permit is not work
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(allocator, *suite_timeout())

BOOST_AUTO_TEST_CASE(memory_comes_from_the_associated_allocator_in_async_wait)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  alloc_stats stats;
  outcome o;
  w.async_wait(asio::bind_allocator(counting_allocator<void>(&stats), record(o)));
  BOOST_TEST(stats.allocations == 1);
  std::thread producer([&] { w.wake(); });
  producer.join();
  BOOST_TEST(stats.allocations == 1); // wake() asked the allocator for nothing
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(stats.deallocations == 1);
  BOOST_TEST(stats.live() == 0);
}

BOOST_AUTO_TEST_CASE(a_throwing_async_wait_leaves_the_waker_unchanged)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  alloc_stats failing;
  failing.fail_all = true;

  // With a wait pending: it stays pending.
  outcome pending;
  w.async_wait(record(pending));
  BOOST_CHECK_THROW(w.async_wait(asio::bind_allocator(
                      counting_allocator<void>(&failing), [](error_code) {})),
    std::bad_alloc);
  expect_still_pending(ctx, pending);
  w.wake();
  run_all(ctx);
  BOOST_TEST(pending.calls == 1);
  BOOST_TEST(!pending.ec);

  // With a permit stored: it stays stored.
  w.wake();
  BOOST_CHECK_THROW(w.async_wait(asio::bind_allocator(
                      counting_allocator<void>(&failing), [](error_code) {})),
    std::bad_alloc);
  outcome later;
  w.async_wait(record(later));
  run_all(ctx);
  BOOST_TEST(later.calls == 1);
  BOOST_TEST(!later.ec);
  BOOST_TEST(failing.failures == 2); // both throws came from the allocator
}

BOOST_AUTO_TEST_SUITE_END()
