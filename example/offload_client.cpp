//
// offload_client.cpp
// ~~~~~~~~~~~~~~~~~~
//
// Load generator for offload_server and spawn_server. Opens N connections to
// 127.0.0.1:P, each sending one request at a time for T seconds, checks every reply
// byte for byte, and prints one summary line:
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

int usage()
{
  std::cerr
    << "usage: offload_client --port P [--connections N] [--seconds T] [--rounds R]\n";
  return 2;
}

int main(int argc, char* argv[])
{
  unsigned short port = 0;
  int connections = 4;
  double seconds = 2.0;
  std::uint64_t rounds = 2000;
  for (int i = 1; i + 1 < argc; i += 2)
  {
    std::string_view flag = argv[i];
    if (flag == "--port")
      port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (flag == "--connections")
      connections = std::atoi(argv[i + 1]);
    else if (flag == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (flag == "--rounds")
      rounds = std::strtoull(argv[i + 1], nullptr, 10);
    else
      return usage();
  }
  if (argc % 2 == 0 || port == 0 || connections < 1 || connections > 1000
      || !(seconds > 0 && seconds <= 3600) || rounds < 1 || rounds > offload::max_rounds)
    return usage();

  asio::io_context io;
  tcp::endpoint server(asio::ip::address_v4::loopback(), port);
  auto start = clock_type::now();
  auto deadline = start
                  + std::chrono::duration_cast<clock_type::duration>(
                    std::chrono::duration<double>(seconds));

  stats st;
  int failed = 0;
  int running = connections;

  // A server that stops answering must not hang the client.
  bool timed_out = false;
  asio::steady_timer watchdog(io, deadline + std::chrono::seconds(5));
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (!ec)
    {
      timed_out = true;
      io.stop();
    }
  });

  for (int id = 0; id < connections; ++id)
  {
    asio::co_spawn(
      io, connection(server, id, rounds, deadline, st), [&](std::exception_ptr e) {
        if (e)
        {
          try
          {
            std::rethrow_exception(e);
          }
          catch (std::exception& ex)
          {
            if (failed++ < 5)
              std::cerr << "offload_client: connection failed: " << ex.what() << "\n";
          }
        }
        if (--running == 0)
          watchdog.cancel();
      });
  }
  io.run();

  std::chrono::duration<double> elapsed = clock_type::now() - start;
  auto& lat = st.latencies;
  std::sort(lat.begin(), lat.end());
  auto us = [&](double q) -> long long {
    if (lat.empty())
      return 0;
    auto i = std::min(
      lat.size() - 1, static_cast<std::size_t>(q * static_cast<double>(lat.size())));
    return std::chrono::duration_cast<std::chrono::microseconds>(lat[i]).count();
  };
  std::printf("connections %d  seconds %.2f  requests %zu  req/s %.0f  "
              "p50 %lld us  p99 %lld us  max %lld us  errors %zu\n",
    connections, elapsed.count(), lat.size(),
    static_cast<double>(lat.size()) / elapsed.count(), us(0.50), us(0.99),
    lat.empty() ? 0 : us(1.0), st.errors + static_cast<std::size_t>(failed));
  std::fflush(stdout);
  if (timed_out)
    std::cerr << "offload_client: the server stopped answering\n";
  return timed_out || failed || st.errors || lat.empty() ? 1 : 0;
}
