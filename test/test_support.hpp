//
// test/test_support.hpp: the helpers of asio_waker's tests, for test/ and its subfolders.
//
// Include it first (it includes the library and the Asio in use) from any Boost.Test
// module: `#include "test_support.hpp"` in test/, `#include "../test_support.hpp"` below.
//
// Asio flavour. The library's config header picks Boost.Asio, or standalone Asio when
// ASIO_WAKER_STANDALONE_ASIO is defined; this header follows it and is the only place in
// the tests that names either: `test::asio` is the Asio in use (asio_waker::net) and
// `test::error_code` its error code. Boost.Test is the framework in both flavours.
// ASIO_WAKER_TEST_HAS_SPAWN says whether yield_context (Boost.Context) is available: 1
// for Boost.Asio only, so tests of it are compiled for Boost only and reported as
// skipped (skipped_because) in a standalone build. Including this header needs only
// Boost.Context's headers, not its library: only code that calls spawn links it.
//
// Asio releases (Boost.Asio 1.81 and 1.38.0, standalone 1.22.1 and 1.38.2) differ for
// the tests in two places: `deferred` and `as_tuple` moved out of `experimental` in
// Asio 1.24 (test::deferred and test::as_tuple below name whichever exists), and an
// awaitable can co_await a deferred operation only since 1.24 (tokens.cpp). With clang,
// standalone Asio before 1.24 also needs to be told that co_await exists (below).
//
// Watchdogs: nothing in the suite may hang, and each kind of hang has a guard.
//   run_all()         An io_context that keeps work (a lost wake, leaked work): run_for
//                     stops at `watchdog` and the test fails, naming the context.
//   spin_until()      A thread waiting for another: gives up at `watchdog`; the caller
//                     checks the result on the test's thread.
//   suite_timeout()   Anything else inside a suite (a join, a future that never becomes
//                     ready): Boost.Test fails the suite when its accumulated time runs
//                     out.
//   ctest TIMEOUT     The last resort, per executable (test/CMakeLists.txt): kills it.
//   Outside this header: test/proofs/stress.cpp runs its own abort thread (its duration
//   is a run-time argument), and example/test's tests give a child process 20 s
//   (`patience`) before killing it.
//

#ifndef ASIO_WAKER_TEST_SUPPORT_HPP
#define ASIO_WAKER_TEST_SUPPORT_HPP

#if defined(ASIO_WAKER_STANDALONE_ASIO) && defined(__clang__)
// Standalone Asio before 1.24 (Debian's 1.22.1) looks for clang's coroutine support in
// <experimental/coroutine>, which libstdc++ does not have, and then leaves
// asio::awaitable out. The tests need it: say that the compiler has co_await (as a
// user of that Asio with clang must, with -DASIO_HAS_CO_AWAIT=1). Later releases detect
// it themselves. <asio/version.hpp> defines nothing else.
#include <asio/version.hpp>
#if ASIO_VERSION < 102400 && !defined(ASIO_HAS_CO_AWAIT) && __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif
#endif

#include <asio_waker.hpp>

#if defined(ASIO_WAKER_STANDALONE_ASIO)
#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/parallel_group.hpp>
#if ASIO_VERSION < 102400
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#endif
#include <system_error>
#define ASIO_WAKER_TEST_HAS_SPAWN 0
#else
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/spawn.hpp>
#include <boost/system/system_error.hpp>
#define ASIO_WAKER_TEST_HAS_SPAWN 1
#endif

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

namespace test {

namespace asio = asio_waker::net;
using asio_waker::error_code;
using namespace std::chrono_literals;

#if defined(ASIO_WAKER_STANDALONE_ASIO)
using system_error = std::system_error;
#else
using system_error = boost::system::system_error;
#endif

// Asio 1.24 moved `deferred` and `as_tuple` out of `experimental`. Standalone Asio
// 1.22.1 (Debian 12's libasio-dev) has them in `experimental` only, 1.38 outside only;
// every Boost.Asio we support (>= 1.81, Asio 1.26) has them outside.
#if ASIO_WAKER_ASIO_VERSION >= 102400
using asio::as_tuple;
using asio::deferred;
#else
using asio::experimental::as_tuple;
using asio::experimental::deferred;
#endif

// ---- watchdogs ----------------------------------------------------------------------

/// How long any single wait in a test may take before the test fails.
inline constexpr std::chrono::seconds watchdog{20};

/// How long expect_still_pending() lets a context run: enough for anything already
/// queued to run (a wrong completion is queued at once, never on a timer).
inline constexpr std::chrono::milliseconds settle_time{20};

/// Boost.Test decorator for a suite: a limit on the suite's *accumulated* time (each
/// case runs under what the suite has left). Below ctest's per-executable TIMEOUT, so a
/// hang is reported with the suite's name before ctest kills the process.
inline auto suite_timeout()
{
  return boost::unit_test::timeout(120);
}

/// Runs `ctx` until it runs out of work; fails the test if it still has work after
/// the watchdog period.
inline void run_all(asio::io_context& ctx)
{
  ctx.restart();
  ctx.run_for(watchdog);
  BOOST_REQUIRE_MESSAGE(ctx.stopped(),
    "watchdog: io_context still had work after " << watchdog.count() << " s");
}

/// Spins (yielding) until `done()` holds or the watchdog period ends; returns whether
/// it holds. Safe on any thread (Boost.Test assertions are not: check the result on
/// the test's own thread).
inline bool spin_until(const std::function<bool()>& done)
{
  const auto deadline = std::chrono::steady_clock::now() + watchdog;
  while (!done())
  {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

// ---- handlers -----------------------------------------------------------------------

/// What a callback handler saw.
struct outcome
{
  int calls = 0;
  error_code ec;
};

/// A callback handler recording into an outcome.
inline auto record(outcome& o)
{
  return [&o](error_code ec) {
    ++o.calls;
    o.ec = ec;
  };
}

/// What a channel receive's callback handler saw (async_receive: void(error_code, T)).
template <typename T>
struct value_outcome
{
  int calls = 0;
  error_code ec;
  T value{};
};

/// A callback handler for async_receive recording into a value_outcome.
template <typename T>
auto record(value_outcome<T>& o)
{
  return [&o](error_code ec, T v) {
    ++o.calls;
    o.ec = ec;
    o.value = std::move(v);
  };
}

/// What an async_receive_many callback handler saw (void(error_code, std::size_t)), and
/// how many values its container held when the handler ran.
struct batch_outcome
{
  int calls = 0;
  error_code ec;
  std::size_t count = 0;
  std::size_t size_seen = 0;
};

/// A callback handler for async_receive_many(out, ...) recording into a batch_outcome.
template <typename Container>
auto record(batch_outcome& o, const Container& out)
{
  return [&o, &out](error_code ec, std::size_t n) {
    ++o.calls;
    o.ec = ec;
    o.count = n;
    o.size_seen = out.size();
  };
}

/// Runs `ctx` for settle_time and checks that the wait recorded by `o` (an outcome,
/// value_outcome or batch_outcome) is still pending: its handler has not run, and the
/// context still has work (a pending wait is outstanding work). A failure names the
/// caller's line.
template <typename Outcome>
void expect_still_pending(asio::io_context& ctx, const Outcome& o,
  int line = __builtin_LINE(), const char* file = __builtin_FILE())
{
  ctx.restart();
  ctx.run_for(settle_time);
  BOOST_TEST_CONTEXT("expect_still_pending at " << file << ":" << line)
  {
    BOOST_TEST(o.calls == 0,
      "the handler ran " << o.calls << " time(s), last with \"" << o.ec.message() << "\"");
    BOOST_TEST(!ctx.stopped(), "the context ran out of work");
  }
}

/// Counts destructions of a handler's sub-object, to tell "destroyed without being
/// invoked" from "leaked".
struct destruction_probe
{
  std::shared_ptr<int> destroyed = std::make_shared<int>(0);
  struct token
  {
    std::shared_ptr<int> destroyed;
    token(std::shared_ptr<int> d) : destroyed(std::move(d)) {}
    token(token&& o) noexcept : destroyed(std::move(o.destroyed)) {}
    ~token()
    {
      if (destroyed)
        ++*destroyed;
    }
  };
  token make() const { return token(destroyed); }
};

/// Decorator for a test that cannot run in this build: Boost.Test reports it as skipped,
/// with the reason (and counts it in "N test cases skipped").
inline auto skipped_because(const char* why)
{
  return boost::unit_test::precondition([why](boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result result(false);
    result.message() << why;
    return result;
  });
}

// ---- an allocator that counts, and fails on demand ----------------------------------

/// What counting_allocators sharing it did, and when the next one should fail.
struct alloc_stats
{
  int allocations = 0;    ///< allocate() calls that returned memory
  int deallocations = 0;  ///< deallocate() calls
  int failures = 0;       ///< allocate() calls that threw std::bad_alloc
  bool fail_all = false;  ///< every allocate() throws
  int fail_countdown = 0; ///< > 0: each allocate() counts it down; the one that takes it
                          ///< to 0 throws (one fault: "fail at the Nth allocation")

  int live() const noexcept { return allocations - deallocations; }
};

/// A standard allocator over std::allocator that reports to an alloc_stats. Associate
/// it with a handler through asio::bind_allocator.
template <typename T>
struct counting_allocator
{
  using value_type = T;
  alloc_stats* stats;

  explicit counting_allocator(alloc_stats* s) noexcept : stats(s) {}
  template <typename U>
  counting_allocator(const counting_allocator<U>& o) noexcept : stats(o.stats)
  {}

  T* allocate(std::size_t n)
  {
    if (stats->fail_all || (stats->fail_countdown > 0 && --stats->fail_countdown == 0))
    {
      ++stats->failures;
      throw std::bad_alloc();
    }
    ++stats->allocations;
    return std::allocator<T>().allocate(n);
  }

  void deallocate(T* p, std::size_t n)
  {
    ++stats->deallocations;
    std::allocator<T>().deallocate(p, n);
  }

  template <typename U>
  bool operator==(const counting_allocator<U>& o) const noexcept
  {
    return stats == o.stats;
  }
  template <typename U>
  bool operator!=(const counting_allocator<U>& o) const noexcept
  {
    return stats != o.stats;
  }
};

// ---- an execution context without an Asio scheduler ---------------------------------

/// An execution context that no Asio scheduler runs: submitted tasks queue up until
/// run() runs them on the calling thread. The waker cannot hand a completion to its
/// scheduler, so it takes the portable path (post through the executor). It has both
/// executor models a user may write:
///   ts_executor  (get_executor())     Networking TS: context(), on_work_started/
///                                     finished (counted in `work`), dispatch/post/defer.
///   std_executor (get_std_executor()) standard: execute(), query(context, blocking),
///                                     require(blocking.never / possibly).
/// Both queue (never run inline), and both fail on demand: while `fail_next_submit` is
/// > 0, a submission counts it down and throws std::runtime_error (counted in
/// `failures`) instead of queueing.
class manual_context : public asio::execution_context
{
public:
  class ts_executor;
  class std_executor;
  using executor_type = ts_executor;

  executor_type get_executor() noexcept;
  std_executor get_std_executor() noexcept;

  /// Runs queued tasks, including those they queue, until none is left; returns how
  /// many ran.
  std::size_t run()
  {
    std::size_t n = 0;
    while (!queue_.empty())
    {
      auto task = std::move(queue_.front());
      queue_.pop_front();
      task->run();
      ++n;
    }
    return n;
  }

  /// Tasks queued and not yet run.
  std::size_t queued() const noexcept { return queue_.size(); }

  /// Shuts the services down (as the destructor does first) while the context lives.
  void shutdown_now() { shutdown(); }

  ~manual_context()
  {
    shutdown();
    queue_.clear();
    destroy();
  }

  int work = 0;             ///< outstanding work, counted through ts_executor
  int fail_next_submit = 0; ///< how many upcoming submissions throw
  int failures = 0;         ///< submissions that threw

private:
  struct task_base
  {
    virtual ~task_base() = default;
    virtual void run() = 0;
  };

  template <typename F>
  struct task : task_base
  {
    F f;
    template <typename G>
    explicit task(G&& g) : f(std::forward<G>(g))
    {}
    void run() override { f(); }
  };

  template <typename F>
  void submit(F&& f)
  {
    if (fail_next_submit > 0)
    {
      --fail_next_submit;
      ++failures;
      throw std::runtime_error("manual_context: submission fails (as asked)");
    }
    queue_.push_back(std::make_unique<task<std::decay_t<F>>>(std::forward<F>(f)));
  }

  std::deque<std::unique_ptr<task_base>> queue_;
};

/// Networking TS executor of a manual_context.
class manual_context::ts_executor
{
public:
  explicit ts_executor(manual_context& c) noexcept : ctx_(&c) {}

  manual_context& context() const noexcept { return *ctx_; }
  void on_work_started() const noexcept { ++ctx_->work; }
  void on_work_finished() const noexcept { --ctx_->work; }

  template <typename F, typename A>
  void dispatch(F&& f, const A&) const
  {
    ctx_->submit(std::forward<F>(f));
  }
  template <typename F, typename A>
  void post(F&& f, const A&) const
  {
    ctx_->submit(std::forward<F>(f));
  }
  template <typename F, typename A>
  void defer(F&& f, const A&) const
  {
    ctx_->submit(std::forward<F>(f));
  }

  bool operator==(const ts_executor& o) const noexcept { return ctx_ == o.ctx_; }
  bool operator!=(const ts_executor& o) const noexcept { return ctx_ != o.ctx_; }

private:
  manual_context* ctx_;
};

/// Standard executor of a manual_context.
class manual_context::std_executor
{
public:
  explicit std_executor(manual_context& c) noexcept : ctx_(&c) {}

  manual_context& query(asio::execution::context_t) const noexcept { return *ctx_; }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept
  {
    return asio::execution::blocking.never;
  }
  std_executor require(asio::execution::blocking_t::never_t) const noexcept
  {
    return *this;
  }
  std_executor require(asio::execution::blocking_t::possibly_t) const noexcept
  {
    return *this;
  }

  template <typename F>
  void execute(F&& f) const
  {
    ctx_->submit(std::forward<F>(f));
  }

  bool operator==(const std_executor& o) const noexcept { return ctx_ == o.ctx_; }
  bool operator!=(const std_executor& o) const noexcept { return ctx_ != o.ctx_; }

private:
  manual_context* ctx_;
};

inline manual_context::ts_executor manual_context::get_executor() noexcept
{
  return ts_executor(*this);
}

inline manual_context::std_executor manual_context::get_std_executor() noexcept
{
  return std_executor(*this);
}

} // namespace test

#endif // ASIO_WAKER_TEST_SUPPORT_HPP
