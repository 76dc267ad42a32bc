//
// test/proofs/stress_channel.cpp -- stress of the MPSC channel (channel.hpp), meant to run
// under ThreadSanitizer; also runs plain.
//
// Configurations: 1, 2, 4 and 8 producer threads x seven scenarios. Each configuration
// repeats rounds for --seconds: a round makes a fresh io_context and channel, starts the
// producers (each with its own copy of the sender; the first sender is dropped at once),
// and runs a consumer coroutine on the calling thread. Scenarios:
//
//   mixed          the consumer mixes every kind of receive at random: async_receive
//                  (coroutine), async_receive_many(limit 1..64), try_receive drains,
//                  a receive raced against a timer in a parallel group (per-operation
//                  cancellation), and the steps below with a lower weight;
//   cancel         mostly: a callback receive, then cancel() or an emitted cancellation
//                  signal (terminal/partial/total), sometimes after letting sends race in,
//                  sometimes after moving the receiver (constructed or assigned) with the
//                  receive pending;
//   replace        mostly: a callback receive replaced by a new receive (callback or
//                  coroutine); the first completes with operation_aborted or took a value;
//   close          the receiver calls close() after a random number of values; sends
//                  then return false, every accepted value is still received, then eof;
//   sender_drops   every send goes through a fresh copy of the sender (copied, moved,
//                  assigned, dropped), producers stop at different times and an extra
//                  thread drops a copy at a random moment; the last one gone closes: eof;
//   receiver_drop  the receiver is destroyed mid-stream (by the coroutine, or by a posted
//                  function while the coroutine's receive is pending, which must then
//                  complete with operation_aborted); sends then return false;
//   shutdown       the io_context is stopped and destroyed mid-stream, with a receive
//                  pending (its coroutine is destroyed without being resumed), while the
//                  producers keep sending; the receiver is destroyed after the context;
//   pingpong       each producer waits until its value was received before sending the
//                  next, and the consumer uses only receives that nothing but a send can
//                  complete (no timer, cancel or replacement): a lost wake-up is a hang,
//                  which the watchdog reports. (In the other scenarios the next send, a
//                  timer or the final close would mask a lost wake-up.)
//
// Values carry (producer, sequence, payload) and count themselves: every object
// constructed is destroyed (a global live count ends at 0), no object is destroyed twice
// (a canary), and the *logical* value (the object that owns it, not a moved-from shell)
// is destroyed exactly once, delivered or not: per producer, the number of owning
// destructions equals the number of values the producer made, and their sequence numbers
// sum to 1 + 2 + ... + n.
//
// Checks, per round: every value received is the next one of its producer (per-producer
// order, nothing lost in between, no duplicate) with its payload intact (C6: plain data
// written before send is seen by the receiver); when the stream ends with eof (or, in the
// close scenario, at the end of the round) every accepted value was received (C1, C3);
// a producer's accepted values are a prefix of what it sent (once send returns false,
// it keeps doing so, and is_closed() says so); eof is seen only after the last accepted
// value; a callback receive completes exactly once, a cancelled or replaced one with
// operation_aborted or with a value that is then counted; nothing leaks. A watchdog
// aborts the process instead of hanging.
//
// Duration: --seconds=S per configuration (after `--` on the Boost.Test command line).
//

#define BOOST_TEST_MODULE asio_waker_stress_channel
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <asio_waker/channel.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <set>
#include <vector>

namespace asio = boost::asio;
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

void dump_state();

/// Ends the process (with a message) if not disarmed in time: a hang is a failure.
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
          "WATCHDOG: %s did not finish in %.0f s: hang (lost wake-up? missing eof?)\n",
          what_.c_str(), seconds);
        dump_state();
        std::fflush(stderr);
        std::_Exit(3); // not abort(): Boost.Test would catch SIGABRT and carry on
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

[[noreturn]] void fatal(const char* what, unsigned long long a = 0,
  unsigned long long b = 0, unsigned long long c = 0)
{
  std::fprintf(stderr, "stress_channel: FAILURE: %s (%llu %llu %llu)\n", what, a, b, c);
  dump_state();
  std::fflush(stderr);
  // Not abort(): Boost.Test would catch SIGABRT and run the next test with this one's
  // threads still running.
  std::_Exit(2);
}

struct rng
{
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed | 1) {}
  unsigned next(unsigned n)
  {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<unsigned>(s % n);
  }
};

// ---- the values ------------------------------------------------------------------------

/// Per producer: what it made, and the owning destructions of its values.
struct alignas(64) producer_books
{
  std::atomic<std::uint64_t> destroyed{0}; // owning destructions
  std::atomic<std::uint64_t> seq_sum{0};   // sum of their sequence numbers
  std::atomic<std::uint64_t> made{0};      // values constructed (final after join)
  std::atomic<std::uint64_t> made_sum{0};  // the sum of their sequence numbers
  std::atomic<std::uint64_t> accepted{0};  // send() == true; release-stored as it grows
  std::atomic<std::uint64_t> rejected{0};  // send() == false
  std::atomic<std::uint64_t> acked{0};     // pingpong: last sequence received
};

std::atomic<std::int64_t> live_items{0};

std::uint64_t payload_of(std::uint32_t p, std::uint64_t seq)
{
  return (seq * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t(p) << 56) ^ 0x5bd1e995u;
}

/// A value that counts itself. Move-only; nothrow-movable as the channel requires.
class item
{
public:
  static constexpr std::uint32_t alive = 0xA11FEu, dead = 0xDEADu;

  item() noexcept { live_items.fetch_add(1, std::memory_order_relaxed); }
  item(producer_books* books, std::uint32_t p, std::uint64_t seq) noexcept
    : books_(books), p_(p), seq_(seq), payload_(payload_of(p, seq))
  {
    live_items.fetch_add(1, std::memory_order_relaxed);
  }
  item(item&& o) noexcept
    : books_(std::exchange(o.books_, nullptr)), p_(o.p_), seq_(o.seq_), payload_(o.payload_)
  {
    o.check("moved from");
    live_items.fetch_add(1, std::memory_order_relaxed);
  }
  item& operator=(item&& o) noexcept
  {
    check("assigned to");
    o.check("moved from");
    drop();
    books_ = std::exchange(o.books_, nullptr);
    p_ = o.p_;
    seq_ = o.seq_;
    payload_ = o.payload_;
    return *this;
  }
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  ~item()
  {
    check("destroyed");
    drop();
    magic_ = dead;
    live_items.fetch_sub(1, std::memory_order_relaxed);
  }

  bool owns() const noexcept { return books_ != nullptr; }
  std::uint32_t producer() const noexcept { return p_; }
  std::uint64_t seq() const noexcept { return seq_; }
  bool intact() const noexcept { return payload_ == payload_of(p_, seq_); }

private:
  void check(const char* what) const noexcept
  {
    if (magic_ != alive)
    {
      std::fprintf(stderr, "stress_channel: an item that is not alive was %s\n", what);
      fatal("use of a dead item (destroyed twice?)", p_, seq_);
    }
  }
  void drop() noexcept
  {
    if (books_)
    {
      books_->destroyed.fetch_add(1, std::memory_order_relaxed);
      books_->seq_sum.fetch_add(seq_, std::memory_order_relaxed);
      books_ = nullptr;
    }
  }

  std::uint32_t magic_ = alive;
  producer_books* books_ = nullptr;
  std::uint32_t p_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t payload_ = 0;
};

using rx_type = asio_waker::receiver<item>;
using tx_type = asio_waker::sender<item>;

// ---- scenarios -------------------------------------------------------------------------

enum class scenario
{
  mixed,
  cancel,
  replace,
  close,
  sender_drops,
  receiver_drop,
  shutdown,
  pingpong
};

const char* name_of(scenario s)
{
  switch (s)
  {
  case scenario::mixed:
    return "mixed";
  case scenario::cancel:
    return "cancel";
  case scenario::replace:
    return "replace";
  case scenario::close:
    return "close";
  case scenario::sender_drops:
    return "sender_drops";
  case scenario::receiver_drop:
    return "receiver_drop";
  case scenario::shutdown:
    return "shutdown";
  case scenario::pingpong:
    return "pingpong";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, scenario s)
{
  return os << name_of(s);
}

/// Totals over the rounds of one configuration (consumer thread, then the test's).
struct totals
{
  std::uint64_t rounds = 0, sent = 0, rejected = 0, received = 0, undelivered_destroyed = 0;
  std::uint64_t receives = 0, receive_one = 0, receive_many = 0, try_hits = 0,
                try_misses = 0, raced = 0, timeouts = 0, cancels = 0, cancelled = 0,
                signals = 0, replaced = 0, aborted = 0, eofs = 0, drops = 0, shutdowns = 0,
                moves = 0;
};

/// One round: a channel, its producers and its consumer.
struct round_state
{
  round_state(scenario sc, int producers, std::uint64_t seed)
    : sc(sc), n(producers), books(static_cast<std::size_t>(producers)),
      expected(static_cast<std::size_t>(producers), 0),
      later(static_cast<std::size_t>(producers)), r(seed)
  {}

  scenario sc;
  int n;
  std::vector<producer_books> books;

  // The consumer's (io thread only).
  std::vector<std::uint64_t> expected;        // last sequence received per producer
  std::vector<std::set<std::uint64_t>> later; // received past a gap, per producer
  std::uint64_t received = 0;
  bool eof = false;
  bool closed_by_receiver = false;
  bool receiver_gone = false;
  std::uint64_t close_after = 0, drop_after = 0;
  rng r;
  totals* t = nullptr;
  std::optional<rx_type> rx;
  asio::io_context* ctx = nullptr;
  std::atomic<bool> consumer_done{false};

  void take(item&& v)
  {
    const std::uint32_t p = v.producer();
    if (!v.owns())
      fatal("received an item that owns no value", p, v.seq());
    if (p >= static_cast<std::uint32_t>(n))
      fatal("received an item of an unknown producer", p);
    // Values are bound to receives in stream order, but a handler may run after a later
    // try_receive or receive observed later values: each value once, and every one by
    // the end (expected[p]: all values up to it were received).
    auto& seen = later[p];
    if (v.seq() <= expected[p] || !seen.insert(v.seq()).second)
      fatal("lost or duplicated: producer, got, received up to", p, v.seq(), expected[p]);
    if (!v.intact())
      fatal("payload corrupted (C6)", p, v.seq());
    if (eof)
      fatal("a value after eof", p, v.seq());
    while (seen.erase(expected[p] + 1))
      ++expected[p];
    if (sc == scenario::pingpong)
      books[p].acked.store(v.seq(), std::memory_order_release);
    ++received;
    ++t->received;
    item gone(std::move(v)); // the owning destruction happens here
  }

  void on_eof()
  {
    ++t->eofs;
    if (!eof)
    {
      eof = true;
      // eof only after every accepted value: every producer has stopped for good here
      // (the channel is closed), and its last accepted count is visible (C3).
      for (int p = 0; p < n; ++p)
      {
        const std::uint64_t acc =
          books[static_cast<std::size_t>(p)].accepted.load(std::memory_order_acquire);
        if (sc != scenario::close && expected[static_cast<std::size_t>(p)] != acc)
          fatal("eof before every accepted value: producer, received, accepted",
            static_cast<unsigned long long>(p), expected[static_cast<std::size_t>(p)], acc);
        // (In the close scenario a producer may not have counted its last accepted send
        // yet: checked after the round.)
        if (sc != scenario::close && expected[static_cast<std::size_t>(p)] > acc)
          fatal("received more than accepted", static_cast<unsigned long long>(p));
      }
    }
  }

  /// A receive's outcome. Returns true at eof.
  bool outcome(const error_code& ec)
  {
    if (!ec)
      return false;
    if (ec == asio::error::eof)
    {
      on_eof();
      return true;
    }
    if (ec == asio::error::operation_aborted)
    {
      ++t->aborted;
      return false;
    }
    fatal("unexpected error", static_cast<unsigned long long>(ec.value()));
  }
};

std::atomic<round_state*> current_round{nullptr};

// On a failure or a hang: what the round was doing (racy reads, the process is ending).
void dump_state()
{
  round_state* s = current_round.load();
  if (!s)
    return;
  std::fprintf(stderr,
    "  round: scenario=%s producers=%d received=%llu eof=%d closed_by_receiver=%d "
    "receiver_gone=%d close_after=%llu drop_after=%llu consumer_done=%d live_items=%lld\n",
    name_of(s->sc), s->n, (unsigned long long)s->received, s->eof, s->closed_by_receiver,
    s->receiver_gone, (unsigned long long)s->close_after, (unsigned long long)s->drop_after,
    s->consumer_done.load(), (long long)live_items.load());
  for (int p = 0; p < s->n; ++p)
  {
    auto& b = s->books[static_cast<std::size_t>(p)];
    std::fprintf(stderr,
      "  producer %d: received up to %llu, made %llu, accepted %llu, rejected %llu\n", p,
      (unsigned long long)s->expected[static_cast<std::size_t>(p)],
      (unsigned long long)b.made.load(), (unsigned long long)b.accepted.load(),
      (unsigned long long)b.rejected.load());
  }
}

// A callback receive's handler: must run exactly once.
struct callback_books
{
  int runs = 0;
  error_code ec;
};

struct one_handler
{
  round_state* s;
  std::shared_ptr<callback_books> cb;
  void operator()(error_code ec, item v)
  {
    if (++cb->runs != 1)
      fatal("a callback receive completed twice");
    cb->ec = ec;
    if (!ec)
      s->take(std::move(v));
    else
    {
      if (v.owns())
        fatal("a receive that failed carries a value");
      s->outcome(ec);
    }
  }
};

struct many_handler
{
  round_state* s;
  std::shared_ptr<callback_books> cb;
  std::shared_ptr<std::vector<item>> out;
  std::size_t limit;
  void operator()(error_code ec, std::size_t k)
  {
    if (++cb->runs != 1)
      fatal("a callback receive completed twice");
    cb->ec = ec;
    if (ec)
    {
      if (k != 0 || !out->empty())
        fatal("a receive_many that failed appended values", k, out->size());
      s->outcome(ec);
      return;
    }
    if (k == 0 || k > limit || k != out->size())
      fatal("receive_many count", k, limit, out->size());
    for (auto& v : *out)
      s->take(std::move(v));
    out->clear();
  }
};

/// Starts a callback receive (one or many, at random).
std::shared_ptr<callback_books> start_callback(round_state& s, asio::cancellation_slot slot)
{
  auto cb = std::make_shared<callback_books>();
  ++s.t->receives;
  if (s.r.next(2))
  {
    ++s.t->receive_one;
    s.rx->async_receive(asio::bind_cancellation_slot(slot, one_handler{&s, cb}));
  }
  else
  {
    ++s.t->receive_many;
    const std::size_t limit = 1 + s.r.next(64);
    auto out = std::make_shared<std::vector<item>>();
    s.rx->async_receive_many(
      *out, limit, asio::bind_cancellation_slot(slot, many_handler{&s, cb, out, limit}));
  }
  return cb;
}

/// Lets the context run queued handlers (sends race in meanwhile).
asio::awaitable<void> yield_once()
{
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

asio::awaitable<void> wait_callback(const callback_books& cb)
{
  while (cb.runs == 0)
    co_await yield_once();
}

/// A coroutine receive, one or many. Returns true at eof.
asio::awaitable<bool> coro_receive(round_state& s)
{
  ++s.t->receives;
  if (s.r.next(2))
  {
    ++s.t->receive_one;
    auto [ec, v] = co_await s.rx->async_receive(asio::as_tuple(asio::use_awaitable));
    if (!ec)
    {
      s.take(std::move(v));
      co_return false;
    }
    if (v.owns())
      fatal("a receive that failed carries a value");
    co_return s.outcome(ec);
  }
  ++s.t->receive_many;
  std::vector<item> out;
  const std::size_t limit = 1 + s.r.next(64);
  auto [ec, k] =
    co_await s.rx->async_receive_many(out, limit, asio::as_tuple(asio::use_awaitable));
  if (ec)
  {
    if (k != 0 || !out.empty())
      fatal("a receive_many that failed appended values");
    co_return s.outcome(ec);
  }
  if (k == 0 || k > limit || k != out.size())
    fatal("receive_many count", k, limit, out.size());
  for (auto& v : out)
    s.take(std::move(v));
  co_return false;
}

asio::awaitable<void> consumer(round_state& s)
{
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  for (;;)
  {
    if (s.sc == scenario::close && !s.closed_by_receiver && s.received >= s.close_after)
    {
      s.rx->close();
      s.closed_by_receiver = true;
      if (!s.rx->is_closed())
        fatal("is_closed() false after close()");
    }
    if (s.sc == scenario::receiver_drop && s.received >= s.drop_after)
    {
      ++s.t->drops;
      s.receiver_gone = true;
      switch (s.r.next(3))
      {
      case 0: // the coroutine destroys it
        s.rx.reset();
        break;
      case 1: // with a callback receive pending (or already handed over)
      {
        auto cb = start_callback(s, {});
        if (s.r.next(2))
          co_await yield_once();
        s.rx.reset();
        co_await wait_callback(*cb);
        // Taken before the destruction (a value) or aborted by it.
        if (cb->ec && cb->ec != asio::error::operation_aborted)
          fatal("a receive pending at the receiver's destruction: unexpected error");
        break;
      }
      default: // a posted function destroys it while the coroutine's receive is pending
      {
        asio::post(ex, [&s] { s.rx.reset(); });
        auto [ec, v] = co_await s.rx->async_receive(asio::as_tuple(asio::use_awaitable));
        ++s.t->receives;
        if (!ec) // a send handed it over before the destruction: it keeps its value
          s.take(std::move(v));
        else if (ec != asio::error::operation_aborted || v.owns())
          fatal("a receive pending at the receiver's destruction did not abort",
            static_cast<unsigned long long>(ec.value()));
        else
          ++s.t->aborted;
      }
      }
      co_return;
    }
    if (s.sc == scenario::shutdown && s.received >= s.drop_after)
    {
      // Stop the context with a receive pending: this coroutine is destroyed with the
      // context, without being resumed.
      ++s.t->shutdowns;
      s.ctx->stop();
      co_await coro_receive(s);
      // Resumed only if a value or eof came first and the context ran it before stopping:
      // carry on receiving until the context is gone.
      for (;;)
        if (co_await coro_receive(s))
          co_return;
    }

    if (s.sc == scenario::pingpong)
    {
      switch (s.r.next(3))
      {
      case 0:
        if (co_await coro_receive(s))
          co_return;
        break;
      case 1:
        if (std::optional<item> v = s.rx->try_receive())
        {
          ++s.t->try_hits;
          s.take(std::move(*v));
        }
        else
          ++s.t->try_misses;
        if (co_await coro_receive(s))
          co_return;
        break;
      default:
      {
        auto cb = start_callback(s, {});
        co_await wait_callback(*cb);
        if (cb->ec == asio::error::eof)
          co_return;
        if (cb->ec)
          fatal("pingpong: a plain callback receive failed");
      }
      }
      continue;
    }
    unsigned step = s.r.next(16);
    if (s.sc == scenario::cancel && s.r.next(2))
      step = 9 + s.r.next(3); // cancel / signal
    if (s.sc == scenario::replace && s.r.next(2))
      step = 12 + s.r.next(2); // replacement
    switch (step)
    {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
      if (co_await coro_receive(s))
        co_return;
      break;
    case 5:
    case 6: // drain with try_receive, then wait
    {
      for (int k = 0; k < 64; ++k)
      {
        std::optional<item> v = s.rx->try_receive();
        if (!v)
        {
          ++s.t->try_misses;
          break;
        }
        ++s.t->try_hits;
        s.take(std::move(*v));
      }
      if (co_await coro_receive(s))
        co_return;
      break;
    }
    case 7:
    case 8: // raced against a timer: per-operation cancellation through a parallel group
    {
      ++s.t->raced;
      ++s.t->receives;
      ++s.t->receive_one;
      timer.expires_after(std::chrono::microseconds(s.r.next(100)));
      auto [order, ec, v, tec] =
        co_await asio::experimental::make_parallel_group(
          s.rx->async_receive(asio::deferred), timer.async_wait(asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)order;
      (void)tec;
      // Whichever finished first, the receive's own result counts: a receive that won
      // the race after the timer's cancellation took its value and must deliver it.
      if (!ec)
        s.take(std::move(v));
      else
      {
        if (v.owns())
          fatal("a receive that failed carries a value");
        if (ec == asio::error::operation_aborted)
          ++s.t->timeouts;
        if (s.outcome(ec))
          co_return;
      }
      break;
    }
    case 9:
    case 10: // cancel()
    {
      auto cb = start_callback(s, {});
      if (s.r.next(2))
        co_await yield_once();
      if (s.r.next(4) == 0)
      {
        // The receiver moves, with its receive pending (by construction, then by
        // assignment to the moved-from one): the receive and cancel() follow it.
        ++s.t->moves;
        rx_type moved(std::move(*s.rx));
        if (s.r.next(2))
          s.rx.emplace(std::move(moved));
        else
          *s.rx = std::move(moved);
      }
      ++s.t->cancels;
      s.t->cancelled += s.rx->cancel();
      co_await wait_callback(*cb);
      if (cb->ec == asio::error::eof)
        co_return;
      break;
    }
    case 11: // an emitted cancellation signal
    {
      asio::cancellation_signal sig;
      auto cb = start_callback(s, sig.slot());
      if (s.r.next(2))
        co_await yield_once();
      ++s.t->signals;
      static const asio::cancellation_type types[] = {asio::cancellation_type::terminal,
        asio::cancellation_type::partial, asio::cancellation_type::total};
      sig.emit(types[s.r.next(3)]);
      co_await wait_callback(*cb); // the slot's handler must not outlive `sig`
      if (cb->ec == asio::error::eof)
        co_return;
      break;
    }
    case 12:
    case 13: // a callback receive replaced by a coroutine receive
    case 14:
    {
      auto cb = start_callback(s, {});
      if (s.r.next(2))
        co_await yield_once();
      ++s.t->replaced;
      bool end = false;
      if (step == 14) // replaced by another callback receive
      {
        auto cb2 = start_callback(s, {});
        co_await wait_callback(*cb2);
        end = cb2->ec == asio::error::eof;
      }
      else
        end = co_await coro_receive(s);
      co_await wait_callback(*cb);
      if (end || cb->ec == asio::error::eof)
        co_return;
      break;
    }
    default: // a few handlers' worth of other work
      co_await yield_once();
      break;
    }
  }
}

// ---- producers -------------------------------------------------------------------------

void producer(
  round_state& s, tx_type tx, std::uint32_t p, std::uint64_t count, std::uint64_t seed)
{
  rng r(seed);
  producer_books& b = s.books[p];
  const bool unbounded = s.sc == scenario::close || s.sc == scenario::receiver_drop
                         || s.sc == scenario::shutdown;
  // Yield every `burst` values (16..512): the receiver catches up and parks, without
  // letting a loaded machine's sched_yield latency set the pace.
  const unsigned burst = 16u << r.next(6);
  std::uint64_t accepted = 0;
  for (std::uint64_t seq = 1; unbounded || seq <= count; ++seq)
  {
    bool ok;
    bool constructed = true; // false for an emplace that returned false
    if (s.sc == scenario::sender_drops)
    {
      switch (r.next(4))
      {
      case 0:
      {
        tx_type copy(tx);
        ok = copy.send(item(&b, p, seq));
        break;
      }
      case 1:
      {
        tx_type copy = tx;
        tx_type moved(std::move(copy));
        ok = moved.emplace(&b, p, seq);
        constructed = ok;
        break;
      }
      case 2:
      {
        tx_type copy(tx);
        tx = std::move(copy); // our handle replaced by an equal one
        ok = tx.send(item(&b, p, seq));
        break;
      }
      default:
      {
        tx_type a(tx), c(tx);
        a = c;
        ok = a.send(item(&b, p, seq));
      }
      }
    }
    else if (r.next(2))
      ok = tx.send(item(&b, p, seq));
    else
    {
      ok = tx.emplace(&b, p, seq);
      constructed = ok;
    }
    if (constructed)
    {
      b.made.fetch_add(1, std::memory_order_relaxed);
      b.made_sum.fetch_add(seq, std::memory_order_relaxed);
    }
    if (ok)
    {
      if (b.rejected.load(std::memory_order_relaxed) != 0)
        fatal("a send succeeded after one failed", p, seq);
      b.accepted.store(++accepted, std::memory_order_release);
      if (s.sc == scenario::pingpong) // until it is received: a lost wake-up hangs here
        while (b.acked.load(std::memory_order_acquire) != seq)
          std::this_thread::yield();
    }
    else
    {
      b.rejected.fetch_add(1, std::memory_order_relaxed);
      if (!tx.is_closed())
        fatal("send returned false but is_closed() is false", p, seq);
      if (b.rejected.load(std::memory_order_relaxed) >= 3)
        break; // a few failed sends, then stop
    }
    if (seq % burst == 0)
      std::this_thread::yield(); // let the receiver catch up and park
  }
  // tx goes here: the last sender closes the channel.
}

void run_round(scenario sc, int producers, std::uint64_t seed, totals& t)
{
  round_state s(sc, producers, seed);
  s.t = &t;
  current_round = &s;
  rng r(seed * 31 + 7);
  std::vector<std::uint64_t> counts;
  std::uint64_t total = 0;
  for (int p = 0; p < producers; ++p)
  {
    // About 20000 values per round in all, split unevenly.
    // (pingpong: a round trip per value, 2000 values per round in all)
    const unsigned per_round = sc == scenario::pingpong ? 2000 : 20000;
    counts.push_back(1 + r.next(2 * per_round / static_cast<unsigned>(producers)));
    total += counts.back();
  }
  s.close_after = r.next(static_cast<unsigned>(total));
  s.drop_after = r.next(static_cast<unsigned>(total));

  std::optional<asio::io_context> ctx(std::in_place, 1);
  s.ctx = &*ctx;
  std::optional<tx_type> first;
  {
    auto [tx, rx] = asio_waker::make_channel<item>(*ctx);
    first.emplace(std::move(tx));
    s.rx.emplace(std::move(rx));
  }
  asio::co_spawn(*ctx, consumer(s), [&s](std::exception_ptr e) {
    s.consumer_done = true;
    if (e)
    {
      try
      {
        std::rethrow_exception(e);
      }
      catch (const std::exception& x)
      {
        fatal(x.what());
      }
    }
  });
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back(producer, std::ref(s), *first, static_cast<std::uint32_t>(p),
      counts[static_cast<std::size_t>(p)], seed + 1000 * static_cast<std::uint64_t>(p));
  std::thread extra;
  if (sc == scenario::sender_drops)
  {
    // One more copy, dropped at a random moment (maybe the last one).
    extra = std::thread([copy = *first, us = r.next(2000)]() mutable {
      std::this_thread::sleep_for(std::chrono::microseconds(us));
      tx_type gone(std::move(copy));
    });
  }
  first.reset(); // the producers' copies keep the channel open

  ctx->run();
  if (sc == scenario::shutdown)
  {
    ctx.reset(); // the context goes first: the pending receive is destroyed, not run
    for (auto& th : threads)
      th.join();
    s.rx.reset(); // the receiver outlives its context
  }
  else
  {
    if (!s.consumer_done)
      fatal("the context ran out of work before the consumer finished");
    for (auto& th : threads)
      th.join();
    s.rx.reset();
    ctx.reset();
  }
  if (extra.joinable())
    extra.join();

  // Every handle is gone: every value has been destroyed exactly once.
  if (live_items.load() != 0)
    fatal(
      "items alive after the round", static_cast<unsigned long long>(live_items.load()));
  for (int p = 0; p < producers; ++p)
  {
    producer_books& b = s.books[static_cast<std::size_t>(p)];
    const std::uint64_t made = b.made.load(), acc = b.accepted.load(),
                        rej = b.rejected.load(),
                        got = s.expected[static_cast<std::size_t>(p)];
    if (b.destroyed.load() != made)
      fatal("values made vs destroyed (owning): producer, made, destroyed",
        static_cast<unsigned long long>(p), made, b.destroyed.load());
    if (b.seq_sum.load() != b.made_sum.load())
      fatal(
        "a value destroyed twice and another never", static_cast<unsigned long long>(p));
    if (acc != (rej ? acc : made))
      fatal("accepted != made in an open channel", static_cast<unsigned long long>(p), acc,
        made);
    const bool may_lose = sc == scenario::receiver_drop || sc == scenario::shutdown;
    if (may_lose ? got > acc : got != acc)
      fatal("received vs accepted: producer, received, accepted",
        static_cast<unsigned long long>(p), got, acc);
    if (!may_lose && !s.eof)
      fatal("the stream ended without eof");
    if (sc != scenario::close && !may_lose && rej != 0)
      fatal("a send failed while the channel was open", static_cast<unsigned long long>(p));
    t.sent += acc;
    t.rejected += rej;
    t.undelivered_destroyed += acc - got;
  }
  ++t.rounds;
  current_round = nullptr;
}

void run_config(scenario sc, int producers, double seconds)
{
  const std::string what = std::string("stress_channel ") + name_of(sc)
                           + " producers=" + std::to_string(producers);
  watchdog dog(seconds + 120, what);
  totals t;
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t seed = 0x12345u + static_cast<std::uint64_t>(sc) * 977 + producers * 13;
  do
  {
    run_round(sc, producers, seed, t);
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  } while (std::chrono::steady_clock::now() - t0 < std::chrono::duration<double>(seconds));
  const double secs =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // ops: every send attempt and every receive started (try_receive calls included).
  const std::uint64_t ops = t.sent + t.rejected + t.receives + t.try_hits + t.try_misses;
  std::cout << "stress_channel scenario=" << name_of(sc) << " producers=" << producers
            << " seconds=" << secs << ": ops=" << ops << " (rounds=" << t.rounds
            << " accepted=" << t.sent << " rejected=" << t.rejected
            << " received=" << t.received
            << " undelivered_destroyed=" << t.undelivered_destroyed
            << " receives=" << t.receives << " one=" << t.receive_one
            << " many=" << t.receive_many << " try_hits=" << t.try_hits
            << " try_misses=" << t.try_misses << " raced=" << t.raced
            << " timeouts=" << t.timeouts << " cancels=" << t.cancels
            << " cancelled=" << t.cancelled << " signals=" << t.signals
            << " replaced=" << t.replaced << " aborted=" << t.aborted << " eofs=" << t.eofs
            << " drops=" << t.drops << " shutdowns=" << t.shutdowns << " moves=" << t.moves
            << ")" << std::endl;
  BOOST_TEST(t.received + t.undelivered_destroyed == t.sent);
}

const scenario all_scenarios[] = {scenario::mixed, scenario::cancel, scenario::replace,
  scenario::close, scenario::sender_drops, scenario::receiver_drop, scenario::shutdown,
  scenario::pingpong};

} // namespace

BOOST_DATA_TEST_CASE(stress_1_producer, boost::unit_test::data::make(all_scenarios), sc)
{
  run_config(sc, 1, cli_seconds());
}
BOOST_DATA_TEST_CASE(stress_2_producers, boost::unit_test::data::make(all_scenarios), sc)
{
  run_config(sc, 2, cli_seconds());
}
BOOST_DATA_TEST_CASE(stress_4_producers, boost::unit_test::data::make(all_scenarios), sc)
{
  run_config(sc, 4, cli_seconds());
}
BOOST_DATA_TEST_CASE(stress_8_producers, boost::unit_test::data::make(all_scenarios), sc)
{
  run_config(sc, 8, cli_seconds());
}
