//
// stream_results.cpp
// ~~~~~~~~~~~~~~~~~~
//
// Many threads produce, one coroutine consumes: a stream of results through an
// asio_waker channel. Each worker of a thread_pool holds a copy of the sender and sends
// its results as it computes them; a coroutine on an io_context receives whatever has
// arrived in one go (async_receive_many) and prints it. When the last worker is done,
// the last sender is gone and the channel is closed: the coroutine receives every
// result still queued, then eof, and the program ends.
//
// The other way round: a consumer that stops early (after TAKE results) destroys its
// receiver, and from then on send() returns false, which tells the workers to stop.
//
// usage: stream_results [WORKERS [JOBS [TAKE]]]     defaults: 4, 1000, all
//
// Job n (1 to JOBS, shared out round robin between the workers) counts the steps of
// the Collatz sequence from n down to 1. Prints "steps(<n>) = <steps>, worker <w>" for every
// result received, then "eof: N results in B batches" (or "took N results, stopped"),
// and exits with status 0.
//

#include <asio_waker/channel.hpp>
// Either Asio: Boost.Asio, or standalone Asio when built with the CMake target
// asio_waker::asio_waker_standalone (which defines ASIO_WAKER_STANDALONE_ASIO).
#if defined(ASIO_WAKER_STANDALONE_ASIO)
#include <asio.hpp>
#else
#include <boost/asio.hpp>
#endif
#include <charconv>
#include <cstdint>
#include <iostream>
#include <string_view>
#include <vector>

namespace asio = asio_waker::net; // boost::asio or ::asio

struct result
{
  unsigned worker;
  std::uint64_t job;
  unsigned steps;
};

unsigned collatz_steps(std::uint64_t n)
{
  unsigned steps = 0;
  for (; n != 1; ++steps)
    n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

// Each worker gets its own copy of the sender; this function's copy is destroyed when
// it returns, so from then on the workers hold the only ones.
void start_workers(asio::thread_pool& pool, unsigned workers, std::uint64_t jobs,
  asio_waker::sender<result> results)
{
  for (unsigned w = 0; w < workers; ++w)
    asio::post(pool, [results, w, workers, jobs] {
      for (std::uint64_t job = 1 + w; job <= jobs; job += workers)
        if (!results.send(result{w, job, collatz_steps(job)}))
          return; // the receiver is gone: nobody wants the rest
    });           // the copy goes with the worker's function object
}

asio::awaitable<void> print_results(
  asio_waker::receiver<result> results, std::uint64_t take)
{
  std::vector<result> batch;
  std::uint64_t received = 0, batches = 0;
  while (received < take)
  {
    // Waits for at least one result, then takes every one queued, up to the limit.
    batch.clear();
    asio_waker::error_code ec;
    co_await results.async_receive_many(batch, 1024, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) // eof (nothing cancels this receive): every sender gone, every result taken
    {
      std::cout << (ec == asio::error::eof ? "eof" : ec.message()) << ": " << received
                << " results in " << batches << " batches\n";
      co_return;
    }

    ++batches;
    for (const result& r : batch)
      if (received++ < take)
        std::cout << "steps(" << r.job << ") = " << r.steps << ", worker " << r.worker
                  << "\n";
  }
  std::cout << "took " << take << " results, stopped\n";
} // `results`, the receiver, is destroyed here: the workers' sends now return false

int main(int argc, char* argv[])
{
  std::uint64_t args[] = {4, 1000, UINT64_MAX}; // workers, jobs, take
  bool ok = argc <= 4;
  for (int i = 1; ok && i < argc; ++i)
  {
    std::string_view arg = argv[i];
    auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), args[i - 1]);
    ok = !arg.empty() && ec == std::errc{} && end == arg.data() + arg.size();
  }
  auto [workers, jobs, take] = args;
  if (!ok || workers == 0 || workers > 256)
  {
    std::cerr << "usage: stream_results [WORKERS [JOBS [TAKE]]]\n";
    return 2;
  }

  asio::io_context io;
  asio::thread_pool pool(workers);
  {
    auto [tx, rx] = asio_waker::make_channel<result>(io);
    asio::co_spawn(io, print_results(std::move(rx), take), asio::detached);
    start_workers(pool, static_cast<unsigned>(workers), jobs, std::move(tx));
  }
  io.run(); // a pending receive counts as work: this returns when the coroutine ends
  pool.join();
}
