// Consumer of the installed (or add_subdirectory'd) asio_waker package, either flavour.
#include <asio_waker.hpp>

#if defined(ASIO_WAKER_STANDALONE_ASIO)
#include <asio/io_context.hpp>
#if defined(BOOST_VERSION) || defined(BOOST_ASIO_VERSION)
#error "the standalone flavour included a Boost header"
#endif
#else
#include <boost/asio/io_context.hpp>
#endif

#include <cstdio>

int main()
{
  asio_waker::net::io_context ctx;
  bool ok = false;
  asio_waker::atomic_waker waker(ctx);
  waker.wake(); // stores a permit
  waker.async_wait([&](asio_waker::error_code ec) { ok = !ec; });
  ctx.run();
  std::printf("consumer (%s %d): %s\n", ASIO_WAKER_ASIO_FLAVOUR, ASIO_WAKER_ASIO_VERSION,
    ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
