// Consumer of the installed (or add_subdirectory'd) asio_waker package.
#include <asio_waker.hpp>

#include <boost/asio.hpp>

#include <cstdio>

int main()
{
  boost::asio::io_context ctx;
  bool ok = false;
  asio_waker::atomic_waker waker(ctx);
  waker.wake(); // stores a permit
  waker.async_wait([&](boost::system::error_code ec) { ok = !ec; });
  ctx.run();
  std::puts(ok ? "consumer: ok" : "consumer: FAILED");
  return ok ? 0 : 1;
}
