//
// test/tracking.cpp: the waker reports to Asio's handler tracking like Asio's own I/O
// objects.
//
// Handler tracking is a compile-time switch of Asio's headers, so this file turns it on
// for itself, before any include, under both spellings: Boost.Asio reads
// BOOST_ASIO_ENABLE_HANDLER_TRACKING, standalone Asio ASIO_ENABLE_HANDLER_TRACKING.
// Nothing else in this executable includes Asio, so no other code sees a different
// setting. (The build files need no definition of their own.)
//

#ifndef BOOST_ASIO_ENABLE_HANDLER_TRACKING
#define BOOST_ASIO_ENABLE_HANDLER_TRACKING
#endif
#ifndef ASIO_ENABLE_HANDLER_TRACKING
#define ASIO_ENABLE_HANDLER_TRACKING
#endif

#define BOOST_TEST_MODULE asio_waker handler tracking
#include "test_support.hpp"

#include <cstdio>
#include <string>
#include <unistd.h>

using namespace test;
using asio_waker::atomic_waker;

namespace {

// Captures what the process writes to stderr (where handler tracking goes) while alive.
class stderr_capture
{
public:
  stderr_capture()
  {
    std::fflush(stderr);
    saved_ = ::dup(2);
    file_ = std::tmpfile();
    ::dup2(::fileno(file_), 2);
  }

  std::string finish()
  {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    std::string text;
    std::rewind(file_);
    for (int c; (c = std::fgetc(file_)) != EOF;)
      text += static_cast<char>(c);
    std::fclose(file_);
    return text;
  }

private:
  int saved_ = -1;
  std::FILE* file_ = nullptr;
};

bool contains(const std::string& text, const std::string& what)
{
  return text.find(what) != std::string::npos;
}

// How Asio's tracking prints a handler's invocation with `ec`. The category's name
// differs by flavour (Boost.Asio: "system"; standalone Asio's own codes:
// "asio.system").
std::string invocation(const error_code& ec)
{
  return "|ec=" + std::string(ec.category().name()) + ":" + std::to_string(ec.value());
}

} // namespace

BOOST_AUTO_TEST_SUITE(handler_tracking, *suite_timeout())

BOOST_AUTO_TEST_CASE(creation_operations_completion_and_invocation)
{
  outcome woken, cancelled;
  stderr_capture capture;
  {
    asio::io_context ctx;
    atomic_waker w(ctx);
    w.async_wait(record(woken));
    w.wake();
    w.async_wait(record(cancelled));
    w.cancel();
    ctx.run_for(watchdog);
  }
  const std::string log = capture.finish();
  BOOST_TEST_MESSAGE(log);
  BOOST_TEST(woken.calls == 1);
  BOOST_TEST(!woken.ec);
  BOOST_TEST(cancelled.calls == 1);
  BOOST_TEST(cancelled.ec == asio::error::operation_aborted);
  BOOST_TEST(contains(log, ".async_wait"));
  BOOST_TEST(contains(log, "atomic_waker@"));
  BOOST_TEST(contains(log, ".wake"));
  BOOST_TEST(contains(log, ".cancel"));
  BOOST_TEST(contains(log, invocation(woken.ec)));
  BOOST_TEST(contains(log, invocation(cancelled.ec)));
}

BOOST_AUTO_TEST_SUITE_END()
