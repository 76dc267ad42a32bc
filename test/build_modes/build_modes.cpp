// build_modes: every public function of asio_waker in one program, for the builds that
// change the language (contract P3): -fno-exceptions, -fno-rtti, other -std values, either
// Asio flavour (ASIO_WAKER_STANDALONE_ASIO). .ci/run builds and runs it (stage build_modes).
//
// It prints what it was built against, then exercises: both constructors (executor,
// execution context), get_executor, rebind_executor, async_wait with a callback, with
// deferred, with use_awaitable (only where exceptions are on: Asio's awaitable needs them)
// and with a default completion token, wake, cancel, per-operation cancellation and the
// destructor; exits 0 if every completion came with the expected error code.
//
// With exceptions off, Asio reports what it would throw through its throw_exception, which
// the application defines (below): here it prints and aborts, as P3 says failure paths do.
// Boost.Asio learns of -fno-exceptions / -fno-rtti from Boost.Config; standalone Asio
// must be told, as for any standalone Asio program: -DASIO_NO_EXCEPTIONS with
// -fno-exceptions, -DASIO_NO_TYPEID with -fno-rtti.

#include <asio_waker.hpp>

#if defined(ASIO_WAKER_STANDALONE_ASIO)
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/version.hpp>
#if ASIO_VERSION >= 102400
#include <asio/deferred.hpp>
#else // Asio 1.22: deferred is still experimental
#include <asio/experimental/deferred.hpp>
namespace asio {
using experimental::deferred;
using experimental::deferred_t;
} // namespace asio
#endif
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#if !defined(ASIO_NO_EXCEPTIONS)
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#endif
#else
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#if !defined(BOOST_ASIO_NO_EXCEPTIONS)
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#endif
#endif

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(ASIO_WAKER_STANDALONE_ASIO) ? defined(ASIO_NO_EXCEPTIONS)                      \
                                        : defined(BOOST_ASIO_NO_EXCEPTIONS)
#define BM_EXCEPTIONS 0
#else
#define BM_EXCEPTIONS 1
#endif

#if defined(__GXX_RTTI) || defined(__cpp_rtti)
#define BM_RTTI 1
#else
#define BM_RTTI 0
#endif

// ---- what Asio needs from the application when exceptions are off ------------------
#if !BM_EXCEPTIONS
[[noreturn]] static void bm_throw(const std::exception& e)
{
  std::fprintf(stderr, "build_modes: Asio would have thrown: %s\n", e.what());
  std::abort();
}
#if defined(ASIO_WAKER_STANDALONE_ASIO)
#if !defined(ASIO_INLINE_NAMESPACE_BEGIN) // Asio < 1.28
#define ASIO_INLINE_NAMESPACE_BEGIN
#define ASIO_INLINE_NAMESPACE_END
#endif
#if !defined(ASIO_SOURCE_LOCATION_PARAM) // Asio < 1.24
#define ASIO_SOURCE_LOCATION_PARAM
#endif
namespace asio {
ASIO_INLINE_NAMESPACE_BEGIN
namespace detail {
template <typename Exception>
void throw_exception(const Exception& e ASIO_SOURCE_LOCATION_PARAM)
{
  bm_throw(e);
}
} // namespace detail
ASIO_INLINE_NAMESPACE_END
} // namespace asio
#else
namespace boost {
void throw_exception(const std::exception& e)
{
  bm_throw(e);
}
void throw_exception(const std::exception& e, const boost::source_location&)
{
  bm_throw(e);
}
} // namespace boost
#endif
#endif

namespace net = asio_waker::net;

namespace {

int failures = 0;

void check(bool ok, const char* what)
{
  std::printf("  %-58s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok)
    ++failures;
}

// A completion that records its error code; `expect` is what it must be.
struct recorder
{
  int calls = 0;
  asio_waker::error_code ec;
  auto handler()
  {
    return [this](asio_waker::error_code e) {
      ++calls;
      ec = e;
    };
  }
};

void callbacks_wake_cancel_destroy()
{
  net::io_context ctx;
  recorder a, b, c, d;
  {
    asio_waker::atomic_waker waker(ctx); // execution context
    check(waker.get_executor() == ctx.get_executor(), "get_executor() names the context");

    waker.async_wait(a.handler()); // callback, parks
    waker.wake();                  // completes it
    ctx.run();
    ctx.restart();
    check(a.calls == 1 && !a.ec, "async_wait(callback) + wake(): success");

    waker.async_wait(b.handler());
    const std::size_t n = waker.cancel(); // aborts it
    ctx.run();
    ctx.restart();
    check(n == 1 && b.calls == 1 && b.ec == net::error::operation_aborted,
      "cancel(): 1, operation_aborted");

    net::cancellation_signal sig; // per-operation cancel
    waker.async_wait(net::bind_cancellation_slot(sig.slot(), c.handler()));
    sig.emit(net::cancellation_type::terminal);
    ctx.run();
    ctx.restart();
    check(c.calls == 1 && c.ec == net::error::operation_aborted,
      "cancellation slot, terminal: operation_aborted");

    waker.async_wait(d.handler()); // left pending
  }                                // destructor aborts it
  ctx.run();
  check(d.calls == 1 && d.ec == net::error::operation_aborted,
    "~basic_atomic_waker(): operation_aborted");
}

void deferred_strand_rebind()
{
  net::io_context ctx;
  using strand_t = net::strand<net::io_context::executor_type>;
  using waker_t = asio_waker::basic_atomic_waker<
    net::io_context::executor_type>::rebind_executor<strand_t>::other; // rebind_executor
  static_assert(std::is_same_v<waker_t, asio_waker::basic_atomic_waker<strand_t>>);
  waker_t waker(net::make_strand(ctx)); // executor constructor
  recorder r;
  waker.wake();                              // permit first
  auto op = waker.async_wait(net::deferred); // deferred
  std::move(op)(r.handler());
  ctx.run();
  check(r.calls == 1 && !r.ec, "strand waker, deferred, permit: success");

  using deferred_waker = net::deferred_t::as_default_on_t<asio_waker::atomic_waker>;
  deferred_waker dw(ctx); // default token
  recorder s;
  dw.async_wait()(s.handler());
  dw.wake();
  ctx.restart();
  ctx.run();
  check(s.calls == 1 && !s.ec, "default completion token (deferred): success");
}

void foreign_thread_wake()
{
  net::io_context ctx;
  net::thread_pool pool(1);
  asio_waker::atomic_waker waker(ctx);
  int result = 0;
  recorder r;
  waker.async_wait([&](asio_waker::error_code ec) {
    r.handler()(ec);
    check(result == 42, "wake() from a thread_pool: data visible");
  });
  net::post(pool, [&] {
    result = 42;
    waker.wake();
  });
  ctx.run();
  pool.join();
  check(r.calls == 1 && !r.ec, "wake() from a thread_pool: success");
}

// The channel: make_channel (both forms), sender copy/move/assign, send, emplace,
// is_closed, the receiver's move, get_executor, rebind_executor, async_receive,
// async_receive_many, try_receive, close, cancel, per-operation cancellation, eof after
// the last sender, the destructor.
void channel_every_function()
{
  net::io_context ctx;
  net::thread_pool pool(2);
  auto [tx, rx0] = asio_waker::make_channel<int>(ctx);
  asio_waker::receiver<int> rx = std::move(rx0);
  check(
    rx.get_executor() == ctx.get_executor(), "channel: get_executor() names the context");
  {
    asio_waker::sender<int> a = tx, b = std::move(a);
    a = b;
    net::post(pool, [a] {
      for (int i = 0; i != 100; ++i)
        a.send(i);
    });
    net::post(pool, [b] { b.emplace(100); });
  }
  std::vector<int> got;
  asio_waker::error_code last;
  std::size_t completions = 0;
  std::function<void(asio_waker::error_code, std::size_t)> many =
    [&](asio_waker::error_code ec, std::size_t) {
      ++completions;
      last = ec;
      if (!ec)
        rx.async_receive_many(got, 16, many);
    };
  rx.async_receive_many(got, 16, many);
  tx = asio_waker::sender<int>(std::move(tx)); // self-move through a temporary
  {
    auto drop = std::move(tx);
  } // the last sender: eof after the values
  ctx.run();
  pool.join();
  ctx.restart();
  check(got.size() == 101 && last == net::error::eof && completions >= 2,
    "channel: senders from a thread_pool, batches, then eof");

  using strand_t = net::strand<net::io_context::executor_type>;
  using rx_t = asio_waker::basic_receiver<int,
    net::io_context::executor_type>::rebind_executor<strand_t>::other;
  static_assert(std::is_same_v<rx_t, asio_waker::basic_receiver<int, strand_t>>);
  auto channel2 = asio_waker::make_channel<std::unique_ptr<int>>(net::make_strand(ctx));
  auto& tx2 = channel2.first;
  auto& rx2 = channel2.second;
  tx2.send(std::make_unique<int>(7));
  auto v = rx2.try_receive();
  check(v && **v == 7 && !rx2.try_receive(), "channel: try_receive, move-only values");

  int one = 0;
  asio_waker::error_code e1, e2, e3;
  rx2.async_receive([&](asio_waker::error_code ec, std::unique_ptr<int>) { e1 = ec; });
  const std::size_t n = rx2.cancel();
  net::cancellation_signal sig;
  rx2.async_receive(net::bind_cancellation_slot(
    sig.slot(), [&](asio_waker::error_code ec, std::unique_ptr<int>) { e2 = ec; }));
  sig.emit(net::cancellation_type::terminal);
  ctx.run();
  ctx.restart();
  check(
    n == 1 && e1 == net::error::operation_aborted && e2 == net::error::operation_aborted,
    "channel: cancel() and a cancellation slot");

  tx2.send(std::make_unique<int>(8));
  rx2.close();
  check(rx2.is_closed() && tx2.is_closed() && !tx2.send(std::make_unique<int>(9)),
    "channel: close() fails later sends");
  rx2.async_receive([&](asio_waker::error_code ec, std::unique_ptr<int> p) {
    one = p ? *p : -1;
    rx2.async_receive([&](asio_waker::error_code ec2, std::unique_ptr<int>) { e3 = ec2; });
    e1 = ec;
  });
  ctx.run();
  check(one == 8 && !e1 && e3 == net::error::eof, "channel: queued value, then eof");
}

#if BM_EXCEPTIONS
net::awaitable<void> await_once(asio_waker::atomic_waker& waker, recorder& r)
{
  co_await waker.async_wait(net::use_awaitable);
  r.calls++;
}

void awaitable()
{
  net::io_context ctx;
  asio_waker::atomic_waker waker(ctx);
  recorder r;
  net::co_spawn(ctx, await_once(waker, r), net::detached);
  net::post(ctx, [&] { waker.wake(); });
  ctx.run();
  check(r.calls == 1, "use_awaitable in a coroutine: resumed");
}
#endif

} // namespace

int main()
{
  std::printf("build_modes: %s %d.%d.%d, C++ %ld, exceptions %s, RTTI %s\n",
    ASIO_WAKER_ASIO_FLAVOUR, ASIO_WAKER_ASIO_VERSION / 100000,
    ASIO_WAKER_ASIO_VERSION / 100 % 1000, ASIO_WAKER_ASIO_VERSION % 100,
    static_cast<long>(__cplusplus), BM_EXCEPTIONS ? "on" : "off", BM_RTTI ? "on" : "off");
  callbacks_wake_cancel_destroy();
  deferred_strand_rebind();
  foreign_thread_wake();
  channel_every_function();
#if BM_EXCEPTIONS
  awaitable();
#else
  std::printf("  %-58s %s\n", "use_awaitable", "not built (needs exceptions)");
#endif
  std::printf("build_modes: %s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
