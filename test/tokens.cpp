//
// test/tokens.cpp: the Tokens guarantee (contract.md Part 1, item 8): every completion
// token, and the default token. yield_context needs Boost.Context, which only the
// Boost.Asio flavour has: in a standalone build its test is reported as skipped.
//

#define BOOST_TEST_MODULE asio_waker tokens
#include "test_support.hpp"

#include <array>
#include <future>

using namespace test;
using asio_waker::atomic_waker;

namespace {

// Wakes from a foreign thread once the test's io_context has started.
struct foreign_waker
{
  std::thread thread;
  explicit foreign_waker(atomic_waker& w)
    : thread([&w] {
        std::this_thread::sleep_for(5ms);
        w.wake();
      })
  {}
  ~foreign_waker() { thread.join(); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(tokens, *suite_timeout())

BOOST_AUTO_TEST_CASE(callback)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  w.async_wait(record(o));
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(use_awaitable)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  int resumed = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      co_await w.async_wait(asio::use_awaitable);
      ++resumed;
    },
    asio::detached);
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(resumed == 1);
}

BOOST_AUTO_TEST_CASE(use_awaitable_throws_on_abort)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  error_code caught;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      try
      {
        co_await w.async_wait(asio::use_awaitable);
      }
      catch (const system_error& e)
      {
        caught = e.code();
      }
    },
    asio::detached);
  asio::post(ctx, [&] { w.cancel(); });
  run_all(ctx);
  BOOST_TEST(caught == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(default_token_via_as_default_on)
{
  using awaitable_waker = asio::use_awaitable_t<>::as_default_on_t<atomic_waker>;
  asio::io_context ctx;
  awaitable_waker w(ctx);
  int resumed = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      co_await w.async_wait(); // no token
      ++resumed;
    },
    asio::detached);
  w.wake();
  run_all(ctx);
  BOOST_TEST(resumed == 1);
}

BOOST_AUTO_TEST_CASE(deferred)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  auto op = w.async_wait(test::deferred);
  w.wake(); // stored: the deferred operation has not started
  outcome o;
  std::move(op)(record(o));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(deferred_in_a_coroutine)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  int resumed = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
#if ASIO_WAKER_ASIO_VERSION >= 102400
      co_await w.async_wait(test::deferred);
#else
      // Asio < 1.24 (standalone 1.22.1) cannot co_await a deferred operation itself:
      // launch it with use_awaitable.
      co_await w.async_wait(test::deferred)(asio::use_awaitable);
#endif
      ++resumed;
    },
    asio::detached);
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(resumed == 1);
}

BOOST_AUTO_TEST_CASE(use_future)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  auto guard = asio::make_work_guard(ctx);
  std::future<void> fut = w.async_wait(asio::use_future);
  std::thread runner([&] { ctx.run_for(watchdog); });
  w.wake();
  BOOST_TEST((fut.wait_for(watchdog) == std::future_status::ready));
  BOOST_CHECK_NO_THROW(fut.get());

  std::future<void> aborted = w.async_wait(asio::use_future);
  w.cancel();
  BOOST_TEST((aborted.wait_for(watchdog) == std::future_status::ready));
  BOOST_CHECK_THROW(aborted.get(), system_error);
  guard.reset();
  runner.join();
}

#if ASIO_WAKER_TEST_HAS_SPAWN
BOOST_AUTO_TEST_CASE(yield_context)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  int resumed = 0;
  error_code aborted;
  asio::spawn(
    ctx,
    [&](asio::yield_context yield) {
      w.async_wait(yield);
      ++resumed;
      asio::post(ctx, [&] { w.cancel(); });
      w.async_wait(yield[aborted]);
    },
    asio::detached);
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(resumed == 1);
  BOOST_TEST(aborted == asio::error::operation_aborted);
}

#else
// Boost.Asio only: yield_context (spawn) is built on Boost.Context.
BOOST_AUTO_TEST_CASE(
  yield_context, *skipped_because("needs Boost.Context (Boost.Asio only)"))
{}
#endif

BOOST_AUTO_TEST_CASE(as_tuple)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  error_code ec = asio::error::fault;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      auto [e] = co_await w.async_wait(test::as_tuple(asio::use_awaitable));
      ec = e;
    },
    asio::detached);
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(redirect_error)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  error_code ec;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      asio::post(ctx, [&] { w.cancel(); });
      co_await w.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST(ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(bind_executor)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  atomic_waker w(ctx);
  bool in_strand = false;
  w.async_wait(asio::bind_executor(
    strand, [&](error_code) { in_strand = strand.running_in_this_thread(); }));
  foreign_waker f(w);
  run_all(ctx);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(bind_cancellation_slot)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  asio::cancellation_signal sig;
  outcome o;
  w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(o)));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  run_all(ctx);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(awaitable_operators)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  atomic_waker a(ctx), b(ctx);
  int both = 0;
  std::size_t first = 99;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      co_await (a.async_wait(asio::use_awaitable) && b.async_wait(asio::use_awaitable));
      ++both;
      b.wake();
      auto r =
        co_await (a.async_wait(asio::use_awaitable) || b.async_wait(asio::use_awaitable));
      first = r.index();
    },
    asio::detached);
  std::thread producer([&] {
    a.wake();
    std::this_thread::sleep_for(5ms);
    b.wake();
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(both == 1);
  BOOST_TEST(first == 1u);
  BOOST_TEST(a.cancel() == 0u); // the loser of || was cancelled, not left pending
}

BOOST_AUTO_TEST_CASE(parallel_group)
{
  asio::io_context ctx;
  atomic_waker a(ctx), b(ctx);
  std::array<std::size_t, 2> order{};
  error_code ec_a, ec_b;
  asio::experimental::make_parallel_group(
    a.async_wait(test::deferred), b.async_wait(test::deferred))
    .async_wait(asio::experimental::wait_for_one(),
      [&](std::array<std::size_t, 2> o, error_code e1, error_code e2) {
        order = o;
        ec_a = e1;
        ec_b = e2;
      });
  b.wake();
  run_all(ctx);
  BOOST_TEST(order[0] == 1u);
  BOOST_TEST(!ec_b);
  BOOST_TEST(ec_a == asio::error::operation_aborted); // cancelled by the group
}

BOOST_AUTO_TEST_SUITE_END()
