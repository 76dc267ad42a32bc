#pragma once
// channel_bench's contenders: ways to stream std::uint64_t values from plain threads to
// one coroutine on an io_context, each behind the same adapter.
//
//   explicit C(asio::io_context& ctx);       the receiving end, on ctx
//   class C::producer
//   {
//     explicit producer(C&);                 one per sending thread (moodycamel tokens
//     void send(std::uint64_t);              live here); used by one thread at a time
//   };
//   template <class Sink> asio::awaitable<void> drain(Sink& sink);
//        The consumer loop, written the way the contender is best used: calls sink(v)
//        for every value, in the order received, until sink returns false.
//   std::uint64_t receives, parks;           counted by drain: receive/wait operations
//                                            started; of those, started with nothing
//                                            queued as far as the consumer could tell
//   static constexpr bool parks_observable;  false: `parks` stays 0 (see README)
//
// For the single-thread cycle (c), one of:
//   static constexpr bool one_per_receive = true;
//   template <class Token> auto async_receive_one(Token&&);          void(error_code, u64)
// or
//   static constexpr bool one_per_receive = false;
//   template <class Token> auto async_receive_some(std::vector<u64>& out, Token&&);
//        one completion that appends >= 1 values to `out`; its signature is either
//        void(error_code) or void(error_code, std::size_t)
//
// The value ~0 is the harness's end-of-stream marker; contenders treat it as any value.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <asio_waker/atomic_waker.hpp>

#if defined(BENCH_HAVE_MOODYCAMEL)
#include <concurrentqueue.h> // the directory that holds it is on the include path
#endif

#include <asio_waker/channel.hpp>

namespace bench {
namespace asio = boost::asio;
using boost::system::error_code;
using u64 = std::uint64_t;

inline constexpr const auto& awaitable_tok = asio::use_awaitable;

// ---------------------------------------------------------------------------
// 1, 2. experimental::concurrent_channel<void(error_code, u64)>, buffered.
//
// Producers: try_send in a loop, yielding while the buffer is full. A producer blocked in
// a std::future of async_send would measure the future, not the channel; async_send from a
// plain thread has no executor to run on. try_send never waits, like the other contenders'
// sends, and the 1024-value buffer lets producers run ahead of the consumer as an unbounded
// queue would (the harness's own in-flight window is larger, so this buffer is the bound).
//
// DrainFirst = false: one async_receive per value (the documented usage).
// DrainFirst = true:  the best practice: try_receive until empty, async_receive only then.
inline constexpr std::size_t cc_capacity = 1024;

template <bool DrainFirst>
class cc_contender
{
public:
  static constexpr bool parks_observable = DrainFirst; // ready() takes the mutex: not used
  static constexpr bool one_per_receive = true;
  using channel_type = asio::experimental::concurrent_channel<void(error_code, u64)>;

  explicit cc_contender(asio::io_context& ctx) : ch_(ctx, cc_capacity) {}

  class producer
  {
  public:
    explicit producer(cc_contender& c) : ch_(c.ch_) {}
    void send(u64 v)
    {
      while (!ch_.try_send(error_code{}, v))
        std::this_thread::yield();
    }

  private:
    channel_type& ch_;
  };

  template <class Sink>
  asio::awaitable<void> drain(Sink& sink)
  {
    for (;;)
    {
      if constexpr (DrainFirst)
      {
        bool more = true;
        while (more && ch_.try_receive([&](error_code, u64 v) { more = sink(v); }))
        {}
        if (!more)
          co_return;
        ++parks; // the buffer was empty a moment ago
      }
      ++receives;
      u64 v = co_await ch_.async_receive(awaitable_tok);
      if (!sink(v))
        co_return;
    }
  }

  template <class Token>
  auto async_receive_one(Token&& token)
  {
    return ch_.async_receive(std::forward<Token>(token));
  }

  std::uint64_t receives = 0, parks = 0;

private:
  channel_type ch_;
};

struct cc_receive : cc_contender<false>
{
  static constexpr const char* name = "cc_receive";
  using cc_contender::cc_contender;
};
struct cc_try_first : cc_contender<true>
{
  static constexpr const char* name = "cc_try_first";
  using cc_contender::cc_contender;
};

// ---------------------------------------------------------------------------
// 3. std::mutex + std::deque + asio_waker::atomic_waker: example/chat_server.cpp's outbox.
//    send: push under the lock, then wake(). The consumer swaps the whole deque out under
//    the lock, hands its values over, clear()s it (the cleared deque, with the one chunk it
//    keeps, goes back to the producers at the next swap) and waits only when it got nothing.
class mutex_deque_waker
{
public:
  static constexpr const char* name = "mutex_deque_waker";
  static constexpr bool parks_observable = true;
  static constexpr bool one_per_receive = false;

  explicit mutex_deque_waker(asio::io_context& ctx) : waker_(ctx) {}

  class producer
  {
  public:
    explicit producer(mutex_deque_waker& c) : c_(c) {}
    void send(u64 v)
    {
      {
        std::lock_guard lock(c_.mutex_);
        c_.queue_.push_back(v);
      }
      c_.waker_.wake();
    }

  private:
    mutex_deque_waker& c_;
  };

  template <class Sink>
  asio::awaitable<void> drain(Sink& sink)
  {
    std::deque<u64> batch;
    for (;;)
    {
      {
        std::lock_guard lock(mutex_);
        batch.swap(queue_);
      }
      if (batch.empty())
      {
        ++receives;
        ++parks;
        co_await waker_.async_wait(awaitable_tok);
        continue;
      }
      for (u64 v : batch)
        if (!sink(v))
          co_return;
      batch.clear();
    }
  }

  // (c): wait for the wake, then take everything.
  template <class Token>
  auto async_receive_some(std::vector<u64>& out, Token&& token)
  {
    return asio::async_initiate<Token, void(error_code)>(
      [this, &out](auto h) { this->wait_then_take(std::move(h), out); }, token);
  }

  std::uint64_t receives = 0, parks = 0;

private:
  template <class Handler>
  void wait_then_take(Handler h, std::vector<u64>& out)
  {
    waker_.async_wait([this, &out, h = std::move(h)](error_code ec) mutable {
      if (!ec)
      {
        {
          std::lock_guard lock(mutex_);
          out.insert(out.end(), queue_.begin(), queue_.end());
          queue_.clear();
        }
        if (out.empty())
          return wait_then_take(std::move(h), out);
      }
      std::move(h)(ec); // inside the waker's posted completion: no second post
    });
  }

  asio_waker::atomic_waker waker_;
  std::mutex mutex_;
  std::deque<u64> queue_;
};

#if defined(BENCH_HAVE_MOODYCAMEL)
// ---------------------------------------------------------------------------
// 4. moodycamel::ConcurrentQueue + asio_waker::atomic_waker.
//    send: enqueue, then wake(). The consumer takes up to 1024 values with
//    try_dequeue_bulk and waits only when it got nothing.
//    Tokens = false: no tokens at all (any thread sends with no registration, as with the
//                    channel: moodycamel keeps an implicit producer per thread).
//    Tokens = true:  a ProducerToken per producer thread and a ConsumerToken (moodycamel's
//                    fast path).
inline constexpr std::size_t bulk_limit = 1024;

template <bool Tokens>
class mc_waker_contender
{
public:
  static constexpr bool parks_observable = true;
  static constexpr bool one_per_receive = false;

  explicit mc_waker_contender(asio::io_context& ctx) : waker_(ctx), buf_(bulk_limit) {}

  class producer
  {
  public:
    explicit producer(mc_waker_contender& c) : c_(c), token_(make_token(c)) {}
    void send(u64 v)
    {
      if constexpr (Tokens)
        c_.queue_.enqueue(token_, v);
      else
        c_.queue_.enqueue(v);
      c_.waker_.wake();
    }

  private:
    struct no_token
    {};
    using token_type = std::conditional_t<Tokens, moodycamel::ProducerToken, no_token>;
    static token_type make_token(mc_waker_contender& c)
    {
      if constexpr (Tokens)
        return moodycamel::ProducerToken(c.queue_);
      else
        return no_token{};
    }
    mc_waker_contender& c_;
    token_type token_;
  };

  template <class Sink>
  asio::awaitable<void> drain(Sink& sink)
  {
    for (;;)
    {
      std::size_t n = take();
      if (n == 0)
      {
        ++receives;
        ++parks;
        co_await waker_.async_wait(awaitable_tok);
        continue;
      }
      for (std::size_t i = 0; i < n; ++i)
        if (!sink(buf_[i]))
          co_return;
    }
  }

  // (c): wait for the wake, then take up to 1024.
  template <class Token>
  auto async_receive_some(std::vector<u64>& out, Token&& token)
  {
    return asio::async_initiate<Token, void(error_code)>(
      [this, &out](auto h) { this->wait_then_take(std::move(h), out); }, token);
  }

  std::uint64_t receives = 0, parks = 0;

private:
  std::size_t take()
  {
    if constexpr (Tokens)
      return queue_.try_dequeue_bulk(ctoken_, buf_.data(), bulk_limit);
    else
      return queue_.try_dequeue_bulk(buf_.data(), bulk_limit);
  }

  template <class Handler>
  void wait_then_take(Handler h, std::vector<u64>& out)
  {
    waker_.async_wait([this, &out, h = std::move(h)](error_code ec) mutable {
      if (!ec)
      {
        std::size_t n = take();
        if (n == 0)
          return wait_then_take(std::move(h), out);
        out.insert(out.end(), buf_.data(), buf_.data() + n);
      }
      std::move(h)(ec); // inside the waker's posted completion: no second post
    });
  }

  struct no_token
  {
    explicit no_token(moodycamel::ConcurrentQueue<u64>&) {}
  };
  using ctoken_type = std::conditional_t<Tokens, moodycamel::ConsumerToken, no_token>;

  asio_waker::atomic_waker waker_;
  moodycamel::ConcurrentQueue<u64> queue_;
  ctoken_type ctoken_{queue_};
  std::vector<u64> buf_;
};

struct mc_waker : mc_waker_contender<false>
{
  static constexpr const char* name = "mc_waker";
  using mc_waker_contender::mc_waker_contender;
};
struct mc_waker_tokens : mc_waker_contender<true>
{
  static constexpr const char* name = "mc_waker_tokens";
  using mc_waker_contender::mc_waker_contender;
};

// ---------------------------------------------------------------------------
// 5. The reference for a per-value async_receive: a lock-free queue (moodycamel, no
//    tokens, as mc_waker) plus exactly one posted completion per value.
//    The receiving side takes values from the queue in bulk (up to 1024, into its own
//    buffer), as any single-consumer queue can, so that the queue's cost is amortized and
//    what remains per value is the completion. async_receive: if a value is buffered or
//    queued, take it and post the handler with it (never inline) to the handler's
//    associated executor; otherwise wait on an atomic_waker, whose completion is posted by
//    the producer's wake(), and hand the value over inside that completion. So each value
//    costs one post (an any_io_executor one, for a coroutine) and one coroutine
//    resumption: the least a receive that completes one value per operation, never inline,
//    can do on top of a good queue. (A library can still go a little below it by queueing
//    its own operation in the scheduler instead of posting a type-erased handler, as
//    atomic_waker does: see waker_bench's post_resume vs aw_coro_any.) Nothing else: no
//    close, no cancellation of its own, no allocator plumbing. Not a usable channel.
class mc_post_per_value
{
public:
  static constexpr const char* name = "mc_post_per_value";
  static constexpr bool parks_observable = true;
  static constexpr bool one_per_receive = true;

  explicit mc_post_per_value(asio::io_context& ctx)
    : ex_(ctx.get_executor()), waker_(ctx), buf_(bulk_limit)
  {}

  class producer
  {
  public:
    explicit producer(mc_post_per_value& c) : c_(c) {}
    void send(u64 v)
    {
      c_.queue_.enqueue(v);
      c_.waker_.wake();
    }

  private:
    mc_post_per_value& c_;
  };

  template <class Token>
  auto async_receive_one(Token&& token)
  {
    return asio::async_initiate<Token, void(error_code, u64)>(
      [this](auto h) { this->initiate(std::move(h)); }, token);
  }

  template <class Sink>
  asio::awaitable<void> drain(Sink& sink)
  {
    for (;;)
    {
      ++receives;
      u64 v = co_await async_receive_one(awaitable_tok);
      if (!sink(v))
        co_return;
    }
  }

  std::uint64_t receives = 0, parks = 0;

private:
  bool take(u64& v)
  {
    if (pos_ == len_)
    {
      len_ = queue_.try_dequeue_bulk(buf_.data(), bulk_limit);
      pos_ = 0;
      if (len_ == 0)
        return false;
    }
    v = buf_[pos_++];
    return true;
  }

  template <class Handler>
  void initiate(Handler h)
  {
    u64 v;
    if (take(v))
    {
      auto ex = asio::get_associated_executor(h, ex_);
      asio::post(ex, [h = std::move(h), v]() mutable { std::move(h)(error_code{}, v); });
      return;
    }
    ++parks;
    waker_.async_wait([this, h = std::move(h)](error_code ec) mutable {
      u64 v = 0;
      if (!ec && !take(v))
        return initiate(std::move(h)); // a permit left by an earlier value's wake
      std::move(h)(ec, v);             // inside the waker's posted completion
    });
  }

  asio::any_io_executor ex_;
  asio_waker::atomic_waker waker_;
  moodycamel::ConcurrentQueue<u64> queue_;
  std::vector<u64> buf_;
  std::size_t pos_ = 0, len_ = 0;
};
#endif // BENCH_HAVE_MOODYCAMEL

// ---------------------------------------------------------------------------
// 6. asio_waker's channel (contract Part 3). Each producer thread holds its own copy of
//    the sender. Many = false: async_receive, one value per completion.
//    Many = true: async_receive_many(out, 1024), everything available in one completion.
template <bool Many>
class aw_channel_contender
{
public:
  static constexpr bool parks_observable = false;
  static constexpr bool one_per_receive = !Many;

  explicit aw_channel_contender(asio::io_context& ctx)
    : aw_channel_contender(asio_waker::make_channel<u64>(ctx))
  {}

  class producer
  {
  public:
    explicit producer(aw_channel_contender& c) : tx_(c.tx_) {}
    void send(u64 v) { tx_.send(v); }

  private:
    asio_waker::sender<u64> tx_;
  };

  template <class Sink>
  asio::awaitable<void> drain(Sink& sink)
  {
    if constexpr (Many)
    {
      std::vector<u64> batch;
      batch.reserve(bulk_limit_);
      for (;;)
      {
        batch.clear();
        ++receives;
        co_await rx_.async_receive_many(batch, bulk_limit_, awaitable_tok);
        for (u64 v : batch)
          if (!sink(v))
            co_return;
      }
    }
    else
    {
      for (;;)
      {
        ++receives;
        u64 v = co_await rx_.async_receive(awaitable_tok);
        if (!sink(v))
          co_return;
      }
    }
  }

  template <class Token>
  auto async_receive_one(Token&& token)
  {
    return rx_.async_receive(std::forward<Token>(token));
  }
  template <class Token>
  auto async_receive_some(std::vector<u64>& out, Token&& token)
  {
    return rx_.async_receive_many(out, bulk_limit_, std::forward<Token>(token));
  }

  std::uint64_t receives = 0, parks = 0;

private:
  static constexpr std::size_t bulk_limit_ = 1024;
  template <class Pair>
  explicit aw_channel_contender(Pair&& p)
    : tx_(std::move(p.first)), rx_(std::move(p.second))
  {}

  asio_waker::sender<u64> tx_;
  asio_waker::receiver<u64> rx_;
};

struct aw_receive : aw_channel_contender<false>
{
  static constexpr const char* name = "aw_receive";
  using aw_channel_contender::aw_channel_contender;
};
struct aw_receive_many : aw_channel_contender<true>
{
  static constexpr const char* name = "aw_receive_many";
  using aw_channel_contender::aw_channel_contender;
};

// Calls f.template operator()<C>() for every contender built in, in table order.
template <class F>
void for_each_channel_contender(F&& f)
{
  f.template operator()<cc_receive>();
  f.template operator()<cc_try_first>();
  f.template operator()<mutex_deque_waker>();
#if defined(BENCH_HAVE_MOODYCAMEL)
  f.template operator()<mc_waker>();
  f.template operator()<mc_waker_tokens>();
  f.template operator()<mc_post_per_value>();
#endif
  f.template operator()<aw_receive>();
  f.template operator()<aw_receive_many>();
}

} // namespace bench
