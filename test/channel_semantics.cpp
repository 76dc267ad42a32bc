//
// test/channel_semantics.cpp: the channel's single-threaded guarantees (contract.md
// Part 3): Exactly once (C1), Order (C2), End of stream (C3), One receive at a time,
// Never inline, Work, executors and allocator (C5), Batches (C7) and Values (C9).
// Threads, C4 and C6: channel_threads.cpp; cancellation: channel_cancellation.cpp;
// lifetime (C8): channel_lifetime.cpp; completion tokens: channel_tokens.cpp.
//

#define BOOST_TEST_MODULE asio_waker channel semantics
#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace test;
using asio_waker::make_channel;

BOOST_AUTO_TEST_SUITE(exactly_once, *suite_timeout())

BOOST_AUTO_TEST_CASE(each_value_is_taken_by_exactly_one_receive_of_any_kind)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(1));
  BOOST_TEST(tx.send(2));
  BOOST_TEST(tx.send(3));
  BOOST_TEST(tx.send(4));

  value_outcome<int> one;
  rx.async_receive(record(one));
  run_all(ctx);
  BOOST_TEST(one.calls == 1);
  BOOST_TEST(!one.ec);
  BOOST_TEST(one.value == 1);

  std::optional<int> two = rx.try_receive();
  BOOST_REQUIRE(two.has_value());
  BOOST_TEST(*two == 2);

  std::vector<int> out;
  batch_outcome rest;
  rx.async_receive_many(out, 10, record(rest, out));
  run_all(ctx);
  BOOST_TEST(rest.calls == 1);
  BOOST_TEST(!rest.ec);
  BOOST_TEST(rest.count == 2u);
  BOOST_TEST(out == (std::vector<int>{3, 4}), boost::test_tools::per_element());

  // Nothing is left, and nothing is taken twice.
  BOOST_TEST(!rx.try_receive().has_value());
  value_outcome<int> none;
  rx.async_receive(record(none));
  expect_still_pending(ctx, none);
  BOOST_TEST(rx.cancel() == 1u);
  run_all(ctx);
  BOOST_TEST(none.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(a_pending_receive_takes_the_value_sent_to_it)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  expect_still_pending(ctx, o);
  BOOST_TEST(tx.send(42));
  // The value is the pending receive's (C2: receives take values in the order they were
  // started; C7: a pending receive completes as soon as a value is available).
  auto stolen = rx.try_receive();
  BOOST_TEST(!stolen.has_value(), "try_receive took the pending receive's value");
  if (stolen)
    BOOST_TEST(tx.send(*stolen)); // give it back, so that the rest of the test can run
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 42);
}

BOOST_AUTO_TEST_CASE(a_send_that_returns_false_destroys_its_value)
{
  asio::io_context ctx;
  auto ch = make_channel<std::shared_ptr<int>>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  rx.close();
  auto value = std::make_shared<int>(7);
  std::weak_ptr<int> watch = value;
  BOOST_TEST(!tx.send(std::move(value)));
  BOOST_TEST(watch.expired());
  BOOST_TEST(!tx.emplace(std::make_shared<int>(8)));
  BOOST_TEST(!rx.try_receive().has_value());
}

BOOST_AUTO_TEST_CASE(a_receive_that_fails_takes_no_value)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> cancelled;
  rx.async_receive(record(cancelled));
  BOOST_TEST(rx.cancel() == 1u);
  BOOST_TEST(tx.send(5)); // after the cancel: must stay queued
  run_all(ctx);
  BOOST_TEST(cancelled.calls == 1);
  BOOST_TEST(cancelled.ec == asio::error::operation_aborted);
  BOOST_TEST(cancelled.value == 0); // a default-constructed T comes with an error

  value_outcome<int> next;
  rx.async_receive(record(next));
  run_all(ctx);
  BOOST_TEST(!next.ec);
  BOOST_TEST(next.value == 5);
}

BOOST_AUTO_TEST_CASE(emplace_constructs_the_value_in_the_channel)
{
  asio::io_context ctx;
  auto ch = make_channel<std::string>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.emplace(3u, 'a'));
  BOOST_TEST(tx.emplace("bc"));
  BOOST_TEST(tx.send(std::string("d")));
  BOOST_TEST(rx.try_receive().value_or("?") == "aaa");
  BOOST_TEST(rx.try_receive().value_or("?") == "bc");
  BOOST_TEST(rx.try_receive().value_or("?") == "d");
  BOOST_TEST(!rx.try_receive().has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(order, *suite_timeout())

BOOST_AUTO_TEST_CASE(values_from_one_sender_arrive_in_send_order)
{
  constexpr int count = 1000;
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::vector<int> got;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      // Each kind of receive in turn, pending or finding values queued.
      while (got.size() < std::size_t(count))
      {
        switch (got.size() % 3)
        {
        case 0:
          got.push_back(co_await rx.async_receive(asio::use_awaitable));
          break;
        case 1:
          co_await rx.async_receive_many(got, 7, asio::use_awaitable);
          break;
        default:
          if (auto v = rx.try_receive())
            got.push_back(*v);
          else
            got.push_back(co_await rx.async_receive(asio::use_awaitable));
        }
      }
    },
    asio::detached);
  // Sends in bursts from inside the context, so that some receives find values queued
  // and some park.
  asio::co_spawn(
    ctx,
    [&, tx = tx]() -> asio::awaitable<void> {
      for (int i = 0; i < count; ++i)
      {
        BOOST_TEST(tx.send(i));
        if (i % 13 == 0)
          co_await asio::post(asio::use_awaitable);
      }
    },
    asio::detached);
  run_all(ctx);
  BOOST_REQUIRE(got.size() == std::size_t(count));
  for (int i = 0; i < count; ++i)
    BOOST_TEST_REQUIRE(got[std::size_t(i)] == i);
}

BOOST_AUTO_TEST_CASE(copies_of_a_sender_feed_one_fifo)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  auto tx2 = tx;
  auto tx3 = tx2;
  for (int i = 0; i < 30; i += 3)
  {
    BOOST_TEST(tx.send(i));
    BOOST_TEST(tx2.send(i + 1));
    BOOST_TEST(tx3.emplace(i + 2));
  }
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(out, 100, record(o, out));
  run_all(ctx);
  BOOST_TEST(o.count == 30u);
  for (int i = 0; i < 30; ++i)
    BOOST_TEST(out[std::size_t(i)] == i);
}

// Only one receive is pending at a time, but one that completed and has not run yet is
// no longer pending: the next receive takes the next value.
BOOST_AUTO_TEST_CASE(receives_take_values_in_the_order_they_were_started)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> first, second, third;
  rx.async_receive(record(first));
  BOOST_TEST(tx.send(1)); // completes `first` (queued, not run)
  BOOST_TEST(tx.send(2));
  BOOST_TEST(tx.send(3));
  rx.async_receive(record(second)); // does not abort `first`: it is complete
  rx.async_receive(record(third));  // nor `second`, which found a value
  run_all(ctx);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(third.calls == 1);
  BOOST_TEST(!first.ec);
  BOOST_TEST(!second.ec);
  BOOST_TEST(!third.ec);
  BOOST_TEST(first.value == 1);
  BOOST_TEST(second.value == 2);
  BOOST_TEST(third.value == 3);
}

// The same when the two handlers run on different executors, in the other order: the
// order of the handlers is Asio's business, the order of the values is the channel's.
BOOST_AUTO_TEST_CASE(values_follow_the_start_order_whatever_order_the_handlers_run_in)
{
  asio::io_context ctx, other;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> first, second;
  rx.async_receive(asio::bind_executor(other, record(first)));
  BOOST_TEST(tx.send(1)); // completes `first`
  BOOST_TEST(tx.send(2));
  rx.async_receive(record(second));
  run_all(ctx); // runs `second`'s handler first
  BOOST_TEST(second.calls == 1);
  run_all(other);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(!first.ec);
  BOOST_TEST(!second.ec);
  BOOST_TEST(first.value == 1);
  BOOST_TEST(second.value == 2);
}

// A receive completed by a send whose handler runs late (another executor) must not come
// back later to displace a newer receive (C5: only a NEW receive aborts a pending one),
// nor leave its value to a receive started after it (C2).
BOOST_AUTO_TEST_CASE(a_completed_receive_never_displaces_a_newer_one)
{
  asio::io_context ctx, other;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> first, second, third;
  rx.async_receive(asio::bind_executor(other, record(first)));
  BOOST_TEST(tx.send(1));        // completes `first`; its handler runs on `other`
  BOOST_TEST(rx.cancel() == 0u); // so it is no longer pending
  rx.async_receive([&](error_code ec, int v) {
    record(second)(ec, v);
    rx.async_receive(record(third)); // the newest receive
  });
  ctx.run_for(settle_time);
  ctx.restart();
  other.run_for(settle_time); // `first` runs
  ctx.restart();
  BOOST_TEST(tx.send(2));
  ctx.run_for(settle_time);
  ctx.restart();
  other.run_for(settle_time);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(!first.ec);
  BOOST_TEST(first.value == 1);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
  BOOST_TEST(second.value == 2);
  BOOST_TEST(third.calls == 0, "the newest receive completed with \"" << third.ec.message()
                                                                      << "\"");
  BOOST_TEST(rx.cancel() == 1u); // `third` is the one pending
  run_all(ctx);
  BOOST_TEST(third.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(end_of_stream, *suite_timeout())

BOOST_AUTO_TEST_CASE(fresh_channel_is_open)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(!tx.is_closed());
  BOOST_TEST(!rx.is_closed());
  BOOST_TEST(!rx.try_receive().has_value());
}

BOOST_AUTO_TEST_CASE(last_sender_gone_ends_the_stream_after_every_value)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  {
    auto moved = std::move(tx);
    auto copy = moved;
    BOOST_TEST(moved.send(1));
    BOOST_TEST(copy.send(2));
  } // both gone (the moved-from `tx` does not count)
  BOOST_TEST(rx.is_closed());

  value_outcome<int> a, b, c;
  rx.async_receive(record(a));
  run_all(ctx);
  BOOST_TEST(!a.ec);
  BOOST_TEST(a.value == 1);
  BOOST_TEST(rx.try_receive().value_or(-1) == 2);
  BOOST_TEST(!rx.try_receive().has_value());
  rx.async_receive(record(b));
  run_all(ctx);
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(b.ec == asio::error::eof);
  rx.async_receive(record(c)); // and again: eof is sticky
  run_all(ctx);
  BOOST_TEST(c.ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(a_copy_keeps_the_stream_open)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::optional<asio_waker::sender<int>> first(std::move(tx));
  std::optional<asio_waker::sender<int>> second(*first);
  value_outcome<int> o;
  rx.async_receive(record(o));
  first.reset();
  expect_still_pending(ctx, o); // `second` still holds the channel open
  BOOST_TEST(!rx.is_closed());
  BOOST_TEST(!second->is_closed());
  second.reset();
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(sender_assignment_drops_the_old_channel)
{
  asio::io_context ctx;
  auto ch_a = make_channel<int>(ctx);
  auto& tx_a = ch_a.first;
  auto& rx_a = ch_a.second;
  auto ch_b = make_channel<int>(ctx);
  auto& tx_b = ch_b.first;
  auto& rx_b = ch_b.second;
  value_outcome<int> a;
  rx_a.async_receive(record(a));
  tx_a = tx_b; // the last sender of a is gone
  run_all(ctx);
  BOOST_TEST(a.ec == asio::error::eof);
  BOOST_TEST(tx_a.send(9));
  BOOST_TEST(rx_b.try_receive().value_or(-1) == 9);
}

BOOST_AUTO_TEST_CASE(close_keeps_every_accepted_value)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(1));
  BOOST_TEST(tx.send(2));
  BOOST_TEST(tx.send(3));
  rx.close();
  BOOST_TEST(rx.is_closed());
  BOOST_TEST(tx.is_closed());
  BOOST_TEST(!tx.send(4));
  BOOST_TEST(!tx.emplace(5));

  std::vector<int> out;
  batch_outcome values, end;
  rx.async_receive_many(out, 10, record(values, out));
  run_all(ctx);
  BOOST_TEST(!values.ec);
  BOOST_TEST(values.count == 3u);
  BOOST_TEST(out == (std::vector<int>{1, 2, 3}), boost::test_tools::per_element());

  rx.async_receive_many(out, 10, record(end, out));
  run_all(ctx);
  BOOST_TEST(end.calls == 1);
  BOOST_TEST(end.ec == asio::error::eof);
  BOOST_TEST(end.count == 0u);
  BOOST_TEST(out.size() == 3u); // nothing appended on error
  BOOST_TEST(!rx.try_receive().has_value());
  rx.close(); // idempotent
  BOOST_TEST(rx.is_closed());
}

BOOST_AUTO_TEST_CASE(close_completes_a_pending_receive_with_eof_not_inline)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  rx.close();
  BOOST_TEST(o.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::eof);
  BOOST_TEST(!tx.send(1));
}

BOOST_AUTO_TEST_CASE(last_sender_gone_completes_a_pending_batch_with_eof)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::vector<int> out{-1};
  batch_outcome o;
  rx.async_receive_many(out, 4, record(o, out));
  {
    auto gone = std::move(tx);
  }
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::eof);
  BOOST_TEST(o.count == 0u);
  BOOST_TEST(out.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(one_receive_at_a_time, *suite_timeout())

BOOST_AUTO_TEST_CASE(a_new_receive_aborts_the_pending_one)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> first, second;
  rx.async_receive(record(first));
  rx.async_receive(record(second));
  BOOST_TEST(first.calls == 0); // the abort is not inline either
  expect_still_pending(ctx, second);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  BOOST_TEST(tx.send(3));
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
  BOOST_TEST(second.value == 3);
}

BOOST_AUTO_TEST_CASE(the_two_receive_kinds_replace_each_other)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::vector<int> out;
  batch_outcome batch;
  value_outcome<int> single;
  rx.async_receive_many(out, 5, record(batch, out));
  rx.async_receive(record(single));
  expect_still_pending(ctx, single);
  BOOST_TEST(batch.ec == asio::error::operation_aborted);
  BOOST_TEST(out.empty());

  batch_outcome batch2;
  rx.async_receive_many(out, 5, record(batch2, out));
  expect_still_pending(ctx, batch2);
  BOOST_TEST(single.ec == asio::error::operation_aborted);
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(!batch2.ec);
  BOOST_TEST(batch2.count == 1u);
  BOOST_TEST(out == (std::vector<int>{1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cancel_returns_one_then_zero)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(rx.cancel() == 0u);
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(rx.cancel() == 1u);
  BOOST_TEST(rx.cancel() == 0u);
  BOOST_TEST(o.calls == 0); // not inside cancel()
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);

  // The channel keeps working.
  value_outcome<int> again;
  rx.async_receive(record(again));
  expect_still_pending(ctx, again);
  BOOST_TEST(tx.send(11));
  run_all(ctx);
  BOOST_TEST(again.value == 11);
}

BOOST_AUTO_TEST_CASE(cancel_after_a_send_completed_the_receive_returns_zero)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(tx.send(4));
  BOOST_TEST(rx.cancel() == 0u);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 4);
}

BOOST_AUTO_TEST_CASE(a_receive_that_found_a_value_is_complete)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(6));
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(rx.cancel() == 0u); // completed, though its handler has not run
  run_all(ctx);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 6);
}

BOOST_AUTO_TEST_CASE(cancel_on_a_closed_channel_with_nothing_pending)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  rx.close();
  BOOST_TEST(rx.cancel() == 0u);
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(rx.cancel() == 0u); // eof: complete at once
  run_all(ctx);
  BOOST_TEST(o.ec == asio::error::eof);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(never_inline, *suite_timeout())

BOOST_AUTO_TEST_CASE(not_inside_async_receive_with_a_value_queued)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(1));
  BOOST_TEST(tx.send(2));
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(o.calls == 0);
  std::vector<int> out;
  batch_outcome b;
  rx.async_receive_many(out, 4, record(b, out));
  BOOST_TEST(b.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.value == 1);
  BOOST_TEST(b.count == 1u);
  BOOST_TEST(b.size_seen == 1u);
}

BOOST_AUTO_TEST_CASE(not_inside_async_receive_at_end_of_stream)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  rx.close();
  value_outcome<int> o;
  rx.async_receive(record(o));
  BOOST_TEST(o.calls == 0);
  std::vector<int> out;
  batch_outcome b;
  rx.async_receive_many(out, 4, record(b, out));
  BOOST_TEST(b.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.ec == asio::error::eof);
  BOOST_TEST(b.ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(not_inside_send_on_the_consumers_thread)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  int calls = 0;
  asio::post(ctx, [&] {
    rx.async_receive([&](error_code, int) { ++calls; });
    BOOST_TEST(tx.send(1)); // inside the context's run(), on its thread
    BOOST_TEST(calls == 0);
    BOOST_TEST(tx.emplace(2));
    BOOST_TEST(calls == 0);
  });
  run_all(ctx);
  BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(where_handlers_run, *suite_timeout())

BOOST_AUTO_TEST_CASE(default_executor_is_the_receivers)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST((rx.get_executor() == asio::any_io_executor(ctx.get_executor())));
  std::thread::id ran_on;
  rx.async_receive([&](error_code, int) { ran_on = std::this_thread::get_id(); });
  std::thread producer([tx = tx] { tx.send(1); });
  producer.join();
  run_all(ctx);
  BOOST_TEST((ran_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(associated_executor_runs_the_handler)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  int calls = 0;
  bool in_strand = false;
  rx.async_receive(asio::bind_executor(strand, [&](error_code ec, int v) {
    ++calls;
    in_strand = strand.running_in_this_thread();
    BOOST_TEST(!ec);
    BOOST_TEST(v == 3);
  }));
  std::thread producer([tx = tx] { tx.send(3); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(calls == 1);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(receiver_on_a_strand_runs_handlers_in_the_strand)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  auto ch = make_channel<int>(strand);
  auto& tx = ch.first;
  auto& rx = ch.second;
  static_assert(std::is_same_v<decltype(ch.second),
    asio_waker::basic_receiver<int, asio::strand<asio::io_context::executor_type>>>);
  BOOST_TEST((rx.get_executor() == strand));
  bool in_strand = false;
  std::vector<int> out;
  rx.async_receive_many(
    out, 8, [&](error_code, std::size_t) { in_strand = strand.running_in_this_thread(); });
  std::thread producer([tx = tx] { tx.send(1); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(in_strand);
  BOOST_TEST(out.size() == 1u);
}

BOOST_AUTO_TEST_CASE(io_context_executor_type)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx.get_executor());
  auto& tx = ch.first;
  auto& rx = ch.second;
  static_assert(std::is_same_v<decltype(ch.second),
    asio_waker::basic_receiver<int, asio::io_context::executor_type>>);
  value_outcome<int> o;
  rx.async_receive(record(o));
  std::thread producer([tx = tx] { tx.send(8); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(o.value == 8);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(outstanding_work, *suite_timeout())

BOOST_AUTO_TEST_CASE(run_does_not_return_while_a_receive_is_pending)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  expect_still_pending(ctx, o); // the pending receive is outstanding work

  std::thread producer([tx = tx] {
    std::this_thread::sleep_for(30ms);
    tx.send(5);
  });
  ctx.restart();
  ctx.run_for(watchdog); // returns once the handler ran and no work is left
  producer.join();
  BOOST_TEST(ctx.stopped());
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 5);
}

BOOST_AUTO_TEST_CASE(a_pending_batch_is_work_too)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(out, 3, record(o, out));
  expect_still_pending(ctx, o);
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(o.count == 1u);
}

BOOST_AUTO_TEST_CASE(work_is_counted_on_the_handlers_executor)
{
  asio::io_context channel_ctx, handler_ctx;
  auto ch = make_channel<int>(channel_ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(asio::bind_executor(handler_ctx, record(o)));
  expect_still_pending(handler_ctx, o); // work counted on the handler's executor too

  BOOST_TEST(tx.send(2));
  run_all(channel_ctx);
  BOOST_TEST(o.calls == 0); // dispatched to handler_ctx, not run here
  run_all(handler_ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 2);
}

BOOST_AUTO_TEST_CASE(no_work_without_a_pending_receive)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(1)); // queued values and live senders are not work
  ctx.run_for(watchdog);
  BOOST_TEST(ctx.stopped());
  BOOST_TEST(rx.try_receive().value_or(-1) == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(allocator, *suite_timeout())

BOOST_AUTO_TEST_CASE(memory_comes_from_the_associated_allocator)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  alloc_stats stats;
  value_outcome<int> o;
  rx.async_receive(asio::bind_allocator(counting_allocator<void>(&stats), record(o)));
  BOOST_TEST(stats.allocations >= 1); // taken in async_receive
  const int taken = stats.allocations;
  std::thread producer([tx = tx] { tx.send(1); });
  producer.join();
  BOOST_TEST(stats.allocations == taken); // send() asked the allocator for nothing
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 1);
  BOOST_TEST(stats.live() == 0); // all given back before the handler ran
}

BOOST_AUTO_TEST_CASE(a_batch_uses_the_associated_allocator_too)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  alloc_stats stats;
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(
    out, 4, asio::bind_allocator(counting_allocator<void>(&stats), record(o, out)));
  BOOST_TEST(stats.allocations >= 1);
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(o.count == 1u);
  BOOST_TEST(stats.live() == 0);
}

BOOST_AUTO_TEST_CASE(a_receive_whose_allocation_fails_loses_no_value)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  alloc_stats failing;
  failing.fail_all = true;
  BOOST_CHECK_THROW(rx.async_receive(asio::bind_allocator(
                      counting_allocator<void>(&failing), [](error_code, int) {})),
    std::bad_alloc);
  BOOST_TEST(failing.failures >= 1);
  value_outcome<int> o;
  rx.async_receive(record(o)); // (would also replace the failed one, had it not thrown)
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(batches, *suite_timeout())

BOOST_AUTO_TEST_CASE(takes_min_of_limit_and_queued_and_appends)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  for (int i = 1; i <= 5; ++i)
    BOOST_TEST(tx.send(i));
  std::vector<int> out{0};
  batch_outcome a, b;
  rx.async_receive_many(out, 3, record(a, out));
  run_all(ctx);
  BOOST_TEST(!a.ec);
  BOOST_TEST(a.count == 3u);
  BOOST_TEST(a.size_seen == 4u); // appended before the handler ran
  rx.async_receive_many(out, 10, record(b, out));
  run_all(ctx);
  BOOST_TEST(b.count == 2u);
  BOOST_TEST(out == (std::vector<int>{0, 1, 2, 3, 4, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(limit_zero_is_treated_as_one)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(1));
  BOOST_TEST(tx.send(2));
  std::vector<int> out;
  batch_outcome queued, pending;
  rx.async_receive_many(out, 0, record(queued, out));
  run_all(ctx);
  BOOST_TEST(!queued.ec);
  BOOST_TEST(queued.count == 1u);
  BOOST_TEST(out.size() == 1u);
  BOOST_TEST(rx.try_receive().value_or(-1) == 2);

  rx.async_receive_many(out, 0, record(pending, out));
  expect_still_pending(ctx, pending);
  BOOST_TEST(tx.send(3));
  BOOST_TEST(tx.send(4));
  run_all(ctx);
  BOOST_TEST(pending.count == 1u);
  BOOST_TEST(out == (std::vector<int>{1, 3}), boost::test_tools::per_element());
  BOOST_TEST(rx.try_receive().value_or(-1) == 4);
}

BOOST_AUTO_TEST_CASE(a_pending_batch_completes_with_what_is_available)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::deque<int> out; // any container with push_back
  batch_outcome one;
  rx.async_receive_many(out, 10, record(one, out));
  expect_still_pending(ctx, one);
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(!one.ec);
  BOOST_TEST(one.count == 1u);
  BOOST_TEST(one.size_seen == 1u);

  // Six values sent before the handler runs: it gets 1..4 of them, in order, and the
  // rest stay queued.
  batch_outcome some;
  rx.async_receive_many(out, 4, record(some, out));
  for (int i = 2; i <= 7; ++i)
    BOOST_TEST(tx.send(i));
  run_all(ctx);
  BOOST_TEST(!some.ec);
  BOOST_TEST(some.count >= 1u);
  BOOST_TEST(some.count <= 4u);
  BOOST_TEST(out.size() == 1 + some.count);
  while (auto v = rx.try_receive())
    out.push_back(*v);
  BOOST_TEST(out == (std::deque<int>{1, 2, 3, 4, 5, 6, 7}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nothing_is_appended_on_error)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  std::vector<int> out{-7};
  batch_outcome cancelled, replaced, aborted_by_slot, end;
  rx.async_receive_many(out, 4, record(cancelled, out));
  BOOST_TEST(rx.cancel() == 1u);
  rx.async_receive_many(out, 4, record(replaced, out));
  asio::cancellation_signal sig;
  rx.async_receive_many(
    out, 4, asio::bind_cancellation_slot(sig.slot(), record(aborted_by_slot, out)));
  sig.emit(asio::cancellation_type::terminal);
  BOOST_TEST(tx.send(1)); // after every abort: stays queued
  run_all(ctx);
  for (const batch_outcome* o : {&cancelled, &replaced, &aborted_by_slot})
  {
    BOOST_TEST(o->calls == 1);
    BOOST_TEST(o->ec == asio::error::operation_aborted);
    BOOST_TEST(o->count == 0u);
    BOOST_TEST(o->size_seen == 1u);
  }
  BOOST_TEST(rx.try_receive().value_or(-1) == 1);
  rx.close();
  rx.async_receive_many(out, 4, record(end, out));
  run_all(ctx);
  BOOST_TEST(end.ec == asio::error::eof);
  BOOST_TEST(end.count == 0u);
  BOOST_TEST(out == (std::vector<int>{-7}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(batch_then_eof_when_the_last_sender_goes)
{
  asio::io_context ctx;
  auto ch = make_channel<std::string>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(tx.emplace(std::to_string(i)));
  {
    auto gone = std::move(tx);
  }
  std::vector<std::string> out;
  int batches = 0;
  error_code last;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (;;)
      {
        auto [ec, n] = co_await rx.async_receive_many(out, 2, as_tuple(asio::use_awaitable));
        if (ec)
        {
          last = ec;
          BOOST_TEST(n == 0u);
          co_return;
        }
        ++batches;
        BOOST_TEST(n >= 1u);
        BOOST_TEST(n <= 2u);
      }
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST(last == asio::error::eof);
  BOOST_TEST(batches == 2);
  BOOST_TEST(out == (std::vector<std::string>{"0", "1", "2"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Throws from its value constructor when asked to hold 42.
struct picky
{
  int v = 0;
  picky() = default;
  explicit picky(int x) : v(x)
  {
    if (x == 42)
      throw std::runtime_error("picky: 42");
  }
  picky(picky&&) noexcept = default;
  picky& operator=(picky&&) noexcept = default;
};

// Neither default-constructible nor copyable.
struct no_default
{
  explicit no_default(int x) : v(std::make_unique<int>(x)) {}
  std::unique_ptr<int> v;
};

} // namespace

BOOST_AUTO_TEST_SUITE(values, *suite_timeout())

static_assert(std::is_nothrow_move_constructible_v<picky>);

BOOST_AUTO_TEST_CASE(move_only_values)
{
  asio::io_context ctx;
  auto ch = make_channel<std::unique_ptr<int>>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(std::make_unique<int>(1)));
  BOOST_TEST(tx.emplace(new int(2)));
  BOOST_TEST(tx.send(std::make_unique<int>(3)));
  BOOST_TEST(tx.send(nullptr));

  std::unique_ptr<int> first;
  rx.async_receive([&](error_code ec, std::unique_ptr<int> v) {
    BOOST_TEST(!ec);
    first = std::move(v);
  });
  run_all(ctx);
  BOOST_REQUIRE(first);
  BOOST_TEST(*first == 1);

  std::vector<std::unique_ptr<int>> out;
  batch_outcome b;
  rx.async_receive_many(out, 2, record(b, out));
  run_all(ctx);
  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(*out[0] == 2);
  BOOST_TEST(*out[1] == 3);

  auto last = rx.try_receive();
  BOOST_REQUIRE(last.has_value());
  BOOST_TEST(!*last);
}

BOOST_AUTO_TEST_CASE(a_throwing_emplace_delivers_nothing)
{
  asio::io_context ctx;
  auto ch = make_channel<picky>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.emplace(1));
  BOOST_CHECK_THROW(tx.emplace(42), std::runtime_error);
  BOOST_TEST(tx.emplace(2));

  // Also with a receive pending when the constructor throws.
  std::vector<picky> out;
  batch_outcome b;
  rx.async_receive_many(out, 10, record(b, out));
  run_all(ctx);
  BOOST_TEST(b.count == 2u);
  value_outcome<picky> pending;
  rx.async_receive(record(pending));
  BOOST_CHECK_THROW(tx.emplace(42), std::runtime_error);
  expect_still_pending(ctx, pending);
  BOOST_TEST(tx.emplace(3));
  run_all(ctx);
  BOOST_TEST(!pending.ec);
  BOOST_TEST(pending.value.v == 3);

  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[0].v == 1);
  BOOST_TEST(out[1].v == 2);
  BOOST_TEST(!rx.try_receive().has_value());
}

// async_receive needs a default-constructible T; the other receives do not.
BOOST_AUTO_TEST_CASE(values_without_a_default_constructor)
{
  asio::io_context ctx;
  auto ch = make_channel<no_default>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.emplace(1));
  BOOST_TEST(tx.send(no_default(2)));
  auto v = rx.try_receive();
  BOOST_REQUIRE(v.has_value());
  BOOST_TEST(*v->v == 1);
  std::vector<no_default> out;
  batch_outcome b;
  rx.async_receive_many(out, 10, record(b, out));
  run_all(ctx);
  BOOST_REQUIRE(b.count == 1u);
  BOOST_TEST(*out[0].v == 2);
}

BOOST_AUTO_TEST_SUITE_END()
