// PLACEHOLDER (infra): replaced by the examples engineer.
// A worker thread hands results to a coroutine on an io_context.
#include <boost/asio.hpp>

#include <cstdio>
#include <thread>

namespace asio = boost::asio;

int main()
{
    asio::io_context ctx;
    int result = 0;
    auto guard = asio::make_work_guard(ctx);
    std::thread worker([&] {
        int r = 6 * 7;  // "blocking" work off the io_context
        asio::post(ctx, [&, r] { result = r; guard.reset(); });
    });
    ctx.run();
    worker.join();
    std::printf("bridge: result %d\n", result);
    return result == 42 ? 0 : 1;
}
