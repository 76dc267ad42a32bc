//
// test/channel_lifetime.cpp: the channel's Lifetime guarantee (contract.md Part 3, C8, and
// the value lifetimes of C1): destroying and moving the receiver, senders outliving the
// receiver and the execution context, shutting down and destroying the context with a
// receive pending or completed. Run under ASan/LSan in CI, so "no leak" and "no use after
// free" are checked too. Senders on other threads at those moments: channel_threads.cpp.
//

#define BOOST_TEST_MODULE asio_waker channel lifetime
#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <memory>
#include <optional>
#include <vector>

using namespace test;
using asio_waker::make_channel;
using asio_waker::receiver;
using asio_waker::sender;

namespace {

// io_context's destructor shuts its services down before destroying them; this context
// lets a test shut down while the channel's handles are still alive.
struct shutdownable_context : asio::io_context
{
  using asio::io_context::shutdown;
};

// Values that say when the last of them is gone.
struct watched_values
{
  std::vector<std::weak_ptr<int>> watches;
  std::shared_ptr<int> make(int v)
  {
    auto p = std::make_shared<int>(v);
    watches.push_back(p);
    return p;
  }
  int alive() const
  {
    int n = 0;
    for (auto& w : watches)
      n += !w.expired();
    return n;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(receiver_destructor, *suite_timeout())

BOOST_AUTO_TEST_CASE(aborts_the_pending_receive_not_inline)
{
  asio::io_context ctx;
  value_outcome<int> o;
  std::optional<sender<int>> tx;
  {
    auto ch = make_channel<int>(ctx);
    tx.emplace(std::move(ch.first));
    ch.second.async_receive(record(o));
  }
  BOOST_TEST(o.calls == 0);
  BOOST_TEST(tx->is_closed());
  BOOST_TEST(!tx->send(1));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(aborts_a_pending_batch_and_appends_nothing)
{
  asio::io_context ctx;
  std::vector<int> out;
  batch_outcome o;
  {
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive_many(out, 4, record(o, out));
  }
  BOOST_TEST(o.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
  BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(queued_values_are_destroyed_by_the_last_handle)
{
  asio::io_context ctx;
  watched_values values;
  std::optional<sender<std::shared_ptr<int>>> tx;
  {
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    tx.emplace(std::move(ch.first));
    for (int i = 0; i < 100; ++i) // more than one block of slots
      BOOST_TEST(tx->send(values.make(i)));
    BOOST_TEST(values.alive() == 100);
  } // the receiver is gone: the values are destroyed now or with the sender
  BOOST_TEST(!tx->send(values.make(100)));
  tx.reset();
  BOOST_TEST(values.alive() == 0);
  run_all(ctx);
}

BOOST_AUTO_TEST_CASE(values_outlive_the_senders_until_received_or_the_receiver_is_gone)
{
  asio::io_context ctx;
  watched_values values;
  std::optional<receiver<std::shared_ptr<int>>> rx;
  {
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    rx.emplace(std::move(ch.second));
    for (int i = 0; i < 40; ++i)
      BOOST_TEST(ch.first.send(values.make(i)));
  } // every sender gone: the stream ends after the 40 values
  BOOST_TEST(values.alive() == 40);
  auto first = rx->try_receive();
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(**first == 0);
  first.reset();
  BOOST_TEST(values.alive() == 39);
  rx.reset();
  BOOST_TEST(values.alive() == 0);
}

BOOST_AUTO_TEST_CASE(a_received_value_still_arrives_after_the_receiver_is_gone)
{
  asio::io_context ctx;
  value_outcome<int> o;
  {
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive(record(o));
    BOOST_TEST(ch.first.send(5)); // completes the receive (queued, not run)
  }
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  // Either outcome keeps C1 (a receive that fails took no value), and nothing leaks;
  // the contract's "unless the receiver is destroyed first" allows the abort.
  BOOST_TEST((!o.ec ? o.value == 5 : o.ec == asio::error::operation_aborted));
}

BOOST_AUTO_TEST_CASE(many_channels_come_and_go)
{
  asio::io_context ctx;
  int done = 0;
  for (int round = 0; round < 4; ++round)
  {
    std::vector<std::optional<receiver<int>>> receivers;
    std::vector<sender<int>> senders;
    for (int i = 0; i < 16; ++i)
    {
      auto ch = make_channel<int>(ctx);
      senders.push_back(std::move(ch.first));
      receivers.emplace_back(std::move(ch.second));
      receivers.back()->async_receive([&](error_code, int) { ++done; });
    }
    for (std::size_t i = 0; i < senders.size(); i += 2)
      BOOST_TEST(senders[i].send(int(i)));
    for (auto& r : receivers)
      r.reset(); // odd ones abort
    for (std::size_t i = 1; i < senders.size(); i += 2)
      BOOST_TEST(!senders[i].send(int(i)));
  }
  run_all(ctx);
  BOOST_TEST(done == 4 * 16);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(receiver_move, *suite_timeout())

BOOST_AUTO_TEST_CASE(move_construction_keeps_the_pending_receive)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  value_outcome<int> o;
  ch.second.async_receive(record(o));
  receiver<int> moved(std::move(ch.second));
  expect_still_pending(ctx, o);
  BOOST_TEST(tx.send(3));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 3);
  BOOST_TEST((moved.get_executor() == asio::any_io_executor(ctx.get_executor())));
}

BOOST_AUTO_TEST_CASE(the_moved_to_receiver_cancels_and_replaces_the_pending_receive)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  value_outcome<int> a, b;
  ch.second.async_receive(record(a));
  std::optional<receiver<int>> moved(std::move(ch.second));
  BOOST_TEST(moved->cancel() == 1u);
  moved->async_receive(record(b));
  auto again = std::move(*moved); // a second move, then the first moved-to one goes
  moved.reset();
  expect_still_pending(ctx, b);
  BOOST_TEST(a.ec == asio::error::operation_aborted);
  BOOST_TEST(tx.send(4));
  run_all(ctx);
  BOOST_TEST(b.value == 4);
}

BOOST_AUTO_TEST_CASE(move_assignment_closes_the_old_channel_and_takes_the_new_one)
{
  asio::io_context ctx;
  auto a = make_channel<int>(ctx);
  auto b = make_channel<int>(ctx);
  value_outcome<int> on_a, on_b;
  a.second.async_receive(record(on_a));
  b.second.async_receive(record(on_b));
  BOOST_TEST(a.first.send(1)); // queued for nobody once a's receiver is assigned over
  a.second = std::move(b.second);
  BOOST_TEST(a.first.is_closed()); // what the destructor does
  BOOST_TEST(!a.first.send(2));
  BOOST_TEST(!b.first.is_closed());
  BOOST_TEST(b.first.send(3));
  run_all(ctx);
  BOOST_TEST(on_a.calls == 1);
  BOOST_TEST((on_a.ec == asio::error::operation_aborted || on_a.value == 1));
  BOOST_TEST(on_b.calls == 1);
  BOOST_TEST(!on_b.ec);
  BOOST_TEST(on_b.value == 3); // the pending receive moved with the channel
  BOOST_TEST(b.first.send(5));
  BOOST_TEST(a.second.try_receive().value_or(-1) == 5);
}

BOOST_AUTO_TEST_CASE(a_receiver_moved_into_a_coroutine)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  std::vector<int> got;
  error_code end;
  asio::co_spawn(
    ctx,
    [&got, &end, rx = std::move(ch.second)]() mutable -> asio::awaitable<void> {
      for (;;)
      {
        auto [ec, n] = co_await rx.async_receive_many(got, 16, as_tuple(asio::use_awaitable));
        if (ec)
        {
          end = ec;
          co_return;
        }
      }
    },
    asio::detached);
  std::thread producer([tx = std::move(ch.first)] {
    for (int i = 0; i < 100; ++i)
      tx.send(i);
  });
  run_all(ctx); // ends when the producer's sender, the last one, is gone
  producer.join();
  BOOST_TEST(end == asio::error::eof);
  BOOST_REQUIRE(got.size() == 100u);
  for (int i = 0; i < 100; ++i)
    BOOST_TEST(got[std::size_t(i)] == i);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(outliving_the_context, *suite_timeout())

BOOST_AUTO_TEST_CASE(a_sender_outlives_the_receiver_and_the_context)
{
  watched_values values;
  std::optional<sender<std::shared_ptr<int>>> tx;
  {
    asio::io_context ctx;
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    tx.emplace(ch.first);
    BOOST_TEST(tx->send(values.make(1)));
  } // the receiver, then the context (and its service) are gone
  BOOST_TEST(tx->is_closed());
  BOOST_TEST(!tx->send(values.make(2))); // touches nothing that is gone (ASan checks)
  BOOST_TEST(!tx->emplace(values.make(3)));
  {
    auto copy = *tx;
    BOOST_TEST(!copy.send(values.make(4)));
  }
  tx.reset(); // the last handle
  BOOST_TEST(values.alive() == 0);
}

BOOST_AUTO_TEST_CASE(both_handles_outlive_the_context)
{
  watched_values values;
  std::optional<sender<std::shared_ptr<int>>> tx;
  std::optional<receiver<std::shared_ptr<int>>> rx;
  {
    asio::io_context ctx;
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    tx.emplace(std::move(ch.first));
    rx.emplace(std::move(ch.second));
    BOOST_TEST(tx->send(values.make(1)));
  } // shutdown closes the receiver
  BOOST_TEST(rx->is_closed());
  BOOST_TEST(tx->is_closed());
  BOOST_TEST(!tx->send(values.make(2)));
  rx.reset(); // the receiver first, this time
  BOOST_TEST(!tx->send(values.make(3)));
  tx.reset();
  BOOST_TEST(values.alive() == 0);
}

BOOST_AUTO_TEST_CASE(the_receiver_goes_last_after_the_context)
{
  watched_values values;
  std::optional<receiver<std::shared_ptr<int>>> rx;
  {
    asio::io_context ctx;
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    rx.emplace(std::move(ch.second));
    BOOST_TEST(ch.first.send(values.make(1)));
  } // the sender, then the context
  BOOST_TEST(rx->is_closed());
  rx.reset();
  BOOST_TEST(values.alive() == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(context_shutdown, *suite_timeout())

BOOST_AUTO_TEST_CASE(destroys_a_pending_receive_without_invoking_it)
{
  destruction_probe probe;
  bool invoked = false;
  {
    shutdownable_context ctx;
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive([&invoked, t = probe.make()](error_code, int) { invoked = true; });
    ctx.shutdown(); // the channel service destroys the pending receive
    BOOST_TEST(*probe.destroyed == 1);
    BOOST_TEST(ch.second.is_closed()); // shutdown closes every receiver on the context
    BOOST_TEST(ch.first.is_closed());
    BOOST_TEST(!ch.first.send(1)); // harmless
    BOOST_TEST(ch.second.cancel() == 0u);
  }
  BOOST_TEST(!invoked);
  BOOST_TEST(*probe.destroyed == 1);
}

BOOST_AUTO_TEST_CASE(destroys_a_pending_batch_without_invoking_it)
{
  destruction_probe probe;
  bool invoked = false;
  std::vector<int> out;
  {
    asio::io_context ctx;
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive_many(
      out, 8, [&invoked, t = probe.make()](error_code, std::size_t) { invoked = true; });
  } // ~io_context
  BOOST_TEST(!invoked);
  BOOST_TEST(*probe.destroyed == 1);
  BOOST_TEST(out.empty());
}

BOOST_AUTO_TEST_CASE(destroys_a_completed_receive_and_its_value_without_invoking_it)
{
  destruction_probe probe;
  watched_values values;
  bool invoked = false;
  {
    asio::io_context ctx;
    auto ch = make_channel<std::shared_ptr<int>>(ctx);
    ch.second.async_receive(
      [&invoked, t = probe.make()](error_code, std::shared_ptr<int>) { invoked = true; });
    BOOST_TEST(ch.first.send(values.make(1))); // queued in the scheduler, never run
    BOOST_TEST(ch.first.send(values.make(2))); // queued in the channel
  }
  BOOST_TEST(!invoked);
  BOOST_TEST(*probe.destroyed == 1);
  BOOST_TEST(values.alive() == 0);
}

BOOST_AUTO_TEST_CASE(destroys_a_coroutine_that_owns_its_receiver)
{
  destruction_probe probe;
  bool resumed = false;
  std::optional<sender<int>> tx;
  {
    asio::io_context ctx;
    auto ch = make_channel<int>(ctx);
    tx.emplace(std::move(ch.first));
    asio::co_spawn(
      ctx,
      [&resumed, t = probe.make(), rx = std::move(ch.second)]() mutable
      -> asio::awaitable<void> {
        co_await rx.async_receive(asio::use_awaitable);
        resumed = true;
      },
      asio::detached);
    ctx.run_for(settle_time);
    BOOST_TEST(!ctx.stopped()); // parked
  } // ~io_context: the service destroys the pending receive, which destroys the
  // coroutine frame, which destroys the receiver (unlinking it from the service).
  BOOST_TEST(!resumed);
  BOOST_TEST(*probe.destroyed == 1);
  BOOST_TEST(tx->is_closed());
  BOOST_TEST(!tx->send(1)); // after the context is gone
}

BOOST_AUTO_TEST_CASE(thread_pool_stop_destroys_a_parked_coroutine)
{
  destruction_probe probe;
  std::atomic<bool> resumed{false};
  std::optional<sender<int>> tx;
  {
    asio::thread_pool pool(1);
    auto ch = make_channel<int>(pool);
    tx.emplace(std::move(ch.first));
    asio::co_spawn(
      pool,
      [&resumed, t = probe.make(), rx = std::move(ch.second)]() mutable
      -> asio::awaitable<void> {
        co_await rx.async_receive(asio::use_awaitable);
        resumed = true;
      },
      asio::detached);
    std::this_thread::sleep_for(20ms);
    pool.stop();
    pool.join();
  }
  BOOST_TEST(!resumed.load());
  BOOST_TEST(*probe.destroyed == 1);
  BOOST_TEST(!tx->send(1));
}

BOOST_AUTO_TEST_CASE(send_after_stop_is_harmless)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  value_outcome<int> o;
  ch.second.async_receive(record(o));
  ctx.stop();
  BOOST_TEST(ch.first.send(1)); // the context is stopped, not shut down: still open
  BOOST_TEST(o.calls == 0);
  run_all(ctx); // restarted: the completion runs now
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 1);
}

BOOST_AUTO_TEST_SUITE_END()
