//
// test/proofs/checker.hpp
//
// A small exhaustive interleaving checker (stateless model checking, in the spirit of
// loom / CDSChecker) for code that synchronises through atomic locations: the waker's
// one word (asio_waker::detail::basic_waker_state) and the channel's several locations
// of several types (a tail index, per-slot states, block pointers, counters).
//
// * Logical threads are cooperative fibers (ucontext). Every operation on a
//   `checked_atomic<T>` (and every `fence`) first yields to the scheduler, which decides
//   which thread performs the next atomic operation. Each decision is a choice point;
//   the checker enumerates ALL decision sequences by depth-first search with replay (each
//   execution is re-run from scratch following a recorded prefix of decisions, then the
//   last undecided choice is advanced). An "execution" is one complete leaf of that
//   tree.
//
// * Locations. `checked_atomic<T>` (T integral, bool or a pointer) is a drop-in for
//   std::atomic<T> as far as the code under test uses it: load, store, exchange,
//   compare_exchange_weak/strong, fetch_add/sub/and/or/xor, each with its memory orders.
//   Each object constructed during an execution is a new location with its own history
//   (values are kept by the checker, as 64-bit patterns, not in the object). Destroying
//   the object ends the location: any later access is reported as a use after destroy.
//   The first location of an execution is its "primary" one: the single-word accessors
//   (mo(), last_access(), read_lower_bound()) that the waker's harness uses refer to it.
//
// * Memory model. Two modes:
//   - sc:   every load and RMW reads the latest value (sequential consistency); fences
//           do nothing and are not scheduling points.
//   - weak: the C++20 model, operationally, in the style of loom / CDSChecker:
//     . Modification order (mo) per location: the order in which writes happen in the
//       interleaving. An RMW always reads the latest write (atomicity).
//     . Coherence: a plain load (or a FAILED compare-exchange, which is only a load) may
//       read any write of that location that is not older than its lower bound, which
//       is the newest of: what this thread last read or wrote there; any write there
//       that happens-before the load; the write read by any load that happens-before
//       it (CoRR through happens-before); the floors that seq_cst imposes (below).
//       Every older write a load may read is an extra choice point (choice 0 is the
//       latest write, then successively older ones).
//     . Happens-before is tracked with vector clocks: an acquire load/RMW joins the
//       clock released by the write it reads; release sequences are modelled (an RMW
//       continues the release sequences of the write it reads; a plain store ends
//       them); fences: a release fence makes the thread's later relaxed writes carry its
//       clock at the fence, an acquire fence joins what the thread's earlier relaxed
//       reads would have acquired.
//     . seq_cst. The seq_cst operations are totally ordered (the order S) in the order
//       they happen in the interleaving, and the C++20 rules for S ([atomics.order]
//       p4: coherence-ordered-before must agree with S, also through seq_cst fences) are
//       enforced as read floors: per location, `sc_floor` is the newest write that a
//       seq_cst write made or a seq_cst load read there, or that was visible (in the
//       lower-bound sense above) to any thread at one of its seq_cst fences. A seq_cst
//       load reads at or after sc_floor: when the last write of that location was
//       seq_cst (the handshake's case) that is the latest write. A non-seq_cst load is
//       bound only by coherence, so it may still read an older value. A seq_cst fence
//       F first raises sc_floor of every location to what its thread sees, then records
//       the floors; every load that F happens-before reads at or after them. So a
//       store-buffering (Dekker) handshake is exact: with seq_cst on both sides (both
//       stores and both loads seq_cst, or seq_cst fences between each store and load)
//       at least one load sees the other side's store; drop the seq_cst from one load
//       (or one fence) and the execution where both loads read the old values is
//       explored.
//     What is NOT explored: a load reading from a write that comes later in the
//     interleaving (load buffering; an RMW or store is always appended at the end of its
//     location's mo), and out-of-thin-air values. compare_exchange_weak may also fail
//     spuriously (bounded per execution).
//   Other synchronisation (a hand-off through a scheduler queue, which takes a mutex) is
//   modelled by the harness: it keeps the clock of the thread that hands an operation
//   off and joins it into the thread that runs the handler; all the floors above are
//   computed from clocks, so such a join also carries coherence. With that, a harness
//   can check that plain data written before a publication is visible (happens-before)
//   to whoever receives it: memory-ordering mistakes (a relaxed RMW, a plain load instead
//   of an RMW, a missing fence) are caught as violations, not only lost wake-ups.
//
// * Spin loops. A thread that calls spin_yield() (the harness routes
//   std::this_thread::yield() there) is not scheduled again until another thread has
//   taken a step: re-reading the same values cannot change anything, and without this a
//   spin loop would be an infinite branch of the search. When it runs again, the
//   locations it read since its previous yield are read at their latest values (stores
//   become visible in finite time, [atomics.order] p11; an older value is what it already
//   read in the iteration before, so nothing is lost for a spin loop). If only spinning
//   threads can run, one is resumed and reads every location at its latest value; if it
//   yields again before any other thread moved, that is reported as a livelock.
//
// * Bounding. Without a bound every interleaving is explored. `max_preemptions` limits
//   the switches away from a thread that could have continued (CHESS-style preemption
//   bounding): the search is then exhaustive for every execution with at most that many
//   preemptions, and the counts say under which bound they were obtained.
//
// * Traces are recorded only when a failure is replayed: exploration runs without
//   building event strings; the failing execution is then re-run from its decision
//   sequence with tracing on (the run is deterministic).
//
// * Hooks for a harness (reset before each execution): on_write/on_write_at (every
//   write), on_access (every operation, with the values read and written), on_create and
//   on_destroy (a location's life), each with the atomic object's address and a tag of
//   its value type (checked_atomic<T>::type_tag()).
//
// * Data races on a location's initialisation: constructing a checked_atomic is a plain
//   write. A thread that accesses the location without happening-after its construction
//   (a block published through a relaxed pointer) is reported as a data race.
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
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
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
  /// Preemption bound (CHESS, loom's LOOM_MAX_PREEMPTIONS): at most this many switches
  /// away from a thread that could have continued, per execution; -1: unbounded (every
  /// interleaving). Switches away from a thread that finished, waits, or yields in a
  /// spin loop are free.
  int max_preemptions = -1;
  /// Weak mode: at most this many loads (or failed compare-exchanges) per execution read
  /// an older value than the latest; -1: unbounded. Later ones read the latest.
  int max_stale = -1;
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

inline bool is_sc(std::memory_order o)
{
  return o == std::memory_order_seq_cst;
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

class checker
{
public:
  /// One write in a location's modification order.
  struct write_rec
  {
    std::uint64_t val;
    vclock rel; // clocks released to an acquire that reads this write
    int writer;
    std::uint32_t epoch; // writer's own clock component at the write
  };

  /// One load (or failed compare-exchange) in weak mode: for coherence through
  /// happens-before (a thread that happens-after this read cannot read older).
  struct read_rec
  {
    int reader;
    std::uint32_t epoch;
    std::size_t idx; // the write it read, in its location's mo
  };

  /// A location's formatter: the 64-bit pattern as the value's type names it.
  using formatter = std::string (*)(std::uint64_t);

  /// One atomic object's life in one execution.
  struct location
  {
    const void* addr = nullptr;
    int id = 0;
    std::vector<write_rec> mo;
    std::vector<read_rec> reads;
    std::array<std::size_t, clock_size> seen{};        // per thread: coherence floor
    std::array<std::size_t, clock_size> last_access{}; // per thread: last write read/made
    std::size_t sc_floor = 0; // seq_cst loads read at or after this write
    bool dead = false;
    int creator = setup_tid;
    std::uint32_t create_epoch = 0;
    formatter fmt = nullptr;
    const void* type = nullptr;
  };

  /// A seq_cst fence: the sc floors it recorded, for the loads it happens-before.
  struct fence_rec
  {
    int tid;
    std::uint32_t epoch;
    std::vector<std::size_t> floor; // per location id (locations created later: none)
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
        // Replay the failing execution (the same decisions) with the trace on.
        tracing_ = true;
        run_one(factory);
        tracing_ = false;
        r.trace = trace_str();
        if (!failed_ || message_ != r.message)
          r.trace += "  (the replay did not reproduce the failure: " + message_ + ")\n";
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

  /// Whether the caller runs in one of the execution's threads (not setup or checks).
  bool in_thread() const { return in_fiber(); }

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

  bool failed() const { return failed_; }

  void event(std::string s)
  {
    if (tracing_)
      trace_.push_back({cur_, std::move(s)});
  }

  /// Whether events are recorded (only while a failure is replayed): build an event's
  /// text only when this is true.
  bool tracing() const { return tracing_; }

  /// What std::this_thread::yield() does in a thread: not scheduled again until another
  /// thread has taken a step (see the header comment).
  void spin_yield()
  {
    if (!in_fiber())
      return;
    const auto me = static_cast<std::size_t>(cur_);
    if (forced_[me])
      fail("livelock: a thread spins in a yield loop and no other thread can make "
           "progress");
    yielded_[me] = true;
    flush_[me] = true;
    yield_point();
  }

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

  vclock& clock() { return clock_[me()]; }

  /// A non-atomic event of this thread that others must see via happens-before; returns
  /// its epoch (this thread's component).
  std::uint32_t tick() { return ++clock_[me()].c[me()]; }
  static int slot(int t) { return t == setup_tid ? max_threads : t; }
  /// The current thread's slot (outside any thread: the setup thread's).
  int me() const { return cur_ < 0 ? max_threads : slot(cur_); }

  bool happened_before(int t, std::uint32_t epoch, const vclock& observer) const
  {
    return observer.c[slot(t)] >= epoch;
  }

  memory_mode mode() const { return opt_.mode; }
  /// Whether a load may still read an older value (max_stale).
  bool stale_allowed() const { return opt_.max_stale < 0 || stale_ < opt_.max_stale; }
  void count_stale() { ++stale_; }
  int opt_max_spurious() const { return opt_.max_spurious; }
  int& spurious() { return spurious_; }

  // ---- the primary location (the waker's one word) -----------------------------------

  std::vector<write_rec>& mo() { return primary().mo; }
  std::size_t& seen(int t) { return primary().seen[slot(t)]; }
  std::size_t& last_access(int t) { return primary().last_access[slot(t)]; }
  bool& dead() { return primary().dead; }
  std::size_t read_lower_bound() { return lower_bound(primary(), false); }

  // ---- every location ----------------------------------------------------------------

  std::size_t location_count() const { return locs_.size(); }
  location& loc(int id) { return locs_[static_cast<std::size_t>(id)]; }

  /// One operation on a location, for on_access.
  struct access
  {
    const void* addr;
    const void* type; // checked_atomic<T>::type_tag()
    bool read;        // a load, an RMW, or a failed compare-exchange
    std::uint64_t value_read;
    bool wrote; // a store or a successful RMW
    std::uint64_t value_written;
  };

  /// Hooks, reset before each execution (the harness sets them in its factory).
  /// on_write: every successful write of any location (old -> new) by the current
  /// thread, after the write's acquire (if any) took effect; meant for a harness with
  /// one location. on_write_at: the same, with the atomic object's address.
  std::function<void(std::uintptr_t, std::uintptr_t)> on_write;
  std::function<void(const void*, std::uint64_t, std::uint64_t)> on_write_at;
  /// Names a location in the trace (by the atomic object's address); without it, and
  /// with more than one location, locations are named L0, L1, ...
  std::function<std::string(const void*)> location_label;
  std::function<void(const access&)> on_access;
  std::function<void(const void*, const void*)> on_create; // (address, type tag)
  std::function<void(const void*, const void*)> on_destroy;

  // ---- the model (used by checked_atomic) --------------------------------------------

  /// A new location whose first write (the plain initialisation) is `init`.
  int create_location(
    const void* addr, std::uint64_t init, formatter fmt, const void* type = nullptr)
  {
    location& l = locs_.emplace_back();
    l.addr = addr;
    l.id = static_cast<int>(locs_.size() - 1);
    l.fmt = fmt;
    l.creator = cur_ < 0 ? setup_tid : cur_;
    l.create_epoch = tick();
    l.mo.push_back({init, vclock{}, l.creator, l.create_epoch});
    l.type = type;
    if (tracing_)
      event("construct " + (locs_.size() == 1 ? std::string("word") : label(l)) + " = "
            + value_name(l, init));
    if (on_create)
      on_create(addr, type);
    return l.id;
  }

  void destroy_location(int id)
  {
    location& l = loc(id);
    l.dead = true;
    if (tracing_)
      event("destroy " + (locs_.size() == 1 ? std::string("word") : label(l)));
    if (on_destroy)
      on_destroy(l.addr, l.type);
  }

  std::uint64_t generation() const { return generation_; }

  /// Every operation on a location starts here: a scheduling point, then the lifetime
  /// and initialisation checks.
  location& enter(int id)
  {
    yield_point();
    location& l = loc(id);
    if (l.dead)
      fail(locs_.size() == 1
             ? "use after destroy: atomic word accessed after the state was destroyed"
             : "use after destroy: atomic " + label(l) + " accessed after it was destroyed");
    if (!happened_before(l.creator, l.create_epoch, clock()))
      fail("data race: " + label(l)
           + " accessed by a thread that does not happen-after its construction");
    return l;
  }

  /// The oldest write of `l` the current thread may read (coherence, happens-before,
  /// seq_cst floors; see the header comment).
  std::size_t lower_bound(const location& l, bool sc_load) const
  {
    const vclock& now = clock_[me()];
    std::size_t lb = l.seen[me()];
    for (std::size_t i = l.mo.size(); i-- > lb;)
      if (now.c[slot(l.mo[i].writer)] >= l.mo[i].epoch)
      {
        lb = i; // this write happens-before us: nothing older may be read
        break;
      }
    for (const read_rec& r : l.reads)
      if (r.idx > lb && now.c[slot(r.reader)] >= r.epoch)
        lb = r.idx;
    const auto id = static_cast<std::size_t>(l.id);
    for (const fence_rec& f : fences_)
      if (id < f.floor.size() && f.floor[id] > lb && now.c[slot(f.tid)] >= f.epoch)
        lb = f.floor[id];
    if (sc_load && l.sc_floor > lb)
      lb = l.sc_floor;
    return lb;
  }

  /// Which write a load reads: the latest in sc mode; in weak mode a choice between the
  /// latest (choice 0) and successively older ones down to the lower bound.
  std::size_t pick_read(const location& l, std::memory_order o)
  {
    std::size_t idx = l.mo.size() - 1;
    if (mode() == memory_mode::weak && stale_allowed())
    {
      const std::size_t lb = lower_bound(l, is_sc(o));
      const int ch = choose(static_cast<int>(l.mo.size() - lb));
      idx -= static_cast<std::size_t>(ch);
      if (ch > 0)
        ++stale_;
    }
    return idx;
  }

  /// The current thread read write `idx` of `l` (a load, or a failed compare-exchange).
  void did_read(location& l, std::size_t idx, std::memory_order o)
  {
    const int me = this->me();
    if (is_acquire(o))
      clock_[me].join(l.mo[idx].rel);
    else
      acq_pending_[me].join(l.mo[idx].rel);
    l.seen[me] = idx;
    l.last_access[me] = idx;
    if (mode() == memory_mode::weak)
    {
      if (in_fiber())
        spin_reads_[static_cast<std::size_t>(cur_)].push_back(l.id);
      l.reads.push_back({cur_, tick(), idx});
      if (is_sc(o) && idx > l.sc_floor)
        l.sc_floor = idx;
    }
  }

  /// A successful RMW: reads the latest write, appends v; returns the old value.
  std::uint64_t rmw(location& l, std::uint64_t v, std::memory_order o)
  {
    const int me = this->me();
    const std::size_t prev = l.mo.size() - 1;
    const std::uint64_t old = l.mo[prev].val;
    if (is_acquire(o))
      clock_[me].join(l.mo[prev].rel);
    else
      acq_pending_[me].join(l.mo[prev].rel);
    const std::uint32_t ep = tick();
    vclock rel = l.mo[prev].rel; // release sequences continue through RMWs
    rel.join(is_release(o) ? clock_[me] : rel_fence_[me]);
    l.mo.push_back({v, rel, cur_, ep});
    after_write(l, o);
    return old;
  }

  /// A plain store: appends v (and ends the release sequences of earlier writes).
  void store(location& l, std::uint64_t v, std::memory_order o)
  {
    const int me = this->me();
    const std::uint32_t ep = tick();
    l.mo.push_back({v, is_release(o) ? clock_[me] : rel_fence_[me], cur_, ep});
    after_write(l, o);
  }

  /// std::atomic_thread_fence(o) by the current thread.
  void fence(std::memory_order o)
  {
    if (o == std::memory_order_relaxed)
      return;
    if (mode() == memory_mode::weak)
      yield_point(); // a seq_cst fence's place in S matters
    const int me = this->me();
    if (is_acquire(o))
      clock_[me].join(acq_pending_[me]);
    const std::uint32_t ep = tick();
    if (is_release(o))
      rel_fence_[me] = clock_[me];
    if (is_sc(o) && mode() == memory_mode::weak)
    {
      fence_rec f{cur_, ep, {}};
      f.floor.resize(locs_.size());
      for (location& l : locs_)
      {
        const std::size_t lb = lower_bound(l, false);
        if (lb > l.sc_floor)
          l.sc_floor = lb;
        f.floor[static_cast<std::size_t>(l.id)] = l.sc_floor;
      }
      fences_.push_back(std::move(f));
    }
    if (tracing_)
      event(std::string("fence(") + order_name(o) + ")");
  }

  std::string label(const location& l) const
  {
    if (location_label)
      if (std::string s = location_label(l.addr); !s.empty())
        return s;
    return "L" + std::to_string(l.id);
  }

  /// The trace's prefix for an operation on `l` (none while there is only one location,
  /// which keeps the waker's traces as they were).
  std::string prefix(const location& l) const
  {
    return locs_.size() == 1 ? std::string() : label(l) + ".";
  }

  static std::string value_name(const location& l, std::uint64_t v)
  {
    return l.fmt ? l.fmt(v) : std::to_string(v);
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

  location& primary()
  {
    if (locs_.empty())
    {
      static location none;
      none = location{};
      none.mo.push_back({0, vclock{}, setup_tid, 0});
      return none;
    }
    return locs_.front();
  }

  void after_write(location& l, std::memory_order o)
  {
    const int me = this->me();
    const std::size_t idx = l.mo.size() - 1;
    l.seen[me] = idx;
    l.last_access[me] = idx;
    if (mode() == memory_mode::weak && is_sc(o))
      l.sc_floor = idx;
  }

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
    ++generation_;
    pos_ = 0;
    failed_ = false;
    message_.clear();
    trace_.clear();
    locs_.clear();
    fences_.clear();
    for (auto& c : clock_)
      c = vclock{};
    for (auto& c : acq_pending_)
      c = vclock{};
    for (auto& c : rel_fence_)
      c = vclock{};
    spurious_ = 0;
    stale_ = 0;
    steps_ = 0;
    on_write = nullptr;
    on_write_at = nullptr;
    location_label = nullptr;
    on_access = nullptr;
    on_create = nullptr;
    on_destroy = nullptr;
    yielded_.fill(false);
    forced_.fill(false);
    flush_.fill(false);
    for (auto& v : spin_reads_)
      v.clear();
    last_run_ = -1;
    preemptions_ = 0;
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
      for (location& l : locs_)
        l.seen[slot(t)] = 0;
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
      int spinning = 0;
      bool any_alive = false;
      bool last_runnable = false;
      for (int t = 0; t < n; ++t)
      {
        if (fibers_[t]->done)
          continue;
        any_alive = true;
        if (fibers_[t]->wait && !fibers_[t]->wait())
          continue;
        if (yielded_[static_cast<std::size_t>(t)])
        {
          ++spinning;
          continue;
        }
        runnable[k++] = t;
        if (t == last_run_)
          last_runnable = true;
      }
      if (!any_alive)
        break;
      if (k == 0 && spinning > 0)
      {
        // Only spinning threads can run: they run (and livelock if they spin again).
        for (int t = 0; t < n; ++t)
          if (!fibers_[t]->done && yielded_[static_cast<std::size_t>(t)]
              && (!fibers_[t]->wait || fibers_[t]->wait()))
          {
            forced_[static_cast<std::size_t>(t)] = true;
            runnable[k++] = t;
            if (t == last_run_)
              last_runnable = true;
          }
      }
      if (k == 0)
      {
        cur_ = setup_tid;
        fail("deadlock: a thread waits for a completion that never comes (lost wake-up)");
        break;
      }
      int next;
      if (last_runnable && opt_.max_preemptions >= 0
          && preemptions_ >= opt_.max_preemptions)
        next = last_run_; // the bound is reached: no more preemptions
      else
      {
        next = runnable[choose(k)];
        if (last_runnable && next != last_run_)
          ++preemptions_;
      }
      for (int t = 0; t < n; ++t)
        if (t != next)
          yielded_[static_cast<std::size_t>(t)] = forced_[static_cast<std::size_t>(t)] =
            false;
      yielded_[static_cast<std::size_t>(next)] = false;
      if (flush_[static_cast<std::size_t>(next)])
      {
        // Back from a yield: what it spun on is read at its latest value; if no other
        // thread can run, everything is (every store becomes visible in finite time).
        flush_[static_cast<std::size_t>(next)] = false;
        if (forced_[static_cast<std::size_t>(next)])
          for (location& l : locs_)
            l.seen[slot(next)] = l.mo.size() - 1;
        for (int id : spin_reads_[static_cast<std::size_t>(next)])
          loc(id).seen[slot(next)] = loc(id).mo.size() - 1;
        spin_reads_[static_cast<std::size_t>(next)].clear();
      }
      last_run_ = next;
      resume(next);
    }
    if (!failed_ && ex.final_check)
    {
      // Thread join: the final check happens-after every thread.
      for (int t = 0; t < n; ++t)
        clock_[setup_tid].join(clock_[t]);
      cur_ = setup_tid;
      ex.final_check();
    }
    cur_ = -1;
    // The execution's world dies with it (the bodies hold it), not when the next
    // execution replaces the bodies. Abandoned fibers (after a failure) are never
    // resumed: their locals are not destroyed (the harness keeps nothing there that
    // must be).
    for (int t = 0; t < n; ++t)
      fibers_[t]->body = nullptr;
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
  std::deque<location> locs_; // stable references while locations are added
  std::vector<fence_rec> fences_;
  std::array<vclock, clock_size> clock_{};
  std::array<vclock, clock_size> acq_pending_{}; // released to earlier relaxed reads
  std::array<vclock, clock_size> rel_fence_{};   // clock at the last release fence
  std::uint64_t generation_ = 0;
  bool tracing_ = false;
  std::array<bool, max_threads> yielded_{};
  std::array<bool, max_threads> forced_{}; // resumed while only spinners could run
  std::array<bool, max_threads> flush_{};  // yielded: refresh spin_reads_ on resume
  std::array<std::vector<int>, max_threads> spin_reads_{}; // locations read since
                                                            // the last yield
  int last_run_ = -1;
  int preemptions_ = 0;
  int spurious_ = 0;
  int stale_ = 0;
  int steps_ = 0;
};

/// std::atomic_thread_fence for code under test (a template parameter or a hook of the
/// code chooses between this and the real one). Not named atomic_thread_fence: argument
/// dependent lookup on std::memory_order would make every call ambiguous.
inline void thread_fence(std::memory_order o) noexcept
{
  current_checker()->fence(o);
}

/// The instrumented atomic: a drop-in for std::atomic<T> (T integral, bool or a pointer)
/// as far as lock-free code uses it. Any number of instances per execution; each one
/// constructed during an execution is a location of its own (see the header comment).
template <typename T>
class checked_atomic
{
  static_assert(std::is_integral_v<T> || std::is_pointer_v<T>,
    "checked_atomic<T>: T must be an integral or a pointer type");
  static_assert(sizeof(T) <= sizeof(std::uint64_t));

  // The arithmetic operand: T itself, or ptrdiff_t for a pointer (in elements).
  using diff_type = std::conditional_t<std::is_pointer_v<T>, std::ptrdiff_t, T>;

public:
  using value_type = T;
  static constexpr bool is_always_lock_free = true;

  checked_atomic() noexcept : checked_atomic(T{}) {}

  explicit checked_atomic(T v) noexcept
  {
    checker& c = *current_checker();
    gen_ = c.generation();
    loc_ = c.create_location(this, bits(v), &format, type_tag());
  }

  checked_atomic(const checked_atomic&) = delete;
  checked_atomic& operator=(const checked_atomic&) = delete;

  ~checked_atomic()
  {
    checker* c = current_checker();
    if (!c || c->generation() != gen_)
      return; // a previous execution's world being freed
    if (!c->loc(loc_).dead && c->loc(loc_).addr == this)
      c->destroy_location(loc_);
  }

  bool is_lock_free() const noexcept { return true; }

  T load(std::memory_order o = std::memory_order_seq_cst) const noexcept
  {
    checker& c = *current_checker();
    auto& l = c.enter(loc_);
    const std::size_t idx = c.pick_read(l, o);
    c.did_read(l, idx, o);
    const std::uint64_t v = l.mo[idx].val;
    if (c.tracing())
      c.event(c.prefix(l) + "load(" + order_name(o) + ") -> " + format(v)
              + (idx + 1 < l.mo.size() ? " (stale: mo#" + std::to_string(idx) + " of "
                                           + std::to_string(l.mo.size()) + ")"
                                       : ""));
    accessed(c, true, v, false, 0);
    return value(v);
  }

  operator T() const noexcept { return load(); }

  void store(T v, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    checker& c = *current_checker();
    auto& l = c.enter(loc_);
    const std::uint64_t old = l.mo.back().val;
    c.store(l, bits(v), o);
    if (c.tracing())
      c.event(c.prefix(l) + "store(" + format(bits(v)) + ", " + order_name(o)
              + ") [overwrites " + format(old) + "]");
    after_write(c, old, bits(v));
    accessed(c, false, 0, true, bits(v));
  }

  T exchange(T v, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    checker& c = *current_checker();
    auto& l = c.enter(loc_);
    const std::uint64_t old = c.rmw(l, bits(v), o);
    if (c.tracing())
      c.event(c.prefix(l) + "exchange(" + format(bits(v)) + ", " + order_name(o) + ") -> "
              + format(old));
    after_write(c, old, bits(v));
    accessed(c, true, old, true, bits(v));
    return value(old);
  }

  /// An RMW: always reads the latest value in modification order (it cannot read a
  /// stale one, unlike a load) and continues the release sequence.
  T fetch_add(diff_type d, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    return fetch_op("fetch_add", d, o, [](T a, diff_type b) -> T {
      if constexpr (std::is_pointer_v<T>)
        return a + b;
      else
        return wrap(unsigned_of(a) + unsigned_of(b));
    });
  }

  T fetch_sub(diff_type d, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    return fetch_op("fetch_sub", d, o, [](T a, diff_type b) -> T {
      if constexpr (std::is_pointer_v<T>)
        return a - b;
      else
        return wrap(unsigned_of(a) - unsigned_of(b));
    });
  }

  T fetch_and(T d, std::memory_order o = std::memory_order_seq_cst) noexcept
    requires std::is_integral_v<T>
  {
    return fetch_op("fetch_and", d, o, [](T a, T b) -> T { return T(a & b); });
  }

  T fetch_or(T d, std::memory_order o = std::memory_order_seq_cst) noexcept
    requires std::is_integral_v<T>
  {
    return fetch_op("fetch_or", d, o, [](T a, T b) -> T { return T(a | b); });
  }

  T fetch_xor(T d, std::memory_order o = std::memory_order_seq_cst) noexcept
    requires std::is_integral_v<T>
  {
    return fetch_op("fetch_xor", d, o, [](T a, T b) -> T { return T(a ^ b); });
  }

  bool compare_exchange_weak(T& expected, T desired, std::memory_order s,
    std::memory_order f) noexcept
  {
    return cas(expected, desired, s, f, true);
  }

  bool compare_exchange_strong(T& expected, T desired, std::memory_order s,
    std::memory_order f) noexcept
  {
    return cas(expected, desired, s, f, false);
  }

  bool compare_exchange_weak(
    T& expected, T desired, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    return cas(expected, desired, o, failure_order(o), true);
  }

  bool compare_exchange_strong(
    T& expected, T desired, std::memory_order o = std::memory_order_seq_cst) noexcept
  {
    return cas(expected, desired, o, failure_order(o), false);
  }

  /// Names values in the trace (per value type; the default prints numbers and
  /// pointers).
  static std::function<std::string(T)>& namer()
  {
    static std::function<std::string(T)> f;
    return f;
  }

  static std::string name(T v) { return format(bits(v)); }

  /// Identifies the value type in the checker's hooks.
  static const void* type_tag() noexcept
  {
    static const char tag = 0;
    return &tag;
  }

private:
  template <typename U>
  struct unsigned_of_t
  {
    using type = std::make_unsigned_t<U>;
  };
  template <typename U>
  struct unsigned_of_t<U*>
  {
    using type = std::uintptr_t;
  };
  template <typename U>
    requires std::is_same_v<U, bool>
  struct unsigned_of_t<U>
  {
    using type = std::uintptr_t;
  };
  using unsigned_type = typename unsigned_of_t<T>::type;

  static unsigned_type unsigned_of(T v) noexcept
  {
    if constexpr (std::is_pointer_v<T>)
      return reinterpret_cast<std::uintptr_t>(v);
    else
      return static_cast<unsigned_type>(v);
  }

  static T wrap(unsigned_type u) noexcept
  {
    if constexpr (std::is_pointer_v<T>)
      return reinterpret_cast<T>(u);
    else
      return static_cast<T>(u);
  }

  static std::uint64_t bits(T v) noexcept
  {
    return static_cast<std::uint64_t>(unsigned_of(v));
  }

  static T value(std::uint64_t b) noexcept { return wrap(static_cast<unsigned_type>(b)); }

  static std::string format(std::uint64_t b)
  {
    if (auto& f = namer(); f)
      return f(value(b));
    if constexpr (std::is_pointer_v<T>)
    {
      if (b == 0)
        return "null";
      std::ostringstream os;
      os << "0x" << std::hex << b;
      return os.str();
    }
    else if constexpr (std::is_same_v<T, bool>)
      return b ? "true" : "false";
    else if constexpr (std::is_signed_v<T>)
      return std::to_string(static_cast<long long>(value(b)));
    else
      return std::to_string(b);
  }

  static std::memory_order failure_order(std::memory_order o) noexcept
  {
    if (o == std::memory_order_acq_rel)
      return std::memory_order_acquire;
    if (o == std::memory_order_release)
      return std::memory_order_relaxed;
    return o;
  }

  void accessed(checker& c, bool read, std::uint64_t r, bool wrote, std::uint64_t w) const
  {
    if (c.on_access)
      c.on_access({this, type_tag(), read, r, wrote, w});
  }

  void after_write(checker& c, std::uint64_t old, std::uint64_t v) const
  {
    if (c.on_write)
      c.on_write(static_cast<std::uintptr_t>(old), static_cast<std::uintptr_t>(v));
    if (c.on_write_at)
      c.on_write_at(this, old, v);
  }

  template <typename D, typename F>
  T fetch_op(const char* what, D d, std::memory_order o, F op) noexcept
  {
    checker& c = *current_checker();
    auto& l = c.enter(loc_);
    const std::uint64_t v = bits(op(value(l.mo.back().val), d));
    const std::uint64_t old = c.rmw(l, v, o);
    if (c.tracing())
    {
      std::string operand;
      if constexpr (std::is_pointer_v<T>)
        operand = std::to_string(d);
      else
        operand = format(bits(d));
      c.event(c.prefix(l) + what + "(" + operand + ", " + order_name(o) + ") -> "
              + format(old));
    }
    after_write(c, old, v);
    accessed(c, true, old, true, v);
    return value(old);
  }

  bool cas(T& expected, T desired, std::memory_order s, std::memory_order f,
    bool weak) noexcept
  {
    checker& c = *current_checker();
    auto& l = c.enter(loc_);
    auto& mo = l.mo;
    const std::size_t last = mo.size() - 1;
    const std::uint64_t exp = bits(expected);
    // Alternatives: read the latest (then succeed if equal, unless a spurious failure of
    // a weak CAS is chosen), or, in weak mode, fail by reading an older coherent write
    // whose value differs from `expected`.
    std::vector<std::size_t> stale;
    if (c.mode() == memory_mode::weak && c.stale_allowed())
      for (std::size_t i = c.lower_bound(l, is_sc(f)); i < last; ++i)
        if (mo[i].val != exp)
          stale.push_back(i);
    const bool can_spurious =
      weak && mo[last].val == exp && c.spurious() < c.opt_max_spurious();
    const int n = 1 + static_cast<int>(stale.size()) + (can_spurious ? 1 : 0);
    const int ch = c.choose(n);
    const std::string what = !c.tracing()
                               ? std::string()
                               : c.prefix(l) + (weak ? "cas_weak(" : "cas_strong(")
                                   + format(exp) + " -> " + format(bits(desired)) + ", "
                                   + order_name(s) + "/" + order_name(f) + ")";
    if (ch == 0 && mo[last].val == exp)
    {
      const std::uint64_t old = c.rmw(l, bits(desired), s);
      c.event(what + " succeeded");
      after_write(c, old, bits(desired));
      accessed(c, true, old, true, bits(desired));
      return true;
    }
    std::size_t idx = last;
    if (ch >= 1 && ch <= static_cast<int>(stale.size()))
    {
      idx = stale[static_cast<std::size_t>(ch - 1)];
      c.count_stale();
    }
    else if (ch != 0)
      ++c.spurious();
    c.did_read(l, idx, f);
    expected = value(mo[idx].val);
    if (c.tracing())
      c.event(what + " failed, read " + format(mo[idx].val)
              + (idx != last ? " (stale)" : (ch != 0 ? " (spurious)" : "")));
    accessed(c, true, mo[idx].val, false, 0);
    return false;
  }

  int loc_ = -1;
  std::uint64_t gen_ = 0;
};

/// The waker's word: std::atomic<std::uintptr_t> as basic_waker_state uses it.
using checked_word = checked_atomic<std::uintptr_t>;

} // namespace proofs

#endif // ASIO_WAKER_PROOFS_CHECKER_HPP
