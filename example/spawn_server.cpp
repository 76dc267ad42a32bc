//
// spawn_server.cpp
// ~~~~~~~~~~~~~~~~
//
// offload_server's service written with stackful coroutines: boost::asio::spawn and
// yield_context (Boost.Context). A session hands each request to a thread_pool and waits
// for the reply with waker.async_wait(yield), exactly as it would wait for a socket.
//
// usage: spawn_server [PORT [THREADS [WRITE_TIMEOUT_MS]]]
//        defaults: 0 (a free port), one worker thread per core, 5000
//
// It listens on 127.0.0.1 and prints its port as its first line. SIGINT or SIGTERM
// stops it: the acceptor and every socket are closed and every pending wait is
// cancelled with atomic_waker::cancel(); exit status 0.
//

#include <asio_waker.hpp>
#include <boost/asio.hpp>
#include <boost/asio/spawn.hpp>
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
using asio::ip::tcp;
using namespace std::chrono_literals;

// Shared by a session and the job it has queued, which may outlive the session.
struct handoff
{
  explicit handoff(const asio::any_io_executor& ex) : waker(ex) {}

  asio_waker::atomic_waker waker;
  std::string reply; // written by a worker before waker.wake()
};

// What the server needs to stop a session.
struct session_handle
{
  tcp::socket* socket;
  asio_waker::atomic_waker* waker;
};

struct server
{
  server(asio::io_context& io, unsigned short port, int threads,
    std::chrono::milliseconds write_timeout)
    : acceptor(io, {asio::ip::address_v4::loopback(), port}), pool(threads),
      write_timeout(write_timeout)
  {}

  void listen(asio::yield_context yield)
  {
    while (!stopping)
    {
      boost::system::error_code ec;
      tcp::socket socket = acceptor.async_accept(yield[ec]);
      if (stopping)
        return;
      if (ec) // e.g. out of file descriptors: back off rather than spin
      {
        asio::steady_timer(acceptor.get_executor(), 100ms).async_wait(yield[ec]);
        continue;
      }
      asio::spawn(
        acceptor.get_executor(),
        [this, socket = std::move(socket)](
          asio::yield_context yield) mutable { session(std::move(socket), yield); },
        [](std::exception_ptr e) {
          if (e)
            std::rethrow_exception(e);
        });
    }
  }

  void session(tcp::socket s, asio::yield_context yield)
  {
    // Held through a shared_ptr so that a deadline handler still queued when the
    // session returns never closes a destroyed socket.
    auto socket = std::make_shared<tcp::socket>(std::move(s));
    auto shared = std::make_shared<handoff>(socket->get_executor());
    auto self = sessions.insert(sessions.end(), {socket.get(), &shared->waker});
    struct unregister
    {
      std::list<session_handle>& list;
      std::list<session_handle>::iterator it;
      ~unregister() { list.erase(it); }
    } guard{sessions, self};

    // Closes the socket unless disarmed (cancelled) before `timeout` has passed.
    asio::steady_timer deadline(socket->get_executor());
    auto arm = [&](std::chrono::steady_clock::duration timeout) {
      deadline.expires_after(timeout);
      deadline.async_wait([socket](boost::system::error_code e) {
        if (!e)
          socket->close();
      });
    };

    std::string input;
    boost::system::error_code ec;
    while (!stopping)
    {
      std::size_t n = asio::async_read_until(
        *socket, asio::dynamic_buffer(input, offload::max_line), '\n', yield[ec]);
      if (ec == asio::error::not_found) // max_line bytes without a '\n'
      {
        arm(1s);
        send_last_line(*socket, offload::line_too_long, yield);
        return;
      }
      if (ec || stopping)
        return;

      std::string reply =
        handle_request(std::string_view(input).substr(0, n - 1), shared, yield, ec);
      if (ec) // operation_aborted: the server is stopping
        return;
      input.erase(0, n);

      // A client that never reads must not hold the session forever.
      arm(write_timeout);
      asio::async_write(*socket, asio::buffer(reply), yield[ec]);
      if (deadline.cancel() == 0 || ec)
        return;
    }
  }

  // The reply to one request line. The digest is computed on the pool while this
  // coroutine waits for the waker, exactly as it would wait for a socket.
  std::string handle_request(std::string_view line, const std::shared_ptr<handoff>& shared,
    asio::yield_context yield, boost::system::error_code& ec)
  {
    auto request = offload::parse_request(line);
    if (!request)
      return std::string(offload::bad_request);
    asio::post(pool, [shared, request = std::move(*request)] {
      shared->reply =
        offload::format_reply(offload::digest(request.text, request.rounds), request.text);
      shared->waker.wake();
    });
    shared->waker.async_wait(yield[ec]);
    if (ec) // cancelled: the worker may still be writing the reply
      return {};
    return std::move(shared->reply);
  }

  // Writes the error, shuts our side, and drains what the client still sends (until
  // the caller's deadline closes the socket): closing with unread data would reset
  // the connection, and the client could lose the error line.
  static void send_last_line(
    tcp::socket& socket, std::string_view line, asio::yield_context yield)
  {
    boost::system::error_code ec;
    asio::async_write(socket, asio::buffer(line), yield[ec]);
    if (!ec)
      socket.shutdown(tcp::socket::shutdown_send, ec);
    char sink[4096];
    while (!ec)
      socket.async_read_some(asio::buffer(sink), yield[ec]);
  }

  void stop()
  {
    stopping = true;
    acceptor.close();
    for (auto& s : sessions)
    {
      s.socket->close();
      s.waker->cancel();
    }
  }

  tcp::acceptor acceptor;
  asio::thread_pool pool;
  std::chrono::milliseconds write_timeout;
  std::list<session_handle> sessions;
  bool stopping = false;
};

int main(int argc, char* argv[])
{
  if (argc > 4)
  {
    std::cerr << "usage: spawn_server [PORT [THREADS [WRITE_TIMEOUT_MS]]]\n";
    return 2;
  }
  auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  std::chrono::milliseconds write_timeout(argc > 3 ? std::atoi(argv[3]) : 5000);
  if (threads < 1)
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  try
  {
    asio::io_context io;
    server s(io, port, threads, write_timeout);

    asio::spawn(
      io, [&](asio::yield_context yield) { s.listen(yield); },
      [](std::exception_ptr e) {
        if (e)
          std::rethrow_exception(e);
      });

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) { s.stop(); });

    // Ready, SIGTERM handling included: tell the port.
    std::cout << s.acceptor.local_endpoint().port() << std::endl;

    io.run(); // returns once the listener and every session have returned
    s.pool.join();
  }
  catch (std::exception& e)
  {
    std::cerr << "spawn_server: " << e.what() << "\n";
    return 1;
  }
}
