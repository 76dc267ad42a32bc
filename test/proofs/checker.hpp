//
// test/proofs/checker.hpp
//
// A small exhaustive interleaving checker (stateless model checking, in the spirit of
// loom / CDSChecker) for code that synchronises through ONE atomic word, such as
// asio_waker::detail::basic_waker_state.
//
// * Logical threads are cooperative fibers (ucontext). Every operation on a
//   `checked_atomic` first yields to the scheduler, which decides which thread performs
//   the next atomic operation. Each decision is a choice point; the checker enumerates
//   ALL decision sequences by depth-first search with replay (each execution is re-run
//   from scratch following a recorded prefix of decisions, then the last undecided
//   choice is advanced). An "execution" is one complete leaf of that tree.
//
// * Memory model. Two modes:
//   - sc:   every load and RMW reads the latest value (sequential consistency).
//   - weak: the C++20 model restricted to the one atomic location, which for a single
//           location is exact: the word's modification order (mo) is the order in which
//           writes happen in the interleaving; an RMW always reads the latest write; a
//           plain load (and a FAILED compare-exchange, which is only a load) may read any
//           write that coherence allows (not older than what the thread has already
//           read or written, nor older than any write that happens-before it). Every such
//           stale read is an extra choice point. compare_exchange_weak may also fail
//           spuriously (bounded per execution).
//   Happens-before is tracked with vector clocks: an acquire load/RMW joins the clock
//   carried by the write it reads; release sequences are modelled (an RMW continues the
//   release sequences of the write it reads; a plain store ends them). Other
//   synchronisation (a hand-off through a scheduler queue, which takes a mutex) is
//   modelled by the harness: it keeps the clock of the thread that hands an operation
//   off and joins it into the thread that runs the handler. With that, the
//   harness can check that plain data written before a wake() is visible (happens-before)
//   to the handler that the wake completes: memory-ordering mistakes (a relaxed RMW, a
//   plain load instead of an RMW) are caught as violations, not only lost wake-ups.
//
// * Failures: `fail(msg)` records the first violation, the execution stops and the checker
//   reports the decision sequence and an event trace of that execution.
//
// * Exceptions. A thread may throw and catch inside its own body (the code under test
//   does: a failing hand-off unwinds through a scope guard that touches the word, so the
//   thread yields while an exception is in flight). The C++ runtime keeps its exception
//   bookkeeping (the caught-exception stack, the uncaught count) per OS thread, so each
//   fiber gets its own copy, swapped in and out with the fiber. An exception must not
//   leave a thread's body (that would unwind into the fiber trampoline: std::terminate).
//

#ifndef ASIO_WAKER_PROOFS_CHECKER_HPP
#define ASIO_WAKER_PROOFS_CHECKER_HPP

#include <ucontext.h>

#include <cxxabi.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace proofs {

constexpr int max_threads = 4; // logical threads, plus index `setup_tid`
constexpr int setup_tid = max_threads;
constexpr int clock_size = max_threads + 1;

struct vclock
{
  std::array<std::uint32_t, clock_size> c{};
  void join(const vclock& o)
  {
    for (int i = 0; i < clock_size; ++i)
      if (o.c[i] > c[i])
        c[i] = o.c[i];
  }
  std::string str() const
  {
    std::string s = "[";
    for (int i = 0; i < clock_size; ++i)
      s += (i ? "," : "") + std::to_string(c[i]);
    return s + "]";
  }
};

enum class memory_mode
{
  sc,
  weak
};

struct options
{
  memory_mode mode = memory_mode::weak;
  int max_spurious = 1; // spurious compare_exchange_weak failures per execution
  std::uint64_t max_executions = 50'000'000; // safety bound (reported if hit)
  int max_steps = 400;                       // per execution: a livelock guard
};

struct result
{
  std::uint64_t executions = 0;
  std::uint64_t max_choices = 0; // deepest decision sequence
  bool failed = false;
  bool bounded = false; // max_executions hit
  std::string message;
  std::string trace;
};

/// The runtime's per-thread exception bookkeeping (libstdc++ and libc++abi lay it out
/// alike: the caught-exception stack, then the uncaught count; ARM EABI adds a field).
struct eh_globals
{
  void* caught_exceptions = nullptr;
  unsigned int uncaught_exceptions = 0;
#if defined(__ARM_EABI_UNWINDER__)
  void* propagating_exceptions = nullptr;
#endif
};

inline eh_globals& runtime_eh_globals()
{
  return *reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
}

class checker;
inline checker*& current_checker()
{
  static checker* c = nullptr;
  return c;
}

/// One run of a scenario: the thread bodies and a final check, sharing a world that the
/// factory allocated (captured by the lambdas).
struct execution
{
  std::vector<std::function<void()>> threads;
  std::function<void()> final_check;
};

class checker
{
public:
  struct write_rec
  {
    std::uintptr_t val;
    vclock rel; // clocks released to an acquire that reads this write
    int writer;
    std::uint32_t epoch; // writer's own clock component at the write
  };

  // ---- exploration -------------------------------------------------------------------

  result explore(const std::function<execution()>& factory, options opt = {})
  {
    opt_ = opt;
    result r;
    trail_.clear();
    for (;;)
    {
      run_one(factory);
      ++r.executions;
      if (std::getenv("PROOFS_DEBUG") && r.executions % 100000 == 0)
        std::fprintf(stderr, "%llu executions, trail %zu\n%s",
          (unsigned long long)r.executions, trail_.size(), trace_str().c_str());
      if (trail_.size() > r.max_choices)
        r.max_choices = trail_.size();
      if (failed_)
      {
        r.failed = true;
        r.message = message_;
        r.trace = trace_str();
        return r;
      }
      // Backtrack: advance the deepest choice that has untried alternatives.
      while (!trail_.empty() && trail_.back().chosen + 1 >= trail_.back().n)
        trail_.pop_back();
      if (trail_.empty())
        return r;
      ++trail_.back().chosen;
      if (r.executions >= opt_.max_executions)
      {
        r.bounded = true;
        return r;
      }
    }
  }

  // ---- called from scenario code -----------------------------------------------------

  int tid() const { return cur_; }

  /// A nondeterministic choice among n alternatives (0 .. n-1), explored exhaustively.
  int choose(int n)
  {
    if (n <= 1)
      return 0;
    if (pos_ < trail_.size())
    {
      auto& d = trail_[pos_++];
      if (d.n != n)
        fail("checker: nondeterministic replay (scenario depends on something unmodelled)");
      return d.chosen;
    }
    trail_.push_back({0, n});
    ++pos_;
    return 0;
  }

  /// Records the first violation and ends the execution.
  void fail(const std::string& msg)
  {
    if (!failed_)
    {
      failed_ = true;
      message_ = msg;
      event("VIOLATION: " + msg);
    }
    if (in_fiber())
      for (;;)
        switch_to_main(); // never resumed
  }

  void check(bool ok, const std::string& msg)
  {
    if (!ok)
      fail(msg);
  }

  void event(std::string s) { trace_.push_back({cur_, std::move(s)}); }

  /// A scheduling point (every atomic operation calls it first).
  void yield_point()
  {
    if (!in_fiber())
      return; // setup / final check: run sequentially
    if (++steps_ > opt_.max_steps)
      fail("livelock: more than max_steps scheduling points in one execution");
    switch_to_main();
  }

  /// Blocks the calling thread until pred() holds (e.g. its operation was completed).
  /// If no thread can run and pred() stays false: reported as a deadlock (a lost wake).
  void wait_until(std::function<bool()> pred)
  {
    if (!in_fiber())
    {
      if (!pred())
        fail("wait_until outside a thread would block");
      return;
    }
    fibers_[cur_]->wait = std::move(pred);
    while (!fibers_[cur_]->wait())
      switch_to_main();
    fibers_[cur_]->wait = nullptr;
  }

  vclock& clock() { return clock_[cur_]; }

  /// A non-atomic event of this thread that others must see via happens-before; returns
  /// its epoch (this thread's component).
  std::uint32_t tick() { return ++clock_[cur_].c[slot(cur_)]; }
  static int slot(int t) { return t == setup_tid ? max_threads : t; }

  bool happened_before(int t, std::uint32_t epoch, const vclock& observer) const
  {
    return observer.c[slot(t)] >= epoch;
  }

  memory_mode mode() const { return opt_.mode; }
  int opt_max_spurious() const { return opt_.max_spurious; }

  // ---- the atomic word's history (used by checked_atomic) ----------------------------

  std::vector<write_rec>& mo() { return mo_; }
  std::size_t& seen(int t) { return seen_[slot(t)]; }
  std::size_t& last_access(int t) { return last_access_[slot(t)]; }
  bool& dead() { return dead_; }
  const void*& live_word() { return live_word_; }
  int& spurious() { return spurious_; }

  /// Hook called on every successful write of the word (old -> new) by the current
  /// thread, after the write's acquire (if any) took effect.
  std::function<void(std::uintptr_t, std::uintptr_t)> on_write;

  /// Lower bound (coherence) for a read by the current thread.
  std::size_t read_lower_bound()
  {
    std::size_t lb = seen(cur_);
    const vclock& me = clock_[cur_];
    for (std::size_t i = mo_.size(); i-- > lb;)
      if (me.c[slot(mo_[i].writer)] >= mo_[i].epoch)
        return i; // this write happens-before us: nothing older may be read
    return lb;
  }

private:
  struct decision
  {
    int chosen;
    int n;
  };

  struct fiber
  {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    std::function<void()> body;
    std::function<bool()> wait;
    bool done = false;
    eh_globals eh; // this fiber's exception bookkeeping while it is switched out
  };

  static constexpr std::size_t stack_size = 256 * 1024;

  bool in_fiber() const { return cur_ >= 0 && cur_ < max_threads; }

  void switch_to_main()
  {
    int me = cur_;
    swapcontext(&fibers_[me]->ctx, &main_ctx_);
  }

  static void trampoline()
  {
    checker* self = current_checker();
    int me = self->cur_;
    self->fibers_[me]->body();
    self->fibers_[me]->done = true;
    self->cur_ = -1;
    setcontext(&self->main_ctx_);
  }

  void reset()
  {
    pos_ = 0;
    failed_ = false;
    message_.clear();
    trace_.clear();
    mo_.clear();
    for (auto& s : seen_)
      s = 0;
    for (auto& s : last_access_)
      s = 0;
    for (auto& c : clock_)
      c = vclock{};
    dead_ = false;
    spurious_ = 0;
    steps_ = 0;
    on_write = nullptr;
  }

  void resume(int t)
  {
    eh_globals& rt = runtime_eh_globals();
    const eh_globals main_eh = rt;
    rt = fibers_[t]->eh;
    cur_ = t;
    swapcontext(&main_ctx_, &fibers_[t]->ctx);
    cur_ = -1;
    fibers_[t]->eh = rt;
    rt = main_eh;
  }

  void run_one(const std::function<execution()>& factory)
  {
    current_checker() = this;
    reset();
    cur_ = setup_tid;
    execution ex = factory(); // setup runs sequentially as the setup thread
    const int n = static_cast<int>(ex.threads.size());
    if (n > max_threads)
    {
      fail("too many threads");
      return;
    }
    // Thread creation: each thread starts after the setup (happens-before).
    for (int t = 0; t < n; ++t)
    {
      clock_[t] = clock_[setup_tid];
      clock_[t].c[slot(t)] = 1;
      seen_[slot(t)] = 0;
    }
    for (int t = 0; t < n; ++t)
    {
      if (!fibers_[t])
      {
        fibers_[t] = std::make_unique<fiber>();
        fibers_[t]->stack.reset(new char[stack_size]);
      }
      fiber& f = *fibers_[t];
      f.body = ex.threads[t];
      f.wait = nullptr;
      f.done = false;
      f.eh = eh_globals{}; // an abandoned fiber's exception in flight is dropped (leaked)
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.get();
      f.ctx.uc_stack.ss_size = stack_size;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, &checker::trampoline, 0);
    }
    cur_ = -1;
    // Run each thread to its first scheduling point (thread-local work only).
    for (int t = 0; t < n && !failed_; ++t)
      resume(t);
    while (!failed_)
    {
      int runnable[max_threads];
      int k = 0;
      bool any_alive = false;
      for (int t = 0; t < n; ++t)
      {
        if (fibers_[t]->done)
          continue;
        any_alive = true;
        if (!fibers_[t]->wait || fibers_[t]->wait())
          runnable[k++] = t;
      }
      if (!any_alive)
        break;
      if (k == 0)
      {
        cur_ = setup_tid;
        fail("deadlock: a thread waits for a completion that never comes (lost wake-up)");
        break;
      }
      resume(runnable[choose(k)]);
    }
    if (!failed_ && ex.final_check)
    {
      cur_ = setup_tid;
      ex.final_check();
    }
    cur_ = -1;
    // Abandoned fibers (after a failure) are never resumed: their locals are not
    // destroyed (the harness keeps nothing there that must be).
  }

  std::string trace_str() const
  {
    std::ostringstream os;
    os << "  decisions:";
    for (auto& d : trail_)
      os << ' ' << d.chosen << '/' << d.n;
    os << '\n';
    for (auto& e : trace_)
    {
      if (e.first == setup_tid)
        os << "  [setup] ";
      else if (e.first < 0)
        os << "  [sched] ";
      else
        os << "  [T" << e.first << "]    ";
      os << e.second << '\n';
    }
    return os.str();
  }

  options opt_;
  std::vector<decision> trail_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  std::string message_;
  std::vector<std::pair<int, std::string>> trace_;
  ucontext_t main_ctx_;
  std::array<std::unique_ptr<fiber>, max_threads> fibers_;
  int cur_ = -1;
  std::vector<write_rec> mo_;
  std::array<std::size_t, clock_size> seen_{};
  std::array<std::size_t, clock_size> last_access_{};
  std::array<vclock, max_threads + 1> clock_{};
  bool dead_ = false;
  const void* live_word_ = nullptr;
  int spurious_ = 0;
  int steps_ = 0;
};

inline bool is_acquire(std::memory_order o)
{
  return o == std::memory_order_acquire || o == std::memory_order_acq_rel
         || o == std::memory_order_seq_cst || o == std::memory_order_consume;
}

inline bool is_release(std::memory_order o)
{
  return o == std::memory_order_release || o == std::memory_order_acq_rel
         || o == std::memory_order_seq_cst;
}

inline const char* order_name(std::memory_order o)
{
  switch (o)
  {
  case std::memory_order_relaxed:
    return "relaxed";
  case std::memory_order_consume:
    return "consume";
  case std::memory_order_acquire:
    return "acquire";
  case std::memory_order_release:
    return "release";
  case std::memory_order_acq_rel:
    return "acq_rel";
  default:
    return "seq_cst";
  }
}

/// The instrumented atomic word: a drop-in for std::atomic<std::uintptr_t> as far as
/// basic_waker_state uses it (load, exchange, fetch_add, compare_exchange_weak/strong).
/// Exactly one live instance per execution.
class checked_atomic
{
public:
  using value_type = std::uintptr_t;

  explicit checked_atomic(value_type v) noexcept
  {
    checker& c = *current_checker();
    c.live_word() = this;
    c.mo().clear();
    c.dead() = false;
    c.mo().push_back({v, vclock{}, c.tid(), c.tick()});
    c.seen(c.tid()) = 0;
    c.event("construct word = " + name(v));
  }

  checked_atomic(const checked_atomic&) = delete;
  checked_atomic& operator=(const checked_atomic&) = delete;

  ~checked_atomic()
  {
    checker& c = *current_checker();
    if (c.live_word() != this)
      return; // a previous execution's world being freed
    c.live_word() = nullptr;
    c.dead() = true;
    c.event("destroy word");
  }

  value_type load(std::memory_order o = std::memory_order_seq_cst) const noexcept
  {
    checker& c = enter();
    auto& mo = c.mo();
    std::size_t idx = mo.size() - 1;
    if (c.mode() == memory_mode::weak)
    {
      std::size_t lb = c.read_lower_bound();
      // choice 0 = latest, then successively older (still coherent) writes
      idx = mo.size() - 1
            - static_cast<std::size_t>(c.choose(static_cast<int>(mo.size() - lb)));
    }
    read(c, idx, is_acquire(o));
    c.event(std::string("load(") + order_name(o) + ") -> " + name(mo[idx].val)
            + (idx + 1 < mo.size() ? " (stale: mo#" + std::to_string(idx) + " of "
                                       + std::to_string(mo.size()) + ")"
                                   : ""));
    return mo[idx].val;
  }

  value_type exchange(
    value_type v, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    checker& c = enter();
    value_type old = rmw(c, v, o);
    c.event(
      std::string("exchange(") + name(v) + ", " + order_name(o) + ") -> " + name(old));
    after_write(c, old, v);
    return old;
  }

  /// An RMW: always reads the latest value in modification order (it cannot read a
  /// stale one, unlike a load) and continues the release sequence.
  value_type fetch_add(
    value_type d, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    checker& c = enter();
    const value_type v = c.mo().back().val + d;
    value_type old = rmw(c, v, o);
    c.event(std::string("fetch_add(") + std::to_string(d) + ", " + order_name(o) + ") -> "
            + name(old));
    after_write(c, old, v);
    return old;
  }

  bool compare_exchange_weak(value_type& expected, value_type desired,
    std::memory_order s = std::memory_order_seq_cst,
    std::memory_order f = std::memory_order_seq_cst) noexcept
  {
    return cas(expected, desired, s, f, true);
  }

  bool compare_exchange_strong(value_type& expected, value_type desired,
    std::memory_order s = std::memory_order_seq_cst,
    std::memory_order f = std::memory_order_seq_cst) noexcept
  {
    return cas(expected, desired, s, f, false);
  }

  void store(value_type v, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    checker& c = enter();
    auto& mo = c.mo();
    value_type old = mo.back().val;
    vclock rel{};
    std::uint32_t ep = c.tick();
    if (is_release(o))
      rel = c.clock();
    mo.push_back({v, rel, c.tid(), ep});
    c.seen(c.tid()) = mo.size() - 1;
    c.last_access(c.tid()) = mo.size() - 1;
    c.event(std::string("store(") + name(v) + ", " + order_name(o) + ") [overwrites "
            + name(old) + "]");
    after_write(c, old, v);
  }

  static std::string name(value_type v)
  {
    if (v == 0)
      return "EMPTY";
    if (v == 1)
      return "NOTIFIED";
    if (auto& f = namer(); f)
      return f(v);
    return "op@" + std::to_string(v);
  }

  static std::function<std::string(value_type)>& namer()
  {
    static std::function<std::string(value_type)> f;
    return f;
  }

private:
  static checker& enter()
  {
    checker& c = *current_checker();
    c.yield_point();
    if (c.dead())
      c.fail("use after destroy: atomic word accessed after the state was destroyed");
    return c;
  }

  static void read(checker& c, std::size_t idx, bool acquire)
  {
    if (acquire)
      c.clock().join(c.mo()[idx].rel);
    c.seen(c.tid()) = idx;
    c.last_access(c.tid()) = idx;
  }

  // A successful RMW: reads the latest write, appends v.
  static value_type rmw(checker& c, value_type v, std::memory_order o)
  {
    auto& mo = c.mo();
    const std::size_t prev = mo.size() - 1;
    const value_type old = mo[prev].val;
    if (is_acquire(o))
      c.clock().join(mo[prev].rel);
    std::uint32_t ep = c.tick();
    vclock rel = mo[prev].rel; // release sequences continue through RMWs
    if (is_release(o))
      rel.join(c.clock());
    mo.push_back({v, rel, c.tid(), ep});
    c.seen(c.tid()) = mo.size() - 1;
    c.last_access(c.tid()) = mo.size() - 1;
    return old;
  }

  static void after_write(checker& c, value_type old, value_type v)
  {
    if (c.on_write)
      c.on_write(old, v);
  }

  bool cas(value_type& expected, value_type desired, std::memory_order s,
    std::memory_order f, bool weak) noexcept
  {
    checker& c = enter();
    auto& mo = c.mo();
    const std::size_t last = mo.size() - 1;
    // Alternatives: read the latest (then succeed if equal, unless a spurious failure of
    // a weak CAS is chosen), or, in weak mode, fail by reading an older coherent write
    // whose value differs from `expected`.
    std::vector<std::size_t> stale;
    if (c.mode() == memory_mode::weak)
      for (std::size_t i = c.read_lower_bound(); i < last; ++i)
        if (mo[i].val != expected)
          stale.push_back(i);
    const bool can_spurious =
      weak && mo[last].val == expected && c.spurious() < c.opt_max_spurious();
    const int n = 1 + static_cast<int>(stale.size()) + (can_spurious ? 1 : 0);
    const int ch = c.choose(n);
    const std::string what = std::string(weak ? "cas_weak(" : "cas_strong(")
                             + name(expected) + " -> " + name(desired) + ", "
                             + order_name(s) + "/" + order_name(f) + ")";
    if (ch == 0 && mo[last].val == expected)
    {
      value_type old = rmw(c, desired, s);
      c.event(what + " succeeded");
      after_write(c, old, desired);
      return true;
    }
    std::size_t idx = last;
    if (ch >= 1 && ch <= static_cast<int>(stale.size()))
      idx = stale[static_cast<std::size_t>(ch - 1)];
    else if (ch != 0)
      ++c.spurious();
    read(c, idx, is_acquire(f));
    expected = mo[idx].val;
    c.event(what + " failed, read " + name(expected)
            + (idx != last ? " (stale)" : (ch != 0 ? " (spurious)" : "")));
    return false;
  }
};

} // namespace proofs

#endif // ASIO_WAKER_PROOFS_CHECKER_HPP
