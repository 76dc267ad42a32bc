//
// blocking_bridge.cpp
// ~~~~~~~~~~~~~~~~~~~
//
// A blocking API feeding a coroutine. A std::thread reads stdin with blocking calls
// and hands every line to a coroutine on an io_context, through a queue and an
// atomic_waker. The coroutine waits for input with a timeout (awaitable_operators):
// when nothing arrives in time it gives up, which cancels its pending wait, and the
// reader thread is told to stop.
//
// usage: producer | blocking_bridge [TIMEOUT_MS]     (default 2000)
//
// Prints "line N: <text>" for every line, then one of
//   end of input, N lines
//   no input for TIMEOUT_MS ms, giving up, N lines
//   interrupted, N lines                  (SIGINT or SIGTERM)
// and exits with status 0.
//

#include <asio_waker.hpp>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <poll.h>
#include <unistd.h>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

// From the reader thread to the coroutine.
struct line_queue
{
  explicit line_queue(asio::io_context& io) : waker(io) {}

  std::mutex mutex; // guards the two below
  std::deque<std::string> lines;
  bool eof = false;
  asio_waker::atomic_waker waker; // woken after every change to the above
};

// The blocking side. A blocked read() cannot be interrupted portably, so the thread
// blocks in poll() on stdin and on `stop_fd` together, and reads only what is ready.
void read_lines(line_queue& queue, int stop_fd)
{
  std::string pending;
  char buf[4096];
  for (;;)
  {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0)
    {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents != 0) // asked to stop
      break;
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    pending.append(buf, static_cast<std::size_t>(n));

    std::deque<std::string> complete;
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;
         pending.erase(0, end + 1))
      complete.push_back(pending.substr(0, end));
    if (pending.size() > 64 * 1024) // an endless line is passed on in pieces
      complete.push_back(std::exchange(pending, {}));
    if (!complete.empty())
    {
      {
        std::lock_guard lock(queue.mutex);
        for (auto& line : complete)
          queue.lines.push_back(std::move(line));
      }
      queue.waker.wake();
    }
  }
  {
    std::lock_guard lock(queue.mutex);
    if (!pending.empty())
      queue.lines.push_back(std::move(pending));
    queue.eof = true;
  }
  queue.waker.wake();
}

std::string lines(std::size_t n)
{
  return std::to_string(n) + (n == 1 ? " line" : " lines");
}

awaitable<void> timeout(std::chrono::milliseconds d)
{
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(use_awaitable);
}

// The asynchronous side.
awaitable<void> print_lines(line_queue& queue, std::chrono::milliseconds patience)
{
  auto cancellation = co_await asio::this_coro::cancellation_state;
  std::size_t count = 0;
  try
  {
    for (;;)
    {
      std::deque<std::string> batch;
      bool eof;
      {
        std::lock_guard lock(queue.mutex);
        batch.swap(queue.lines);
        eof = queue.eof;
      }
      for (auto& line : batch)
        std::cout << "line " << ++count << ": " << line << "\n";
      std::cout.flush();
      if (eof)
      {
        std::cout << "end of input, " << lines(count) << std::endl;
        co_return;
      }
      if (!batch.empty())
        continue;

      // Nothing queued: wait for a wake, or give up. When the timeout wins, the
      // operator cancels the waker's wait (it completes with operation_aborted).
      auto woken = co_await (queue.waker.async_wait(use_awaitable) || timeout(patience));
      if (woken.index() == 1)
      {
        std::cout << "no input for " << patience.count() << " ms, giving up, "
                  << lines(count) << std::endl;
        co_return;
      }
    }
  }
  catch (const std::exception&)
  {
    if (cancellation.cancelled() == asio::cancellation_type::none)
      throw;
    std::cout << "interrupted, " << lines(count) << std::endl;
  }
}

int main(int argc, char* argv[])
{
  if (argc > 2)
  {
    std::cerr << "usage: producer | blocking_bridge [TIMEOUT_MS]\n";
    return 2;
  }
  std::chrono::milliseconds patience(argc > 1 ? std::max(1, std::atoi(argv[1])) : 2000);

  int stop_pipe[2];
  if (::pipe(stop_pipe) != 0)
    return 1;

  asio::io_context io;
  line_queue queue(io);
  std::thread reader(read_lines, std::ref(queue), stop_pipe[0]);

  // SIGINT or SIGTERM cancels the coroutine, and with it its pending wait.
  asio::cancellation_signal cancel;
  bool done = false;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec && !done)
      cancel.emit(asio::cancellation_type::terminal);
  });

  std::exception_ptr error;
  asio::co_spawn(io, print_lines(queue, patience),
    asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
      done = true;
      error = e;
      signals.cancel(); // nothing left to interrupt
    }));
  io.run();

  // The coroutine is done: stop the reader (it may still be blocked on stdin) and join it.
  (void)!::write(stop_pipe[1], "x", 1);
  reader.join();
  ::close(stop_pipe[0]);
  ::close(stop_pipe[1]);

  try
  {
    if (error)
      std::rethrow_exception(error);
  }
  catch (std::exception& e)
  {
    std::cerr << "blocking_bridge: " << e.what() << "\n";
    return 1;
  }
}
