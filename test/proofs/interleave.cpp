//
// test/proofs/interleave.cpp
//
// Exhaustive interleaving checks of the REAL state machine,
// asio_waker::detail::basic_waker_state<Op, proofs::checked_atomic>, driven with the
// call sequences that basic_atomic_waker (include/asio_waker/atomic_waker.hpp) makes:
//
//   async_wait  (start_wait, atomic_waker.hpp:200-237): try_consume_permit(); if it
//               fails, park(op); a consumed permit or a replaced op is handed off.
//   wake        (atomic_waker.hpp:132-136): state.wake(); a taken op is handed off.
//   cancel      (atomic_waker.hpp:141-149), a cancellation slot's handler (:186-193,
//               which calls cancel()), the destructor (:98-103): state.cancel().
//   service shutdown (waker_service.hpp:91-103): state.cancel(), op destroyed.
//   permit path whose hand-off throws (hand_off_new, atomic_waker.hpp:256-272):
//               try_consume_permit() succeeded, then state.wake() restores the permit.
//
// The harness keeps its own books (who owns each operation, every completion, every
// wake's outcome and position in the word's modification order, vector clocks) and
// checks in EVERY execution:
//   I1 one owner at a time: an op leaves the word only while parked, and is parked only
//      by its owner; only the owner completes it;
//   I2 no double completion, and no completion after an abort was delivered (an op gets
//      exactly one outcome);
//   I3 no lost wake: each wake() took a parked op, or its permit is consumed by a later
//      wait, or is still stored at the end (or discarded by the destructor);
//   I4 no phantom wake: each consumed (or final) permit was stored by a wake() since the
//      previous consumption;
//   I5 final state consistent: every op is completed exactly once, or is the one op
//      still parked in the word;
//   I6 publication: the thread that takes an op happens-after its construction;
//   I7 data hand-off: plain data written before wake() happens-before the handler of the
//      wait that the wake completes (or that consumes its permit);
//   I8 no access to the word after the state is destroyed; no deadlock (a consumer
//      waiting for a completion that never comes); no livelock.
//

#define BOOST_TEST_MODULE asio_waker_interleavings
#include <boost/test/unit_test.hpp>

#include "checker.hpp"
#include "mutants.hpp"

#include <asio_waker/detail/waker_state.hpp>

#include <cstring>
#include <iostream>
#include <map>
#include <optional>

namespace proofs {

constexpr int owner_none = -2;
constexpr int owner_parked = -1;
constexpr int owner_done = -3;

enum class outcome { none, success, aborted, destroyed };

inline const char* outcome_name(outcome o)
{
  switch (o)
  {
  case outcome::none: return "none";
  case outcome::success: return "success";
  case outcome::aborted: return "operation_aborted";
  case outcome::destroyed: return "destroyed";
  }
  return "?";
}

struct alignas(8) model_op
{
  int id = 0;
  bool constructed = false;
  int owner = owner_none;
  int completions = 0;
  outcome out = outcome::none;
  int completed_by = -1;
  vclock completion_clock;
  int constructor = -1;
  std::uint32_t construct_epoch = 0;
};

constexpr int max_ops = 4;

template <typename State>
struct world
{
  struct wake_rec
  {
    int tid;
    std::uint32_t payload_epoch;
    int took;        // op id, or -1 (stored/refreshed the permit)
    std::size_t idx; // position of its last access in the word's modification order
    bool restore;
  };
  struct consume_rec
  {
    std::size_t idx;
    int op;
    bool undone;
  };

  checker& c;
  std::array<model_op, max_ops> ops;
  alignas(State) unsigned char storage[sizeof(State)];
  State* st = nullptr;
  std::vector<wake_rec> wakes;
  std::vector<consume_rec> consumes;

  explicit world(checker& ck) : c(ck)
  {
    for (int i = 0; i < max_ops; ++i)
      ops[i].id = i;
    st = new (storage) State();
    c.on_write = [this](std::uintptr_t o, std::uintptr_t n) { on_write(o, n); };
    checked_atomic::namer() = [this](std::uintptr_t v) -> std::string {
      for (auto& op : ops)
        if (reinterpret_cast<std::uintptr_t>(&op) == v)
          return std::string("op ") + char('A' + op.id);
      return "op@?";
    };
  }

  // The state (trivially destructible) is not destroyed here: a world is freed when the
  // next execution replaces it, and destroy() models the real destruction.
  ~world() = default;

  static bool is_op(std::uintptr_t v) { return v > 1; }
  model_op& op_at(std::uintptr_t v) { return *reinterpret_cast<model_op*>(v); }
  static std::string nm(const model_op& o) { return std::string("op ") + char('A' + o.id); }

  // I1 / I6: ownership moves with the word's value. An RMW that writes back the value it
  // read (wake()'s fetch_add(0) refresh, which may find a parked op when the word
  // changed after its load) moves nothing.
  void on_write(std::uintptr_t old, std::uintptr_t now)
  {
    if (old == now)
      return;
    const int t = c.tid();
    if (is_op(old))
    {
      model_op& o = op_at(old);
      c.check(o.owner == owner_parked, nm(o) + " removed from the word while not parked (two owners)");
      o.owner = t;
      c.check(c.happened_before(o.constructor, o.construct_epoch, c.clock()),
          "I6: the thread taking " + nm(o) + " does not happen-after its construction");
    }
    if (is_op(now))
    {
      model_op& o = op_at(now);
      c.check(o.owner == t, nm(o) + " parked by a thread that does not own it");
      o.owner = owner_parked;
    }
  }

  // The hand-off: the owner links the op into the scheduler queue (a mutex: the handler
  // acquires the owner's clock).
  void complete(model_op& o, outcome out)
  {
    c.check(o.owner == c.tid(), "I1: " + nm(o) + " completed by a thread that does not own it");
    c.check(o.completions == 0, std::string("I2: ") + nm(o) + " completed twice (first "
        + outcome_name(o.out) + ", now " + outcome_name(out) + ")");
    ++o.completions;
    o.out = out;
    o.owner = owner_done;
    o.completed_by = c.tid();
    o.completion_clock = c.clock();
    c.event("hand off " + nm(o) + " with " + outcome_name(out));
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

  // ---- the I/O object's call sequences ----------------------------------------------

  // basic_atomic_waker::start_wait (atomic_waker.hpp:200-237)
  void async_wait(int id)
  {
    model_op& o = construct(id);
    if (st->try_consume_permit()) // :213
    {
      consumes.push_back({c.last_access(c.tid()), id, false});
      complete(o, outcome::success); // :218 hand_off_new
      return;
    }
    auto r = st->park(&o); // :232
    if (r.consumed_permit) // :233-234
    {
      consumes.push_back({c.last_access(c.tid()), id, false});
      complete(o, outcome::success);
    }
    if (r.replaced) // :235-236
      complete(*r.replaced, outcome::aborted);
  }

  // start_wait whose permit fast path fails to hand off (hand_off_new catch block,
  // atomic_waker.hpp:263-271): the permit is restored with state.wake().
  void async_wait_handoff_throws(int id)
  {
    model_op& o = construct(id);
    if (st->try_consume_permit())
    {
      consumes.push_back({c.last_access(c.tid()), id, true}); // undone below
      c.event("post() throws: restore the permit");
      const std::uint32_t e = c.tick();
      model_op* p = st->wake();
      wakes.push_back({c.tid(), e, p ? p->id : -1, c.last_access(c.tid()), true});
      c.check(p == nullptr, "restoring the permit took a parked op");
      complete(o, outcome::destroyed); // the handler is destroyed, exception propagates
      return;
    }
    auto r = st->park(&o);
    if (r.consumed_permit)
    {
      consumes.push_back({c.last_access(c.tid()), id, false});
      complete(o, outcome::success);
    }
    if (r.replaced)
      complete(*r.replaced, outcome::aborted);
  }

  // basic_atomic_waker::wake (atomic_waker.hpp:132-136). The producer first writes its
  // plain payload (the data the consumer must see).
  void wake()
  {
    const std::uint32_t e = c.tick();
    c.event("write payload (epoch " + std::to_string(e) + ")");
    model_op* p = st->wake();
    wakes.push_back({c.tid(), e, p ? p->id : -1, c.last_access(c.tid()), false});
    if (p)
    {
      c.yield_point(); // the hand-off is a separate step
      complete(*p, outcome::success);
    }
  }

  // basic_atomic_waker::cancel (atomic_waker.hpp:141-149); also what a cancellation
  // slot's handler does for the current wait (:186-193).
  std::size_t cancel()
  {
    if (model_op* p = st->cancel())
    {
      complete(*p, outcome::aborted);
      return 1;
    }
    return 0;
  }

  // waker_service::shutdown (waker_service.hpp:91-103): parked op destroyed, not invoked.
  void shutdown()
  {
    if (model_op* p = st->cancel())
      complete(*p, outcome::destroyed);
  }

  // ~basic_atomic_waker (atomic_waker.hpp:98-103).
  void destroy()
  {
    if (model_op* p = st->cancel())
      complete(*p, outcome::aborted);
    st->~State();
    st = nullptr;
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

  void final_check()
  {
    const auto& mo = c.mo();
    const std::uintptr_t final_val = mo.back().val;
    // I5
    for (auto& o : ops)
    {
      if (!o.constructed)
        continue;
      if (o.completions == 0)
        c.check(final_val == reinterpret_cast<std::uintptr_t>(&o) && o.owner == owner_parked,
            "I5: " + nm(o) + " was never completed and is not the parked op (lost)");
      else
        c.check(o.completions == 1, "I2: " + nm(o) + " completed more than once");
    }
    if (is_op(final_val))
      c.check(op_at(final_val).completions == 0, "I5: a completed op is still in the word");
    // I3 / I7
    for (auto& w : wakes)
    {
      if (w.took >= 0)
      {
        const model_op& o = ops[w.took];
        c.check(o.out == outcome::success && o.completed_by == w.tid,
            "wake of T" + std::to_string(w.tid) + " took " + nm(o) + " but did not complete it with success");
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
        c.check(final_val == 1, "I3: lost wake: the wake() of T" + std::to_string(w.tid)
            + " stored no permit that survives and completed no wait");
        continue;
      }
      if (w.restore)
        continue;
      const model_op& o = ops[by->op];
      c.check(c.happened_before(w.tid, w.payload_epoch, o.completion_clock),
          "I7: data race: the payload T" + std::to_string(w.tid) + " wrote before wake() "
          "does not happen-before the handler of " + nm(o) + ", which consumed that permit");
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
  }
};

// ---- scenarios ---------------------------------------------------------------------------

template <typename State>
struct scenario
{
  std::string name;
  std::function<void(world<State>&)> setup;
  std::vector<std::function<void(world<State>&)>> threads;
  bool heavy = false; // millions of executions: run with --long only
};

template <typename State>
std::vector<scenario<State>> scenarios()
{
  using W = world<State>;
  std::vector<scenario<State>> s;
  auto none = [](W&) {};
  auto permit = [](W& w) { w.wake(); };
  s.push_back({"wake_vs_register", none,
      {[](W& w) { w.async_wait(0); }, [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register", none,
      {[](W& w) { w.async_wait(0); }, [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  s.push_back({"wake_vs_register_cancel", none,
      {[](W& w) { w.async_wait(0); w.cancel(); }, [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register_cancel", none,
      {[](W& w) { w.async_wait(0); w.cancel(); },
       [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  s.push_back({"two_wakes_vs_register_cancel_register", none,
      {[](W& w) { w.async_wait(0); w.cancel(); w.async_wait(1); },
       [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}, true});
  s.push_back({"register_replace_vs_wake", none,
      {[](W& w) { w.async_wait(0); w.async_wait(1); }, [](W& w) { w.wake(); }}});
  s.push_back({"register_replace_vs_two_wakes", none,
      {[](W& w) { w.async_wait(0); w.async_wait(1); },
       [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}, true});
  s.push_back({"wake_vs_destroy_after_completion", none,
      {[](W& w) { w.async_wait(0); w.wait_completed(0); w.destroy(); },
       [](W& w) { w.wake(); }}});
  s.push_back({"permit_consume_vs_wake", permit,
      {[](W& w) { w.async_wait(0); w.async_wait(1); }, [](W& w) { w.wake(); }}});
  s.push_back({"permit_consume_vs_two_wakes", permit,
      {[](W& w) { w.async_wait(0); w.wait_completed(0); w.async_wait(1); },
       [](W& w) { w.wake(); }, [](W& w) { w.wake(); }}});
  s.push_back({"permit_restore_vs_wake", permit,
      {[](W& w) { w.async_wait_handoff_throws(0); w.async_wait(1); },
       [](W& w) { w.wake(); }}});
  s.push_back({"shutdown_vs_wake", none,
      {[](W& w) { w.async_wait(0); w.shutdown(); }, [](W& w) { w.wake(); }}});
  s.push_back({"consumer_loop_vs_wake", none,
      {[](W& w) { w.async_wait(0); w.wait_completed(0); w.async_wait(1); w.cancel(); },
       [](W& w) { w.wake(); }}});
  return s;
}

template <typename State>
result run_scenario(const scenario<State>& sc, const options& opt)
{
  checker ck;
  auto factory = [&]() -> execution {
    auto w = std::make_shared<world<State>>(ck);
    sc.setup(*w);
    execution ex;
    for (auto& t : sc.threads)
      ex.threads.push_back([w, t] { t(*w); });
    ex.final_check = [w] { w->final_check(); };
    return ex;
  };
  return ck.explore(factory, opt);
}

using real_state = asio_waker::detail::basic_waker_state<model_op, checked_atomic>;

inline bool cli_flag(const char* flag)
{
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strcmp(mts.argv[i], flag) == 0)
      return true;
  return false;
}

inline std::string cli_only()
{
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strncmp(mts.argv[i], "--only=", 7) == 0)
      return mts.argv[i] + 7;
  return {};
}

inline options cli_options()
{
  options o;
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
  {
    const char* a = mts.argv[i];
    if (std::strncmp(a, "--spurious=", 11) == 0)
      o.max_spurious = std::atoi(a + 11);
    else if (std::strncmp(a, "--max-steps=", 12) == 0)
      o.max_steps = std::atoi(a + 12);
  }
  return o;
}

} // namespace proofs

using namespace proofs;

BOOST_AUTO_TEST_CASE(real_state_machine_all_scenarios)
{
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
  {
    options opt = cli_options();
    opt.mode = mode;
    std::uint64_t total = 0;
    const bool long_run = cli_flag("--long");
    const std::string only = cli_only();
    for (auto& sc : scenarios<real_state>())
    {
      if ((sc.heavy && !long_run) || (!only.empty() && sc.name != only))
        continue;
      result r = run_scenario(sc, opt);
      std::cout << std::dec << "interleavings[" << (mode == memory_mode::sc ? "sc" : "weak") << "] "
                << sc.name << ": " << r.executions << " executions, max "
                << r.max_choices << " choice points" << (r.bounded ? " (BOUNDED)" : "")
                << (r.failed ? "  FAILED" : "") << std::endl;
      total += r.executions;
      BOOST_TEST(!r.bounded);
      BOOST_TEST(!r.failed, sc.name << ": " << r.message << "\n" << r.trace);
    }
    std::cout << std::dec << "interleavings[" << (mode == memory_mode::sc ? "sc" : "weak")
              << "] total: " << total << " executions\n";
  }
}

template <mutants::kind K>
void expect_mutant_caught()
{
  using state = typename mutants::mutant<K>::template state<model_op, checked_atomic>;
  options opt = cli_options();
  opt.mode = memory_mode::weak;
  bool caught = false;
  for (auto& sc : scenarios<state>())
  {
    if (sc.heavy)
      continue;
    result r = run_scenario(sc, opt);
    if (r.failed)
    {
      std::cout << std::dec << "mutant " << mutants::name(K) << ": caught by " << sc.name << " after "
                << r.executions << " executions: " << r.message << '\n' << r.trace;
      caught = true;
      break;
    }
  }
  BOOST_TEST(caught, "mutant " << mutants::name(K) << " was NOT caught");
}

BOOST_AUTO_TEST_CASE(mutant_wake_load_on_notified) { expect_mutant_caught<mutants::kind::wake_load_on_notified>(); }
BOOST_AUTO_TEST_CASE(mutant_wake_exchange) { expect_mutant_caught<mutants::kind::wake_exchange>(); }
BOOST_AUTO_TEST_CASE(mutant_wake_release_only) { expect_mutant_caught<mutants::kind::wake_release_only>(); }
BOOST_AUTO_TEST_CASE(mutant_consume_relaxed) { expect_mutant_caught<mutants::kind::consume_relaxed>(); }
BOOST_AUTO_TEST_CASE(mutant_cancel_plain_store) { expect_mutant_caught<mutants::kind::cancel_plain_store>(); }
BOOST_AUTO_TEST_CASE(mutant_park_plain_store) { expect_mutant_caught<mutants::kind::park_plain_store>(); }
BOOST_AUTO_TEST_CASE(mutant_park_drops_replaced) { expect_mutant_caught<mutants::kind::park_drops_replaced>(); }

// The plain-load mutant is not a lost wake-up in any interleaving: the permit it sees
// is consumed after it. What it breaks is synchronisation: the consumer never
// acquires that producer's writes. The checker catches it through happens-before
// tracking (I7), in SC mode as well as in weak mode; a checker that only counted
// wake-ups would not.
BOOST_AUTO_TEST_CASE(mutant_wake_load_on_notified_is_a_synchronisation_defect)
{
  using state = mutants::mutant<mutants::kind::wake_load_on_notified>::state<model_op, checked_atomic>;
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
  {
    options opt = cli_options();
    opt.mode = mode;
    std::string msg;
    for (auto& sc : scenarios<state>())
    {
      if (sc.heavy)
        continue;
      result r = run_scenario(sc, opt);
      if (r.failed)
      {
        msg = r.message;
        break;
      }
    }
    BOOST_TEST(msg.rfind("I7", 0) == 0, "expected an I7 violation, got: " << msg);
  }
}
