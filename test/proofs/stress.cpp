//
// test/proofs/stress.cpp -- stress of basic_atomic_waker, meant to run under ThreadSanitizer.
//
// 1, 2, 4 and 8 producer threads wake one waker against a consumer coroutine (one
// io_context thread) that randomly mixes:
//   * plain waits (use_awaitable, as_tuple),
//   * waits raced against a short timer with awaitable_operators::operator|| (per-operation
//     cancellation through the parallel group's cancellation slots),
//   * replacement waits (a callback wait replaced by a coroutine wait),
//   * a callback wait followed by cancel(),
//   * a wait whose bound cancellation_signal is emitted.
//
// Data hand-off: each producer p owns a PLAIN (non-atomic) slot data[p]. Round k:
// it writes data[p] = k, calls wake(), then publishes seq[p] = k with a RELAXED store (no
// happens-before from that store), and keeps calling wake() until the consumer acks k.
// The consumer snapshots seq[] (relaxed) BEFORE starting each wait; when a wait completes
// with success, for every producer whose snapshot shows a new round it reads data[p] as
// a plain read. The wake() that preceded that seq store precedes the completing wait's
// reading point in the word's modification order (the wait was started after the
// snapshot), so the contract (wake is a release, the completion an acquire, release
// sequences included) is the only thing that orders the producer's plain write before
// the consumer's plain read: if the waker's ordering were wrong, TSan would report a data
// race on data[p]. The ack (release/acquire) only orders the consumer's read before the
// producer's next write.
//
// Checks: every value read is the round announced (data arrives); every producer's last
// round is acknowledged at the end (nothing lost); every callback wait completes exactly
// once (nothing completed twice) and coroutine waits resume once; a watchdog aborts the
// process instead of hanging.
//
// Duration: --seconds=S per producer count (after `--` on the Boost.Test command line).
//

#define BOOST_TEST_MODULE asio_waker_stress
#include <boost/test/unit_test.hpp>

#include <asio_waker/atomic_waker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {

double cli_seconds()
{
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strncmp(mts.argv[i], "--seconds=", 10) == 0)
      return std::atof(mts.argv[i] + 10);
  return 1.0;
}

/// Aborts the process (with a message) if not disarmed in time: a hang is a failure.
class watchdog
{
public:
  watchdog(double seconds, std::string what) : what_(std::move(what))
  {
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lock(m_);
      if (!cv_.wait_for(
            lock, std::chrono::duration<double>(seconds), [this] { return done_; }))
      {
        std::fprintf(stderr,
          "WATCHDOG: %s did not finish in %.0f s: hang (lost wake-up?)\n", what_.c_str(),
          seconds);
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  ~watchdog()
  {
    {
      std::lock_guard<std::mutex> lock(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  std::string what_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

struct alignas(64) producer_slot
{
  std::uint64_t data = 0;            // PLAIN: handed off through wake()
  std::atomic<std::uint64_t> seq{0}; // relaxed announcement, stored after wake()
  std::atomic<std::uint64_t> ack{0}; // consumer -> producer (release/acquire)
  std::atomic<std::uint64_t> wakes{0};
};

struct stats
{
  std::uint64_t waits = 0, successes = 0, aborted = 0, timeouts = 0, replaced = 0,
                cancels = 0, signals = 0, delivered = 0;
};

struct shared_state
{
  explicit shared_state(int n) : slots(static_cast<std::size_t>(n)) {}
  std::vector<producer_slot> slots;
  std::atomic<int> producers_done{0};
  std::atomic<bool> stop{false};
  std::uint64_t failures = 0; // consumer thread only
};

// The consumer's per-wait bookkeeping (io thread only).
struct consumer_books
{
  std::vector<std::uint64_t> acked; // last round read per producer
  std::vector<int> callback_completions;
  stats st;
  std::uint64_t rng = 0x9E3779B97F4A7C15ull;
  unsigned next(unsigned n)
  {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return static_cast<unsigned>(rng % n);
  }
};

std::vector<std::uint64_t> snapshot(shared_state& s)
{
  std::vector<std::uint64_t> v(s.slots.size());
  for (std::size_t p = 0; p < v.size(); ++p)
    v[p] = s.slots[p].seq.load(std::memory_order_relaxed);
  return v;
}

// A wait that started after `snap` completed with success: hand the data over.
void deliver(shared_state& s, consumer_books& b, const std::vector<std::uint64_t>& snap)
{
  for (std::size_t p = 0; p < snap.size(); ++p)
  {
    if (snap[p] <= b.acked[p])
      continue;
    const std::uint64_t v = s.slots[p].data; // plain read: ordered only by the waker
    if (v != snap[p])
    {
      ++s.failures;
      std::fprintf(stderr, "DATA: producer %zu announced round %llu, slot holds %llu\n", p,
        (unsigned long long)snap[p], (unsigned long long)v);
    }
    b.acked[p] = snap[p];
    ++b.st.delivered;
    s.slots[p].ack.store(snap[p], std::memory_order_release);
  }
}

bool all_acked(shared_state& s, consumer_books& b)
{
  for (std::size_t p = 0; p < s.slots.size(); ++p)
    if (b.acked[p] != s.slots[p].seq.load(std::memory_order_relaxed))
      return false;
  return true;
}

// A tracked callback handler: must be invoked exactly once.
struct tracked_handler
{
  shared_state* s;
  consumer_books* b;
  std::size_t id;
  std::shared_ptr<std::vector<std::uint64_t>> snap;
  void operator()(error_code ec)
  {
    if (++b->callback_completions[id] != 1)
    {
      ++s->failures;
      std::fprintf(stderr, "DOUBLE COMPLETION of callback wait %zu\n", id);
    }
    if (!ec)
    {
      ++b->st.successes;
      deliver(*s, *b, *snap);
    }
    else if (ec == asio::error::operation_aborted)
      ++b->st.aborted;
    else
    {
      ++s->failures;
      std::fprintf(stderr, "unexpected error %s\n", ec.message().c_str());
    }
  }
};

asio::awaitable<void> consumer(
  asio_waker::atomic_waker& waker, shared_state& s, consumer_books& b)
{
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const int n = static_cast<int>(s.slots.size());
  for (;;)
  {
    if (s.producers_done.load(std::memory_order_acquire) == n && all_acked(s, b))
      break;
    auto snap = std::make_shared<std::vector<std::uint64_t>>(snapshot(s));
    ++b.st.waits;
    switch (b.next(5))
    {
    case 0: // plain wait
    {
      auto [ec] = co_await waker.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!ec)
      {
        ++b.st.successes;
        deliver(s, b, *snap);
      }
      else
        ++s.failures;
      break;
    }
    case 1: // raced against a timer: per-operation cancellation via the parallel group
    {
      timer.expires_after(std::chrono::microseconds(b.next(50)));
      auto r = co_await (
        waker.async_wait(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
      if (r.index() == 0)
      {
        ++b.st.successes;
        deliver(s, b, *snap);
      }
      else
        ++b.st.timeouts;
      break;
    }
    case 2: // replacement: a callback wait replaced by a coroutine wait
    {
      const std::size_t id = b.callback_completions.size();
      b.callback_completions.push_back(0);
      waker.async_wait(tracked_handler{&s, &b, id, snap});
      if (b.next(2))
        co_await asio::post(ex, asio::use_awaitable); // let wakes race in between
      ++b.st.replaced;
      auto [ec] = co_await waker.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!ec)
      {
        ++b.st.successes;
        deliver(s, b, *snap);
      }
      else
        ++s.failures;
      break;
    }
    case 3: // cancel()
    {
      const std::size_t id = b.callback_completions.size();
      b.callback_completions.push_back(0);
      waker.async_wait(tracked_handler{&s, &b, id, snap});
      if (b.next(2))
        co_await asio::post(ex, asio::use_awaitable);
      ++b.st.cancels;
      waker.cancel();
      co_await asio::post(ex, asio::use_awaitable);
      break;
    }
    case 4: // a bound cancellation signal, emitted
    {
      asio::cancellation_signal sig;
      const std::size_t id = b.callback_completions.size();
      b.callback_completions.push_back(0);
      waker.async_wait(
        asio::bind_cancellation_slot(sig.slot(), tracked_handler{&s, &b, id, snap}));
      if (b.next(2))
        co_await asio::post(ex, asio::use_awaitable);
      ++b.st.signals;
      sig.emit(
        b.next(2) ? asio::cancellation_type::terminal : asio::cancellation_type::total);
      // Let the handler run before `sig` goes away (the slot's handler must not outlive it).
      while (b.callback_completions[id] == 0)
        co_await asio::post(ex, asio::use_awaitable);
      break;
    }
    }
  }
}

void producer(asio_waker::atomic_waker& waker, shared_state& s, std::size_t p)
{
  producer_slot& me = s.slots[p];
  std::uint64_t round = 0;
  while (!s.stop.load(std::memory_order_relaxed))
  {
    ++round;
    me.data = round; // plain write, published by wake()
    waker.wake();
    me.wakes.fetch_add(1, std::memory_order_relaxed);
    me.seq.store(round, std::memory_order_relaxed);
    // Until the consumer has read it, keep waking (coalescing, contention).
    unsigned spins = 0;
    while (me.ack.load(std::memory_order_acquire) != round)
    {
      waker.wake();
      me.wakes.fetch_add(1, std::memory_order_relaxed);
      if (++spins % 4 == 0)
        std::this_thread::yield();
    }
  }
  s.producers_done.fetch_add(1, std::memory_order_release);
  waker.wake(); // let the consumer notice the end
  me.wakes.fetch_add(1, std::memory_order_relaxed);
}

void run_stress(int producers, double seconds)
{
  watchdog dog(seconds + 120, "stress with " + std::to_string(producers) + " producers");
  asio::io_context ctx(1);
  shared_state s(producers);
  consumer_books b;
  b.acked.assign(static_cast<std::size_t>(producers), 0);
  b.rng ^= static_cast<std::uint64_t>(producers) * 0x1000193u;
  std::uint64_t consumer_done = 0;
  std::atomic<bool> consumer_finished{false};
  {
    asio_waker::atomic_waker waker(ctx);
    asio::co_spawn(ctx, consumer(waker, s, b), [&](std::exception_ptr e) {
      ++consumer_done;
      consumer_finished.store(true);
      if (e)
      {
        ++s.failures;
        try
        {
          std::rethrow_exception(e);
        }
        catch (const std::exception& x)
        {
          std::fprintf(stderr, "consumer threw: %s\n", x.what());
        }
      }
    });
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back(
        producer, std::ref(waker), std::ref(s), static_cast<std::size_t>(p));
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      s.stop.store(true);
      // Once the producers are gone the consumer may still start a wait (a replacing
      // wait whose predecessor took the producers' last wake, say): keep waking, as a
      // real application's shutdown would, until it has seen the end.
      while (!consumer_finished.load())
      {
        if (s.producers_done.load() == producers)
          waker.wake();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    ctx.run(); // returns when the consumer has seen every producer's last round
    stopper.join();
    for (auto& t : threads)
      t.join();
  }
  std::uint64_t wakes = 0, rounds = 0;
  for (auto& sl : s.slots)
  {
    wakes += sl.wakes.load();
    rounds += sl.seq.load();
  }
  for (std::size_t i = 0; i < b.callback_completions.size(); ++i)
    if (b.callback_completions[i] != 1)
    {
      ++s.failures;
      std::fprintf(
        stderr, "callback wait %zu completed %d times\n", i, b.callback_completions[i]);
    }
  std::cout << "stress producers=" << producers << " seconds=" << seconds
            << ": ops=" << (wakes + b.st.waits) << " (wakes=" << wakes
            << " waits=" << b.st.waits << " successes=" << b.st.successes
            << " aborted=" << b.st.aborted << " timeouts=" << b.st.timeouts
            << " replaced=" << b.st.replaced << " cancels=" << b.st.cancels
            << " signals=" << b.st.signals << " rounds_delivered=" << b.st.delivered << "/"
            << rounds << ")" << std::endl;
  BOOST_TEST(consumer_done == 1u);
  BOOST_TEST(s.failures == 0u);
  BOOST_TEST(b.st.delivered == rounds); // nothing lost: every round of every producer read
  for (std::size_t p = 0; p < s.slots.size(); ++p)
    BOOST_TEST(b.acked[p] == s.slots[p].seq.load());
}

} // namespace

BOOST_AUTO_TEST_CASE(stress_1_producer)
{
  run_stress(1, cli_seconds());
}
BOOST_AUTO_TEST_CASE(stress_2_producers)
{
  run_stress(2, cli_seconds());
}
BOOST_AUTO_TEST_CASE(stress_4_producers)
{
  run_stress(4, cli_seconds());
}
BOOST_AUTO_TEST_CASE(stress_8_producers)
{
  run_stress(8, cli_seconds());
}
