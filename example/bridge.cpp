//
// bridge.cpp
// ~~~~~~~~~~
//
// The smallest useful bridge: a thread_pool computes, a coroutine on an io_context
// consumes. Each job writes its result into its own slot and then wakes the waker
// next to it; the coroutine awaits the wakers in order and prints the results.
//
// No mutex protects the slots: a wake is a release and the completion of the wait it
// ends is an acquire. A job that finishes before the coroutine gets to its waker
// leaves a permit, which the wait then consumes at once: no wake is ever lost.
//

#include <asio_waker.hpp>
#include <boost/asio.hpp>
#include <cstdint>
#include <deque>
#include <iostream>

namespace asio = boost::asio;

// Slow on purpose: the kind of work that must not run on an I/O thread.
std::uint64_t count_primes_below(std::uint64_t n)
{
  std::uint64_t count = n > 2 ? 1 : 0;
  for (std::uint64_t i = 3; i < n; i += 2)
  {
    bool prime = true;
    for (std::uint64_t d = 3; d * d <= i && prime; d += 2)
      prime = i % d != 0;
    count += prime;
  }
  return count;
}

struct job
{
  job(asio::io_context& io, std::uint64_t n) : limit(n), done(io) {}

  const std::uint64_t limit;
  std::uint64_t primes = 0; // written by a worker, before done.wake()
  asio_waker::atomic_waker done;
};

asio::awaitable<void> print_results(std::deque<job>& jobs)
{
  for (job& j : jobs)
  {
    co_await j.done.async_wait(asio::use_awaitable);
    std::cout << "primes below " << j.limit << ": " << j.primes << "\n";
  }
}

int main()
{
  asio::io_context io;
  asio::thread_pool pool(2);

  std::deque<job> jobs; // emplace_back keeps references to the elements valid
  for (std::uint64_t n : {1'000, 10'000, 100'000, 250'000, 500'000})
  {
    job& j = jobs.emplace_back(io, n);
    asio::post(pool, [&j] {
      j.primes = count_primes_below(j.limit);
      j.done.wake();
    });
  }

  asio::co_spawn(io, print_results(jobs), asio::detached);
  io.run(); // a pending wait counts as work: this returns after the last result
  pool.join();
}
