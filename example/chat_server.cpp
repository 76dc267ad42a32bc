//
// chat_server.cpp
// ~~~~~~~~~~~~~~~
//
// Asio's chat server (example/cpp20/coroutines/chat_server.cpp: the classic cpp11 one
// written with coroutines), with each session's outbox an asio_waker channel. Every
// line a client sends goes to every client; a newcomer first gets the last 100 lines.
// Read it next to Asio's; what differs:
//
// - deliver() sends the line to the session's outbox, where Asio's pushes it onto a
//   deque and calls timer_.cancel_one() to wake the writer. writer() takes every line
//   queued so far with one async_receive_many and writes them with one async_write;
//   with nothing queued, it waits in the receive. No deque, no timer.
// - A plain std::thread, outside Asio, reads stdin and sends each line, as
//   "[server] <line>", through a channel of its own to announcer(), which delivers it
//   to the room. The room is only touched on the io_context's thread: no mutex.
// - Bad clients: a line must be printable ASCII ("ERR bad request", to the sender
//   only) and at most max_line bytes ("ERR line too long", then the server closes the
//   connection). A client more than max_queued lines behind the room gets what was
//   queued for it, then the server closes the connection.
// - It listens on 127.0.0.1 only, prints its port as its first line, and exits with
//   status 0 on SIGINT or SIGTERM.
//
// usage: chat_server [PORT]      (default 0: a free port)
//

#include <asio_waker/channel.hpp>
#include <boost/asio.hpp>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using asio::awaitable;
using asio::co_spawn;
using asio::detached;
using asio::ip::tcp;

constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_line = 512;    // bytes, '\n' included
constexpr std::size_t max_queued = 1024; // lines in one session's outbox

//----------------------------------------------------------------------

class chat_participant
{
public:
  virtual ~chat_participant() = default;
  virtual void deliver(const std::string& msg) = 0;
};

using chat_participant_ptr = std::shared_ptr<chat_participant>;

//----------------------------------------------------------------------

class chat_room
{
public:
  void join(chat_participant_ptr participant)
  {
    participants_.insert(participant);
    for (const auto& msg : recent_msgs_)
      participant->deliver(msg);
  }

  void leave(chat_participant_ptr participant) { participants_.erase(participant); }

  void deliver(const std::string& msg)
  {
    recent_msgs_.push_back(msg);
    while (recent_msgs_.size() > max_recent_msgs)
      recent_msgs_.pop_front();

    for (const auto& participant : participants_)
      participant->deliver(msg);
  }

private:
  std::set<chat_participant_ptr> participants_;
  static constexpr std::size_t max_recent_msgs = 100;
  std::deque<std::string> recent_msgs_;
};

//----------------------------------------------------------------------

bool printable(std::string_view line) // without its '\n'
{
  for (unsigned char c : line)
    if (c < 0x20 || c > 0x7e)
      return false;
  return true;
}

class chat_session : public chat_participant,
                     public std::enable_shared_from_this<chat_session>
{
public:
  chat_session(tcp::socket socket, chat_room& room)
    : chat_session(
      socket, room, asio_waker::make_channel<std::string>(socket.get_executor()))
  {}

  void start()
  {
    room_.join(shared_from_this());

    co_spawn(
      socket_.get_executor(), [self = shared_from_this()] { return self->reader(); },
      detached);

    co_spawn(
      socket_.get_executor(), [self = shared_from_this()] { return self->writer(); },
      detached);
  }

  void deliver(const std::string& msg) override
  {
    if (queued_ == max_queued) // this client does not keep up with the room:
      outbox_reader_.close();  // the writer sends what is queued, then ends
    else if (outbox_.send(msg))
      ++queued_;
  }

private:
  using channel =
    std::pair<asio_waker::sender<std::string>, asio_waker::receiver<std::string>>;

  chat_session(tcp::socket& socket, chat_room& room, channel outbox)
    : socket_(std::move(socket)), room_(room), outbox_(std::move(outbox.first)),
      outbox_reader_(std::move(outbox.second))
  {}

  awaitable<void> reader()
  {
    for (std::string read_msg;;)
    {
      auto [ec, n] = co_await asio::async_read_until(
        socket_, asio::dynamic_buffer(read_msg, max_line), "\n", nothrow_awaitable);
      if (ec == asio::error::not_found) // max_line bytes without a '\n'
      {
        deliver("ERR line too long\n");
        outbox_reader_.close(); // the writer sends that, then shuts down our side
        co_await drain();
        break;
      }
      if (ec)
        break;

      std::string msg = read_msg.substr(0, n);
      read_msg.erase(0, n);
      if (printable(std::string_view(msg).substr(0, n - 1)))
        room_.deliver(msg);
      else
        deliver("ERR bad request\n");
    }
    stop();
  }

  awaitable<void> writer()
  {
    std::vector<std::string> msgs;
    std::vector<asio::const_buffer> buffers;
    for (;;)
    {
      msgs.clear();
      auto [ec, n] =
        co_await outbox_reader_.async_receive_many(msgs, max_queued, nothrow_awaitable);
      if (ec == asio::error::eof) // closed by deliver() or reader(), all lines written:
      {                           // the client reads them, then the end of the stream
        socket_.shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      }
      if (ec) // cancelled by stop()
        co_return;
      queued_ -= n;

      buffers.clear();
      for (const auto& msg : msgs)
        buffers.push_back(asio::buffer(msg));
      std::tie(ec, n) = co_await asio::async_write(socket_, buffers, nothrow_awaitable);
      if (ec)
      {
        stop();
        co_return;
      }
    }
  }

  // Reads and drops what the client still sends, until it closes the connection (it
  // sees ours shut down after the error line). Closing first, with its bytes unread,
  // would reset the connection, and the client could lose the line.
  awaitable<void> drain()
  {
    char sink[4096];
    for (std::size_t total = 0; total < 64 * 1024;)
    {
      auto [ec, n] =
        co_await socket_.async_read_some(asio::buffer(sink), nothrow_awaitable);
      if (ec)
        break;
      total += n;
    }
  }

  void stop()
  {
    room_.leave(shared_from_this());
    socket_.close();
    outbox_reader_.cancel();
  }

  tcp::socket socket_;
  chat_room& room_;
  asio_waker::sender<std::string> outbox_;          // deliver()
  asio_waker::receiver<std::string> outbox_reader_; // writer()
  std::size_t queued_ = 0;                          // lines in the outbox
};

//----------------------------------------------------------------------

awaitable<void> listener(tcp::acceptor acceptor, chat_room& room)
{
  for (;;)
  {
    std::make_shared<chat_session>(
      co_await acceptor.async_accept(asio::use_awaitable), room)
      ->start();
  }
}

// On the io_context's thread: passes each line from the stdin thread to the room.
awaitable<void> announcer(asio_waker::receiver<std::string> announcements, chat_room& room)
{
  for (;;)
  {
    auto [ec, msg] = co_await announcements.async_receive(nothrow_awaitable);
    if (ec) // eof: the end of stdin
      co_return;
    room.deliver(msg);
  }
}

// The thread outside Asio, with blocking reads. When it returns, its sender goes, and
// with it the stream: announcer() gets eof.
void read_stdin(asio_waker::sender<std::string> announcements)
{
  for (std::string line; std::getline(std::cin, line);)
    if (!announcements.send("[server] " + line + "\n"))
      return; // the server has stopped
}

//----------------------------------------------------------------------

int main(int argc, char* argv[])
{
  try
  {
    if (argc > 2)
    {
      std::cerr << "usage: chat_server [PORT]\n";
      return 2;
    }
    auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);

    asio::io_context io_context(1);
    chat_room room; // destroyed before io_context, with its hold on the sessions

    tcp::acceptor acceptor(io_context, {asio::ip::address_v4::loopback(), port});
    auto endpoint = acceptor.local_endpoint();
    co_spawn(io_context, listener(std::move(acceptor), room), [](std::exception_ptr e) {
      if (e)
        std::rethrow_exception(e); // out of io_context.run()
    });

    asio::signal_set signals(io_context, SIGINT, SIGTERM);
    signals.async_wait([&](auto, auto) { io_context.stop(); });
    std::cout << endpoint.port() << std::endl; // ready, SIGTERM included

    auto [announcements, announcements_reader] =
      asio_waker::make_channel<std::string>(io_context);
    co_spawn(io_context, announcer(std::move(announcements_reader), room), detached);
    // Detached: a blocking read cannot be interrupted portably. The thread may outlive
    // the server; its send() then returns false.
    std::thread(read_stdin, std::move(announcements)).detach();

    io_context.run();
  }
  catch (std::exception& e)
  {
    std::cerr << "chat_server: " << e.what() << "\n";
    return 1;
  }
}
