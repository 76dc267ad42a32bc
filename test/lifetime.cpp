//
// test/lifetime.cpp: the Lifetime guarantee: destroying the waker, shutting down and
// destroying the execution context (contract.md Part 1, item 6). Run under ASan/LSan in
// CI, so "no leak" is checked too. lifetime_portable.cpp runs this file again with the
// portable hand-off forced.
//

#ifndef BOOST_TEST_MODULE
#define BOOST_TEST_MODULE asio_waker lifetime
#endif
#include "test_support.hpp"

#include <optional>

using namespace test;
using asio_waker::atomic_waker;

BOOST_AUTO_TEST_SUITE(waker_destructor, *suite_timeout())

BOOST_AUTO_TEST_CASE(aborts_the_pending_wait_not_inline)
{
  asio::io_context ctx;
  outcome o;
  {
    atomic_waker w(ctx);
    w.async_wait(record(o));
  }
  BOOST_TEST(o.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(a_woken_wait_still_succeeds_after_the_waker_is_gone)
{
  asio::io_context ctx;
  outcome o;
  {
    atomic_waker w(ctx);
    w.async_wait(record(o));
    w.wake();
  }
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(many_wakers_come_and_go)
{
  asio::io_context ctx;
  std::vector<std::optional<atomic_waker>> wakers(16);
  int done = 0;
  for (int round = 0; round < 4; ++round)
  {
    for (auto& w : wakers)
    {
      w.emplace(ctx);
      w->async_wait([&](error_code) { ++done; });
    }
    for (std::size_t i = 0; i < wakers.size(); i += 2)
      wakers[i]->wake();
    for (auto& w : wakers)
      w.reset(); // odd ones abort
  }
  run_all(ctx);
  BOOST_TEST(done == 4 * 16);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(context_shutdown, *suite_timeout())

// io_context's destructor shuts its services down before destroying them; this
// context lets a test shut down while a waker is still alive, as that destructor does.
struct shutdownable_context : asio::io_context
{
  using asio::io_context::shutdown;
};

BOOST_AUTO_TEST_CASE(destroys_a_parked_handler_without_invoking_it)
{
  destruction_probe probe;
  bool invoked = false;
  {
    shutdownable_context ctx;
    atomic_waker w(ctx);
    w.async_wait([&invoked, t = probe.make()](error_code) { invoked = true; });
    ctx.shutdown(); // the waker service destroys the parked wait
    BOOST_TEST(*probe.destroyed == 1);
    w.wake(); // a permit, harmlessly
    BOOST_TEST(w.cancel() == 0u);
  }
  BOOST_TEST(!invoked);
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_CASE(destroys_a_queued_completion_without_invoking_it)
{
  destruction_probe probe;
  bool invoked = false;
  {
    asio::io_context ctx;
    atomic_waker w(ctx);
    w.async_wait([&invoked, t = probe.make()](error_code) { invoked = true; });
    w.wake(); // queued in the scheduler, never run
  }
  BOOST_TEST(!invoked);
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_CASE(destroys_a_coroutine_that_owns_its_waker)
{
  destruction_probe probe;
  bool resumed = false;
  {
    asio::io_context ctx;
    asio::co_spawn(
      ctx,
      [&, t = probe.make()]() -> asio::awaitable<void> {
        atomic_waker w(co_await asio::this_coro::executor);
        co_await w.async_wait(asio::use_awaitable);
        resumed = true;
      },
      asio::detached);
    ctx.run_for(settle_time);
    BOOST_TEST(!ctx.stopped()); // parked
  } // ~io_context: the service destroys the parked wait, which destroys the
  // coroutine frame, which destroys the waker (unlinking it from the service).
  BOOST_TEST(!resumed);
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_CASE(thread_pool_stop_destroys_a_parked_coroutine)
{
  destruction_probe probe;
  std::atomic<bool> resumed{false};
  {
    asio::thread_pool pool(1);
    asio::co_spawn(
      pool,
      [&, t = probe.make()]() -> asio::awaitable<void> {
        atomic_waker w(co_await asio::this_coro::executor);
        co_await w.async_wait(asio::use_awaitable);
        resumed = true;
      },
      asio::detached);
    std::this_thread::sleep_for(20ms);
    pool.stop();
    pool.join();
  }
  BOOST_TEST(!resumed.load());
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_CASE(wake_after_stop_is_harmless)
{
  destruction_probe probe;
  {
    asio::io_context ctx;
    asio::co_spawn(
      ctx,
      [&, t = probe.make()]() -> asio::awaitable<void> {
        atomic_waker w(co_await asio::this_coro::executor);
        co_await w.async_wait(asio::use_awaitable);
      },
      asio::detached);
    atomic_waker other(ctx);
    ctx.run_for(settle_time);
    ctx.stop();
    other.wake(); // stores a permit; nothing to run
    other.async_wait([](error_code) { BOOST_FAIL("must not run after stop"); });
  }
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_SUITE_END()
