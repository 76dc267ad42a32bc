//
// chat_server.cpp
// ~~~~~~~~~~~~~~~
//
// The classic chat room, with coroutines: every line a client sends goes to every
// client, and a newcomer first gets the last 100 lines. In addition, a plain
// std::thread (not running Asio) reads stdin and broadcasts each line it reads as
// "[server] <line>".
//
// Each session's outbox is an asio_waker channel. Anyone, on any thread, delivers by
// sending a line to the outbox; the session's writer coroutine receives every line
// queued so far in one go (async_receive_many), writes them with one async_write, and
// waits in the receive when there is nothing left: no lock around the outbox, no lost
// wake-up. (The usual single-threaded idiom is a deque and a steady_timer that is
// cancelled to wake the writer; neither can be touched from the stdin thread.)
//
// usage: chat_server [--port P] [--write-timeout-ms MS]
//
// It listens on 127.0.0.1 (port 0, the default, picks a free port) and prints the port
// as its first line. Lines must be printable ASCII ("ERR bad request" otherwise) and at
// most 512 bytes ("ERR line too long", then the connection is closed). A client that
// does not keep up with the room (its outbox or a write times out) is dropped.
// SIGINT or SIGTERM stops the server, and exit status is 0.
//

#include <asio_waker/channel.hpp>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <stop_token>
#include <thread>
#include <vector>
#include <poll.h>
#include <unistd.h>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;

constexpr auto use_nothrow_awaitable = asio::as_tuple(use_awaitable);
constexpr std::size_t max_line = 512;    // '\n' included
constexpr std::size_t max_recent = 100;  // lines replayed to a newcomer
constexpr std::size_t max_outbox = 1024; // lines queued for one client before it is dropped

//------------------------------------------------------------------------------

class chat_participant
{
public:
  virtual ~chat_participant() = default;
  virtual void deliver(const std::string& msg) = 0; // any thread
};

using chat_participant_ptr = std::shared_ptr<chat_participant>;

// Used by the I/O thread and the stdin thread, hence the mutex (it guards the set and the
// history; the sessions' outboxes need none).
class chat_room
{
public:
  void join(chat_participant_ptr participant)
  {
    std::lock_guard lock(mutex_);
    for (auto& msg : recent_)
      participant->deliver(msg);
    participants_.insert(std::move(participant));
  }

  void leave(const chat_participant_ptr& participant)
  {
    std::lock_guard lock(mutex_);
    participants_.erase(participant);
  }

  void deliver(const std::string& msg)
  {
    std::lock_guard lock(mutex_);
    recent_.push_back(msg);
    while (recent_.size() > max_recent)
      recent_.pop_front();
    for (auto& participant : participants_)
      participant->deliver(msg);
  }

private:
  std::mutex mutex_;
  std::set<chat_participant_ptr> participants_;
  std::deque<std::string> recent_;
};

//------------------------------------------------------------------------------

awaitable<void> timeout(std::chrono::steady_clock::duration d)
{
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(use_nothrow_awaitable);
}

class chat_session : public chat_participant,
                     public std::enable_shared_from_this<chat_session>
{
public:
  chat_session(tcp::socket socket, chat_room& room, std::chrono::milliseconds write_timeout)
    : chat_session(asio_waker::make_channel<std::string>(socket.get_executor()),
      std::move(socket), room, write_timeout)
  {}

  awaitable<void> run()
  {
    struct membership // leave the room however run() ends, cancellation included
    {
      chat_room& room;
      chat_participant_ptr self;
      ~membership() { room.leave(self); }
    } m{room_, shared_from_this()};
    room_.join(m.self);

    // Whichever finishes first cancels the other; for the writer, that cancels
    // its pending receive.
    co_await (reader() || writer());

    if (!last_words_.empty())
      co_await (send_last_line() || timeout(1s));
  }

  void deliver(const std::string& msg) override
  {
    // send() never blocks, whatever the writer is doing. Past max_outbox queued lines
    // this client does not keep up with the room: instead of the line, the outbox
    // gets one empty string (never a chat line, which ends with '\n'), and the writer
    // gives up when it gets there.
    if (queued_.fetch_add(1, std::memory_order_relaxed) < max_outbox)
      outbox_tx_.send(msg);
    else if (!lagging_.exchange(true, std::memory_order_relaxed))
      outbox_tx_.send(std::string());
  }

private:
  using channel =
    std::pair<asio_waker::sender<std::string>, asio_waker::receiver<std::string>>;

  chat_session(channel outbox, tcp::socket socket, chat_room& room,
    std::chrono::milliseconds write_timeout)
    : socket_(std::move(socket)), outbox_tx_(std::move(outbox.first)),
      outbox_rx_(std::move(outbox.second)), room_(room), write_timeout_(write_timeout)
  {}

  awaitable<void> reader()
  {
    std::string input;
    for (;;)
    {
      auto [ec, n] = co_await asio::async_read_until(
        socket_, asio::dynamic_buffer(input, max_line), '\n', use_nothrow_awaitable);
      if (ec == asio::error::not_found)
      {
        last_words_ = "ERR line too long\n";
        co_return;
      }
      if (ec)
        co_return;

      std::string line = input.substr(0, n);
      input.erase(0, n);
      bool printable = true;
      for (std::size_t i = 0; i + 1 < line.size(); ++i)
        printable = printable && line[i] >= 0x20 && line[i] <= 0x7e;
      if (printable)
        room_.deliver(line);
      else
        deliver("ERR bad request\n");
    }
  }

  awaitable<void> writer()
  {
    std::vector<std::string> batch;
    std::vector<asio::const_buffer> buffers;
    for (;;)
    {
      // Every line queued so far, or, with the outbox empty, the next one sent.
      batch.clear();
      auto [ec, n] =
        co_await outbox_rx_.async_receive_many(batch, max_outbox, use_nothrow_awaitable);
      if (ec) // cancelled: the session is ending
        co_return;
      queued_.fetch_sub(n, std::memory_order_relaxed);

      buffers.clear();
      for (auto& msg : batch)
      {
        if (msg.empty()) // from deliver(): this client does not keep up with the room
          co_return;
        buffers.push_back(asio::buffer(msg));
      }
      auto result = co_await (asio::async_write(socket_, buffers, use_nothrow_awaitable)
                              || timeout(write_timeout_));
      if (result.index() == 1 || std::get<0>(std::get<0>(result)))
        co_return;
    }
  }

  // See offload_server.cpp: write, shut our side, drain, so the client gets the line.
  awaitable<void> send_last_line()
  {
    auto [ec, n] =
      co_await asio::async_write(socket_, asio::buffer(last_words_), use_nothrow_awaitable);
    if (ec)
      co_return;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    char sink[4096];
    for (std::size_t total = 0; total < 1024 * 1024; total += n)
    {
      std::tie(ec, n) =
        co_await socket_.async_read_some(asio::buffer(sink), use_nothrow_awaitable);
      if (ec)
        break;
    }
  }

  tcp::socket socket_;
  asio_waker::sender<std::string> outbox_tx_;   // deliver(), any thread
  asio_waker::receiver<std::string> outbox_rx_; // writer()
  std::atomic<std::size_t> queued_{0};          // lines sent and not yet received
  std::atomic<bool> lagging_{false};
  chat_room& room_;
  std::chrono::milliseconds write_timeout_;
  std::string last_words_;
};

//------------------------------------------------------------------------------

awaitable<void> listener(tcp::acceptor& acceptor, chat_room& room,
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
    auto session = std::make_shared<chat_session>(std::move(socket), room, write_timeout);
    auto it = sessions.emplace(sessions.end());
    asio::co_spawn(ex, session->run(),
      asio::bind_cancellation_slot(it->slot(), [ex, &sessions, it](std::exception_ptr) {
        // co_spawn still uses the slot while it unwinds: erase the signal later.
        asio::post(ex, [&sessions, it] { sessions.erase(it); });
      }));
  }
}

// The thread outside Asio: broadcasts every line of stdin. It polls so that it can
// notice a stop request within 100 ms, as a blocked read() cannot be interrupted portably.
void announcer(std::stop_token stop, chat_room& room)
{
  std::string pending;
  char buf[1024];
  while (!stop.stop_requested())
  {
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR)
      return;
    if (ready <= 0)
      continue;
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) // end of input: the room goes on without announcements
      return;
    pending.append(buf, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;
         pending.erase(0, end + 1))
      room.deliver("[server] " + pending.substr(0, end + 1));
    if (pending.size() > max_line)
      pending.clear();
  }
}

int usage()
{
  std::cerr << "usage: chat_server [--port P] [--write-timeout-ms MS]\n";
  return 2;
}

int main(int argc, char* argv[])
{
  unsigned short port = 0;
  std::chrono::milliseconds write_timeout = 5s;
  for (int i = 1; i + 1 < argc; i += 2)
  {
    std::string_view flag = argv[i];
    if (flag == "--port")
      port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (flag == "--write-timeout-ms")
      write_timeout = std::chrono::milliseconds(std::max(1, std::atoi(argv[i + 1])));
    else
      return usage();
  }
  if (argc % 2 == 0)
    return usage();

  try
  {
    chat_room room; // outlives the sessions and the announcer
    std::list<asio::cancellation_signal> sessions;
    asio::io_context io;
    tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), port});

    asio::co_spawn(
      io, listener(acceptor, room, sessions, write_timeout), [](std::exception_ptr e) {
        if (e)
          std::rethrow_exception(e);
      });

    std::jthread stdin_thread(
      announcer, std::ref(room)); // stopped and joined when destroyed

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      stdin_thread.request_stop();
      acceptor.close();
      for (auto& s : sessions)
        s.emit(asio::cancellation_type::terminal);
    });

    // Ready, SIGTERM handling included: tell the port.
    std::cout << acceptor.local_endpoint().port() << std::endl;

    io.run(); // returns once the listener and every session have finished
  }
  catch (std::exception& e)
  {
    std::cerr << "chat_server: " << e.what() << "\n";
    return 1;
  }
}
