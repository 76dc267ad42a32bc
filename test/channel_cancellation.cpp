//
// test/channel_cancellation.cpp: cancelling a channel receive (contract.md Part 3, C5:
// per-operation cancellation terminal/partial/total and cancel(), "exactly as
// basic_atomic_waker points 5 and 10"; "a cancelled receive takes no value"), and its
// races with send() from another thread (C1: every accepted value is taken exactly once).
//

#define BOOST_TEST_MODULE asio_waker channel cancellation
#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <memory>
#include <vector>

using namespace test;
using asio_waker::make_channel;

namespace {

void check_slot_cancels_a_receive(asio::cancellation_type type)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  value_outcome<int> o;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  sig.emit(type);
  BOOST_TEST(o.calls == 0); // not inside emit()
  BOOST_TEST(tx.send(1));   // after the cancellation: not the cancelled receive's
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
  BOOST_TEST(rx.cancel() == 0u);

  // The value was left for the next receive.
  value_outcome<int> next;
  rx.async_receive(record(next));
  run_all(ctx);
  BOOST_TEST(!next.ec);
  BOOST_TEST(next.value == 1);
}

void check_slot_cancels_a_batch(asio::cancellation_type type)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(out, 8, asio::bind_cancellation_slot(sig.slot(), record(o, out)));
  sig.emit(type);
  BOOST_TEST(o.calls == 0);
  BOOST_TEST(tx.send(1));
  BOOST_TEST(tx.send(2));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
  BOOST_TEST(o.count == 0u);
  BOOST_TEST(out.empty());

  batch_outcome next;
  rx.async_receive_many(out, 8, record(next, out));
  run_all(ctx);
  BOOST_TEST(next.count == 2u);
  BOOST_TEST(out == (std::vector<int>{1, 2}), boost::test_tools::per_element());
}

// A thread that runs `step(round)` each time the test's thread starts a round, so that
// the step races whatever the test's thread does right after start(): both threads are
// spinning when the round starts (no thread start-up in between).
class racer
{
public:
  explicit racer(std::function<void(int)> step)
    : step_(std::move(step)), thread_([this] { loop(); })
  {}
  ~racer()
  {
    stop_.store(true, std::memory_order_release);
    thread_.join();
  }
  /// Starts the step of `round`, then spins for a time that varies with the round, so
  /// that the caller's next action lands before, during and after the step.
  void start(int round)
  {
    go_.store(round + 1, std::memory_order_release);
    for (int k = 0, n = (round * 37) % 800; k < n; ++k)
      std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  // Waits for the step of `round` to have returned; false at the watchdog.
  bool finished(int round)
  {
    return spin_until([&] { return done_.load(std::memory_order_acquire) == round + 1; });
  }

private:
  void loop()
  {
    int seen = 0;
    while (!stop_.load(std::memory_order_acquire))
    {
      const int go = go_.load(std::memory_order_acquire);
      if (go == seen)
        continue;
      seen = go;
      step_(go - 1);
      done_.store(go, std::memory_order_release);
    }
  }
  std::function<void(int)> step_;
  std::atomic<int> go_{0}, done_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace

BOOST_AUTO_TEST_SUITE(slots, *suite_timeout())

BOOST_AUTO_TEST_CASE(terminal)
{
  check_slot_cancels_a_receive(asio::cancellation_type::terminal);
  check_slot_cancels_a_batch(asio::cancellation_type::terminal);
}
BOOST_AUTO_TEST_CASE(partial)
{
  check_slot_cancels_a_receive(asio::cancellation_type::partial);
  check_slot_cancels_a_batch(asio::cancellation_type::partial);
}
BOOST_AUTO_TEST_CASE(total)
{
  check_slot_cancels_a_receive(asio::cancellation_type::total);
  check_slot_cancels_a_batch(asio::cancellation_type::total);
}

BOOST_AUTO_TEST_CASE(type_none_is_ignored)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  value_outcome<int> o;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  sig.emit(asio::cancellation_type::none);
  expect_still_pending(ctx, o);
  BOOST_TEST(tx.send(3));
  run_all(ctx);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 3);
}

BOOST_AUTO_TEST_CASE(cancellation_after_the_value_arrived_loses)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  value_outcome<int> o;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  BOOST_TEST(tx.send(4));
  sig.emit(asio::cancellation_type::terminal); // the send already completed it
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.value == 4);
}

BOOST_AUTO_TEST_CASE(cancellation_of_a_receive_that_found_a_value_loses)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  BOOST_TEST(tx.send(5));
  asio::cancellation_signal sig;
  std::vector<int> out;
  batch_outcome o;
  rx.async_receive_many(out, 4, asio::bind_cancellation_slot(sig.slot(), record(o, out)));
  sig.emit(asio::cancellation_type::terminal);
  run_all(ctx);
  BOOST_TEST(!o.ec);
  BOOST_TEST(o.count == 1u);
  BOOST_TEST(out == (std::vector<int>{5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cancellation_at_end_of_stream_still_reports_eof)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  rx.close();
  asio::cancellation_signal sig;
  value_outcome<int> o;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  sig.emit(asio::cancellation_type::terminal); // completed with eof at once
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(stale_slot_of_a_completed_receive_cancels_nothing)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal old_sig, new_sig;
  value_outcome<int> first, second;
  rx.async_receive(asio::bind_cancellation_slot(old_sig.slot(), record(first)));
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(first.value == 1);

  // The second receive most likely reuses the first one's memory: the stale handler
  // must still not touch it.
  rx.async_receive(asio::bind_cancellation_slot(new_sig.slot(), record(second)));
  old_sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(ctx, second);
  BOOST_TEST(tx.send(2));
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
  BOOST_TEST(second.value == 2);
}

BOOST_AUTO_TEST_CASE(stale_slot_of_a_replaced_receive_cancels_nothing)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal old_sig;
  value_outcome<int> first, second;
  rx.async_receive(asio::bind_cancellation_slot(old_sig.slot(), record(first)));
  rx.async_receive(record(second)); // replaces the first; no slot of its own
  old_sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(ctx, second);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  BOOST_TEST(tx.send(3));
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
  BOOST_TEST(second.value == 3);
}

BOOST_AUTO_TEST_CASE(same_slot_reused_by_the_replacing_receive_still_cancels_it)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  asio::cancellation_signal sig;
  value_outcome<int> first, second;
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(first)));
  rx.async_receive(asio::bind_cancellation_slot(sig.slot(), record(second)));
  expect_still_pending(ctx, second); // and the first completes (aborted) before the emit
  BOOST_TEST(first.calls == 1);
  sig.emit(asio::cancellation_type::terminal);
  BOOST_TEST(tx.send(1));
  run_all(ctx);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  BOOST_TEST(second.ec == asio::error::operation_aborted);
  BOOST_TEST(rx.try_receive().value_or(-1) == 1);
}

BOOST_AUTO_TEST_CASE(slot_emitted_after_the_receiver_is_destroyed_is_ignored)
{
  asio::io_context ctx;
  asio::cancellation_signal sig;
  value_outcome<int> o;
  {
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
  } // aborted: queued, its slot handler possibly still installed
  auto other = make_channel<int>(ctx); // may well reuse the destroyed channel's memory
  value_outcome<int> other_outcome;
  other.second.async_receive(record(other_outcome));
  sig.emit(asio::cancellation_type::terminal); // must touch neither (ASan checks)
  expect_still_pending(ctx, other_outcome);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);
  BOOST_TEST(other.first.send(2));
  run_all(ctx);
  BOOST_TEST(other_outcome.value == 2);
}

BOOST_AUTO_TEST_CASE(slot_emitted_after_the_context_is_destroyed_is_ignored)
{
  asio::cancellation_signal sig; // outlives the context, as a long-lived signal may
  value_outcome<int> o;
  {
    asio::io_context ctx;
    auto ch = make_channel<int>(ctx);
    ch.second.async_receive(asio::bind_cancellation_slot(sig.slot(), record(o)));
    BOOST_TEST(ch.first.send(1));
    run_all(ctx);
  }
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 1);
  sig.emit(asio::cancellation_type::terminal); // must touch nothing (ASan checks)
  asio::io_context other;
  auto ch = make_channel<int>(other);
  value_outcome<int> o2;
  ch.second.async_receive(record(o2));
  sig.emit(asio::cancellation_type::terminal);
  expect_still_pending(other, o2);
  BOOST_TEST(ch.second.cancel() == 1u);
  run_all(other);
  BOOST_TEST(o2.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(coroutines, *suite_timeout())

BOOST_AUTO_TEST_CASE(timer_wins_an_awaitable_or_and_no_value_is_lost)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  int timeouts = 0;
  std::vector<int> sent, got;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (int round = 0; round < 4; ++round)
      {
        asio::steady_timer t(ctx, 5ms);
        auto r =
          co_await (rx.async_receive(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
        if (r.index() == 1)
        {
          ++timeouts;
          BOOST_TEST(tx.send(round)); // sent after the receive was cancelled
          sent.push_back(round);
        }
        else
          got.push_back(std::get<0>(r)); // the value a timeout left behind
      }
      // Everything the timeouts left behind is still there, once.
      while (auto v = rx.try_receive())
        got.push_back(*v);
    },
    asio::detached);
  run_all(ctx);
  BOOST_TEST(timeouts >= 2); // rounds 0 and 2 at least: nothing was queued then
  BOOST_TEST(got == sent, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(value_wins_an_awaitable_or)
{
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& rx = ch.second;
  int index = -1, value = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      asio::steady_timer t(ctx, std::chrono::hours(1));
      auto r =
        co_await (rx.async_receive(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
      index = static_cast<int>(r.index());
      if (index == 0)
        value = std::get<0>(r);
    },
    asio::detached);
  std::thread producer([tx = ch.first] {
    std::this_thread::sleep_for(10ms);
    tx.send(12);
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(index == 0);
  BOOST_TEST(value == 12);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(races, *suite_timeout())

// cancel() on the consumer's thread against send() from another: exactly one outcome,
// and the value is taken exactly once, by the receive or by whoever comes next.
BOOST_AUTO_TEST_CASE(cancel_racing_send_takes_the_value_exactly_once)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  constexpr int rounds = 2000;
  int cancel_wins = 0, send_wins = 0;
  racer producer([&](int i) { tx.send(i); });
  for (int i = 0; i < rounds; ++i)
  {
    value_outcome<int> o;
    rx.async_receive(record(o));
    producer.start(i);
    const std::size_t n = rx.cancel();
    BOOST_REQUIRE(producer.finished(i));
    run_all(ctx);
    BOOST_REQUIRE(o.calls == 1);
    auto left = rx.try_receive();
    if (n == 1)
    {
      ++cancel_wins;
      BOOST_REQUIRE(o.ec == asio::error::operation_aborted);
      BOOST_REQUIRE(left.has_value());
      BOOST_REQUIRE(*left == i);
    }
    else
    {
      ++send_wins;
      BOOST_REQUIRE(!o.ec);
      BOOST_REQUIRE(o.value == i);
      BOOST_REQUIRE(!left.has_value());
    }
  }
  BOOST_TEST_MESSAGE("cancel won " << cancel_wins << ", send won " << send_wins);
  BOOST_TEST(cancel_wins + send_wins == rounds);
}

// The same with a cancellation slot emitted on the consumer's thread, for a batch.
BOOST_AUTO_TEST_CASE(slot_racing_send_takes_each_value_exactly_once)
{
  asio::io_context ctx;
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  constexpr int rounds = 2000;
  int aborted = 0;
  racer producer([&](int i) {
    tx.send(2 * i);
    tx.send(2 * i + 1);
  });
  for (int i = 0; i < rounds; ++i)
  {
    asio::cancellation_signal sig;
    std::vector<int> out;
    batch_outcome o;
    rx.async_receive_many(out, 4, asio::bind_cancellation_slot(sig.slot(), record(o, out)));
    producer.start(i);
    sig.emit(asio::cancellation_type::terminal);
    BOOST_REQUIRE(producer.finished(i));
    run_all(ctx);
    BOOST_REQUIRE(o.calls == 1);
    if (o.ec)
    {
      ++aborted;
      BOOST_REQUIRE(o.ec == asio::error::operation_aborted);
      BOOST_REQUIRE(out.empty());
    }
    else
      BOOST_REQUIRE(o.count >= 1u);
    while (auto v = rx.try_receive())
      out.push_back(*v);
    BOOST_REQUIRE(out.size() == 2u);
    BOOST_REQUIRE(out[0] == 2 * i);
    BOOST_REQUIRE(out[1] == 2 * i + 1);
  }
  BOOST_TEST_MESSAGE("the slot won " << aborted << " of " << rounds);
}

BOOST_AUTO_TEST_SUITE_END()
