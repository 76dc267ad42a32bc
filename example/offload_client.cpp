//
// offload_client.cpp
// ~~~~~~~~~~~~~~~~~~
//
// A load generator for offload_server, spawn_server and bench/handoff_server: a tool,
// it does not use asio_waker. Opens N connections to 127.0.0.1:P, each sending one
// request at a time for T seconds, checks every reply byte for byte, and prints one
// summary line:
//
//   connections 4  seconds 2.00  requests 31022  req/s 15511  p50 231 us  p99 604 us  max 3170 us  errors 0
//
// usage: offload_client --port P [--connections N] [--seconds T] [--rounds R]
//
// Exit status 0 when every reply was right and at least one request was made.
//

#include <boost/asio.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>
#include "offload_protocol.hpp"

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

struct stats
{
  std::vector<clock_type::duration> latencies;
  std::size_t errors = 0;
};

awaitable<void> connection(tcp::endpoint server, int id, std::uint64_t rounds,
  clock_type::time_point deadline, stats& st)
{
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, use_awaitable);
  socket.set_option(tcp::no_delay(true));

  std::string input;
  for (std::uint64_t seq = 0; clock_type::now() < deadline; ++seq)
  {
    std::string text = "conn" + std::to_string(id) + " request " + std::to_string(seq);
    std::string request = offload::format_request(rounds, text);

    auto start = clock_type::now();
    co_await asio::async_write(socket, asio::buffer(request), use_awaitable);
    auto n = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(input, offload::max_line + 32), '\n', use_awaitable);
    st.latencies.push_back(clock_type::now() - start);

    std::string expected = offload::format_reply(offload::digest(text, rounds), text);
    if (input.compare(0, n, expected) != 0 && st.errors++ < 5)
      std::cerr << "offload_client: wrong reply: " << input.substr(0, n);
    input.erase(0, n);
  }
}

struct options
{
  unsigned short port = 0;
  int connections = 4;
  double seconds = 2.0;
  std::uint64_t rounds = 2000;
};

std::optional<options> parse_args(int argc, char* argv[])
{
  options o;
  for (int i = 1; i + 1 < argc; i += 2)
  {
    std::string_view flag = argv[i];
    if (flag == "--port")
      o.port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (flag == "--connections")
      o.connections = std::atoi(argv[i + 1]);
    else if (flag == "--seconds")
      o.seconds = std::atof(argv[i + 1]);
    else if (flag == "--rounds")
      o.rounds = std::strtoull(argv[i + 1], nullptr, 10);
    else
      return std::nullopt;
  }
  if (argc % 2 == 0 || o.port == 0 || o.connections < 1 || o.connections > 1000
      || !(o.seconds > 0 && o.seconds <= 3600) || o.rounds < 1
      || o.rounds > offload::max_rounds)
    return std::nullopt;
  return o;
}

void print_summary(int connections, std::chrono::duration<double> elapsed,
  std::vector<clock_type::duration>& latencies, std::size_t errors)
{
  std::sort(latencies.begin(), latencies.end());
  auto us = [&](double q) -> long long {
    if (latencies.empty())
      return 0;
    auto i = std::min(latencies.size() - 1,
      static_cast<std::size_t>(q * static_cast<double>(latencies.size())));
    return std::chrono::duration_cast<std::chrono::microseconds>(latencies[i]).count();
  };
  std::printf("connections %d  seconds %.2f  requests %zu  req/s %.0f  "
              "p50 %lld us  p99 %lld us  max %lld us  errors %zu\n",
    connections, elapsed.count(), latencies.size(),
    static_cast<double>(latencies.size()) / elapsed.count(), us(0.50), us(0.99), us(1.0),
    errors);
  std::fflush(stdout);
}

int main(int argc, char* argv[])
{
  auto o = parse_args(argc, argv);
  if (!o)
  {
    std::cerr
      << "usage: offload_client --port P [--connections N] [--seconds T] [--rounds R]\n";
    return 2;
  }

  asio::io_context io;
  tcp::endpoint server(asio::ip::address_v4::loopback(), o->port);
  auto start = clock_type::now();
  auto deadline = start
                  + std::chrono::duration_cast<clock_type::duration>(
                    std::chrono::duration<double>(o->seconds));

  stats st;
  int failed = 0;
  int running = o->connections;

  // A server that stops answering must not hang the client.
  bool timed_out = false;
  asio::steady_timer watchdog(io, deadline + std::chrono::seconds(5));
  watchdog.async_wait([&](boost::system::error_code ec) {
    timed_out = !ec;
    if (timed_out)
      io.stop();
  });

  for (int id = 0; id < o->connections; ++id)
  {
    asio::co_spawn(
      io, connection(server, id, o->rounds, deadline, st), [&](std::exception_ptr e) {
        try
        {
          if (e)
            std::rethrow_exception(e);
        }
        catch (std::exception& ex)
        {
          if (failed++ < 5)
            std::cerr << "offload_client: connection failed: " << ex.what() << "\n";
        }
        if (--running == 0)
          watchdog.cancel();
      });
  }
  io.run();

  print_summary(o->connections, clock_type::now() - start, st.latencies,
    st.errors + static_cast<std::size_t>(failed));
  if (timed_out)
    std::cerr << "offload_client: the server stopped answering\n";
  return timed_out || failed || st.errors || st.latencies.empty() ? 1 : 0;
}
