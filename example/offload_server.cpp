//
// offload_server.cpp
// ~~~~~~~~~~~~~~~~~~
//
// A TCP server for the line protocol in offload_protocol.hpp. Every connection is a
// coroutine on one io_context thread; the CPU-heavy part of a request runs on a
// thread_pool, and the coroutine co_awaits the result through an atomic_waker.
//
// usage: offload_server [--port P] [--threads N] [--handoff waker|timer|channel]
//                       [--write-timeout-ms MS]
//
// It listens on 127.0.0.1 (port 0, the default, picks a free port) and prints the port
// as its first line. SIGINT or SIGTERM stops it: no more accepts, every session and its
// pending wait cancelled, the workers joined, exit status 0.
//
// --handoff picks how a finished job gets back to its session, so that one binary can
// compare the waker with the two usual alternatives: the steady_timer idiom and
// experimental::concurrent_channel.
//

#include <asio_waker.hpp>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include "offload_protocol.hpp"

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

constexpr auto use_nothrow_awaitable = asio::as_tuple(use_awaitable);

//------------------------------------------------------------------------------
// How a reply computed on a worker thread gets back to its session.
//
// A session owns one handoff object, shared with the job it has queued: the job may
// outlive the session (the client left, or the server is stopping and has cancelled
// the wait), and the worker must still have somewhere to write.

// The waker. The worker fills the slot, then wakes; the wait completes after the wake
// (release/acquire), so the coroutine reads the slot without a lock.
struct waker_handoff
{
  explicit waker_handoff(const asio::any_io_executor& ex) : waker(ex) {}

  static void complete(const std::shared_ptr<waker_handoff>& self, std::string reply)
  {
    self->slot = std::move(reply);
    self->waker.wake();
  }

  awaitable<std::string> wait()
  {
    co_await waker.async_wait(use_awaitable);
    co_return std::move(slot);
  }

  asio_waker::atomic_waker waker;
  std::string slot;
};

// The steady_timer idiom: a timer that never expires is cancelled to wake its waiter.
// A timer is not thread-safe, so the worker must post the cancel to the session's
// executor, and a flag is needed for a cancel that runs before the wait starts.
struct timer_handoff
{
  explicit timer_handoff(const asio::any_io_executor& ex) : timer(ex) {}

  static void complete(const std::shared_ptr<timer_handoff>& self, std::string reply)
  {
    asio::post(self->timer.get_executor(), [self, reply = std::move(reply)]() mutable {
      self->slot = std::move(reply);
      self->done = true;
      self->timer.cancel();
    });
  }

  awaitable<std::string> wait()
  {
    timer.expires_at(asio::steady_timer::time_point::max());
    while (!done)
      co_await timer.async_wait(use_nothrow_awaitable);
    done = false;
    co_return std::move(slot);
  }

  asio::steady_timer timer;
  bool done = false;
  std::string slot;
};

// A channel of capacity 1: thread-safe, but a heavier machine for a single handoff.
struct channel_handoff
{
  explicit channel_handoff(const asio::any_io_executor& ex) : channel(ex, 1) {}

  static void complete(const std::shared_ptr<channel_handoff>& self, std::string reply)
  {
    self->channel.try_send(boost::system::error_code{}, std::move(reply));
  }

  awaitable<std::string> wait() { co_return co_await channel.async_receive(use_awaitable); }

  asio::experimental::concurrent_channel<void(boost::system::error_code, std::string)>
    channel;
};

//------------------------------------------------------------------------------

awaitable<void> timeout(std::chrono::steady_clock::duration d)
{
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(use_nothrow_awaitable);
}

// Sends a last line and closes. Closing with unread request bytes still queued would
// make the kernel reset the connection, and the client could lose the error line; so
// shut our side, then drain what the client still sends (bounded by the caller's timeout).
awaitable<void> send_last_line(tcp::socket& socket, std::string_view line)
{
  auto [ec, n] =
    co_await asio::async_write(socket, asio::buffer(line), use_nothrow_awaitable);
  if (ec)
    co_return;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  char sink[4096];
  for (std::size_t total = 0; total < 1024 * 1024; total += n)
  {
    std::tie(ec, n) =
      co_await socket.async_read_some(asio::buffer(sink), use_nothrow_awaitable);
    if (ec)
      break;
  }
}

template <typename Handoff>
awaitable<void> session(
  tcp::socket socket, asio::thread_pool& pool, std::chrono::milliseconds write_timeout)
{
  auto handoff = std::make_shared<Handoff>(socket.get_executor());
  std::string input;
  for (;;)
  {
    auto [ec, n] = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(input, offload::max_line), '\n', use_nothrow_awaitable);
    if (ec == asio::error::not_found) // max_line bytes without a '\n'
    {
      co_await (send_last_line(socket, offload::line_too_long) || timeout(1s));
      co_return;
    }
    if (ec) // end of file, connection reset, or the server is stopping
      co_return;

    std::string reply;
    if (auto request = offload::parse_request(std::string_view(input).substr(0, n - 1)))
    {
      asio::post(pool, [handoff, request = std::move(*request)] {
        Handoff::complete(
          handoff, offload::format_reply(
                     offload::digest(request.text, request.rounds), request.text));
      });
      reply = co_await handoff->wait();
    }
    else
    {
      reply = offload::bad_request;
    }
    input.erase(0, n);

    // A client that sends requests but never reads its replies would hold this
    // session (and its buffers) forever: give each write a deadline.
    auto result =
      co_await (asio::async_write(socket, asio::buffer(reply), use_nothrow_awaitable)
                || timeout(write_timeout));
    if (result.index() == 1 || std::get<0>(std::get<0>(result)))
      co_return;
  }
}

// Accepts until the acceptor is closed. Every session gets a cancellation signal of its
// own, kept in `sessions` so that stopping the server can cancel whatever it awaits.
template <typename Handoff>
awaitable<void> listener(tcp::acceptor& acceptor, asio::thread_pool& pool,
  std::list<asio::cancellation_signal>& sessions, std::chrono::milliseconds write_timeout)
{
  auto ex = acceptor.get_executor();
  while (acceptor.is_open())
  {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow_awaitable);
    if (ec == asio::error::operation_aborted)
      co_return;
    if (ec) // e.g. out of file descriptors: back off rather than spin
    {
      co_await timeout(100ms);
      continue;
    }
    auto it = sessions.emplace(sessions.end());
    asio::co_spawn(ex, session<Handoff>(std::move(socket), pool, write_timeout),
      asio::bind_cancellation_slot(it->slot(), [ex, &sessions, it](std::exception_ptr) {
        // co_spawn still uses the slot while it unwinds: erase the signal later.
        asio::post(ex, [&sessions, it] { sessions.erase(it); });
      }));
  }
}

int usage()
{
  std::cerr << "usage: offload_server [--port P] [--threads N] "
               "[--handoff waker|timer|channel] [--write-timeout-ms MS]\n";
  return 2;
}

int main(int argc, char* argv[])
{
  unsigned short port = 0;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string handoff = "waker";
  std::chrono::milliseconds write_timeout = 5s;
  for (int i = 1; i + 1 < argc; i += 2)
  {
    std::string_view flag = argv[i];
    if (flag == "--port")
      port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (flag == "--threads")
      threads = static_cast<unsigned>(std::max(1, std::atoi(argv[i + 1])));
    else if (flag == "--handoff")
      handoff = argv[i + 1];
    else if (flag == "--write-timeout-ms")
      write_timeout = std::chrono::milliseconds(std::max(1, std::atoi(argv[i + 1])));
    else
      return usage();
  }
  if (argc % 2 == 0 || (handoff != "waker" && handoff != "timer" && handoff != "channel"))
    return usage();

  try
  {
    std::list<asio::cancellation_signal> sessions; // outlives the coroutines that use it
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), port});

    asio::thread_pool pool(
      threads); // joined or destroyed before io: its jobs wake io's coroutines

    auto rethrow = [](std::exception_ptr e) {
      if (e)
        std::rethrow_exception(e);
    };
    if (handoff == "waker")
      asio::co_spawn(
        io, listener<waker_handoff>(acceptor, pool, sessions, write_timeout), rethrow);
    else if (handoff == "timer")
      asio::co_spawn(
        io, listener<timer_handoff>(acceptor, pool, sessions, write_timeout), rethrow);
    else
      asio::co_spawn(
        io, listener<channel_handoff>(acceptor, pool, sessions, write_timeout), rethrow);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      acceptor.close();
      for (auto& s : sessions)
        s.emit(asio::cancellation_type::terminal);
    });

    // Ready, SIGTERM handling included: tell the port.
    std::cout << acceptor.local_endpoint().port() << std::endl;

    io.run(); // returns once the listener and every session have finished
    pool.join();
  }
  catch (std::exception& e)
  {
    std::cerr << "offload_server: " << e.what() << "\n";
    return 1;
  }
}
