// Consumer of the installed (or add_subdirectory'd) asio_waker package.
#include <boost/asio.hpp>

#include <cstdio>

#if __has_include(<asio_waker.hpp>)
#include <asio_waker.hpp>
#define CONSUMER_HAS_WAKER 1
#elif __has_include(<asio_waker/atomic_waker.hpp>)
#include <asio_waker/atomic_waker.hpp>
#define CONSUMER_HAS_WAKER 1
#endif

int main()
{
    boost::asio::io_context ctx;
    bool ok = false;
#ifdef CONSUMER_HAS_WAKER
    asio_waker::atomic_waker waker(ctx);
    waker.wake();  // stores a permit
    waker.async_wait([&](boost::system::error_code ec) { ok = !ec; });
#else
    boost::asio::post(ctx, [&] { ok = true; });
#endif
    ctx.run();
    std::puts(ok ? "consumer: ok" : "consumer: FAILED");
    return ok ? 0 : 1;
}
