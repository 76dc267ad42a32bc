// example/readme_snippet.cpp: the README shows this file verbatim; the tests build and
// run it, and check that the README's copy matches.
#include <asio_waker.hpp>
#include <boost/asio.hpp>
#include <iostream>
#include <vector>

namespace asio = boost::asio;

// One event: a worker writes a result, then wakes the coroutine.
asio::awaitable<void> await_result(asio_waker::atomic_waker& waker, const int& result)
{
  co_await waker.async_wait(asio::use_awaitable); // resumes once a worker called wake()
  std::cout << "result " << result << '\n';       // the worker's write is visible here
}

// A stream: workers send values, the coroutine takes them in batches until the
// last sender is gone.
asio::awaitable<void> sum_values(asio_waker::receiver<int> rx)
{
  std::vector<int> batch;
  long sum = 0;
  for (;;)
  {
    auto [ec, n] = co_await rx.async_receive_many(batch, 64, asio::as_tuple(asio::use_awaitable));
    if (ec) // asio::error::eof: every sender is gone and every value was received
      break;
    for (std::size_t i = 0; i != n; ++i)
      sum += batch[i];
    batch.clear();
  }
  std::cout << "sum " << sum << '\n';
}

void send_values(asio::thread_pool& pool, asio_waker::sender<int> tx)
{
  for (int i = 1; i <= 100; ++i)
    asio::post(pool, [tx, i] { tx.send(i); });   // each job holds a copy of the sender
} // this copy goes here; the last job's copy closes the channel

int main()
{
  asio::io_context ctx;
  asio::thread_pool pool(4);

  asio_waker::atomic_waker waker(ctx);
  int result = 0;                                // plain data: wake() publishes it
  asio::co_spawn(ctx, await_result(waker, result), asio::detached);
  asio::post(pool, [&] { result = 42; waker.wake(); }); // wake() from any thread

  auto [tx, rx] = asio_waker::make_channel<int>(ctx);
  asio::co_spawn(ctx, sum_values(std::move(rx)), asio::detached);
  send_values(pool, std::move(tx));

  ctx.run();                                     // returns once both coroutines are done
  pool.join();
}
