//
// test/proofs/interleave.cpp
//
// Exhaustive interleaving checks of the REAL waker: the state machine
// asio_waker::detail::basic_waker_state<model_op, proofs::checked_word>, driven by the
// REAL glue, the static templates of asio_waker::detail::waker_service, over
// basic_waker_impl<State, model_scheduler>, the way basic_atomic_waker drives them:
//
//   async_wait   waker_service::async_wait's one step that touches the waker, and the
//                ONLY hand-written line of glue here:
//                  if (state.try_consume_permit()) post_with_permit(...); else park(...);
//                (the rest of async_wait allocates the operation and installs the
//                cancellation slot's handler: consumer-local work no other thread sees).
//   wake         waker_service::take_and_complete.
//   cancel, a cancellation slot's handler, the destructor
//                waker_service::take_and_abort (the destructor then destroys the state,
//                as waker_service::destroy does).
//   shutdown     waker_service::shutdown is a member over its registry, not a template:
//                its step for one waker is mirrored (state.cancel(), the operation
//                destroyed without being invoked).
//
// Every scenario runs under both hand-offs of the service (see "The moves" there):
//   scheduler  impl.scheduler points at a model_scheduler, which records
//              post_immediate_completion / post_deferred_completion / work_started and
//              keeps Asio's outstanding-work count (I9).
//   portable   impl.scheduler is null: the glue calls model_op::post(). In the
//              permit_restore_* scenarios the post() that async_wait makes for its own
//              first operation throws: the operation is destroyed, the real
//              post_or_restore_permit puts the permit back through its scope guard, on
//              the fast path (post_with_permit) or on park's consumed-permit path,
//              whichever the interleaving takes, and the exception is caught where
//              async_wait was called, in the same fiber (see checker.hpp, "Exceptions").
//              Elsewhere (wake, cancel, a replaced wait, the destructor) the hand-off is
//              noexcept and a throwing post is std::terminate (test/proofs/faults.cpp
//              pins that down), so the model's post() succeeds there.
//
// Thread 0 of every scenario is the consumer (async_wait, cancel, shutdown, destroy);
// the others are producers (wake). A hand-off is a scheduling point when a producer
// makes it (the consumer may be waiting for it); the consumer's own hand-offs are not
// (no other thread observes them), which keeps the counts down without losing a
// behaviour.
//
// The harness keeps its own books (who owns each operation, every completion, every
// wake's outcome and position in the word's modification order, vector clocks) and
// checks in EVERY execution:
//   I1 one owner at a time: an op leaves the word only while parked, and is parked only
//      by its owner; only the owner hands it off;
//   I2 no double completion, and no completion after an abort was delivered (an op gets
//      exactly one outcome);
//   I3 no lost wake: each wake() took a parked op, or its permit is consumed by a later
//      wait, or is still stored at the end (or discarded by the destructor); only a
//      consuming async_wait clears the permit;
//   I4 no phantom wake: each consumed (or final) permit was stored by a wake() since the
//      previous consumption;
//   I5 final state consistent: every op is completed exactly once, or is the one op
//      still parked in the word; waits_started counts every async_wait;
//   I6 publication: the thread that takes an op happens-after its construction;
//   I7 data hand-off: plain data written before wake() happens-before the handler of the
//      wait that the wake completes (or that consumes its permit);
//   I8 no access to the word after the state is destroyed; no deadlock (a consumer
//      waiting for a completion that never comes); no livelock;
//   I9 scheduler work (scheduler hand-off): an operation is parked only after
//      work_started() counted a unit of work for it, post_deferred_completion only
//      receives an operation whose unit was counted (a parked one, or the one park()
//      completes with the permit it consumed), post_immediate_completion counts its
//      own, and at the end Asio's outstanding-work count is exactly one unit per queued
//      operation plus one for a parked one.
//

#define BOOST_TEST_MODULE asio_waker_interleavings
#include <boost/test/unit_test.hpp>

#include "checker.hpp"
#include "mutants.hpp"

#include <asio_waker/detail/waker_service.hpp>
#include <asio_waker/detail/waker_state.hpp>

#include <cstring>
#include <iostream>

namespace proofs {

using service = asio_waker::detail::waker_service;

constexpr int owner_none = -2;
constexpr int owner_parked = -1;
constexpr int owner_done = -3;

enum class outcome
{
  none,
  success,
  aborted,
  destroyed
};

inline const char* outcome_name(outcome o)
{
  switch (o)
  {
  case outcome::none:
    return "none";
  case outcome::success:
    return "success";
  case outcome::aborted:
    return "operation_aborted";
  case outcome::destroyed:
    return "destroyed";
  }
  return "?";
}

/// How the service hands a finished wait over (waker_service, "The moves").
enum class handoff
{
  scheduler,
  portable
};

inline const char* handoff_name(handoff h)
{
  return h == handoff::scheduler ? "scheduler" : "portable";
}

/// What a failing model_op::post() throws.
struct post_failure
{};

class world_base;

/// Executions, per scenario run, in which async_wait's post() threw and the permit was
/// put back: on the fast path (post_with_permit) or on park()'s consumed-permit path.
struct restore_counts
{
  std::uint64_t fast_path = 0;
  std::uint64_t park_path = 0;
};

inline restore_counts& restores()
{
  static restore_counts r;
  return r;
}

/// The operation, as far as the service's functions see one (asio_waker::detail::wait_op:
/// an `ec_` and a `post()`), plus the harness's books.
struct alignas(8) model_op
{
  asio_waker::error_code ec_;
  /// The portable hand-off; may throw post_failure (see world_base::post).
  void post();

  world_base* w = nullptr;
  int id = 0;
  bool constructed = false;
  bool post_throws = false;  // the post() that async_wait makes for this op fails
  bool work_counted = false; // holds a unit of the scheduler's outstanding work, unqueued
  int owner = owner_none;
  int completions = 0;
  outcome out = outcome::none;
  int completed_by = -1;
  vclock completion_clock;
  int constructor = -1;
  std::uint32_t construct_epoch = 0;
};

/// The scheduler half of the service's hand-off (what it calls on
/// net::detail::scheduler), with Asio's outstanding-work count. Queued operations
/// are not run: each holds one unit of work until it would be. A unit that
/// work_started() counts belongs to no operation until park() publishes its
/// operation in the word (or hands it over with the permit it consumed).
class model_scheduler
{
public:
  explicit model_scheduler(world_base& w) : w_(w) {}

  void work_started();
  void post_immediate_completion(model_op* op, bool is_continuation);
  void post_deferred_completion(model_op* op);

  /// park() published `op` in the word: it takes the unit counted for it.
  void parked(model_op& op);

  long outstanding_work = 0; // started, not finished
  long unassigned = 0;       // counted by work_started(), no operation holds it yet
  long queued = 0;           // operations handed over, one unit each

private:
  world_base& w_;
};

constexpr int max_ops = 4;
constexpr int consumer_tid = 0; // thread 0 of every scenario

/// Everything that does not depend on the state machine's type.
class world_base
{
public:
  struct wake_rec
  {
    int tid;
    std::uint32_t payload_epoch;
    int took;        // op id, or -1 (stored/refreshed the permit)
    std::size_t idx; // position of its last access in the word's modification order
    bool restore;    // post_or_restore_permit putting a consumed permit back
  };
  struct consume_rec
  {
    std::size_t idx;
    int op;
    bool undone; // the hand-off threw and the permit was put back
  };

  checker& c;
  const handoff mode;
  model_scheduler sched{*this};
  std::array<model_op, max_ops> ops;
  std::vector<wake_rec> wakes;
  std::vector<consume_rec> consumes;
  int async_waits = 0;
  bool destroyed = false;
  int starting = -1; // the op that async_wait is starting, and its thread
  int starting_tid = -1;
  std::array<int, clock_size> took{}; // per thread: the op it last took out of the word

  world_base(checker& ck, handoff m) : c(ck), mode(m)
  {
    took.fill(-1);
    for (int i = 0; i < max_ops; ++i)
    {
      ops[i].id = i;
      ops[i].w = this;
    }
    c.on_write = [this](std::uintptr_t o, std::uintptr_t n) { on_write(o, n); };
    checked_word::namer() = [this](std::uintptr_t v) -> std::string {
      if (v == 0)
        return "EMPTY";
      if (v == 1)
        return "NOTIFIED";
      for (auto& op : ops)
        if (reinterpret_cast<std::uintptr_t>(&op) == v)
          return nm(op);
      return "op@?";
    };
  }

  world_base(const world_base&) = delete;
  world_base& operator=(const world_base&) = delete;

  static bool is_op(std::uintptr_t v) { return v > 1; }
  model_op& op_at(std::uintptr_t v) { return *reinterpret_cast<model_op*>(v); }
  static std::string nm(const model_op& o) { return std::string("op ") + char('A' + o.id); }
  int& took_by(int t) { return took[static_cast<std::size_t>(checker::slot(t))]; }

  // I1 / I6: ownership moves with the word's value. An RMW that writes back the value it
  // read (wake()'s fetch_add(0) refresh, which may find a parked op when the word
  // changed after its load) moves nothing. I3: only a consuming async_wait clears the
  // permit (producers never do; cancel() and the destructor must not).
  void on_write(std::uintptr_t old, std::uintptr_t now)
  {
    if (old == now)
      return;
    const int t = c.tid();
    if (old == 1 && now == 0)
    {
      c.check(starting >= 0 && starting_tid == t,
        "I3: the permit was cleared outside a consuming async_wait (a wake is lost)");
      consumes.push_back({c.mo().size() - 1, starting, false});
    }
    if (is_op(old))
    {
      model_op& o = op_at(old);
      c.check(o.owner == owner_parked,
        nm(o) + " removed from the word while not parked (two owners)");
      o.owner = t;
      took_by(t) = o.id;
      c.check(c.happened_before(o.constructor, o.construct_epoch, c.clock()),
        "I6: the thread taking " + nm(o) + " does not happen-after its construction");
    }
    if (is_op(now))
    {
      model_op& o = op_at(now);
      c.check(o.owner == t, nm(o) + " parked by a thread that does not own it");
      o.owner = owner_parked;
      if (mode == handoff::scheduler)
        sched.parked(o);
    }
  }

  // The operation reaches its executor's queue (a mutex: the handler acquires the clock
  // of the thread that hands it over), or is destroyed.
  void complete(model_op& o, outcome out, const char* how)
  {
    c.check(
      o.owner == c.tid(), "I1: " + nm(o) + " handed off by a thread that does not own it");
    c.check(o.completions == 0, std::string("I2: ") + nm(o) + " completed twice (first "
                                  + outcome_name(o.out) + ", now " + outcome_name(out)
                                  + ")");
    ++o.completions;
    o.out = out;
    o.owner = owner_done;
    o.completed_by = c.tid();
    o.completion_clock = c.clock();
    c.event(std::string(how) + ": " + nm(o) + " with " + outcome_name(out));
  }

  outcome result_of(const model_op& o)
  {
    if (!o.ec_)
      return outcome::success;
    c.check(o.ec_ == asio_waker::net::error::operation_aborted,
      nm(o) + " handed off with an unexpected error_code");
    return outcome::aborted;
  }

  /// A producer's hand-off is a step of its own (it takes the queue's lock, and the
  /// consumer may be waiting for it).
  void handoff_point()
  {
    if (c.tid() != consumer_tid)
      c.yield_point();
  }

  void handed_off(model_op& o, const char* how)
  {
    handoff_point();
    complete(o, result_of(o), how);
  }

  /// The portable hand-off (wait_op::post). Inside async_wait, for the operation it is
  /// starting, the post throws if the scenario says so; the operation is then destroyed
  /// without being invoked, as wait_op_runner does.
  void post(model_op& o)
  {
    handoff_point();
    if (o.post_throws && starting == o.id && c.tid() == starting_tid)
    {
      complete(o, outcome::destroyed, "post() throws: destroyed");
      throw post_failure{};
    }
    complete(o, result_of(o), "post()");
  }

  model_op& construct(int id)
  {
    model_op& o = ops[id];
    o.constructed = true;
    o.owner = c.tid();
    o.constructor = c.tid();
    o.construct_epoch = c.tick();
    c.event("construct " + nm(o));
    return o;
  }

  /// async_wait's caller sees the exception: the permit it consumed is back.
  void post_threw(int id, bool fast_path)
  {
    ++(fast_path ? restores().fast_path : restores().park_path);
    const int t = c.tid();
    c.check(took_by(t) < 0, "restoring the permit took a parked op");
    consume_rec* k = nullptr;
    for (auto it = consumes.rbegin(); it != consumes.rend() && !k; ++it)
      if (it->op == id)
        k = &*it;
    c.check(k != nullptr, "post() threw in async_wait, which consumed no permit");
    const auto& last = c.mo()[c.last_access(t)];
    c.check(
      last.writer == t && last.val == 1, "post() threw and the permit was not put back");
    k->undone = true;
    wakes.push_back({t, c.tick(), -1, c.last_access(t), true});
    c.event("async_wait of " + nm(ops[id]) + " threw: its permit was put back");
  }

  // The consumer runs its event loop until op `id` has been handed off, then runs the
  // handler (acquiring the hand-off).
  void wait_completed(int id)
  {
    model_op& o = ops[id];
    c.wait_until([&o] { return o.completions > 0; });
    c.clock().join(o.completion_clock);
    c.event("handler of " + nm(o) + " runs: " + outcome_name(o.out));
  }

  // ---- final checks --------------------------------------------------------------------

  void final_check(std::uint64_t waits_started)
  {
    const auto& mo = c.mo();
    const std::uintptr_t final_val = mo.back().val;
    // I5
    for (auto& o : ops)
    {
      if (!o.constructed)
        continue;
      if (o.completions == 0)
        c.check(
          final_val == reinterpret_cast<std::uintptr_t>(&o) && o.owner == owner_parked,
          "I5: " + nm(o) + " was never completed and is not the parked op (lost)");
      else
        c.check(o.completions == 1, "I2: " + nm(o) + " completed more than once");
    }
    if (is_op(final_val))
      c.check(op_at(final_val).completions == 0, "I5: a completed op is still in the word");
    c.check(waits_started == static_cast<std::uint64_t>(async_waits),
      "I5: waits_started is " + std::to_string(waits_started) + " after "
        + std::to_string(async_waits) + " async_wait calls");
    // I3 / I7
    for (auto& w : wakes)
    {
      if (w.took >= 0)
      {
        const model_op& o = ops[w.took];
        c.check(o.out == outcome::success && o.completed_by == w.tid,
          "wake of T" + std::to_string(w.tid) + " took " + nm(o)
            + " but did not complete it with success");
        continue;
      }
      const consume_rec* by = nullptr;
      for (auto& k : consumes)
        if (!k.undone && k.idx > w.idx)
        {
          by = &k;
          break;
        }
      if (!by)
      {
        c.check(
          final_val == 1, "I3: lost wake: the wake() of T" + std::to_string(w.tid)
                            + " stored no permit that survives and completed no wait");
        continue;
      }
      if (w.restore)
        continue;
      const model_op& o = ops[by->op];
      c.check(c.happened_before(w.tid, w.payload_epoch, o.completion_clock),
        "I7: data race: the payload T" + std::to_string(w.tid)
          + " wrote before wake() "
            "does not happen-before the handler of "
          + nm(o) + ", which consumed that permit");
    }
    // I4
    std::size_t prev = 0;
    bool have_prev = false;
    auto null_wake_between = [&](std::size_t lo, bool open_lo, std::size_t hi) {
      for (auto& w : wakes)
        if (w.took < 0 && (open_lo ? w.idx > lo : true) && w.idx < hi)
          return true;
      return false;
    };
    for (auto& k : consumes)
    {
      c.check(null_wake_between(prev, have_prev, k.idx),
        "I4: phantom permit: " + nm(ops[k.op]) + " consumed a permit no wake() stored");
      prev = k.idx;
      have_prev = true;
    }
    if (final_val == 1)
      c.check(null_wake_between(prev, have_prev, mo.size()),
        "I4: phantom permit: a permit is stored at the end that no wake() stored");
    // I9
    if (mode == handoff::scheduler)
    {
      const long parked = is_op(final_val) ? 1 : 0;
      c.check(sched.unassigned == 0, "I9: work_started() counted a unit no operation took");
      c.check(sched.outstanding_work == sched.queued + parked,
        "I9: the scheduler's outstanding work is " + std::to_string(sched.outstanding_work)
          + ", not one unit per queued (" + std::to_string(sched.queued) + ") and parked ("
          + std::to_string(parked) + ") operation");
    }
  }
};

inline void model_op::post()
{
  w->post(*this);
}

inline void model_scheduler::work_started()
{
  ++outstanding_work;
  ++unassigned;
  w_.c.event("work_started: outstanding work " + std::to_string(outstanding_work));
}

inline void model_scheduler::parked(model_op& op)
{
  w_.c.check(!op.work_counted && unassigned > 0,
    "I9: " + world_base::nm(op) + " parked before work_started() counted its work");
  --unassigned;
  op.work_counted = true;
}

// Each hand-off first records the completion (I1, I2), then does the work accounting.

inline void model_scheduler::post_immediate_completion(model_op* op, bool is_continuation)
{
  w_.handed_off(*op, is_continuation ? "post_immediate_completion (continuation)"
                                     : "post_immediate_completion");
  w_.c.check(!op->work_counted, "I9: post_immediate_completion of " + world_base::nm(*op)
                                  + ", whose work was counted already");
  ++outstanding_work; // what Asio's post_immediate_completion does first
  ++queued;
}

inline void model_scheduler::post_deferred_completion(model_op* op)
{
  w_.handed_off(*op, "post_deferred_completion");
  if (!op->work_counted)
  {
    // Only park() completing its own operation with a consumed permit, after counting.
    w_.c.check(unassigned > 0, "I9: post_deferred_completion of " + world_base::nm(*op)
                                 + ", whose work no work_started() counted");
    --unassigned;
  }
  op->work_counted = false; // the queue holds the unit now
  ++queued;
}

/// A waker: its implementation (the state machine under test, the scheduler pointer,
/// the counters) and the consumer's and producers' calls, each the service's own.
template <typename State>
class world : public world_base
{
public:
  using impl_type = asio_waker::detail::basic_waker_impl<State, model_scheduler>;

  world(checker& ck, handoff m) : world_base(ck, m)
  {
    impl = new (storage) impl_type();
    impl->scheduler = m == handoff::scheduler ? &sched : nullptr;
  }

  // The implementation (trivially destructible but for the checker's bookkeeping) is not
  // destroyed here: a world is freed when the next execution replaces it, and destroy()
  // models the real destruction.
  ~world() = default;

  // waker_service::async_wait, its step on the waker (the only hand-written glue).
  void async_wait(int id)
  {
    consumer_only("async_wait");
    model_op& o = construct(id);
    ++async_waits;
    starting = id;
    starting_tid = c.tid();
    took_by(c.tid()) = -1;
    bool fast_path = false;
    try
    {
      if ((fast_path = impl->state.try_consume_permit()))
        service::post_with_permit(*impl, &o, false);
      else
        service::park(*impl, &o);
    }
    catch (const post_failure&)
    {
      post_threw(id, fast_path);
    }
    starting = -1;
    starting_tid = -1;
  }

  // basic_atomic_waker::wake -> waker_service::wake. The producer first writes its plain
  // payload (the data the consumer must see).
  void wake()
  {
    const int t = c.tid();
    const std::uint32_t e = c.tick();
    c.event("write payload (epoch " + std::to_string(e) + ")");
    took_by(t) = -1;
    service::take_and_complete(*impl);
    wakes.push_back({t, e, took_by(t), c.last_access(t), false});
  }

  // basic_atomic_waker::cancel -> waker_service::cancel; also what a cancellation slot's
  // handler (waker_service::cancellation_handler) does for the current wait.
  std::size_t cancel()
  {
    consumer_only("cancel");
    return service::take_and_abort(*impl);
  }

  // waker_service::shutdown, its step for this waker: the parked op is destroyed, not
  // invoked (and its work abandoned with the scheduler).
  void shutdown()
  {
    consumer_only("shutdown");
    if (model_op* p = impl->state.cancel())
    {
      complete(*p, outcome::destroyed, "shutdown: destroyed");
      if (impl->scheduler && p->work_counted)
      {
        p->work_counted = false;
        --sched.outstanding_work;
      }
    }
  }

  // ~basic_atomic_waker -> waker_service::destroy: take_and_abort, then the state is gone.
  void destroy()
  {
    consumer_only("destroy");
    service::take_and_abort(*impl);
    waits_started_at_destruction = impl->waits_started;
    destroyed = true;
    impl->~impl_type();
  }

  void final_check()
  {
    world_base::final_check(destroyed ? waits_started_at_destruction : impl->waits_started);
  }

private:
  void consumer_only(const char* what)
  {
    c.check(
      c.tid() == consumer_tid, std::string("scenario error: ") + what
                                 + " called by a producer (thread 0 is the consumer)");
  }

  std::uint64_t waits_started_at_destruction = 0;
  alignas(impl_type) unsigned char storage[sizeof(impl_type)];
  impl_type* impl = nullptr;
};

// ---- scenarios ---------------------------------------------------------------------------

template <typename State>
struct scenario
{
  std::string name;
  std::function<void(world<State>&)> setup;
  std::vector<std::function<void(world<State>&)>> threads;
  bool heavy = false;         // millions of executions: run with --long only
  bool portable_only = false; // about a throwing post(): nothing throws on the scheduler
};

template <typename State>
std::vector<scenario<State>> scenarios()
{
  using W = world<State>;
  std::vector<scenario<State>> s;
  auto none = [](W&) {};
  auto permit = [](W& w) { w.wake(); };
  s.push_back(
    {"wake_vs_register", none, {[](W& w) { w.async_wait(0); }, [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register", none,
    {[](W& w) { w.async_wait(0); }, [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  s.push_back({"wake_vs_register_cancel", none,
    {[](W& w) {
       w.async_wait(0);
       w.cancel();
     },
      [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register_cancel", none,
    {[](W& w) {
       w.async_wait(0);
       w.cancel();
     },
      [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register_cancel_register", none,
    {[](W& w) {
       w.async_wait(0);
       w.cancel();
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }, [](W& w) { w.wake(); }},
    true});
  s.push_back({"register_replace_vs_wake", none,
    {[](W& w) {
       w.async_wait(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }}});
  s.push_back({"register_replace_vs_two_wakes", none,
    {[](W& w) {
       w.async_wait(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }, [](W& w) { w.wake(); }},
    true});
  s.push_back({"wake_vs_destroy_after_completion", none,
    {[](W& w) {
       w.async_wait(0);
       w.wait_completed(0);
       w.destroy();
     },
      [](W& w) { w.wake(); }}});
  s.push_back({"permit_consume_vs_wake", permit,
    {[](W& w) {
       w.async_wait(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }}});
  s.push_back({"permit_consume_vs_two_wakes", permit,
    {[](W& w) {
       w.async_wait(0);
       w.wait_completed(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  // The portable hand-off fails for the first wait's own post(): wherever the wake
  // lands, the permit is put back on the fast path (wake first), on park's
  // consumed-permit path (wake between try_consume_permit and park), or nothing throws
  // (wake after park: the wake's post() hands op A over).
  auto first_post_throws = [](W& w) { w.ops[0].post_throws = true; };
  s.push_back({"permit_restore_vs_wake", first_post_throws,
    {[](W& w) {
       w.async_wait(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }},
    false, true});
  s.push_back({"permit_restore_vs_two_wakes", first_post_throws,
    {[](W& w) {
       w.async_wait(0);
       w.async_wait(1);
     },
      [](W& w) { w.wake(); }, [](W& w) { w.wake(); }},
    true, true});
  s.push_back({"shutdown_vs_wake", none,
    {[](W& w) {
       w.async_wait(0);
       w.shutdown();
     },
      [](W& w) { w.wake(); }}});
  s.push_back({"consumer_loop_vs_wake", none,
    {[](W& w) {
       w.async_wait(0);
       w.wait_completed(0);
       w.async_wait(1);
       w.cancel();
     },
      [](W& w) { w.wake(); }}});
  return s;
}

template <typename State>
result run_scenario(const scenario<State>& sc, handoff mode, const options& opt)
{
  checker ck;
  restores() = {};
  auto factory = [&]() -> execution {
    auto w = std::make_shared<world<State>>(ck, mode);
    sc.setup(*w);
    execution ex;
    for (auto& t : sc.threads)
      ex.threads.push_back([w, t] { t(*w); });
    ex.final_check = [w] { w->final_check(); };
    return ex;
  };
  return ck.explore(factory, opt);
}

using real_state = asio_waker::detail::basic_waker_state<model_op, checked_word>;

inline bool cli_flag(const char* flag)
{
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strcmp(mts.argv[i], flag) == 0)
      return true;
  return false;
}

inline std::string cli_value(const char* prefix)
{
  const std::size_t n = std::strlen(prefix);
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strncmp(mts.argv[i], prefix, n) == 0)
      return mts.argv[i] + n;
  return {};
}

inline options cli_options()
{
  options o;
  if (auto v = cli_value("--spurious="); !v.empty())
    o.max_spurious = std::atoi(v.c_str());
  if (auto v = cli_value("--max-steps="); !v.empty())
    o.max_steps = std::atoi(v.c_str());
  return o;
}

/// The hand-offs to explore: both, or the one named by --handoff=scheduler|portable.
inline std::vector<handoff> cli_handoffs()
{
  const std::string v = cli_value("--handoff=");
  if (v == "scheduler")
    return {handoff::scheduler};
  if (v == "portable")
    return {handoff::portable};
  return {handoff::scheduler, handoff::portable};
}

template <typename State>
bool applies(const scenario<State>& sc, handoff mode)
{
  return !(sc.portable_only && mode != handoff::portable);
}

} // namespace proofs

using namespace proofs;

BOOST_AUTO_TEST_CASE(real_state_machine_all_scenarios)
{
  const bool long_run = cli_flag("--long");
  const std::string only = cli_value("--only=");
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
    for (handoff h : cli_handoffs())
    {
      options opt = cli_options();
      opt.mode = mode;
      std::uint64_t total = 0;
      const std::string tag =
        std::string(mode == memory_mode::sc ? "sc" : "weak") + "/" + handoff_name(h);
      for (auto& sc : scenarios<real_state>())
      {
        if ((sc.heavy && !long_run) || (!only.empty() && sc.name != only)
            || !applies(sc, h))
          continue;
        result r = run_scenario(sc, h, opt);
        std::cout << std::dec << "interleavings[" << tag << "] " << sc.name << ": "
                  << r.executions << " executions, max " << r.max_choices
                  << " choice points";
        if (sc.portable_only)
          std::cout << "; post() threw and the permit was put back in "
                    << restores().fast_path << " on the fast path, " << restores().park_path
                    << " on park's path";
        std::cout << (r.bounded ? " (BOUNDED)" : "") << (r.failed ? "  FAILED" : "")
                  << std::endl;
        total += r.executions;
        BOOST_TEST(!r.bounded);
        if (sc.portable_only) // both restore paths are reached
          BOOST_TEST((restores().fast_path > 0 && restores().park_path > 0), sc.name);
        BOOST_TEST(!r.failed, sc.name << " [" << tag << "]: " << r.message << "\n"
                                      << r.trace);
      }
      std::cout << std::dec << "interleavings[" << tag << "] total: " << total
                << " executions\n";
    }
}

template <mutants::kind K>
void expect_mutant_caught()
{
  using state = typename mutants::mutant<K>::template state<model_op, checked_word>;
  options opt = cli_options();
  opt.mode = memory_mode::weak;
  bool caught = false;
  for (handoff h : {handoff::scheduler, handoff::portable})
  {
    for (auto& sc : scenarios<state>())
    {
      if (sc.heavy || !applies(sc, h))
        continue;
      result r = run_scenario(sc, h, opt);
      if (r.failed)
      {
        std::cout << std::dec << "mutant " << mutants::name(K) << ": caught by " << sc.name
                  << " [weak/" << handoff_name(h) << "] after " << r.executions
                  << " executions: " << r.message << '\n'
                  << r.trace;
        caught = true;
        break;
      }
    }
    if (caught)
      break;
  }
  BOOST_TEST(caught, "mutant " << mutants::name(K) << " was NOT caught");
}

BOOST_AUTO_TEST_CASE(mutant_wake_load_on_notified)
{
  expect_mutant_caught<mutants::kind::wake_load_on_notified>();
}
BOOST_AUTO_TEST_CASE(mutant_wake_exchange)
{
  expect_mutant_caught<mutants::kind::wake_exchange>();
}
BOOST_AUTO_TEST_CASE(mutant_wake_release_only)
{
  expect_mutant_caught<mutants::kind::wake_release_only>();
}
BOOST_AUTO_TEST_CASE(mutant_consume_relaxed)
{
  expect_mutant_caught<mutants::kind::consume_relaxed>();
}
BOOST_AUTO_TEST_CASE(mutant_cancel_plain_store)
{
  expect_mutant_caught<mutants::kind::cancel_plain_store>();
}
BOOST_AUTO_TEST_CASE(mutant_park_plain_store)
{
  expect_mutant_caught<mutants::kind::park_plain_store>();
}
BOOST_AUTO_TEST_CASE(mutant_park_drops_replaced)
{
  expect_mutant_caught<mutants::kind::park_drops_replaced>();
}

// The plain-load mutant is not a lost wake-up in any interleaving: the permit it sees
// is consumed after it. What it breaks is synchronisation: the consumer never
// acquires that producer's writes. The checker catches it through happens-before
// tracking (I7), in SC mode as well as in weak mode; a checker that only counted
// wake-ups would not.
BOOST_AUTO_TEST_CASE(mutant_wake_load_on_notified_is_a_synchronisation_defect)
{
  using state =
    mutants::mutant<mutants::kind::wake_load_on_notified>::state<model_op, checked_word>;
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
  {
    options opt = cli_options();
    opt.mode = mode;
    std::string msg;
    for (auto& sc : scenarios<state>())
    {
      if (sc.heavy || !applies(sc, handoff::scheduler))
        continue;
      result r = run_scenario(sc, handoff::scheduler, opt);
      if (r.failed)
      {
        msg = r.message;
        break;
      }
    }
    BOOST_TEST(msg.rfind("I7", 0) == 0, "expected an I7 violation, got: " << msg);
  }
}
