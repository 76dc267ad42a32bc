//
// test/executors.cpp: wakers on executors other than any_io_executor: thread_pool,
// system_executor, io_context's own executor type, and execution contexts that no Asio
// scheduler runs, with Networking TS and standard executors (the portable hand-off).
// The guarantees under test: Never inline, Work and Lifetime (contract.md Part 1).
//

#define BOOST_TEST_MODULE asio_waker executors
#include "test_support.hpp"

using namespace test;
using asio_waker::atomic_waker;

BOOST_AUTO_TEST_SUITE(executors, *suite_timeout())

BOOST_AUTO_TEST_CASE(handler_runs_in_the_pool)
{
  asio::thread_pool pool(2);
  asio_waker::basic_atomic_waker<asio::thread_pool::executor_type> w(pool);
  std::atomic<int> calls{0};
  std::atomic<bool> in_pool{false};
  w.async_wait([&](error_code ec) {
    in_pool = pool.get_executor().running_in_this_thread();
    if (!ec)
      ++calls;
  });
  std::thread producer([&] { w.wake(); });
  producer.join();
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
  BOOST_TEST(in_pool.load());
  pool.join();
}

BOOST_AUTO_TEST_CASE(handler_runs_on_a_system_context_thread)
{
  asio_waker::basic_atomic_waker<asio::system_executor> w{asio::system_executor()};
  std::atomic<int> calls{0};
  std::atomic<std::thread::id> ran_on{};
  w.async_wait([&](error_code ec) {
    ran_on = std::this_thread::get_id();
    if (!ec)
      ++calls;
  });
  w.wake();
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
  BOOST_TEST((ran_on.load() != std::this_thread::get_id())); // not inside wake()
}

BOOST_AUTO_TEST_CASE(io_context_executor_type_completes_a_foreign_wake)
{
  asio::io_context ctx;
  asio_waker::basic_atomic_waker<asio::io_context::executor_type> w(ctx.get_executor());
  outcome o;
  w.async_wait(record(o));
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST((w.get_executor() == ctx.get_executor()));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(executors_without_a_scheduler, *suite_timeout())

// A wait woken while parked, one that consumes a permit, and a cancelled one, each
// handed to the executor (queued on `mc`, run only by mc.run()).
template <typename Executor>
void wake_permit_and_cancel_through(
  manual_context& mc, asio_waker::basic_atomic_waker<Executor>& w)
{
  outcome a, b, c;
  w.async_wait(record(a));
  BOOST_TEST(mc.queued() == 0u); // parked, not queued
  w.wake();
  BOOST_TEST(a.calls == 0);
  BOOST_TEST(mc.run() >= 1u);
  BOOST_TEST(a.calls == 1);
  BOOST_TEST(!a.ec);

  w.wake(); // permit
  w.async_wait(record(b));
  BOOST_TEST(b.calls == 0);
  mc.run();
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(!b.ec);

  w.async_wait(record(c));
  BOOST_TEST(w.cancel() == 1u);
  BOOST_TEST(c.calls == 0);
  mc.run();
  BOOST_TEST(c.calls == 1);
  BOOST_TEST(c.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(ts_executor_hands_off_through_post_and_counts_work)
{
  manual_context mc;
  asio_waker::basic_atomic_waker<manual_context::ts_executor> w(mc);
  outcome parked;
  w.async_wait(record(parked));
  BOOST_TEST(mc.work > 0); // outstanding work on the custom executor
  BOOST_TEST(w.cancel() == 1u);
  mc.run();
  BOOST_TEST(parked.calls == 1);
  BOOST_TEST(mc.work == 0);

  wake_permit_and_cancel_through(mc, w);
  BOOST_TEST(mc.work == 0);
}

BOOST_AUTO_TEST_CASE(std_executor_hands_off_through_execute)
{
  static_assert(asio::execution::is_executor<manual_context::std_executor>::value);
  manual_context mc;
  asio_waker::basic_atomic_waker<manual_context::std_executor> w(mc.get_std_executor());
  wake_permit_and_cancel_through(mc, w);
}

BOOST_AUTO_TEST_CASE(shutdown_destroys_queued_and_parked_waits)
{
  destruction_probe probe;
  int invoked = 0;
  {
    manual_context mc;
    asio_waker::basic_atomic_waker<manual_context::ts_executor> queued(mc), parked(mc);
    queued.async_wait([&invoked, t = probe.make()](error_code) { ++invoked; });
    queued.wake(); // handed to the executor, never run
    parked.async_wait([&invoked, t = probe.make()](error_code) { ++invoked; });
    mc.shutdown_now(); // the service destroys the parked wait
    BOOST_TEST(*probe.destroyed >= 1);
    BOOST_TEST(invoked == 0);
  } // wakers, then the context (and the queued wait with it)
  BOOST_TEST(invoked == 0);
  BOOST_TEST(*probe.destroyed >= 2);
}

BOOST_AUTO_TEST_SUITE_END()
