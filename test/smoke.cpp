//
// test/smoke.cpp: what the build compiled against, and the toolchain.
//
// The first test prints one line naming the Asio flavour and release, the compiler and
// the C++ standard, and checks that the library's version macro is the Asio version
// header's. The others prove that the build (and each sanitizer configuration) can
// compile, link and run the kinds of code the suite uses: Boost.Test, C++20 coroutines,
// cross-thread posts and, with Boost.Asio only, stackful coroutines (yield_context, on
// Boost.Context). They do not use the waker.
//

#define BOOST_TEST_MODULE asio_waker smoke
#include "test_support.hpp"

#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace test;

namespace {

std::string compiler()
{
#if defined(__clang__)
  std::string name = "clang " __clang_version__;
#elif defined(__GNUC__)
  std::string name = "g++ " __VERSION__;
#else
  std::string name = "an unknown compiler";
#endif
  name.erase(name.find_last_not_of(' ') + 1); // clang's version ends in a space
  return name;
}

std::string dotted(long version) // Asio's encoding: major * 100000 + minor * 100 + patch
{
  std::ostringstream out;
  out << version / 100000 << '.' << version / 100 % 1000 << '.' << version % 100;
  return out.str();
}

} // namespace

BOOST_AUTO_TEST_SUITE(build, *suite_timeout())

BOOST_AUTO_TEST_CASE(reports_the_asio_it_was_compiled_against)
{
  std::cout << "asio_waker: compiled against " << ASIO_WAKER_ASIO_FLAVOUR << ' '
            << dotted(ASIO_WAKER_ASIO_VERSION) << " with " << compiler()
            << ", __cplusplus=" << __cplusplus << std::endl;

#if defined(ASIO_WAKER_STANDALONE_ASIO)
  BOOST_TEST(ASIO_WAKER_ASIO_VERSION == ASIO_VERSION);
  BOOST_TEST(std::string(ASIO_WAKER_ASIO_FLAVOUR) == "standalone Asio");
  BOOST_TEST((std::is_same_v<asio_waker::error_code, std::error_code>));
#else
  BOOST_TEST(ASIO_WAKER_ASIO_VERSION == BOOST_ASIO_VERSION);
  BOOST_TEST(std::string(ASIO_WAKER_ASIO_FLAVOUR) == "Boost.Asio");
  BOOST_TEST((std::is_same_v<asio_waker::error_code, boost::system::error_code>));
#endif
  BOOST_TEST((std::is_same_v<asio::io_context, asio_waker::net::io_context>));
  BOOST_TEST(ASIO_WAKER_ASIO_VERSION >= 102201); // the oldest release we test: 1.22.1
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(toolchain, *suite_timeout())

BOOST_AUTO_TEST_CASE(awaitable_coroutine_runs)
{
  asio::io_context ctx;
  int result = 0;
  auto body = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
    auto heap = std::make_unique<int>(41); // exercises LSan/ASan paths
    result = *heap + 1;
  };
  asio::co_spawn(ctx, body(), [](std::exception_ptr e) {
    if (e)
      std::rethrow_exception(e);
  });
  run_all(ctx);
  BOOST_TEST(result == 42);
}

BOOST_AUTO_TEST_CASE(post_from_foreign_thread)
{
  asio::io_context ctx;
  auto guard = asio::make_work_guard(ctx);
  int value = 0; // plain int: the post must publish it (TSan checks this)
  std::thread producer([&] {
    value = 7;
    asio::post(ctx, [&] { guard.reset(); });
  });
  run_all(ctx);
  producer.join();
  BOOST_TEST(value == 7);
}

#if ASIO_WAKER_TEST_HAS_SPAWN

BOOST_AUTO_TEST_CASE(spawn_yield_context_runs)
{
  asio::io_context ctx;
  int steps = 0;
  asio::spawn(
    ctx,
    [&](asio::yield_context yield) {
      asio::steady_timer t(ctx);
      for (int i = 0; i < 3; ++i)
      {
        t.expires_after(std::chrono::milliseconds(1));
        error_code ec;
        t.async_wait(yield[ec]);
        BOOST_TEST(!ec);
        ++steps;
      }
    },
    [](std::exception_ptr e) {
      if (e)
        std::rethrow_exception(e);
    });
  run_all(ctx);
  BOOST_TEST(steps == 3);
}

BOOST_AUTO_TEST_CASE(spawn_exception_unwinds)
{
  // An exception thrown inside a stackful coroutine must propagate to the completion
  // handler (exercises unwinding across the context switch).
  asio::io_context ctx;
  bool caught = false;
  asio::spawn(
    ctx,
    [&](asio::yield_context yield) {
      asio::post(ctx, yield);
      throw std::runtime_error("boom");
    },
    [&](std::exception_ptr e) {
      try
      {
        if (e)
          std::rethrow_exception(e);
      }
      catch (const std::runtime_error&)
      {
        caught = true;
      }
    });
  run_all(ctx);
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE(spawn_on_several_threads)
{
  // Several threads each running stackful coroutines: exercises the per-thread
  // main-context record of the ucontext runtime, and lets TSan see cross-thread posts.
  asio::io_context ctx;
  std::atomic<int> done{0};
  for (int i = 0; i < 8; ++i)
  {
    asio::spawn(
      ctx,
      [&](asio::yield_context yield) {
        for (int j = 0; j < 20; ++j)
          asio::post(ctx, yield);
        done.fetch_add(1, std::memory_order_relaxed);
      },
      asio::detached);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&] { ctx.run_for(watchdog); });
  for (auto& t : threads)
    t.join();
  BOOST_TEST(done.load() == 8);
}

#else

// Boost.Asio only: spawn and yield_context are built on Boost.Context.
BOOST_AUTO_TEST_CASE(
  spawn_yield_context_runs, *skipped_because("needs Boost.Context (Boost.Asio only)"))
{}

#endif

BOOST_AUTO_TEST_SUITE_END()
