//
// test/proofs/fuzz_waker.cpp -- libFuzzer target for basic_atomic_waker.
//
// The input is a schedule: each byte is an operation on one waker living on an
// io_context (run by the fuzzing thread), with a producer thread for remote wakes. The
// byte modulo 16 names the operation (`enum class op` below; the seed corpus is written
// in that alphabet):
//
//   wake (local) | async_wait with a callback, use_awaitable (co_spawn), deferred,
//   as_tuple, bind_cancellation_slot | emit a wait's cancellation signal (type from the
//   next byte) | cancel() | poll_one | poll | run_one | remote wake (producer thread) |
//   sync (producer drained, poll, full check) | destroy + recreate the waker |
//   context shutdown + recreate (optionally with coroutines that own their own wakers).
//
// The oracle is the contract's state machine (permit, at most one pending wait) kept
// as a SET of possible states: a remote wake is in flight until a sync, and may have
// taken effect before any later operation, so each operation branches on how many
// in-flight wakes were applied before it; observations (cancel()'s result, which
// handler ran with which error_code) filter the set. An empty set is a contract
// violation. Also checked: no handler runs twice, no handler runs inline (inside
// async_wait/wake/cancel/emit/the destructor), after a sync + poll every completed wait
// has been delivered, successes never exceed wakes, and at the end every handler object
// has been destroyed (nothing leaks; ASan/LSan check the memory too).
//
// Build: clang++ -fsanitize=fuzzer,address,undefined (see CMakeLists.txt, ci.sh). With
// ASIO_WAKER_FUZZ_REPLAY_MAIN defined it is a plain program that replays files or
// directories of inputs (the seed corpus in corpus/), for any compiler.
//

#include <asio_waker/atomic_waker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

bool trace_enabled()
{
  static const bool on = std::getenv("FUZZ_WAKER_TRACE") != nullptr;
  return on;
}

[[noreturn]] void violation(const char* what, int id = -1)
{
  std::fprintf(stderr, "fuzz_waker: CONTRACT VIOLATION: %s (wait %d)\n", what, id);
  std::fflush(stderr);
  std::abort();
}

enum : std::uint8_t
{
  pending_or_unused = 0,
  exp_success = 1,
  exp_aborted = 2
};

/// One input byte, modulo 16. The values are the corpus's alphabet: do not renumber.
enum class op : std::uint8_t
{
  wake = 0,             // wake() from the fuzzing thread
  wake_too = 1,         // the same (local wakes are twice as likely)
  wait_callback = 2,    // async_wait(callback)
  wait_awaitable = 3,   // co_spawn a coroutine that awaits async_wait(use_awaitable)
  wait_deferred = 4,    // async_wait(deferred), then launched with a callback
  wait_as_tuple = 5,    // async_wait(as_tuple(callback))
  wait_with_slot = 6,   // async_wait(bind_cancellation_slot(signal, callback))
  emit = 7,             // emit a wait's signal; the next byte: which signal and type
  cancel = 8,           // cancel()
  poll_one = 9,         // io_context::poll_one
  poll = 10,            // io_context::poll
  run_one = 11,         // io_context::run_one when a completion is certain, else poll_one
  wake_remote = 12,     // wake() from the producer thread
  sync = 13,            // drain the producer, poll, check everything was delivered
  recreate_waker = 14,  // destroy the waker, make a new one
  shutdown_context = 15 // shut the io_context down, make a new one; next byte: orphans
};

enum class run_how
{
  poll_one,
  poll,
  run_one
};

struct mstate
{
  bool permit = false;
  int pending = -1;
  int remaining = 0; // in-flight remote wakes not yet applied
  std::vector<std::uint8_t> exp;
  bool operator<(const mstate& o) const
  {
    return std::tie(permit, pending, remaining, exp)
           < std::tie(o.permit, o.pending, o.remaining, o.exp);
  }
  void wake()
  {
    if (pending >= 0)
    {
      exp[static_cast<std::size_t>(pending)] = exp_success;
      pending = -1;
    }
    else
      permit = true;
  }
};

/// The contract as a set of possible states.
struct model
{
  std::set<mstate> states{mstate{}};
  int waits = 0;

  // Before an operation: any number of the in-flight remote wakes may have landed.
  void branch()
  {
    std::set<mstate> out;
    for (const mstate& s : states)
    {
      mstate t = s;
      out.insert(t);
      while (t.remaining > 0)
      {
        t.wake();
        --t.remaining;
        out.insert(t);
      }
    }
    states.swap(out);
  }
  template <typename F>
  void apply(
    F f, const char* what = "no state of the contract explains the observed behaviour")
  {
    branch();
    std::set<mstate> out;
    for (mstate s : states)
      if (f(s))
        out.insert(std::move(s));
    states.swap(out);
    if (states.empty())
      violation(what);
  }
  int new_wait()
  {
    const int id = waits++;
    std::set<mstate> out;
    for (mstate s : states)
    {
      s.exp.push_back(pending_or_unused);
      out.insert(std::move(s));
    }
    states.swap(out);
    return id;
  }
};

/// Remote wakes run on this thread.
class producer_thread
{
public:
  producer_thread() : thread_([this] { loop(); }) {}
  ~producer_thread()
  {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void submit(asio_waker::atomic_waker* w)
  {
    {
      std::lock_guard<std::mutex> l(m_);
      q_.push_back(w);
      ++submitted_;
    }
    cv_.notify_all();
  }
  void drain()
  {
    std::unique_lock<std::mutex> l(m_);
    done_cv_.wait(l, [this] { return done_ == submitted_; });
  }

private:
  void loop()
  {
    std::unique_lock<std::mutex> l(m_);
    for (;;)
    {
      cv_.wait(l, [this] { return stop_ || !q_.empty(); });
      if (q_.empty())
        return;
      auto* w = q_.front();
      q_.pop_front();
      l.unlock();
      w->wake();
      l.lock();
      ++done_;
      done_cv_.notify_all();
    }
  }
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::deque<asio_waker::atomic_waker*> q_;
  std::uint64_t submitted_ = 0, done_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

producer_thread& producer()
{
  static producer_thread p;
  return p;
}

struct harness;

/// Counts live handler objects: destroyed without running (shutdown) is fine, leaking not.
struct tracker
{
  harness* h;
  int id;
  tracker(harness* hh, int i);
  ~tracker();
};

class test_context : public asio::io_context
{
public:
  using asio::execution_context::shutdown;
  using asio::io_context::io_context;
};

struct harness
{
  std::unique_ptr<test_context> ctx;
  std::unique_ptr<asio_waker::atomic_waker> waker;
  std::vector<std::pair<int, std::unique_ptr<asio::cancellation_signal>>> signals;
  model m;
  std::vector<int> delivered;  // per wait id: times its handler ran
  std::vector<int> generation; // per wait id: waker generation
  int gen = 0;
  int live_trackers = 0;
  int in_flight = 0;
  bool inside_call = false; // a handler running now would be running inline
  std::uint64_t wakes = 0, successes = 0;

  harness() { make(); }

  void make()
  {
    ctx = std::make_unique<test_context>(1);
    waker = std::make_unique<asio_waker::atomic_waker>(*ctx);
    ++gen;
    m = model{};
    delivered_base = static_cast<int>(delivered.size());
  }
  int delivered_base = 0;

  int new_wait()
  {
    const int local = m.new_wait();
    delivered.push_back(0);
    generation.push_back(gen);
    return delivered_base + local;
  }
  int local(int id) const { return id - delivered_base; }

  void completed(int id, error_code ec)
  {
    if (inside_call)
      violation("handler invoked inline", id);
    if (generation[static_cast<std::size_t>(id)] != gen)
      violation("handler of a previous generation ran", id);
    if (++delivered[static_cast<std::size_t>(id)] != 1)
      violation("handler ran twice", id);
    std::uint8_t want;
    if (!ec)
    {
      want = exp_success;
      if (++successes > wakes)
        violation("more successes than wakes", id);
    }
    else if (ec == asio::error::operation_aborted)
      want = exp_aborted;
    else
      violation("unexpected error_code", id);
    const std::size_t l = static_cast<std::size_t>(local(id));
    m.apply([&](mstate& s) { return s.exp[l] == want; },
      want == exp_success
        ? "a wait completed with success that the contract says cannot have"
        : "a wait completed with operation_aborted that the contract says cannot have");
  }

  struct handler
  {
    harness* h;
    int id;
    std::shared_ptr<tracker> t;
    void operator()(error_code ec) const { h->completed(id, ec); }
  };
  struct tuple_handler
  {
    harness* h;
    int id;
    std::shared_ptr<tracker> t;
    void operator()(std::tuple<error_code> r) const { h->completed(id, std::get<0>(r)); }
  };

  // The model's side of async_wait(id), then the real initiation (must not run inline).
  template <typename Init>
  void initiate(int id, Init&& init)
  {
    const std::size_t l = static_cast<std::size_t>(local(id));
    m.apply([&](mstate& s) {
      if (s.permit)
      {
        s.permit = false;
        s.exp[l] = exp_success;
      }
      else
      {
        if (s.pending >= 0)
          s.exp[static_cast<std::size_t>(s.pending)] = exp_aborted;
        s.pending = static_cast<int>(l);
      }
      return true;
    });
    inside_call = true;
    init();
    inside_call = false;
  }

  void wake_local()
  {
    ++wakes;
    m.apply([](mstate& s) {
      s.wake();
      return true;
    });
    inside_call = true;
    waker->wake();
    inside_call = false;
  }

  void wake_remote()
  {
    if (in_flight >= 2)
      sync();
    ++wakes;
    ++in_flight;
    std::set<mstate> out;
    for (mstate s : m.states)
    {
      ++s.remaining;
      out.insert(std::move(s));
    }
    m.states.swap(out);
    producer().submit(waker.get());
  }

  void cancel()
  {
    inside_call = true;
    const std::size_t r = waker->cancel();
    inside_call = false;
    m.apply(
      [&](mstate& s) {
        if (s.pending >= 0)
        {
          s.exp[static_cast<std::size_t>(s.pending)] = exp_aborted;
          s.pending = -1;
          return r == 1;
        }
        return r == 0;
      },
      "cancel() returned a count the contract does not allow");
  }

  void emit(std::size_t which, std::uint8_t type_byte)
  {
    if (signals.empty())
      return;
    auto& [id, sig] = signals[which % signals.size()];
    static const asio::cancellation_type types[] = {asio::cancellation_type::terminal,
      asio::cancellation_type::partial, asio::cancellation_type::total,
      asio::cancellation_type::none};
    const asio::cancellation_type t = types[type_byte % 4];
    const std::size_t l = static_cast<std::size_t>(local(id));
    inside_call = true;
    sig->emit(t);
    inside_call = false;
    m.apply([&](mstate& s) {
      if (t != asio::cancellation_type::none && s.pending == static_cast<int>(l))
      {
        s.exp[l] = exp_aborted;
        s.pending = -1;
      }
      return true;
    });
  }

  void run_handlers(run_how how)
  {
    switch (how)
    {
    case run_how::poll_one:
      (ctx->restart(), ctx->poll_one());
      break;
    case run_how::poll:
      (ctx->restart(), ctx->poll());
      break;
    case run_how::run_one:
    {
      // run_one() would block if nothing is ready: only when a completion is certain.
      bool certain = in_flight == 0;
      if (certain)
        for (const mstate& s : m.states)
        {
          bool any = false;
          for (std::size_t l = 0; l < s.exp.size(); ++l)
            if (s.exp[l] != pending_or_unused
                && delivered[static_cast<std::size_t>(delivered_base) + l] == 0)
              any = true;
          certain = certain && any;
        }
      if (certain)
        (ctx->restart(), ctx->run_one());
      else
        (ctx->restart(), ctx->poll_one());
    }
    }
  }

  void sync()
  {
    producer().drain();
    in_flight = 0;
    std::set<mstate> out;
    for (mstate s : m.states)
    {
      while (s.remaining > 0)
      {
        s.wake();
        --s.remaining;
      }
      out.insert(std::move(s));
    }
    m.states.swap(out);
    (ctx->restart(), ctx->poll());
    // Every completed wait has now been delivered.
    if (trace_enabled())
      for (const mstate& st : m.states)
      {
        std::fprintf(stderr, "  state permit=%d pending=%d remaining=%d:", st.permit,
          st.pending, st.remaining);
        for (std::size_t l = 0; l < st.exp.size(); ++l)
          std::fprintf(stderr, " [%zu exp=%d delivered=%d]", l, st.exp[l],
            delivered[static_cast<std::size_t>(delivered_base) + l]);
        std::fprintf(stderr, "\n");
      }
    check_all_delivered("after sync + poll: a completed wait was not delivered, or a "
                        "delivered one is not completed");
  }

  /// After the context was polled with no remote wake in flight: exactly the waits the
  /// contract has completed have had their handlers run.
  void check_all_delivered(const char* what)
  {
    m.apply(
      [&](mstate& s) {
        for (std::size_t l = 0; l < s.exp.size(); ++l)
          if ((s.exp[l] != pending_or_unused)
              != (delivered[static_cast<std::size_t>(delivered_base) + l] != 0))
            return false;
        return true;
      },
      what);
  }

  void destroy_waker()
  {
    sync();
    signals.clear(); // a slot's handler refers to the waker: signals go first
    inside_call = true;
    waker.reset();
    inside_call = false;
    m.apply([](mstate& s) {
      if (s.pending >= 0)
        s.exp[static_cast<std::size_t>(s.pending)] = exp_aborted;
      s.pending = -1;
      s.permit = false;
      return true;
    });
    (ctx->restart(), ctx->poll());
    check_all_delivered(
      "after destroying the waker + poll: a completed wait was not delivered");
  }

  void recreate_waker()
  {
    destroy_waker();
    waker = std::make_unique<asio_waker::atomic_waker>(*ctx);
    // the model continues: nothing pending, no permit
  }

  static asio::awaitable<void> orphan()
  {
    // A coroutine owning its own waker, parked forever: destroyed with the context.
    asio_waker::atomic_waker w(co_await asio::this_coro::executor);
    co_await w.async_wait(asio::use_awaitable);
  }

  void shutdown_context(bool orphans)
  {
    sync();
    if (orphans)
    {
      asio::co_spawn(*ctx, orphan(), asio::detached);
      asio::co_spawn(*ctx, orphan(), asio::detached);
      (ctx->restart(), ctx->poll());
    }
    signals.clear();
    waker.reset();   // the waker must not outlive its context; a pending wait is aborted...
    ctx->shutdown(); // ...and its handler destroyed without running, with everything queued
    ctx.reset();
    make();
  }

  ~harness()
  {
    sync();
    signals.clear();
    waker.reset();
    ctx.reset();
    if (live_trackers != 0)
      violation("handler objects leaked", live_trackers);
  }
};

tracker::tracker(harness* hh, int i) : h(hh), id(i)
{
  ++h->live_trackers;
}
tracker::~tracker()
{
  --h->live_trackers;
}

asio::awaitable<void> awaitable_wait(harness* h, int id, std::shared_ptr<tracker> t)
{
  // Runs from the io_context: the initiation (and the model update) happens here.
  auto [ec] = co_await [&] {
    auto& w = *h->waker;
    asio::awaitable<std::tuple<error_code>> a;
    h->initiate(id, [&] { a = w.async_wait(asio::as_tuple(asio::use_awaitable)); });
    return a;
  }();
  h->completed(id, ec);
  (void)t;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size > 512)
    return 0;
  harness h;
  for (std::size_t i = 0; i < size; ++i)
  {
    const op o = static_cast<op>(data[i] % 16);
    if (trace_enabled())
      std::fprintf(
        stderr, "op %zu: %d  states=%zu\n", i, static_cast<int>(o), h.m.states.size());
    const std::uint8_t arg = i + 1 < size ? data[i + 1] : 0;
    switch (o)
    {
    case op::wake:
    case op::wake_too:
      h.wake_local();
      break;
    case op::wait_callback:
    {
      int id = h.new_wait();
      auto t = std::make_shared<tracker>(&h, id);
      h.initiate(id, [&] { h.waker->async_wait(harness::handler{&h, id, t}); });
      break;
    }
    case op::wait_awaitable:
    {
      int id = h.new_wait();
      auto t = std::make_shared<tracker>(&h, id);
      // The coroutine starts (and initiates) when the context runs it.
      asio::co_spawn(*h.ctx, awaitable_wait(&h, id, t), asio::detached);
      break;
    }
    case op::wait_deferred:
    {
      int id = h.new_wait();
      auto t = std::make_shared<tracker>(&h, id);
      auto d = h.waker->async_wait(asio::deferred); // nothing initiated yet
      h.initiate(id, [&] { std::move(d)(harness::handler{&h, id, t}); });
      break;
    }
    case op::wait_as_tuple:
    {
      int id = h.new_wait();
      auto t = std::make_shared<tracker>(&h, id);
      h.initiate(id, [&] {
        h.waker->async_wait(asio::as_tuple(harness::tuple_handler{&h, id, t}));
      });
      break;
    }
    case op::wait_with_slot:
    {
      int id = h.new_wait();
      auto t = std::make_shared<tracker>(&h, id);
      auto sig = std::make_unique<asio::cancellation_signal>();
      auto slot = sig->slot();
      h.signals.emplace_back(id, std::move(sig));
      if (h.signals.size() > 4)
        h.signals.erase(h.signals.begin());
      h.initiate(id, [&] {
        h.waker->async_wait(
          asio::bind_cancellation_slot(slot, harness::handler{&h, id, t}));
      });
      break;
    }
    case op::emit:
      h.emit(arg >> 2, arg);
      ++i;
      break;
    case op::cancel:
      h.cancel();
      break;
    case op::poll_one:
      h.run_handlers(run_how::poll_one);
      break;
    case op::poll:
      h.run_handlers(run_how::poll);
      break;
    case op::run_one:
      h.run_handlers(run_how::run_one);
      break;
    case op::wake_remote:
      h.wake_remote();
      break;
    case op::sync:
      h.sync();
      break;
    case op::recreate_waker:
      h.recreate_waker();
      break;
    case op::shutdown_context:
      h.shutdown_context(arg & 1);
      ++i;
      break;
    }
  }
  h.sync();
  h.destroy_waker();
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
  std::printf("fuzz replay: %zu inputs passed\n", n);
  return n ? 0 : 1;
}
#endif
