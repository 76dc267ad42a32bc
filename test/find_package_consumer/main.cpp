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

  // The channel, from the same package: one value, then eof after the last sender.
  int got = 0;
  asio_waker::error_code end;
  auto channel = asio_waker::make_channel<int>(ctx);
  auto& rx = channel.second;
  channel.first.send(7);
  rx.async_receive([&](asio_waker::error_code ec, int v) {
    got = ec ? -1 : v;
    rx.async_receive([&](asio_waker::error_code ec2, int) { end = ec2; });
  });
  ctx.restart();
  ctx.run_one();
  { auto last = std::move(channel.first); } // the last sender gone: eof
  ctx.run();
  ok = ok && got == 7 && end == asio_waker::net::error::eof;

  std::printf("consumer (%s %d): %s\n", ASIO_WAKER_ASIO_FLAVOUR, ASIO_WAKER_ASIO_VERSION,
    ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
