//
// handoff_server.cpp
// ~~~~~~~~~~~~~~~~~~
//
// A server-level benchmark: example/offload_server.cpp's service (its line protocol,
// one coroutine per connection on one io_context thread, the digest on a thread_pool)
// with four ways for the worker to hand the reply back to the waiting session:
//
//   waker               asio_waker::atomic_waker, as offload_server does
//   timer               the steady_timer idiom: a timer at time_point::max(), a flag,
//                       and a cancel() posted to the session's executor
//   concurrent_channel  asio::experimental::concurrent_channel, capacity 1
//   channel             asio_waker's channel: the job sends, the session receives
//
// usage: handoff_server waker|timer|concurrent_channel|channel [PORT [THREADS]]
//
// Listens on 127.0.0.1 (PORT 0, the default, picks a free one), prints its port as its
// first line; SIGINT or SIGTERM stops it with exit status 0. Only what the benchmark
// needs: no write deadlines and no error line for overlong requests (see
// offload_server for those). bench/handoff_bench.sh runs it with offload_client.
//

#include <asio_waker.hpp>
#include <asio_waker/channel.hpp>
#include <boost/asio.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include "../example/offload_protocol.hpp"

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

constexpr auto nothrow_awaitable = asio::as_tuple(use_awaitable);

// Each hand-off is shared by a session and the jobs it queues: complete() runs on a
// worker thread, wait() in the session, one job at a time.

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

// A timer is not thread-safe: the worker posts the cancel to the session's executor,
// and the flag keeps a cancel that runs before the wait starts from being lost.
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
      co_await timer.async_wait(nothrow_awaitable);
    done = false;
    co_return std::move(slot);
  }

  asio::steady_timer timer;
  bool done = false;
  std::string slot;
};

struct concurrent_channel_handoff
{
  explicit concurrent_channel_handoff(const asio::any_io_executor& ex) : channel(ex, 1) {}

  static void complete(
    const std::shared_ptr<concurrent_channel_handoff>& self, std::string reply)
  {
    self->channel.try_send(boost::system::error_code{}, std::move(reply));
  }

  awaitable<std::string> wait() { co_return co_await channel.async_receive(use_awaitable); }

  asio::experimental::concurrent_channel<void(boost::system::error_code, std::string)>
    channel;
};

struct channel_handoff
{
  using channel =
    std::pair<asio_waker::sender<std::string>, asio_waker::receiver<std::string>>;

  explicit channel_handoff(const asio::any_io_executor& ex)
    : channel_handoff(asio_waker::make_channel<std::string>(ex))
  {}

  explicit channel_handoff(channel c)
    : sender(std::move(c.first)), receiver(std::move(c.second))
  {}

  static void complete(const std::shared_ptr<channel_handoff>& self, std::string reply)
  {
    self->sender.send(std::move(reply));
  }

  awaitable<std::string> wait()
  {
    co_return co_await receiver.async_receive(use_awaitable);
  }

  asio_waker::sender<std::string> sender;
  asio_waker::receiver<std::string> receiver;
};

//------------------------------------------------------------------------------

template <typename Handoff>
awaitable<void> session(tcp::socket socket, asio::thread_pool& pool)
{
  auto handoff = std::make_shared<Handoff>(socket.get_executor());
  std::string input;
  for (;;)
  {
    auto [ec, n] = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(input, offload::max_line), '\n', nothrow_awaitable);
    if (ec)
      co_return;

    std::string reply(offload::bad_request);
    if (auto request = offload::parse_request(std::string_view(input).substr(0, n - 1)))
    {
      asio::post(pool, [handoff, request = std::move(*request)] {
        Handoff::complete(
          handoff, offload::format_reply(
                     offload::digest(request.text, request.rounds), request.text));
      });
      reply = co_await handoff->wait();
    }
    input.erase(0, n);

    std::tie(ec, n) =
      co_await asio::async_write(socket, asio::buffer(reply), nothrow_awaitable);
    if (ec)
      co_return;
  }
}

template <typename Handoff>
awaitable<void> listener(tcp::acceptor& acceptor, asio::thread_pool& pool)
{
  for (;;)
  {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    asio::co_spawn(
      acceptor.get_executor(), session<Handoff>(std::move(socket), pool), asio::detached);
  }
}

int usage()
{
  std::cerr << "usage: handoff_server waker|timer|concurrent_channel|channel "
               "[PORT [THREADS]]\n";
  return 2;
}

int main(int argc, char* argv[])
{
  if (argc < 2 || argc > 4)
    return usage();
  std::string_view handoff = argv[1];
  auto port = static_cast<unsigned short>(argc > 2 ? std::atoi(argv[2]) : 0);
  int threads = argc > 3 ? std::atoi(argv[3]) : 0;
  if (threads < 1)
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  asio::io_context io;
  asio::thread_pool pool(threads); // joined before io goes: its jobs use io's objects
  tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), port});
  if (handoff == "waker")
    asio::co_spawn(io, listener<waker_handoff>(acceptor, pool), asio::detached);
  else if (handoff == "timer")
    asio::co_spawn(io, listener<timer_handoff>(acceptor, pool), asio::detached);
  else if (handoff == "concurrent_channel")
    asio::co_spawn(
      io, listener<concurrent_channel_handoff>(acceptor, pool), asio::detached);
  else if (handoff == "channel")
    asio::co_spawn(io, listener<channel_handoff>(acceptor, pool), asio::detached);
  else
    return usage();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
  std::cout << acceptor.local_endpoint().port() << std::endl; // ready, SIGTERM included
  io.run();
  pool.join();
}
