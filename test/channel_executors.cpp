//
// test/channel_executors.cpp: receivers on executors other than any_io_executor:
// thread_pool, system_executor, and execution contexts that no Asio scheduler runs, with
// Networking TS and standard executors (contract.md Part 3, C5: Never inline, Work and
// the associated executor "exactly as basic_atomic_waker", and C8: shutdown).
//

#define BOOST_TEST_MODULE asio_waker channel executors
#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <vector>

using namespace test;
using asio_waker::basic_receiver;
using asio_waker::make_channel;

BOOST_AUTO_TEST_SUITE(executors, *suite_timeout())

BOOST_AUTO_TEST_CASE(handler_runs_in_the_pool)
{
  asio::thread_pool pool(2);
  auto ch = make_channel<int>(pool.get_executor());
  static_assert(std::is_same_v<decltype(ch.second),
    basic_receiver<int, asio::thread_pool::executor_type>>);
  auto& rx = ch.second;
  std::atomic<int> calls{0}, value{0};
  std::atomic<bool> in_pool{false};
  rx.async_receive([&](error_code ec, int v) {
    in_pool = pool.get_executor().running_in_this_thread();
    value = v;
    if (!ec)
      ++calls;
  });
  std::thread producer([tx = ch.first] { tx.send(9); });
  producer.join();
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
  BOOST_TEST(in_pool.load());
  BOOST_TEST(value.load() == 9);
  pool.join();
}

BOOST_AUTO_TEST_CASE(handler_runs_on_a_system_context_thread)
{
  auto ch = make_channel<int>(asio::system_executor());
  auto& rx = ch.second;
  std::atomic<int> calls{0};
  std::atomic<std::thread::id> ran_on{};
  std::vector<int> out;
  rx.async_receive_many(out, 4, [&](error_code ec, std::size_t) {
    ran_on = std::this_thread::get_id();
    if (!ec)
      ++calls;
  });
  BOOST_TEST(ch.first.send(1));
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
  BOOST_TEST((ran_on.load() != std::this_thread::get_id())); // not inside send()
  BOOST_TEST(out.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(executors_without_a_scheduler, *suite_timeout())

// A receive that parks and is completed by a send, one that finds a value queued, one
// that is cancelled and one at end of stream, each handed to the executor (queued on
// `mc`, run only by mc.run()).
template <typename Executor>
void receive_through(manual_context& mc, basic_receiver<int, Executor>& rx,
  asio_waker::sender<int>& tx)
{
  value_outcome<int> a, b, c, d;
  rx.async_receive(record(a));
  BOOST_TEST(mc.queued() == 0u); // parked, not queued
  BOOST_TEST(tx.send(1));
  BOOST_TEST(a.calls == 0);
  BOOST_TEST(mc.run() >= 1u);
  BOOST_TEST(a.calls == 1);
  BOOST_TEST(!a.ec);
  BOOST_TEST(a.value == 1);

  BOOST_TEST(tx.send(2));
  rx.async_receive(record(b));
  BOOST_TEST(b.calls == 0);
  mc.run();
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(b.value == 2);

  rx.async_receive(record(c));
  BOOST_TEST(rx.cancel() == 1u);
  BOOST_TEST(c.calls == 0);
  mc.run();
  BOOST_TEST(c.calls == 1);
  BOOST_TEST(c.ec == asio::error::operation_aborted);

  rx.close();
  rx.async_receive(record(d));
  BOOST_TEST(d.calls == 0);
  mc.run();
  BOOST_TEST(d.calls == 1);
  BOOST_TEST(d.ec == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(ts_executor_hands_off_through_post_and_counts_work)
{
  manual_context mc;
  auto ch = make_channel<int>(mc.get_executor());
  auto& rx = ch.second;
  value_outcome<int> parked;
  rx.async_receive(record(parked));
  BOOST_TEST(mc.work > 0); // outstanding work on the custom executor
  BOOST_TEST(rx.cancel() == 1u);
  mc.run();
  BOOST_TEST(parked.calls == 1);
  BOOST_TEST(mc.work == 0);

  receive_through(mc, rx, ch.first);
  BOOST_TEST(mc.work == 0);
}

BOOST_AUTO_TEST_CASE(std_executor_hands_off_through_execute)
{
  manual_context mc;
  auto ch = make_channel<int>(mc.get_std_executor());
  receive_through(mc, ch.second, ch.first);
}

BOOST_AUTO_TEST_CASE(a_foreign_send_hands_off_through_the_executor)
{
  manual_context mc;
  auto ch = make_channel<int>(mc.get_executor());
  auto& rx = ch.second;
  value_outcome<int> o;
  rx.async_receive(record(o));
  std::thread producer([tx = ch.first] { tx.send(5); });
  producer.join();
  BOOST_TEST(o.calls == 0);
  mc.run();
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.value == 5);
}

BOOST_AUTO_TEST_CASE(shutdown_destroys_queued_and_pending_receives)
{
  destruction_probe probe;
  int invoked = 0;
  {
    manual_context mc;
    auto queued = make_channel<int>(mc.get_executor());
    auto pending = make_channel<int>(mc.get_executor());
    queued.second.async_receive([&invoked, t = probe.make()](error_code, int) { ++invoked; });
    BOOST_TEST(queued.first.send(1)); // handed to the executor, never run
    pending.second.async_receive([&invoked, t = probe.make()](error_code, int) { ++invoked; });
    mc.shutdown_now(); // the service destroys the pending receive
    BOOST_TEST(*probe.destroyed >= 1);
    BOOST_TEST(invoked == 0);
    BOOST_TEST(pending.second.is_closed());
    BOOST_TEST(!pending.first.send(2));
  } // handles, then the context (and the queued receive with it)
  BOOST_TEST(invoked == 0);
  BOOST_TEST(*probe.destroyed >= 2);
}

BOOST_AUTO_TEST_SUITE_END()
