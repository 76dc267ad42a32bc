//
// test/proofs/fuzz_channel.cpp -- libFuzzer target for the channel (channel.hpp).
//
// The input is a schedule: each byte is an operation on one channel whose receiver lives
// on an io_context run by the fuzzing thread, with three logical producers (three sender
// handles, used from the same thread, so the stream's total order is the order of the
// sends). The byte modulo 18 names the operation (`enum class op` below; the seed corpus
// in corpus_channel/ is written in that alphabet); some take the next byte as argument:
//
//   send from producer 0/1/2 | emplace (producer and "the constructor throws" from the
//   next byte) | async_receive (callback) | async_receive_many (callback, limit 0..4 from
//   the next byte) | a coroutine receive (use_awaitable; one or many) | async_receive
//   bound to a cancellation slot | emit the last slot's signal (type from the next byte) |
//   try_receive | cancel() | close() | drop a sender (or re-create one as a copy of a live
//   one) | drop the receiver | poll_one | poll | shut the context down | a new channel.
//
// The oracle is exact where the contract is deterministic on one thread:
//   * send/emplace return true exactly while the channel is open; a throwing constructor
//     throws only then, and sends nothing;
//   * the values taken (handlers and try_receive, in the order they run) are exactly the
//     accepted values in send order (C1, C2: nothing lost, duplicated or reordered);
//   * try_receive returns the head iff a value is queued; async_receive_many takes
//     min(limit, queued) values when its handler runs (C7), appends nothing on error;
//   * eof only when the channel is closed and every accepted value was taken (C3);
//   * is_closed() on the receiver and the senders matches the model;
//   * after a poll, no receive is still pending while a value or the end of the stream is
//     there to complete it (no lost wake-up);
//   * every handler runs at most once, never inside the initiating function, a send,
//     cancel(), close(), emit() or a destructor; operation_aborted only for a receive that
//     was cancelled, replaced (see below), or whose receiver is gone; a receive pending
//     when the receiver is destroyed completes with operation_aborted unless a send had
//     handed it over (C5, C8);
//   * context shutdown: no pending handler runs afterwards, each is destroyed; sends fail;
//     the receiver may be destroyed after its context;
//   * at the end of each channel every handler object and every value is destroyed.
// Replacement: C5 says a new receive aborts the earlier one. The implementation may also
// abort the newer one when an older receive that was handed over finds nothing when it
// runs and parks again (BUGS.md, item 1); by default any receive that overlapped another
// may complete with operation_aborted. FUZZ_CHANNEL_STRICT=1 in the environment allows
// only the earlier one, and so reproduces that item.
//
// Build: clang++ -fsanitize=fuzzer,address,undefined (see ci.sh). With
// ASIO_WAKER_FUZZ_REPLAY_MAIN defined it is a plain program that replays files or
// directories of inputs (the seed corpus in corpus_channel/), for any compiler.
// FUZZ_CHANNEL_TRACE=1 prints each operation.
//

#include <asio_waker/channel.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

bool env_flag(const char* name)
{
  const char* v = std::getenv(name);
  return v && *v && *v != '0';
}

bool trace_enabled()
{
  static const bool on = env_flag("FUZZ_CHANNEL_TRACE");
  return on;
}

bool strict_replacement()
{
  static const bool on = env_flag("FUZZ_CHANNEL_STRICT");
  return on;
}

[[noreturn]] void violation(const char* what, long a = -1, long b = -1)
{
  std::fprintf(stderr, "fuzz_channel: CONTRACT VIOLATION: %s (%ld %ld)\n", what, a, b);
  std::fflush(stderr);
  std::abort();
}

/// One input byte, modulo 18. The values are the corpus's alphabet: do not renumber.
enum class op : std::uint8_t
{
  send0 = 0,           // send from producer 0
  send1 = 1,           // ... 1
  send2 = 2,           // ... 2
  emplace = 3,         // next byte: producer (% 3), bit 2: the constructor throws
  receive = 4,         // async_receive(callback)
  receive_many = 5,    // next byte: limit (% 5; 0 counts as 1)
  receive_coro = 6,    // co_spawn a coroutine receive; next byte: one (even) or many
  receive_slot = 7,    // async_receive(bind_cancellation_slot(signal, callback))
  emit = 8,            // emit the last signal; next byte: type
  try_receive = 9,     // try_receive()
  cancel = 10,         // cancel()
  close = 11,          // close()
  drop_sender = 12,    // next byte: which (% 3); an empty one is re-created as a copy
  drop_receiver = 13,  // destroy the receiver
  poll_one = 14,       // io_context::poll_one, then the liveness check if nothing ran
  poll = 15,           // io_context::poll, then the liveness check
  shutdown = 16,       // destroy the io_context (the receiver after it); a new channel
  new_channel = 17     // finish this channel (drain to eof, checks); a new one
};

std::int64_t live_values = 0; // the fuzzing thread only

/// A value: (producer, sequence number), counted.
struct value
{
  int p = -1;
  int seq = 0;
  value() noexcept { ++live_values; }
  value(int pp, int s) noexcept : p(pp), seq(s) { ++live_values; }
  value(int pp, int s, bool fail) : p(pp), seq(s)
  {
    if (fail)
      throw std::runtime_error("value's constructor");
    ++live_values;
  }
  value(value&& o) noexcept : p(o.p), seq(o.seq) { ++live_values; }
  value& operator=(value&& o) noexcept
  {
    p = o.p;
    seq = o.seq;
    return *this;
  }
  ~value() { --live_values; }
};

using rx_type = asio_waker::receiver<value>;
using tx_type = asio_waker::sender<value>;

struct harness;

/// Counts live handler objects: destroyed without running (shutdown) is fine, leaking not.
struct tracker
{
  harness* h;
  explicit tracker(harness* hh);
  ~tracker();
};

/// What the model knows of one receive.
struct receive_books
{
  int gen = 0;
  bool many = false;
  std::size_t limit = 1;
  bool started = false;      // initiated (a coroutine's starts when the context runs it)
  bool done = false;         // its handler ran
  bool abortable = false;    // may complete with operation_aborted
  std::shared_ptr<std::vector<value>> out; // receive_many's container
};

class test_context : public asio::io_context
{
public:
  using asio::io_context::io_context;
};

struct harness
{
  // The channel of the current generation.
  std::unique_ptr<test_context> ctx;
  std::optional<rx_type> rx;
  std::optional<tx_type> tx[3];
  std::unique_ptr<asio::cancellation_signal> signal;
  int signal_op = -1;
  int gen = 0;

  // The model of the current generation.
  std::vector<std::pair<int, int>> accepted; // (producer, seq) in send order
  std::size_t taken = 0;                     // how many of them were taken
  std::set<std::pair<int, int>> taken_set;   // which (C1: each once)
  int next_seq[3] = {0, 0, 0};
  bool closed = false;
  bool eof_seen = false;

  std::map<int, receive_books> ops; // every receive ever started, by id
  int next_id = 0;
  int live_trackers = 0;
  bool inside_call = false; // a handler running now would be running inline

  harness() { make(); }

  void make()
  {
    ++gen;
    ctx = std::make_unique<test_context>(1);
    auto [t, r] = asio_waker::make_channel<value>(*ctx);
    tx[0].emplace(t);
    tx[1].emplace(t);
    tx[2].emplace(std::move(t));
    rx.emplace(std::move(r));
    accepted.clear();
    taken = 0;
    taken_set.clear();
    next_seq[0] = next_seq[1] = next_seq[2] = 0;
    closed = false;
    eof_seen = false;
  }

  template <typename F>
  auto call(F&& f)
  {
    inside_call = true;
    struct reset
    {
      bool& b;
      ~reset() { b = false; }
    } r{inside_call};
    return f();
  }

  bool any_sender() const { return tx[0] || tx[1] || tx[2]; }

  void check_closed_flags()
  {
    if (rx && rx->is_closed() != closed)
      violation("receiver is_closed() differs from the model", rx->is_closed(), closed);
    for (auto& t : tx)
      if (t && t->is_closed() != closed)
        violation("sender is_closed() differs from the model", t->is_closed(), closed);
  }

  // ---- sends ----------------------------------------------------------------------------

  void send(int p, bool emplace, bool fail)
  {
    if (!tx[p])
      return;
    const int seq = ++next_seq[p];
    bool ok = false, threw = false;
    try
    {
      ok = call([&] {
        if (emplace)
          return tx[p]->emplace(p, seq, fail);
        return tx[p]->send(value(p, seq));
      });
    }
    catch (const std::runtime_error&)
    {
      threw = true;
    }
    if (threw)
    {
      if (!emplace || !fail || closed)
        violation("a send threw that should not have", p, seq);
      return; // nothing sent
    }
    if (emplace && fail && !closed)
      violation("emplace's throwing constructor did not throw while open", p, seq);
    if (ok == closed)
      violation(ok ? "send succeeded on a closed channel" : "send failed on an open channel",
        p, seq);
    if (ok)
      accepted.emplace_back(p, seq);
  }

  // ---- receives -------------------------------------------------------------------------

  /// The model's side of starting receive `id`.
  void start(int id)
  {
    receive_books& r = ops.at(id);
    r.started = true;
    for (auto& [other, o] : ops)
      if (other != id && o.gen == gen && o.started && !o.done)
      {
        // The earlier one is replaced (or, if it was already handed over, runs and
        // takes a value or parks again).
        o.abortable = true;
        if (!strict_replacement())
          r.abortable = true; // see the header comment
      }
  }

  /// A value observed by a handler or try_receive. Values are bound to a receive when it
  /// completes, in stream order, but its handler may run after a later try_receive or
  /// receive has observed later values: so the model checks that every value taken was
  /// accepted and is taken once, and (in take_batch) that one receive's values are in
  /// stream order; and at the end of each channel that every accepted value was taken.
  void take_one(const value& v)
  {
    const auto key = std::make_pair(v.p, v.seq);
    if (std::find(accepted.begin(), accepted.end(), key) == accepted.end())
      violation("a value was taken that was never accepted", v.p, v.seq);
    if (!taken_set.insert(key).second)
      violation("a value taken twice", v.p, v.seq);
    if (eof_seen)
      violation("a value after eof", v.p, v.seq);
    ++taken;
  }

  /// Whether a receive of this channel has started and not run: it may hold values that
  /// were bound to it and not observed yet.
  bool a_receive_outstanding(int except = -1) const
  {
    for (const auto& [id, o] : ops)
      if (id != except && o.gen == gen && o.started && !o.done)
        return true;
    return false;
  }

  std::size_t position(const value& v) const
  {
    return static_cast<std::size_t>(
      std::find(accepted.begin(), accepted.end(), std::make_pair(v.p, v.seq))
      - accepted.begin());
  }

  void completed(int id, error_code ec, std::size_t n, const value* v)
  {
    if (inside_call)
      violation("handler invoked inline", id);
    receive_books& r = ops.at(id);
    if (r.gen != gen)
      violation("a handler of a channel whose context was shut down ran", id);
    if (r.done)
      violation("a handler ran twice", id);
    r.done = true;
    if (!ec)
    {
      if (r.many)
      {
        // Bound when it completed (values queued then, up to the limit): at most what
        // is queued now.
        const std::size_t queued = accepted.size() - taken;
        if (n > std::min(r.limit, queued) || n == 0 || r.out->size() != n)
          violation("receive_many took a wrong count (C7)", static_cast<long>(n),
            static_cast<long>(std::min(r.limit, queued)));
        for (std::size_t i = 0; i < r.out->size(); ++i)
        {
          if (i != 0 && position((*r.out)[i]) != position((*r.out)[i - 1]) + 1)
            violation("a batch is not consecutive values of the stream (C2, C7)", id);
          take_one((*r.out)[i]);
        }
        r.out->clear();
      }
      else
        take_one(*v);
      return;
    }
    if (r.many && (n != 0 || !r.out->empty()))
      violation("a failed receive_many appended values", id);
    if (!r.many && v && v->p != -1)
      violation("a failed receive carried a value", id);
    if (ec == asio::error::eof)
    {
      if (!closed || (taken != accepted.size() && !a_receive_outstanding(id)))
        violation("eof before the end of the stream", static_cast<long>(taken),
          static_cast<long>(accepted.size()));
      eof_seen = true;
    }
    else if (ec == asio::error::operation_aborted)
    {
      if (!r.abortable)
        violation("operation_aborted for a receive nothing cancelled or replaced", id);
    }
    else
      violation("an unexpected error_code", ec.value());
  }

  struct one_handler
  {
    harness* h;
    int id;
    std::shared_ptr<tracker> t;
    void operator()(error_code ec, value v) const { h->completed(id, ec, 1, &v); }
  };
  struct many_handler
  {
    harness* h;
    int id;
    std::shared_ptr<tracker> t;
    void operator()(error_code ec, std::size_t n) const { h->completed(id, ec, n, nullptr); }
  };

  int new_op(bool many, std::size_t limit)
  {
    const int id = next_id++;
    receive_books& r = ops[id];
    r.gen = gen;
    r.many = many;
    r.limit = limit == 0 ? 1 : limit;
    r.out = std::make_shared<std::vector<value>>();
    return id;
  }

  void receive(bool many, std::size_t limit)
  {
    if (!rx)
      return;
    const int id = new_op(many, limit);
    auto t = std::make_shared<tracker>(this);
    start(id);
    if (many)
    {
      auto out = ops.at(id).out;
      call([&] { rx->async_receive_many(*out, limit, many_handler{this, id, t}); });
    }
    else
      call([&] { rx->async_receive(one_handler{this, id, t}); });
  }

  void receive_slot()
  {
    if (!rx)
      return;
    const int id = new_op(false, 1);
    auto t = std::make_shared<tracker>(this);
    // The slot's handler must not outlive the signal: the old signal goes only once its
    // receive is done (otherwise it is kept, and this receive gets no slot).
    if (signal && signal_op >= 0 && !ops.at(signal_op).done)
    {
      start(id);
      call([&] { rx->async_receive(one_handler{this, id, t}); });
      return;
    }
    signal = std::make_unique<asio::cancellation_signal>();
    signal_op = id;
    start(id);
    call([&] {
      rx->async_receive(asio::bind_cancellation_slot(signal->slot(), one_handler{this, id, t}));
    });
  }

  void emit(std::uint8_t type_byte)
  {
    // (Also after its receive completed: the signal outlives the operation.)
    if (!signal || signal_op < 0 || !rx)
      return;
    static const asio::cancellation_type types[] = {asio::cancellation_type::terminal,
      asio::cancellation_type::partial, asio::cancellation_type::total,
      asio::cancellation_type::none};
    const asio::cancellation_type t = types[type_byte % 4];
    if (t != asio::cancellation_type::none && !ops.at(signal_op).done)
      ops.at(signal_op).abortable = true;
    call([&] { signal->emit(t); });
  }

  static asio::awaitable<void> coro_receive(
    harness* h, int gen, int id, bool many, std::shared_ptr<tracker> t)
  {
    (void)t;
    // Runs from the context: the receive starts here (if its receiver is still there).
    if (h->gen != gen || !h->rx)
    {
      h->ops.at(id).done = true; // never started
      co_return;
    }
    h->start(id);
    if (many)
    {
      auto out = h->ops.at(id).out;
      auto [ec, n] = co_await h->rx->async_receive_many(
        *out, h->ops.at(id).limit, asio::as_tuple(asio::use_awaitable));
      h->completed(id, ec, n, nullptr);
    }
    else
    {
      auto [ec, v] = co_await h->rx->async_receive(asio::as_tuple(asio::use_awaitable));
      h->completed(id, ec, 1, &v);
    }
  }

  void receive_coro(std::uint8_t arg)
  {
    const bool many = arg & 1;
    const int id = new_op(many, arg % 5);
    asio::co_spawn(*ctx,
      coro_receive(this, gen, id, many, std::make_shared<tracker>(this)), asio::detached);
  }

  void try_receive()
  {
    if (!rx)
      return;
    std::optional<value> v = call([&] { return rx->try_receive(); });
    if (v ? taken >= accepted.size()
          : taken < accepted.size() && !a_receive_outstanding()) // bound to it, maybe
      violation(v ? "try_receive returned a value when none was queued"
                  : "try_receive returned nothing with a value queued",
        static_cast<long>(taken), static_cast<long>(accepted.size()));
    if (v)
      take_one(*v);
  }

  void cancel()
  {
    if (!rx)
      return;
    bool any = false;
    for (auto& [id, o] : ops)
      if (o.gen == gen && o.started && !o.done)
      {
        o.abortable = true;
        any = true;
      }
    const std::size_t n = call([&] { return rx->cancel(); });
    if (n > 1 || (n == 1 && !any))
      violation("cancel() returned a count the contract does not allow", static_cast<long>(n));
  }

  void close()
  {
    if (!rx)
      return;
    call([&] { rx->close(); });
    closed = true;
  }

  void drop_sender(int p)
  {
    if (tx[p])
    {
      call([&] { tx[p].reset(); });
      if (!any_sender())
        closed = true; // the last sender gone
      return;
    }
    for (auto& other : tx)
      if (other)
      {
        tx[p].emplace(*other); // a new handle, copied from a live one
        return;
      }
  }

  void drop_receiver()
  {
    if (!rx)
      return;
    for (auto& [id, o] : ops)
      if (o.gen == gen && o.started && !o.done)
        o.abortable = true; // aborted, unless a send handed it over before
    call([&] { rx.reset(); });
    closed = true;
  }

  // ---- running --------------------------------------------------------------------------

  /// After the context ran out of ready handlers: a receive still pending must have
  /// nothing to complete it with.
  void check_liveness()
  {
    if (!rx)
      return;
    for (auto& [id, o] : ops)
      if (o.gen == gen && o.started && !o.done)
      {
        if (taken < accepted.size())
          violation("lost wake-up: a receive is pending with a value queued", id,
            static_cast<long>(accepted.size() - taken));
        if (closed)
          violation("lost wake-up: a receive is pending at the end of the stream", id);
      }
  }

  void poll_one()
  {
    ctx->restart();
    if (ctx->poll_one() == 0)
      check_liveness();
  }

  void poll()
  {
    ctx->restart();
    ctx->poll();
    check_liveness();
  }

  void shutdown()
  {
    poll();
    ctx.reset(); // pending receives are destroyed without being invoked
    signal.reset();
    signal_op = -1;
    closed = true;
    // Sends fail now, and nothing touches the destroyed context.
    for (int p = 0; p < 3; ++p)
      if (tx[p] && tx[p]->send(value(p, 1 << 30)))
        violation("a send succeeded after its context was destroyed", p);
    if (rx && !rx->is_closed())
      violation("the receiver is not closed after its context was destroyed");
    rx.reset(); // the receiver goes after its context
    for (auto& t : tx)
      t.reset();
    end_of_generation();
    make();
  }

  /// Finishes the channel: every sender goes, the rest is drained to eof.
  void finish()
  {
    for (int p = 0; p < 3; ++p)
      if (tx[p])
        drop_sender(p);
    poll();
    if (rx)
    {
      int rounds = 0;
      while (!eof_seen)
      {
        if (++rounds > 1000)
          violation("no eof while draining");
        receive(true, 4);
        poll();
      }
    }
    drop_receiver();
    poll();
    signal.reset();
    signal_op = -1;
    for (auto& [id, o] : ops)
      if (o.gen == gen && o.started && !o.done)
        violation("a receive never completed", id);
    ctx.reset();
    end_of_generation();
  }

  void end_of_generation()
  {
    for (auto& [id, o] : ops)
      if (o.gen == gen)
        o.out->clear();
    if (live_trackers != 0)
      violation("handler objects leaked", live_trackers);
    if (live_values != 0)
      violation("values leaked or destroyed twice", static_cast<long>(live_values));
  }

  void new_channel()
  {
    finish();
    make();
  }
};

tracker::tracker(harness* hh) : h(hh)
{
  ++h->live_trackers;
}
tracker::~tracker()
{
  --h->live_trackers;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size > 512)
    return 0;
  {
    harness h;
    for (std::size_t i = 0; i < size; ++i)
    {
      const op o = static_cast<op>(data[i] % 18);
      const std::uint8_t arg = i + 1 < size ? data[i + 1] : 0;
      if (trace_enabled())
        std::fprintf(stderr, "op %zu: %d arg %d (taken %zu of %zu, closed %d)\n", i,
          static_cast<int>(o), arg, h.taken, h.accepted.size(), h.closed);
      switch (o)
      {
      case op::send0:
      case op::send1:
      case op::send2:
        h.send(static_cast<int>(o), false, false);
        break;
      case op::emplace:
        h.send(arg % 3, true, (arg & 4) != 0);
        ++i;
        break;
      case op::receive:
        h.receive(false, 1);
        break;
      case op::receive_many:
        h.receive(true, arg % 5);
        ++i;
        break;
      case op::receive_coro:
        h.receive_coro(arg);
        ++i;
        break;
      case op::receive_slot:
        h.receive_slot();
        break;
      case op::emit:
        h.emit(arg);
        ++i;
        break;
      case op::try_receive:
        h.try_receive();
        break;
      case op::cancel:
        h.cancel();
        break;
      case op::close:
        h.close();
        break;
      case op::drop_sender:
        h.drop_sender(arg % 3);
        ++i;
        break;
      case op::drop_receiver:
        h.drop_receiver();
        break;
      case op::poll_one:
        h.poll_one();
        break;
      case op::poll:
        h.poll();
        break;
      case op::shutdown:
        h.shutdown();
        break;
      case op::new_channel:
        h.new_channel();
        break;
      }
      h.check_closed_flags();
    }
    h.finish();
  }
  if (live_values != 0)
    violation("values alive at the end", static_cast<long>(live_values));
  return 0;
}

#ifdef ASIO_WAKER_FUZZ_REPLAY_MAIN
#include <filesystem>
#include <fstream>
#include <iterator>

int main(int argc, char** argv)
{
  std::size_t n = 0;
  for (int a = 1; a < argc; ++a)
  {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[a]))
    {
      for (auto& e : std::filesystem::directory_iterator(argv[a]))
        if (e.is_regular_file())
          files.push_back(e.path());
      std::sort(files.begin(), files.end());
    }
    else
      files.emplace_back(argv[a]);
    for (auto& f : files)
    {
      std::ifstream in(f, std::ios::binary);
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      if (trace_enabled())
        std::fprintf(stderr, "== %s\n", f.c_str());
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++n;
    }
  }
  std::printf("fuzz_channel replay: %zu inputs passed\n", n);
  return n ? 0 : 1;
}
#endif
