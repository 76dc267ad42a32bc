#pragma once
// The contenders, each behind the same tiny adapter.
//
//   explicit C(boost::asio::io_context& ctx);
//   void wake();                        // any thread
//   void start(thunk on_wake, thunk parked);
//        Arrange the consumer on ctx (called on the io thread before ctx.run()):
//        wait; on each completion call on_wake(); if it returns true, park again.
//        `parked` is called each time the consumer is parked (its wait is registered),
//        from inside the initiation, i.e. after the coroutine has suspended and the
//        wait is in place: the scenarios acknowledge (ping-pong) or wake (cycle) there,
//        so every wake meets a parked waiter.
//   static constexpr bool plain_thread;  // true: no io_context; consume() runs its loop
//
// The consumer is a use_awaitable coroutine (co_spawn'ed on the io_context) except for
// raw_post (a plain posted handler), the asio_waker callback variants and the condvar
// peer (two plain threads).
//
// To park and be told when parked, each coroutine contender writes its wait as
//   co_await async_initiate<use_awaitable_t<...>, void(error_code)>(
//       [&](auto h) { <object>.async_wait(std::move(h)); parked(); }, use_awaitable);
// which hands the object the very awaitable_handler that `<object>.async_wait(use_awaitable)`
// would have given it: the only extra cost is the call to `parked`, the same for everyone.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <asio_waker/atomic_waker.hpp>

namespace bench {
namespace asio = boost::asio;
using boost::system::error_code;

// A non-owning, trivially copyable callable: two words, one indirect call.
struct thunk
{
  bool (*fn)(void*) = nullptr;
  void* obj = nullptr;
  bool operator()() const { return fn(obj); }
};
template <class F>
thunk make_thunk(F& f)
{
  return {[](void* p) -> bool {
            if constexpr (std::is_void_v<decltype((*static_cast<F*>(p))())>)
            {
              (*static_cast<F*>(p))();
              return true;
            }
            else
            {
              return static_cast<bool>((*static_cast<F*>(p))());
            }
          },
    &f};
}

template <class Exec = asio::any_io_executor>
inline constexpr asio::use_awaitable_t<Exec> awaitable_token{};

// ---------------------------------------------------------------------------
// 1. raw_post: the producer posts a plain handler. Not an event (no coalescing),
//    no coroutine: the cost of crossing into Asio at all.
struct raw_post
{
  static constexpr const char* name = "raw_post";
  static constexpr bool plain_thread = false;
  static constexpr bool coalesces = false;

  explicit raw_post(asio::io_context& ctx) : ctx_(ctx) {}
  void start(thunk on_wake, thunk parked)
  {
    on_wake_ = on_wake;
    parked_ = parked;
    parked_();
  }
  void wake() { asio::post(ctx_, handler{this}); }

private:
  struct handler
  {
    raw_post* self;
    void operator()() const
    {
      if (self->on_wake_())
        self->parked_();
    }
  };
  asio::io_context& ctx_;
  thunk on_wake_, parked_;
};

// ---------------------------------------------------------------------------
// 2. post_resume: the reference floor. async_wait parks the coroutine's handler in a
//    slot; wake() takes it out with one atomic handoff and posts it to the handler's
//    associated executor. Correct (no lost wake, single waiter, 1 RMW per wake and per
//    register), but with nothing else: no cancellation, no allocator plumbing, no
//    work counting beyond what the posted handler carries.
class post_resume
{
public:
  static constexpr const char* name = "post_resume";
  static constexpr bool plain_thread = false;
  static constexpr bool coalesces = true;

  explicit post_resume(asio::io_context& ctx) : ex_(ctx.get_executor()) {}
  ~post_resume()
  {
    if (state_.load(std::memory_order_acquire) == waiting)
      slot_.destroy();
  }

  void start(thunk on_wake, thunk parked)
  {
    asio::co_spawn(ex_, loop(on_wake, parked), asio::detached);
  }

  void wake()
  {
    int s = state_.load(std::memory_order_relaxed);
    for (;;)
    {
      if (s == waiting)
      {
        if (state_.compare_exchange_weak(
              s, empty, std::memory_order_acq_rel, std::memory_order_relaxed))
        {
          slot_.post_out(ex_);
          return;
        }
      }
      else if (state_.compare_exchange_weak(
                 s, notified, std::memory_order_acq_rel, std::memory_order_relaxed))
      {
        return; // empty -> notified, or notified -> notified (still a release RMW)
      }
    }
  }

  template <class Handler>
  void async_wait(Handler&& h)
  {
    if (state_.load(std::memory_order_relaxed) == notified)
    {
      state_.exchange(empty, std::memory_order_acquire);
      post_now(std::forward<Handler>(h));
      return;
    }
    slot_.store(std::forward<Handler>(h));
    int expected = empty;
    if (state_.compare_exchange_strong(
          expected, waiting, std::memory_order_acq_rel, std::memory_order_acquire))
      return;
    // A wake arrived between the check and the registration: consume it.
    state_.exchange(empty, std::memory_order_acquire);
    slot_.post_out(ex_);
  }

private:
  asio::awaitable<void> loop(thunk on_wake, thunk parked)
  {
    for (;;)
    {
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(error_code)>(
        [&](auto h) {
          async_wait(std::move(h));
          parked();
        },
        awaitable_token<>);
      if (!on_wake())
        co_return;
    }
  }

  template <class Handler>
  void post_now(Handler&& h)
  {
    auto ex = asio::get_associated_executor(h, ex_);
    asio::post(
      ex, [h = std::forward<Handler>(h)]() mutable { std::move(h)(error_code{}); });
  }

  // In-place, type-erased storage for one handler (no allocation).
  class handler_slot
  {
  public:
    template <class Handler>
    void store(Handler&& h)
    {
      using D = std::decay_t<Handler>;
      static_assert(sizeof(D) <= sizeof(buf_) && alignof(D) <= alignof(std::max_align_t));
      ::new (static_cast<void*>(buf_)) D(std::forward<Handler>(h));
      post_ = [](handler_slot& s, const asio::any_io_executor& dflt) {
        D* p = std::launder(reinterpret_cast<D*>(s.buf_));
        D local(std::move(*p));
        p->~D();
        auto ex = asio::get_associated_executor(local, dflt);
        asio::post(ex, [h = std::move(local)]() mutable { std::move(h)(error_code{}); });
      };
      destroy_ = [](handler_slot& s) { std::launder(reinterpret_cast<D*>(s.buf_))->~D(); };
    }
    void post_out(const asio::any_io_executor& dflt) { post_(*this, dflt); }
    void destroy() { destroy_(*this); }

  private:
    alignas(std::max_align_t) unsigned char buf_[128];
    void (*post_)(handler_slot&, const asio::any_io_executor&) = nullptr;
    void (*destroy_)(handler_slot&) = nullptr;
  };

  enum : int
  {
    empty = 0,
    waiting = 1,
    notified = 2
  };
  asio::any_io_executor ex_;
  std::atomic<int> state_{empty};
  handler_slot slot_;
};

// ---------------------------------------------------------------------------
// 3. The steady_timer idiom: a timer at time_point::max(); wake() sets an atomic flag
//    and, if it was not set, posts a cancel() of the timer; the waiter checks the flag
//    before parking (so an early wake is not lost) and after each timer completion.
class timer_idiom
{
public:
  static constexpr const char* name = "timer_idiom";
  static constexpr bool plain_thread = false;
  static constexpr bool coalesces = true;

  explicit timer_idiom(asio::io_context& ctx) : timer_(ctx)
  {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }

  void start(thunk on_wake, thunk parked)
  {
    asio::co_spawn(timer_.get_executor(), loop(on_wake, parked), asio::detached);
  }

  void wake()
  {
    if (!flag_.exchange(true, std::memory_order_acq_rel))
      asio::post(timer_.get_executor(), [this] { timer_.cancel(); });
  }

private:
  asio::awaitable<void> loop(thunk on_wake, thunk parked)
  {
    for (;;)
    {
      while (!flag_.exchange(false, std::memory_order_acq_rel))
      {
        error_code ec; // operation_aborted is the normal outcome
        auto tok = asio::redirect_error(awaitable_token<>, ec);
        co_await asio::async_initiate<decltype(tok), void(error_code)>(
          [&](auto h) {
            timer_.async_wait(std::move(h));
            parked();
          },
          tok);
      }
      if (!on_wake())
        co_return;
    }
  }

  asio::steady_timer timer_;
  std::atomic<bool> flag_{false};
};

// ---------------------------------------------------------------------------
// 4. experimental::concurrent_channel<void(error_code)>, capacity 1, wake = try_send.
class channel
{
public:
  static constexpr const char* name = "concurrent_channel";
  static constexpr bool plain_thread = false;
  static constexpr bool coalesces = true;

  explicit channel(asio::io_context& ctx) : ch_(ctx, 1) {}

  void start(thunk on_wake, thunk parked)
  {
    asio::co_spawn(ch_.get_executor(), loop(on_wake, parked), asio::detached);
  }
  void wake() { ch_.try_send(error_code{}); }

private:
  asio::awaitable<void> loop(thunk on_wake, thunk parked)
  {
    for (;;)
    {
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(error_code)>(
        [&](auto h) {
          ch_.async_receive(std::move(h));
          parked();
        },
        awaitable_token<>);
      if (!on_wake())
        co_return;
    }
  }

  asio::experimental::concurrent_channel<void(error_code)> ch_;
};

// ---------------------------------------------------------------------------
// 5. std::mutex + std::condition_variable between two plain threads (non-Asio reference).
class condvar
{
public:
  static constexpr const char* name = "mutex_condvar";
  static constexpr bool plain_thread = true;
  static constexpr bool coalesces = true;

  explicit condvar(asio::io_context&) {}

  void wake()
  {
    {
      std::lock_guard lk(m_);
      flag_ = true;
    }
    cv_.notify_one();
  }

  // The consumer thread's loop. `parked` runs with the mutex held just before
  // cv.wait() releases it, so a producer that saw it can only set the flag once the
  // consumer sleeps (or is about to re-check the flag).
  void consume(thunk on_wake, thunk parked)
  {
    std::unique_lock lk(m_);
    parked();
    for (;;)
    {
      while (!flag_)
        cv_.wait(lk);
      flag_ = false;
      if (!on_wake())
        return;
      parked();
    }
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  bool flag_ = false;
};

// ---------------------------------------------------------------------------
// 6. asio_waker::basic_atomic_waker<WakerExec>.
//    Coro = false: callback token (a small handler that re-arms the wait);
//    Coro = true:  use_awaitable coroutine on CoroExec, co_spawn'ed on `spawn_on`.
template <class WakerExec, bool Coro, class CoroExec = asio::any_io_executor>
class atomic_waker_contender
{
public:
  static constexpr bool plain_thread = false;
  static constexpr bool coalesces = true;

  explicit atomic_waker_contender(asio::io_context& ctx) : waker_(make_exec(ctx)) {}

  void start(thunk on_wake, thunk parked)
  {
    on_wake_ = on_wake;
    parked_ = parked;
    if constexpr (Coro)
      asio::co_spawn(CoroExec(waker_.get_executor()), loop(), asio::detached);
    else
      arm();
  }
  void wake() { waker_.wake(); }

private:
  static WakerExec make_exec(asio::io_context& ctx)
  {
    if constexpr (std::is_same_v<WakerExec, asio::strand<asio::io_context::executor_type>>)
      return asio::make_strand(ctx.get_executor());
    else
      return WakerExec(ctx.get_executor());
  }

  void arm()
  {
    waker_.async_wait([this](error_code) {
      if (on_wake_())
        arm();
    });
    parked_();
  }

  asio::awaitable<void, CoroExec> loop()
  {
    for (;;)
    {
      co_await asio::async_initiate<const asio::use_awaitable_t<CoroExec>&,
        void(error_code)>(
        [&](auto h) {
          waker_.async_wait(std::move(h));
          parked_();
        },
        awaitable_token<CoroExec>);
      if (!on_wake_())
        co_return;
    }
  }

  asio_waker::basic_atomic_waker<WakerExec> waker_;
  thunk on_wake_, parked_;
};

using io_ex = asio::io_context::executor_type;
using io_strand = asio::strand<io_ex>;

struct aw_coro : atomic_waker_contender<asio::any_io_executor, true>
{
  static constexpr const char* name = "aw_coro_any";
  using atomic_waker_contender::atomic_waker_contender;
};
struct aw_coro_io : atomic_waker_contender<io_ex, true, io_ex>
{
  static constexpr const char* name = "aw_coro_ioex";
  using atomic_waker_contender::atomic_waker_contender;
};
struct aw_coro_strand : atomic_waker_contender<io_strand, true>
{
  static constexpr const char* name = "aw_coro_strand";
  using atomic_waker_contender::atomic_waker_contender;
};
struct aw_cb_io : atomic_waker_contender<io_ex, false>
{
  static constexpr const char* name = "aw_cb_ioex";
  using atomic_waker_contender::atomic_waker_contender;
};
struct aw_cb_any : atomic_waker_contender<asio::any_io_executor, false>
{
  static constexpr const char* name = "aw_cb_any";
  using atomic_waker_contender::atomic_waker_contender;
};

// Calls f.template operator()<C>() for every contender, in table order.
template <class F>
void for_each_contender(F&& f)
{
  f.template operator()<raw_post>();
  f.template operator()<post_resume>();
  f.template operator()<timer_idiom>();
  f.template operator()<channel>();
  f.template operator()<condvar>();
  f.template operator()<aw_coro>();
  f.template operator()<aw_coro_io>();
  f.template operator()<aw_coro_strand>();
  f.template operator()<aw_cb_io>();
  f.template operator()<aw_cb_any>();
}

} // namespace bench
