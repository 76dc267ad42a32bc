//
// offload_server.cpp
// ~~~~~~~~~~~~~~~~~~
//
// A TCP server whose requests are CPU-heavy (the line protocol in offload_protocol.hpp).
// Every connection is a coroutine on one io_context thread. It hands the heavy part of
// each request to a thread_pool, then co_awaits the reply through an
// asio_waker::atomic_waker, as it would await a socket; the worker writes the reply and
// wakes it.
//
// usage: offload_server [PORT [THREADS [WRITE_TIMEOUT_MS]]]
//        defaults: 0 (a free port), one worker thread per core, 5000
//
// It listens on 127.0.0.1 and prints its port as its first line. SIGINT or SIGTERM
// stops it: no more accepts, every session and its pending wait cancelled, the workers
// joined, exit status 0. offload_client drives it.
//

#include <asio_waker.hpp>
// Either Asio: Boost.Asio, or standalone Asio when built with the CMake target
// asio_waker::asio_waker_standalone (which defines ASIO_WAKER_STANDALONE_ASIO).
#if defined(ASIO_WAKER_STANDALONE_ASIO)
#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#else
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#endif
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include "offload_protocol.hpp"

namespace asio = asio_waker::net; // boost::asio or ::asio
using asio::awaitable;
using asio_waker::error_code;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

// Errors as values: `co_await op(nothrow(ec))` sets ec instead of throwing.
auto nothrow(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// Where a worker leaves a session's reply. Shared with the job, which may outlive the
// session (the client left, or the server is stopping) and must still have somewhere
// to write.
struct handoff
{
  explicit handoff(const asio::any_io_executor& ex) : waker(ex) {}

  asio_waker::atomic_waker waker;
  std::string reply; // written by the worker before wake(), read after the wait
};

awaitable<void> timeout(std::chrono::steady_clock::duration d)
{
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  error_code ec; // cancelled: the other side of an || finished first
  co_await timer.async_wait(nothrow(ec));
}

// Writes a last line before the session closes the connection. Closing with request
// bytes unread would make the kernel reset the connection, and the client could lose
// the line: so shut our side, then read what the client still sends until it closes.
awaitable<void> send_last_line(tcp::socket& socket, std::string_view line)
{
  error_code ec;
  co_await asio::async_write(socket, asio::buffer(line), nothrow(ec));
  if (!ec)
    socket.shutdown(tcp::socket::shutdown_send, ec);
  char sink[4096];
  while (!ec)
    co_await socket.async_read_some(asio::buffer(sink), nothrow(ec));
}

awaitable<void> session(
  tcp::socket socket, asio::thread_pool& pool, std::chrono::milliseconds write_timeout)
{
  auto shared = std::make_shared<handoff>(socket.get_executor());
  std::string input;
  for (;;)
  {
    error_code ec;
    std::size_t n = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(input, offload::max_line), '\n', nothrow(ec));
    if (ec == asio::error::not_found) // max_line bytes without a '\n'
    {
      co_await (send_last_line(socket, offload::line_too_long) || timeout(1s));
      co_return;
    }
    if (ec) // end of file, connection reset, or the server is stopping
      co_return;

    std::string reply(offload::bad_request);
    if (auto request = offload::parse_request(std::string_view(input).substr(0, n - 1)))
    {
      asio::post(pool, [shared, request = std::move(*request)] {
        shared->reply = offload::format_reply(
          offload::digest(request.text, request.rounds), request.text);
        shared->waker.wake(); // a release: the woken session sees the reply
      });
      co_await shared->waker.async_wait(nothrow(ec));
      if (ec) // operation_aborted: the server is stopping
        co_return;
      reply = std::move(shared->reply);
    }
    input.erase(0, n);

    // A client that sends requests but never reads the replies must not hold the
    // session forever: each write has a deadline.
    auto written = co_await (
      asio::async_write(socket, asio::buffer(reply), nothrow(ec)) || timeout(write_timeout));
    if (written.index() == 1 || ec)
      co_return;
  }
}

// Accepts until the acceptor is closed. Each session gets a cancellation signal of its
// own, kept in `sessions`, so that stopping the server can cancel whatever it awaits.
awaitable<void> listener(tcp::acceptor& acceptor, asio::thread_pool& pool,
  std::chrono::milliseconds write_timeout, std::list<asio::cancellation_signal>& sessions)
{
  auto ex = acceptor.get_executor();
  for (;;)
  {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(nothrow(ec));
    if (ec == asio::error::operation_aborted) // the server is stopping
      co_return;
    if (ec) // e.g. out of file descriptors: back off rather than spin
    {
      co_await timeout(100ms);
      continue;
    }
    auto it = sessions.emplace(sessions.end());
    asio::co_spawn(ex, session(std::move(socket), pool, write_timeout),
      asio::bind_cancellation_slot(it->slot(), [ex, &sessions, it](std::exception_ptr) {
        // co_spawn still uses the slot while it unwinds: erase the signal later.
        asio::post(ex, [&sessions, it] { sessions.erase(it); });
      }));
  }
}

int main(int argc, char* argv[])
{
  if (argc > 4)
  {
    std::cerr << "usage: offload_server [PORT [THREADS [WRITE_TIMEOUT_MS]]]\n";
    return 2;
  }
  auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  std::chrono::milliseconds write_timeout(argc > 3 ? std::atoi(argv[3]) : 5000);
  if (threads < 1)
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  try
  {
    std::list<asio::cancellation_signal> sessions; // outlives the coroutines using it
    asio::io_context io;
    asio::thread_pool pool(threads); // joined before io goes: its jobs wake io's sessions
    tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), port});
    asio::co_spawn(io, listener(acceptor, pool, write_timeout, sessions), asio::detached);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](error_code, int) {
      acceptor.close();
      for (auto& s : sessions)
        s.emit(asio::cancellation_type::terminal);
    });

    std::cout << acceptor.local_endpoint().port() << std::endl; // ready, SIGTERM included
    io.run(); // returns once the listener and every session have finished
    pool.join();
  }
  catch (std::exception& e)
  {
    std::cerr << "offload_server: " << e.what() << "\n";
    return 1;
  }
}
