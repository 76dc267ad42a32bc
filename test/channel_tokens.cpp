//
// test/channel_tokens.cpp: the channel's receives with every kind of completion token
// (contract.md Part 3, C5: "exactly as basic_atomic_waker", whose item 8 lists them),
// for async_receive (void(error_code, T)) and async_receive_many (void(error_code,
// std::size_t)), with a value, and at end of stream (eof). yield_context needs
// Boost.Context, which only the Boost.Asio flavour has: in a standalone build its test is
// reported as skipped.
//

#define BOOST_TEST_MODULE asio_waker channel tokens

// g++ 12 at -O1 with ASan reports Boost.Asio 1.81's own use_future machinery
// (promise_handler's constructor, inlined into async_initiate) as "may be used
// uninitialized" for the value-carrying signatures used below: a false positive in
// Asio's header, which -Werror would turn into a build failure. The location is in that
// header, so the pragma has to come before it is included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <array>
#include <future>
#include <string>
#include <vector>

using namespace test;
using asio_waker::make_channel;
using asio_waker::sender;

namespace {

// Sends from a foreign thread once the test's io_context has started, then (if asked)
// drops its sender, the last one: the stream ends after `values`.
struct foreign_sender
{
  std::thread thread;
  foreign_sender(sender<int> tx, std::vector<int> values)
    : thread([tx = std::move(tx), values = std::move(values)]() mutable {
        std::this_thread::sleep_for(5ms);
        for (int v : values)
          tx.send(v);
        auto last = std::move(tx);
      })
  {}
  ~foreign_sender() { thread.join(); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(tokens, *suite_timeout())

BOOST_AUTO_TEST_CASE(callback)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  foreign_sender f(std::move(ch.first), {5});
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 5);
}

BOOST_AUTO_TEST_CASE(callback_batch)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(out, 16, record(o, out));
  foreign_sender f(std::move(ch.first), {5});
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.count == 1u);
  BOOST_TEST(out == (std::vector<int>{5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(use_awaitable_until_eof)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  std::vector<int> got;
  error_code caught;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      try
      {
        for (;;)
          got.push_back(co_await rx.async_receive(asio::use_awaitable));
      }
      catch (const system_error& e)
      {
        caught = e.code();
      }
    },
    asio::detached);
  foreign_sender f(std::move(ch.first), {1, 2, 3});
  run_all(ctx);
  BOOST_TEST(got == (std::vector<int>{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(caught == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(use_awaitable_batch_until_eof)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  std::vector<int> got;
  std::size_t total = 0;
  error_code caught;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      try
      {
        for (;;)
          total += co_await rx.async_receive_many(got, 2, asio::use_awaitable);
      }
      catch (const system_error& e)
      {
        caught = e.code();
      }
    },
    asio::detached);
  foreign_sender f(std::move(ch.first), {1, 2, 3, 4, 5});
  run_all(ctx);
  BOOST_TEST(total == 5u);
  BOOST_TEST(got == (std::vector<int>{1, 2, 3, 4, 5}), boost::test_tools::per_element());
  BOOST_TEST(caught == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(use_awaitable_throws_on_abort)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  error_code caught;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      try
      {
        co_await rx.async_receive(asio::use_awaitable);
      }
      catch (const system_error& e)
      {
        caught = e.code();
      }
    },
    asio::detached);
  asio::post(ctx, [&] { rx.cancel(); });
  run_all(ctx);
  BOOST_TEST(caught == asio::error::operation_aborted);
  BOOST_TEST(ch.first.send(1)); // the channel is still open
}

BOOST_AUTO_TEST_CASE(default_token_via_as_default_on)
{
  using awaitable_receiver =
    asio::use_awaitable_t<>::as_default_on_t<asio_waker::receiver<int>>;
  asio::io_context ctx;
  auto ch = make_channel<int>(
    asio::use_awaitable_t<>::executor_with_default<asio::io_context::executor_type>(
      ctx.get_executor()));
  static_assert(std::is_same_v<decltype(ch.second),
    asio_waker::basic_receiver<int,
      asio::use_awaitable_t<>::executor_with_default<asio::io_context::executor_type>>>);
  static_assert(std::is_same_v<awaitable_receiver,
    asio_waker::basic_receiver<int,
      asio::use_awaitable_t<>::executor_with_default<asio::any_io_executor>>>);
  auto& tx = ch.first;
  auto& rx = ch.second;
  int got = 0;
  std::size_t batch = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      got = co_await rx.async_receive(); // no token
      std::vector<int> out;
      batch = co_await rx.async_receive_many(out, 8); // no token
    },
    asio::detached);
  BOOST_TEST(tx.send(4));
  BOOST_TEST(tx.send(5));
  BOOST_TEST(tx.send(6));
  run_all(ctx);
  BOOST_TEST(got == 4);
  BOOST_TEST(batch == 2u);
}

BOOST_AUTO_TEST_CASE(deferred)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  auto op = rx.async_receive(test::deferred);
  BOOST_TEST(tx.send(1)); // queued: the deferred operation has not started
  BOOST_TEST(tx.send(2));
  std::vector<int> out;
  auto batch_op = rx.async_receive_many(out, 5, test::deferred);
  BOOST_TEST(rx.cancel() == 0u); // nothing started yet
  value_outcome<int> o;
  std::move(op)(record(o));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 1);
  batch_outcome b;
  std::move(batch_op)(record(b, out));
  run_all(ctx);
  BOOST_TEST(b.count == 1u);
  BOOST_TEST(out == (std::vector<int>{2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(deferred_in_a_coroutine)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  int got = 0;
  std::size_t n = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      std::vector<int> out;
#if ASIO_WAKER_ASIO_VERSION >= 102400
      got = co_await rx.async_receive(test::deferred);
      n = co_await rx.async_receive_many(out, 4, test::deferred);
#else
      // Asio < 1.24 (standalone 1.22.1) cannot co_await a deferred operation itself:
      // launch it with use_awaitable.
      got = co_await rx.async_receive(test::deferred)(asio::use_awaitable);
      n = co_await rx.async_receive_many(out, 4, test::deferred)(asio::use_awaitable);
#endif
    },
    asio::detached);
  foreign_sender f(std::move(ch.first), {7, 8});
  run_all(ctx);
  BOOST_TEST(got == 7);
  BOOST_TEST(n == 1u);
}

BOOST_AUTO_TEST_CASE(use_future)
{
  asio::io_context ctx;
  auto ch = make_channel<std::string>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  auto guard = asio::make_work_guard(ctx);
  std::thread runner([&] { ctx.run_for(watchdog); });

  std::future<std::string> fut = rx.async_receive(asio::use_future);
  BOOST_TEST(tx.send("hello"));
  BOOST_REQUIRE((fut.wait_for(watchdog) == std::future_status::ready));
  BOOST_TEST(fut.get() == "hello");

  std::vector<std::string> out;
  BOOST_TEST(tx.send("a"));
  std::future<std::size_t> batch = rx.async_receive_many(out, 3, asio::use_future);
  BOOST_REQUIRE((batch.wait_for(watchdog) == std::future_status::ready));
  BOOST_TEST(batch.get() == 1u);
  BOOST_TEST(out.size() == 1u);

  std::future<std::string> aborted = rx.async_receive(asio::use_future);
  asio::post(
    ctx, [&] { rx.cancel(); }); // the receiver is the consumer's: cancel on its thread
  BOOST_REQUIRE((aborted.wait_for(watchdog) == std::future_status::ready));

  std::future<std::string> end = rx.async_receive(asio::use_future);
  {
    auto last = std::move(tx);
  }
  BOOST_REQUIRE((end.wait_for(watchdog) == std::future_status::ready));

  // The runner drops its promises after their handlers ran; an exception inside a
  // future is reference-counted in libstdc++, out of TSan's sight, so read the
  // exceptions only once the runner has finished.
  guard.reset();
  runner.join();
  BOOST_CHECK_THROW(aborted.get(), system_error);
  try
  {
    end.get();
    BOOST_ERROR("eof expected");
  }
  catch (const system_error& e)
  {
    BOOST_TEST(e.code() == asio::error::eof);
  }
}

#if ASIO_WAKER_TEST_HAS_SPAWN
BOOST_AUTO_TEST_CASE(yield_context)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  int got = 0;
  std::size_t n = 0;
  error_code end;
  asio::spawn(
    ctx,
    [&](asio::yield_context yield) {
      got = rx.async_receive(yield);
      std::vector<int> out;
      n = rx.async_receive_many(out, 10, yield);
      while (!end)
        rx.async_receive_many(out, 10, yield[end]);
    },
    asio::detached);
  foreign_sender f(std::move(ch.first), {1, 2});
  run_all(ctx);
  BOOST_TEST(got == 1);
  BOOST_TEST(n == 1u);
  BOOST_TEST(end == asio::error::eof);
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
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  error_code first_ec = asio::error::fault, batch_ec = asio::error::fault, end_ec;
  int value = 0;
  std::size_t n = 99;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      auto [e, v] = co_await rx.async_receive(test::as_tuple(asio::use_awaitable));
      first_ec = e;
      value = v;
      std::vector<int> out;
      std::tie(batch_ec, n) =
        co_await rx.async_receive_many(out, 10, test::as_tuple(asio::use_awaitable));
      auto [e2, v2] = co_await rx.async_receive(test::as_tuple(asio::use_awaitable));
      end_ec = e2;
      BOOST_TEST(v2 == 0); // default-constructed with an error
    },
    asio::detached);
  foreign_sender f(std::move(ch.first), {3, 4});
  run_all(ctx);
  BOOST_TEST(!first_ec);
  BOOST_TEST(value == 3);
  BOOST_TEST(!batch_ec);
  BOOST_TEST(n == 1u);
  BOOST_TEST(end_ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(redirect_error)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  error_code ec;
  int value = -1;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      rx.close();
      value = co_await rx.async_receive(asio::redirect_error(asio::use_awaitable, ec));
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST(ec == asio::error::eof);
  BOOST_TEST(value == 0);
}

BOOST_AUTO_TEST_CASE(bind_executor)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  bool in_strand = false;
  rx.async_receive(asio::bind_executor(
    strand, [&](error_code, int) { in_strand = strand.running_in_this_thread(); }));
  foreign_sender f(std::move(ch.first), {1});
  run_all(ctx);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(bind_cancellation_slot)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  value_outcome<int> o;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  asio::post(ctx, [&] { sig.emit(asio::cancellation_type::terminal); });
  run_all(ctx);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(awaitable_operators)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  auto a = make_channel<int>(ctx);
  auto b = make_channel<std::string>(ctx);
  int both_a = 0;
  std::string both_b;
  std::size_t first = 99;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      auto [x, y] = co_await (a.second.async_receive(asio::use_awaitable)
                              && b.second.async_receive(asio::use_awaitable));
      both_a = x;
      both_b = y;
      auto r = co_await (a.second.async_receive(asio::use_awaitable)
                         || b.second.async_receive(asio::use_awaitable));
      first = r.index();
      BOOST_TEST(std::get<1>(r) == "second");
    },
    asio::detached);
  std::thread producer([ta = a.first, tb = b.first] {
    ta.send(1);
    std::this_thread::sleep_for(5ms);
    tb.send("first");
    std::this_thread::sleep_for(5ms);
    tb.send("second");
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(both_a == 1);
  BOOST_TEST(both_b == "first");
  BOOST_TEST(first == 1u);
  BOOST_TEST(a.second.cancel() == 0u); // the loser of || was cancelled, not left pending
  // ... and took no value.
  BOOST_TEST(a.first.send(2));
  BOOST_TEST(a.second.try_receive().value_or(-1) == 2);
}

BOOST_AUTO_TEST_CASE(parallel_group)
{
  asio::io_context ctx;
  auto a = make_channel<int>(ctx);
  auto b = make_channel<int>(ctx);
  std::array<std::size_t, 2> order{};
  error_code ec_a, ec_b;
  int value_b = 0;
  std::vector<int> out_b;
  asio::experimental::make_parallel_group(a.second.async_receive(test::deferred),
    b.second.async_receive_many(out_b, 4, test::deferred))
    .async_wait(asio::experimental::wait_for_one(),
      [&](std::array<std::size_t, 2> o, error_code e1, int, error_code e2, std::size_t n) {
        order = o;
        ec_a = e1;
        ec_b = e2;
        value_b = int(n);
      });
  BOOST_TEST(b.first.send(6));
  run_all(ctx);
  BOOST_TEST(order[0] == 1u);
  BOOST_TEST(!ec_b);
  BOOST_TEST(value_b == 1);
  BOOST_TEST(out_b == (std::vector<int>{6}), boost::test_tools::per_element());
  BOOST_TEST(ec_a == asio::error::operation_aborted); // cancelled by the group
  BOOST_TEST(a.first.send(1));                        // and took no value
  BOOST_TEST(a.second.try_receive().value_or(-1) == 1);
}

BOOST_AUTO_TEST_SUITE_END()
