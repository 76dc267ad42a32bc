//
// test/test_support.hpp: watchdogs and small probes shared by the unit tests.
//
// Every asynchronous test runs its io_context through run_all() or run_until(), which
// fail the test after a deadline instead of hanging; every test case also carries a
// Boost.Test timeout as a last line of defence (threads that never join, say).
//

#ifndef ASIO_WAKER_TEST_SUPPORT_HPP
#define ASIO_WAKER_TEST_SUPPORT_HPP

#include <asio_waker.hpp>

#include <boost/asio.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

namespace test {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace std::chrono_literals;

/// How long any single wait in a test may take before the test fails.
inline constexpr std::chrono::seconds watchdog{20};

/// Boost.Test decorator for every test case: a hard limit in seconds.
inline auto case_timeout() { return boost::unit_test::timeout(60); }

/// Runs `ctx` until it runs out of work; fails the test if it still has work after
/// the watchdog period.
inline void run_all(asio::io_context& ctx)
{
  ctx.restart();
  ctx.run_for(watchdog);
  BOOST_REQUIRE_MESSAGE(ctx.stopped(),
      "watchdog: io_context still had work after " << watchdog.count() << " s");
}

/// Runs `ctx` until `done()` holds; fails the test at the watchdog deadline.
inline void run_until(asio::io_context& ctx, const std::function<bool()>& done)
{
  const auto deadline = std::chrono::steady_clock::now() + watchdog;
  ctx.restart();
  while (!done())
  {
    BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
        "watchdog: condition not reached after " << watchdog.count() << " s");
    if (ctx.run_one_for(10ms) == 0 && ctx.stopped())
      ctx.restart();
  }
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

/// What a callback handler saw.
struct outcome
{
  int calls = 0;
  error_code ec;
};

/// A callback handler recording into an outcome.
inline auto record(outcome& o)
{
  return [&o](error_code ec) { ++o.calls; o.ec = ec; };
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
    ~token() { if (destroyed) ++*destroyed; }
  };
  token make() const { return token(destroyed); }
};

} // namespace test

#endif // ASIO_WAKER_TEST_SUPPORT_HPP
