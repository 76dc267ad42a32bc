//
// test/channel_threads.cpp: the channel with senders on many threads (contract.md Part 3):
// exactly once (C1) and order (C2) under contention, senders never blocked and safe
// against everything the receiver does, including its destruction and close() (C4),
// memory visibility (C6), and handles racing the end of the stream and of the context
// (C3, C8). Meant to be run under ThreadSanitizer (the payloads are plain data, so a
// missing happens-before edge is a reported race) and AddressSanitizer (a value destroyed
// twice, or used after the channel is gone, is a reported error).
//

#define BOOST_TEST_MODULE asio_waker channel threads
#include "test_support.hpp"

#include <asio_waker/channel.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

using namespace test;
using asio_waker::make_channel;
using asio_waker::receiver;
using asio_waker::sender;

namespace {

// A value carrying its producer and its sequence number in that producer's stream.
constexpr std::uint64_t tag(int producer, int seq)
{
  return (std::uint64_t(producer) << 32) | std::uint32_t(seq);
}
constexpr int producer_of(std::uint64_t v)
{
  return int(v >> 32);
}
constexpr int seq_of(std::uint64_t v)
{
  return int(v & 0xffffffffu);
}

// Checks a stream of tagged values as it is received: each producer's values arrive in
// its order, each once (C1, C2).
struct stream_check
{
  explicit stream_check(int producers) : next(std::size_t(producers), 0) {}
  std::vector<int> next;
  long received = 0;
  long out_of_order = 0;
  void operator()(std::uint64_t v)
  {
    ++received;
    const auto p = std::size_t(producer_of(v));
    if (p >= next.size() || seq_of(v) != next[p])
      ++out_of_order;
    else
      ++next[p];
  }
};

enum class receive_kind
{
  one,      // async_receive
  batch,    // async_receive_many, limit 64
  try_first // try_receive until empty, then async_receive_many, limit 16
};

// `producers` threads each send `per_producer` tagged values through their own copy of
// the sender; the consumer receives until eof, which comes when the last copy is gone.
void check_stream(int producers, int per_producer, receive_kind kind)
{
  asio::io_context ctx;
  auto ch = make_channel<std::uint64_t>(ctx);
  auto& rx = ch.second;
  stream_check check(producers);
  error_code end;
  long completions = 0;
  std::atomic<bool> consumer_started{false};

  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      consumer_started = true; // the producers start now, racing the consumer
      std::vector<std::uint64_t> batch;
      for (;;)
      {
        error_code ec;
        if (kind == receive_kind::one)
        {
          auto [e, v] = co_await rx.async_receive(as_tuple(asio::use_awaitable));
          if (!(ec = e))
            check(v);
        }
        else
        {
          if (kind == receive_kind::try_first)
            while (auto v = rx.try_receive())
              check(*v);
          batch.clear();
          auto [e, n] = co_await rx.async_receive_many(
            batch, kind == receive_kind::batch ? 64 : 16, as_tuple(asio::use_awaitable));
          ec = e;
          BOOST_TEST(n == batch.size());
          for (auto v : batch)
            check(v);
        }
        ++completions;
        if (ec)
        {
          end = ec;
          co_return;
        }
      }
    },
    asio::detached);

  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&refused, &consumer_started, tx = ch.first, p, per_producer] {
      if (!spin_until([&] { return consumer_started.load(); }))
        return;
      for (int i = 0; i < per_producer; ++i)
        if (!tx.send(tag(p, i)))
          ++refused;
    });
  {
    auto gone = std::move(ch.first); // the producers' copies keep the channel open
  }
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_TEST(refused.load() == 0);
  BOOST_TEST(end == asio::error::eof);
  BOOST_TEST(check.out_of_order == 0);
  BOOST_TEST(check.received == long(producers) * per_producer);
  for (int p = 0; p < producers; ++p)
    BOOST_TEST(check.next[std::size_t(p)] == per_producer);
  BOOST_TEST_MESSAGE(producers << " producer(s): " << check.received << " values in "
                               << completions << " completions");
}

} // namespace

BOOST_AUTO_TEST_SUITE(exactly_once_in_order, *suite_timeout())

BOOST_AUTO_TEST_CASE(one_producer)
{
  check_stream(1, 40000, receive_kind::one);
  check_stream(1, 40000, receive_kind::batch);
  check_stream(1, 40000, receive_kind::try_first);
}

BOOST_AUTO_TEST_CASE(two_producers)
{
  check_stream(2, 20000, receive_kind::one);
  check_stream(2, 20000, receive_kind::batch);
  check_stream(2, 20000, receive_kind::try_first);
}

BOOST_AUTO_TEST_CASE(four_producers)
{
  check_stream(4, 10000, receive_kind::one);
  check_stream(4, 10000, receive_kind::batch);
  check_stream(4, 10000, receive_kind::try_first);
}

BOOST_AUTO_TEST_CASE(eight_producers)
{
  check_stream(8, 5000, receive_kind::one);
  check_stream(8, 5000, receive_kind::batch);
  check_stream(8, 5000, receive_kind::try_first);
}

// Every send through a fresh copy of the sender, dropped right after: the handle count
// races the sends, and the stream still ends only after the last value.
BOOST_AUTO_TEST_CASE(short_lived_sender_copies)
{
  constexpr int producers = 4, per_producer = 3000;
  asio::io_context ctx;
  auto ch = make_channel<std::uint64_t>(ctx);
  auto& rx = ch.second;
  stream_check check(producers);
  error_code end;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      std::vector<std::uint64_t> batch;
      for (;;)
      {
        batch.clear();
        auto [ec, n] =
          co_await rx.async_receive_many(batch, 32, as_tuple(asio::use_awaitable));
        for (auto v : batch)
          check(v);
        if (ec)
        {
          end = ec;
          co_return;
        }
      }
    },
    asio::detached);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([tx = ch.first, p] {
      for (int i = 0; i < per_producer; ++i)
      {
        sender<std::uint64_t> copy = tx;
        copy.send(tag(p, i));
        sender<std::uint64_t> moved = std::move(copy);
      }
    });
  {
    auto gone = std::move(ch.first);
  }
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_TEST(end == asio::error::eof);
  BOOST_TEST(check.out_of_order == 0);
  BOOST_TEST(check.received == long(producers) * per_producer);
}

// One total order consistent with real time (C2: "a linearizable FIFO"): a send that
// returned before another send started is received before it, whichever threads made
// them. Each send is stamped from one global counter just before it starts and just
// after it returns; the check runs on the order the values were received in.
BOOST_AUTO_TEST_CASE(sends_that_do_not_overlap_are_received_in_real_time_order)
{
  constexpr int producers = 4, per_producer = 5000;
  asio::io_context ctx;
  auto ch = make_channel<std::uint64_t>(ctx);
  auto& rx = ch.second;
  std::atomic<long> clock{0};
  std::vector<std::vector<long>> started(producers, std::vector<long>(per_producer));
  std::vector<std::vector<long>> returned(producers, std::vector<long>(per_producer));
  std::vector<std::uint64_t> order; // as received
  order.reserve(std::size_t(producers) * per_producer);
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      for (;;)
      {
        auto [ec, n] =
          co_await rx.async_receive_many(order, 16, as_tuple(asio::use_awaitable));
        if (ec)
          co_return;
      }
    },
    asio::detached);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, tx = ch.first, p] {
      for (int i = 0; i < per_producer; ++i)
      {
        started[std::size_t(p)][std::size_t(i)] = clock.fetch_add(1);
        tx.send(tag(p, i));
        returned[std::size_t(p)][std::size_t(i)] = clock.fetch_add(1);
      }
    });
  {
    auto gone = std::move(ch.first);
  }
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_REQUIRE(order.size() == std::size_t(producers) * per_producer);

  // For each value B: every value A that returned before B started precedes B.
  // By return stamp: the largest position received so far among the sends that had
  // returned by then (a prefix maximum), found with a binary search on B's start stamp.
  struct stamped
  {
    long returned;
    long position;
  };
  std::vector<stamped> by_return;
  by_return.reserve(order.size());
  for (std::size_t pos = 0; pos < order.size(); ++pos)
  {
    const auto p = std::size_t(producer_of(order[pos]));
    const auto i = std::size_t(seq_of(order[pos]));
    by_return.push_back({returned[p][i], long(pos)});
  }
  std::sort(by_return.begin(), by_return.end(),
    [](const stamped& a, const stamped& b) { return a.returned < b.returned; });
  std::vector<long> prefix_max(by_return.size());
  long m = -1;
  for (std::size_t k = 0; k < by_return.size(); ++k)
    prefix_max[k] = m = std::max(m, by_return[k].position);
  long violations = 0;
  for (std::size_t pos = 0; pos < order.size(); ++pos)
  {
    const auto p = std::size_t(producer_of(order[pos]));
    const auto i = std::size_t(seq_of(order[pos]));
    const long start = started[p][i];
    const auto before = std::lower_bound(by_return.begin(), by_return.end(), start,
      [](const stamped& a, long s) { return a.returned < s; });
    const auto k = std::size_t(before - by_return.begin());
    if (k > 0 && prefix_max[k - 1] > long(pos))
      ++violations;
  }
  BOOST_TEST(violations == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(memory_visibility, *suite_timeout())

// Plain data written before send() is seen by the receive that gets the value (C6):
// through the value itself (a heap object filled in after its allocation) and through
// a shared plain array the value indexes.
BOOST_AUTO_TEST_CASE(writes_before_send_are_seen_by_the_receiver)
{
  constexpr int producers = 4, per_producer = 2000;
  struct message
  {
    int producer = -1;
    int seq = -1;
    long checksum = 0;
  };
  asio::io_context ctx;
  auto ch = make_channel<std::unique_ptr<message>>(ctx);
  auto& rx = ch.second;
  std::vector<long> board(std::size_t(producers) * per_producer, 0); // plain
  long mismatches = 0, received = 0;
  asio::co_spawn(
    ctx,
    [&]() -> asio::awaitable<void> {
      std::vector<std::unique_ptr<message>> batch;
      for (;;)
      {
        batch.clear();
        auto [ec, n] =
          co_await rx.async_receive_many(batch, 16, as_tuple(asio::use_awaitable));
        if (ec)
          co_return;
        for (auto& m : batch)
        {
          ++received;
          const std::size_t slot =
            std::size_t(m->producer) * per_producer + std::size_t(m->seq);
          if (m->checksum != long(m->producer) * 100000 + m->seq
              || board[slot] != m->checksum)
            ++mismatches;
        }
        if (auto m = rx.try_receive()) // and after try_receive
        {
          ++received;
          const std::size_t slot =
            std::size_t((*m)->producer) * per_producer + std::size_t((*m)->seq);
          if (board[slot] != (*m)->checksum)
            ++mismatches;
        }
      }
    },
    asio::detached);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&board, tx = ch.first, p] {
      for (int i = 0; i < per_producer; ++i)
      {
        auto m = std::make_unique<message>();
        m->producer = p;
        m->seq = i;
        m->checksum = long(p) * 100000 + i;
        board[std::size_t(p) * per_producer + std::size_t(i)] = m->checksum;
        tx.send(std::move(m));
      }
    });
  {
    auto gone = std::move(ch.first);
  }
  run_all(ctx);
  for (auto& t : threads)
    t.join();
  BOOST_TEST(mismatches == 0);
  BOOST_TEST(received == long(producers) * per_producer);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// A value that counts how many were made and destroyed, to tell "taken once, destroyed
// once" from "lost" (made > destroyed: leaked) or "duplicated" (ASan: double free).
struct item_counters
{
  std::atomic<long> made{0};
  std::atomic<long> destroyed{0};
};

struct item
{
  item(item_counters& c, int producer, int seq) : counters(&c), value(tag(producer, seq))
  {
    counters->made.fetch_add(1, std::memory_order_relaxed);
  }
  ~item() { counters->destroyed.fetch_add(1, std::memory_order_relaxed); }
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  item_counters* counters;
  std::uint64_t value;
};

} // namespace

BOOST_AUTO_TEST_SUITE(senders_against_the_receivers_end, *suite_timeout())

// Senders flat out while the receiver closes the channel: every send that returned true
// is received exactly once before eof, in each producer's order; every send after the
// close returns false.
BOOST_AUTO_TEST_CASE(close_racing_sends_keeps_every_accepted_value)
{
  constexpr int producers = 4, rounds = 10;
  for (int round = 0; round < rounds; ++round)
  {
    asio::io_context ctx;
    auto ch = make_channel<std::uint64_t>(ctx);
    auto& rx = ch.second;
    stream_check check(producers);
    error_code end;
    asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        std::vector<std::uint64_t> batch;
        for (;;)
        {
          batch.clear();
          auto [ec, n] =
            co_await rx.async_receive_many(batch, 8, as_tuple(asio::use_awaitable));
          for (auto v : batch)
            check(v);
          if (ec)
          {
            end = ec;
            co_return;
          }
          if (check.received >= 500 + round * 100 && !rx.is_closed())
            rx.close(); // while the producers are still sending
        }
      },
      asio::detached);
    std::vector<std::thread> threads;
    std::vector<int> accepted(producers, 0);
    std::atomic<bool> late_success{false};
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, tx = ch.first, p] {
        int i = 0;
        while (tx.send(tag(p, i)))
          ++i;
        accepted[std::size_t(p)] = i;
        if (!tx.is_closed() || tx.send(tag(p, i)))
          late_success = true; // closed stays closed
      });
    run_all(ctx);
    rx.close(); // (already, unless the consumer failed: then the producers stop here)
    for (auto& t : threads)
      t.join();
    BOOST_TEST_REQUIRE(end == asio::error::eof);
    BOOST_TEST_REQUIRE(check.out_of_order == 0);
    BOOST_TEST_REQUIRE(!late_success.load());
    long total = 0;
    for (int p = 0; p < producers; ++p)
    {
      BOOST_TEST_REQUIRE(check.next[std::size_t(p)] == accepted[std::size_t(p)]);
      total += accepted[std::size_t(p)];
    }
    BOOST_TEST_REQUIRE(check.received == total);
  }
}

// Senders flat out while the receiver is destroyed (C4, C8): sends return false from
// then on, every value is destroyed exactly once (received, refused, or left in the
// channel and destroyed with its last handle), and what was received is in order.
BOOST_AUTO_TEST_CASE(sends_racing_the_receivers_destruction)
{
  constexpr int producers = 4, rounds = 10;
  for (int round = 0; round < rounds; ++round)
  {
    item_counters counters;
    stream_check check(producers);
    bool reset_by_consumer = false;
    {
      asio::io_context ctx;
      auto ch = make_channel<std::unique_ptr<item>>(ctx);
      std::optional<receiver<std::unique_ptr<item>>> rx(std::move(ch.second));
      asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          std::vector<std::unique_ptr<item>> batch;
          while (check.received < 300 + round * 50)
          {
            batch.clear();
            auto [ec, n] =
              co_await rx->async_receive_many(batch, 8, as_tuple(asio::use_awaitable));
            if (ec)
              co_return;
            for (auto& v : batch)
              check(v->value);
          }
          rx.reset(); // on the context's thread, while the producers send
          reset_by_consumer = true;
        },
        asio::detached);
      std::vector<std::thread> threads;
      for (int p = 0; p < producers; ++p)
        threads.emplace_back([&counters, tx = ch.first, p] {
          for (int i = 0; tx.send(std::make_unique<item>(counters, p, i)); ++i)
          {}
        });
      {
        auto gone = std::move(ch.first);
      }
      run_all(ctx);
      rx.reset(); // (already, unless the consumer failed: then the producers stop here)
      for (auto& t : threads)
        t.join();
      BOOST_TEST_REQUIRE(reset_by_consumer);
    } // every handle is gone: every value must be too
    BOOST_TEST_REQUIRE(check.out_of_order == 0);
    BOOST_TEST_REQUIRE(check.received >= 300 + round * 50);
    BOOST_TEST_REQUIRE(counters.made.load() == counters.destroyed.load());
  }
}

// The receiver is destroyed while its receive is pending and producers keep sending to
// it (C4: a send may be handing that receive to the scheduler at that very moment): the
// receive completes exactly once (a value, or aborted), every value is destroyed exactly
// once, and sends fail from then on.
BOOST_AUTO_TEST_CASE(sends_racing_the_destruction_of_a_parked_receiver)
{
  constexpr int producers = 2, rounds = 200;
  item_counters counters;
  for (int round = 0; round < rounds; ++round)
  {
    asio::io_context ctx;
    auto ch = make_channel<std::unique_ptr<item>>(ctx);
    std::optional<receiver<std::unique_ptr<item>>> rx(std::move(ch.second));
    int completions = 0;
    long values = 0;
    std::function<void(error_code, std::unique_ptr<item>)> on_receive =
      [&](error_code ec, std::unique_ptr<item> v) {
        ++completions;
        if (!ec && v && rx)
        {
          ++values;
          rx->async_receive(on_receive); // parks again, most of the time
        }
      };
    rx->async_receive(on_receive);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&counters, &go, tx = ch.first, p] {
        if (!spin_until([&] { return go.load(); }))
          return;
        for (int i = 0; tx.send(std::make_unique<item>(counters, p, i)); ++i)
          if (i % 4 == 0)
            std::this_thread::yield(); // lets the receiver park between values
      });
    {
      auto gone = std::move(ch.first);
    }
    asio::steady_timer timer(ctx, std::chrono::microseconds(50 + 10 * (round % 20)));
    timer.async_wait([&](error_code) { rx.reset(); }); // while a receive is pending
    go = true;
    run_all(ctx);
    rx.reset();
    for (auto& t : threads)
      t.join();
    BOOST_TEST_REQUIRE(completions == values + 1); // every receive completed once
  }
  BOOST_TEST(counters.made.load() == counters.destroyed.load());
}

// A worker's sender outlives the io_context (C8): it sends until its sends fail, while
// the context, its service and the receiver are destroyed on the test's thread.
BOOST_AUTO_TEST_CASE(sends_racing_the_contexts_destruction)
{
  constexpr int rounds = 20;
  for (int round = 0; round < rounds; ++round)
  {
    item_counters counters;
    std::atomic<long> accepted{0};
    std::atomic<bool> started{false}, never_refused{false};
    std::thread worker;
    {
      asio::io_context ctx;
      auto ch = make_channel<std::unique_ptr<item>>(ctx);
      asio::co_spawn(
        ctx,
        [&counters, rx = std::move(ch.second)]() mutable -> asio::awaitable<void> {
          for (;;) // never ends by itself: the context's destruction ends it
          {
            auto v = co_await rx.async_receive(asio::use_awaitable);
            if (!v || v->counters != &counters)
              co_return; // (never: the checks below would then fail)
          }
        },
        asio::detached);
      worker = std::thread([&, tx = std::move(ch.first)] {
        started = true;
        const auto deadline = std::chrono::steady_clock::now() + watchdog;
        for (int i = 0; tx.send(std::make_unique<item>(counters, 0, i)); ++i)
        {
          ++accepted;
          if (i % 1024 == 0 && std::chrono::steady_clock::now() > deadline)
            return never_refused.store(true); // the context's end never closed it
        }
      });
      ctx.run_for(std::chrono::microseconds(200 * (round % 5)));
      BOOST_REQUIRE(spin_until([&] { return started.load(); }));
    } // ~io_context while the worker sends
    worker.join();
    BOOST_TEST_REQUIRE(!never_refused.load());
    BOOST_TEST_REQUIRE(counters.made.load() == counters.destroyed.load());
  }
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// A value whose constructor, given a gate, says it has started (its send has claimed its
// place in the stream by then) and waits for the gate to open; then it completes, or
// throws if the gate says so.
struct gate
{
  std::atomic<bool> entered{false};
  std::atomic<bool> open{false};
  bool throws = false;
};

struct stalling
{
  int v = 0;
  stalling() = default;
  explicit stalling(int x) noexcept : v(x) {}
  stalling(gate& g, int x) : v(x)
  {
    g.entered = true;
    if (!spin_until([&] { return g.open.load(); }))
      return;
    if (g.throws)
      throw std::runtime_error("stalling: the constructor throws");
  }
  stalling(stalling&&) noexcept = default;
  stalling& operator=(stalling&&) noexcept = default;
};

// A send stalls between claiming its place and publishing its value while a later send
// completes: the receive takes nothing out of order meanwhile (it waits), and once the
// stalled send publishes (or its constructor throws, C9), the receive gets the right
// value, nothing lost, nothing twice.
void check_stalled_send(bool constructor_throws)
{
  asio::io_context ctx;
  auto ch = make_channel<stalling>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  value_outcome<stalling> o;
  rx.async_receive(record(o));
  gate g;
  g.throws = constructor_throws;
  std::atomic<bool> threw{false}, sent{false};
  std::thread stalled([&] {
    try
    {
      sent = tx.emplace(g, 1);
    }
    catch (const std::runtime_error&)
    {
      threw = true;
    }
  });
  BOOST_REQUIRE(spin_until([&] { return g.entered.load(); }));
  BOOST_TEST(tx.send(stalling(2))); // claimed after the stalled one, published first
  expect_still_pending(ctx, o);     // the head is busy: 2 must wait for 1
  g.open = true;
  stalled.join();
  BOOST_TEST(threw.load() == constructor_throws);
  BOOST_TEST(sent.load() == !constructor_throws);
  run_all(ctx); // the stalled send's publication (or skip) completes the receive
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
  if (constructor_throws)
  {
    BOOST_TEST(o.value.v == 2);
    BOOST_TEST(!rx.try_receive().has_value());
  }
  else
  {
    BOOST_TEST(o.value.v == 1);
    auto next = rx.try_receive();
    BOOST_REQUIRE(next.has_value());
    BOOST_TEST(next->v == 2);
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(stalled_senders, *suite_timeout())

BOOST_AUTO_TEST_CASE(a_stalled_send_holds_back_later_values)
{
  check_stalled_send(false);
}

BOOST_AUTO_TEST_CASE(a_stalled_send_whose_constructor_throws_releases_them)
{
  check_stalled_send(true);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(consumer_on_a_pool, *suite_timeout())

// Each of `producers` threads sends tag(p, 0..per_producer-1) through a copy of `tx`,
// yielding every `yield_every` sends (the consumer catches up and parks); `tx` is
// dropped at once, so the stream ends when the last thread is done. Returns after
// joining them.
void send_tagged_then_close(
  sender<std::uint64_t> tx, int producers, int per_producer, int yield_every)
{
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([tx, p, per_producer, yield_every] {
      for (int i = 0; i < per_producer; ++i)
      {
        tx.send(tag(p, i));
        if (i % yield_every == 0)
          std::this_thread::yield();
      }
    });
  {
    auto gone = std::move(tx);
  }
  for (auto& t : threads)
    t.join();
}

// The receiver lives on a strand of a thread_pool; producers are plain threads; the
// consumer also cancels and replaces its own receives. Every value is received exactly
// once (aborted receives take none).
BOOST_AUTO_TEST_CASE(strand_consumer_with_cancel_and_replace)
{
  constexpr int producers = 3, per_producer = 3000;
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool);
  auto ch = make_channel<std::uint64_t>(strand);
  auto& rx = ch.second;
  std::vector<std::vector<char>> seen(producers, std::vector<char>(per_producer, 0));
  std::atomic<long> duplicates{0}, received{0}, aborts{0};
  std::atomic<bool> done{false};
  auto take = [&](std::uint64_t v) {
    char& s = seen[std::size_t(producer_of(v))][std::size_t(seq_of(v))];
    if (s)
      ++duplicates;
    s = 1;
    ++received;
  };

  asio::co_spawn(
    strand,
    [&]() -> asio::awaitable<void> {
      for (int i = 0;; ++i)
      {
        if (i % 3 == 1)
          asio::post(strand, [&] { rx.cancel(); });
        if (i % 5 == 2)
          rx.async_receive([&](error_code ec, std::uint64_t v) { // replaced below
            if (!ec)
              take(v);
            else
              ++aborts;
          });
        auto [ec, v] = co_await rx.async_receive(as_tuple(asio::use_awaitable));
        if (ec == asio::error::eof)
          break;
        if (ec)
          ++aborts;
        else
          take(v);
      }
      done = true;
    },
    asio::detached);

  send_tagged_then_close(std::move(ch.first), producers, per_producer, 32);
  const bool finished = spin_until([&] { return done.load(); });
  BOOST_REQUIRE(finished);
  pool.join();
  BOOST_TEST(duplicates.load() == 0);
  BOOST_TEST(received.load() == long(producers) * per_producer);
  BOOST_TEST_MESSAGE("received " << received << ", aborts " << aborts);
}

// The receiver's executor is a strand of a two-thread pool, and the consumer calls
// try_receive from that strand while its coroutine's receives are pending: a receive
// handed over by a send must take its value inside the strand, not on whichever pool
// thread dequeued the completion (under TSan: a reported race; otherwise duplicates).
BOOST_AUTO_TEST_CASE(strand_consumer_polling_between_receives)
{
  constexpr int producers = 2, per_producer = 4000;
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool);
  auto ch = make_channel<std::uint64_t>(strand);
  auto& rx = ch.second;
  std::vector<std::vector<char>> seen(producers, std::vector<char>(per_producer, 0));
  long duplicates = 0, received = 0; // only touched in the strand
  std::atomic<bool> done{false};
  auto take = [&](std::uint64_t v) {
    char& s = seen[std::size_t(producer_of(v))][std::size_t(seq_of(v))];
    duplicates += s;
    s = 1;
    ++received;
  };

  std::function<void()> poll = [&] { // holds the strand a while, polling
    for (int i = 0; i < 64; ++i, std::this_thread::yield())
      while (auto v = rx.try_receive())
        take(*v);
    if (!done)
      asio::post(strand, poll);
  };
  asio::post(strand, poll);
  asio::co_spawn(
    strand,
    [&]() -> asio::awaitable<void> {
      for (;;)
      {
        auto [ec, v] = co_await rx.async_receive(as_tuple(asio::use_awaitable));
        if (ec)
          break;
        take(v);
      }
      done = true;
    },
    asio::detached);

  send_tagged_then_close(std::move(ch.first), producers, per_producer, 16);
  BOOST_REQUIRE(spin_until([&] { return done.load(); }));
  pool.join();
  BOOST_TEST(duplicates == 0);
  BOOST_TEST(received == long(producers) * per_producer);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(handlers_elsewhere, *suite_timeout())

// A receive's handler may have any associated executor (C5: "associated executor, exactly
// as basic_atomic_waker"), here a thread_pool's, while the consumer goes on with the
// receiver on its own thread: the channel's consumer side must not be touched from the
// handler's thread at the same time (under TSan: a reported race), and each receive
// gets its own value (C1, C2).
BOOST_AUTO_TEST_CASE(a_handler_on_another_threads_executor_while_the_consumer_goes_on)
{
  constexpr int rounds = 2000;
  asio::io_context ctx;
  asio::thread_pool pool(1);
  auto ch = make_channel<int>(ctx);
  auto& tx = ch.first;
  auto& rx = ch.second;
  long wrong = 0;
  for (int r = 0; r < rounds; ++r)
  {
    std::atomic<int> got{-1};
    rx.async_receive(
      asio::bind_executor(pool, [&got](error_code ec, int v) { got = ec ? -2 : v; }));
    BOOST_TEST_REQUIRE(tx.send(2 * r));
    BOOST_TEST_REQUIRE(tx.send(2 * r + 1));
    ctx.restart();
    ctx.poll();                // the completion leaves for the pool ...
    auto v = rx.try_receive(); // ... while the consumer takes the next value
    BOOST_REQUIRE(spin_until([&] { return got.load() != -1; }));
    if (got.load() != 2 * r || !v || *v != 2 * r + 1)
      ++wrong;
  }
  BOOST_TEST(wrong == 0);
  pool.join();
}

BOOST_AUTO_TEST_SUITE_END()
