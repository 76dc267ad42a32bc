//
// test/proofs/checker_selftest.cpp
//
// Checks the checker: classic litmus tests run on proofs::checked_atomic<T> with several
// locations, each asserting the exact set of outcomes the C++20 model allows (weak mode)
// or sequential consistency allows (sc mode). If the model were too strong, a bug like
// a missing seq_cst would go unseen; too weak, and correct code would fail.
//
//   SB     store buffering (Dekker): both loads old is allowed unless both sides are
//          seq_cst (or fenced with seq_cst fences); one side weaker: allowed again.
//   MP     message passing: release/acquire forbids a stale payload, relaxed does not;
//          also through fences (release fence + relaxed store, relaxed load + acquire
//          fence) and through a release sequence continued by an RMW of another thread.
//   CoRR   coherence of two reads, in one thread and through happens-before.
//   IRIW   independent reads of independent writes: seq_cst readers agree on the order.
//   2+2W   and RMW atomicity (two fetch_add never both read the same value).
// plus the lifetime checks: an access after destruction, and a location published by a
// relaxed pointer store (its construction does not happen-before the reader), are
// reported; the same through release/acquire is not.
//

#define BOOST_TEST_MODULE proofs_checker_selftest
#include <boost/test/unit_test.hpp>

#include "checker.hpp"

#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace proofs {
namespace {

using outcomes = std::set<std::vector<long>>;

constexpr auto rlx = std::memory_order_relaxed;
constexpr auto acq = std::memory_order_acquire;
constexpr auto rel = std::memory_order_release;
constexpr auto sc = std::memory_order_seq_cst;

std::string str(const outcomes& o)
{
  std::string s;
  for (auto& v : o)
  {
    s += "(";
    for (std::size_t i = 0; i < v.size(); ++i)
      s += (i ? "," : "") + std::to_string(v[i]);
    s += ") ";
  }
  return s;
}

/// Runs a litmus test: `World` is default-constructed per execution (its atomics are the
/// locations), `threads` get it and a slot of results, the outcome is the result vector.
template <typename World>
outcomes run(memory_mode mode, int nresults,
  std::vector<std::function<void(World&, std::vector<long>&)>> threads,
  result* res = nullptr)
{
  checker ck;
  outcomes seen;
  auto factory = [&]() -> execution {
    auto w = std::make_shared<World>();
    auto r = std::make_shared<std::vector<long>>(static_cast<std::size_t>(nresults), -1);
    execution ex;
    for (auto& t : threads)
      ex.threads.push_back([w, r, t] { t(*w, *r); });
    ex.final_check = [r, &seen] { seen.insert(*r); };
    return ex;
  };
  options opt;
  opt.mode = mode;
  result rr = ck.explore(factory, opt);
  BOOST_TEST(!rr.failed, rr.message << "\n" << rr.trace);
  BOOST_TEST(!rr.bounded);
  std::cout << "  " << (mode == memory_mode::sc ? "sc  " : "weak") << " " << rr.executions
            << " executions, outcomes " << str(seen) << "\n";
  if (res)
    *res = rr;
  return seen;
}

struct xy
{
  checked_atomic<std::uint64_t> x{0};
  checked_atomic<std::uint32_t> y{0};
};

// ---- SB ------------------------------------------------------------------------------

outcomes sb(memory_mode mode, std::memory_order l0, std::memory_order l1,
  std::memory_order s = sc)
{
  return run<xy>(mode, 2,
    {[=](xy& w, std::vector<long>& r) {
       w.x.store(1, s);
       r[0] = static_cast<long>(w.y.load(l0));
     },
      [=](xy& w, std::vector<long>& r) {
        w.y.store(1, s);
        r[1] = static_cast<long>(w.x.load(l1));
      }});
}

BOOST_AUTO_TEST_CASE(store_buffering)
{
  const std::vector<long> both_old{0, 0};
  auto o = sb(memory_mode::weak, sc, sc);
  BOOST_TEST(!o.count(both_old), "SB all seq_cst: " << str(o));
  BOOST_TEST(o.size() == 3u, str(o));
  o = sb(memory_mode::weak, sc, acq);
  BOOST_TEST(o.count(both_old), "SB, one load acquire: " << str(o));
  o = sb(memory_mode::weak, rlx, sc);
  BOOST_TEST(o.count(both_old), "SB, one load relaxed: " << str(o));
  o = sb(memory_mode::weak, sc, sc, rel);
  BOOST_TEST(o.count(both_old), "SB, release stores: " << str(o));
  o = sb(memory_mode::sc, rlx, rlx, rlx);
  BOOST_TEST(!o.count(both_old), "SB under the sc mode: " << str(o));
}

outcomes sb_fenced(bool fence0, bool fence1)
{
  return run<xy>(memory_mode::weak, 2,
    {[=](xy& w, std::vector<long>& r) {
       w.x.store(1, rlx);
       if (fence0)
         thread_fence(sc);
       r[0] = static_cast<long>(w.y.load(rlx));
     },
      [=](xy& w, std::vector<long>& r) {
        w.y.store(1, rlx);
        if (fence1)
          thread_fence(sc);
        r[1] = static_cast<long>(w.x.load(rlx));
      }});
}

BOOST_AUTO_TEST_CASE(store_buffering_with_fences)
{
  const std::vector<long> both_old{0, 0};
  auto o = sb_fenced(true, true);
  BOOST_TEST(!o.count(both_old), "SB, seq_cst fences on both sides: " << str(o));
  BOOST_TEST(o.size() == 3u, str(o));
  o = sb_fenced(true, false);
  BOOST_TEST(o.count(both_old), "SB, one fence missing: " << str(o));
  o = sb_fenced(false, false);
  BOOST_TEST(o.count(both_old), "SB, no fences: " << str(o));
  // Mixed: a seq_cst RMW on one side (the store is an RMW), a fence on the other.
  o = run<xy>(memory_mode::weak, 2,
    {[](xy& w, std::vector<long>& r) {
       w.x.fetch_add(1, sc);
       r[0] = static_cast<long>(w.y.load(sc));
     },
      [](xy& w, std::vector<long>& r) {
        w.y.store(1, rlx);
        thread_fence(sc);
        r[1] = static_cast<long>(w.x.load(rlx));
      }});
  BOOST_TEST(!o.count(both_old), "SB, seq_cst RMW+load vs store+fence+load: " << str(o));
}

// ---- MP ------------------------------------------------------------------------------

struct mp_world
{
  checked_atomic<int> data{0};
  checked_atomic<bool> flag{false};
  checked_atomic<unsigned> count{0};
};

BOOST_AUTO_TEST_CASE(message_passing)
{
  const std::vector<long> stale{1, 0}; // flag seen, data old
  auto mp = [](std::memory_order st, std::memory_order ld) {
    return run<mp_world>(memory_mode::weak, 2,
      {[=](mp_world& w, std::vector<long>&) {
         w.data.store(42, rlx);
         w.flag.store(true, st);
       },
        [=](mp_world& w, std::vector<long>& r) {
          r[0] = w.flag.load(ld) ? 1 : 0;
          r[1] = w.data.load(rlx) == 42 ? 1 : 0;
        }});
  };
  auto o = mp(rel, acq);
  BOOST_TEST(!o.count(stale), "MP release/acquire: " << str(o));
  o = mp(rel, rlx);
  BOOST_TEST(o.count(stale), "MP, relaxed load: " << str(o));
  o = mp(rlx, acq);
  BOOST_TEST(o.count(stale), "MP, relaxed store: " << str(o));

  // Fences: release fence + relaxed store; relaxed load + acquire fence.
  auto mpf = [](bool f0, bool f1) {
    return run<mp_world>(memory_mode::weak, 2,
      {[=](mp_world& w, std::vector<long>&) {
         w.data.store(42, rlx);
         if (f0)
           thread_fence(rel);
         w.flag.store(true, rlx);
       },
        [=](mp_world& w, std::vector<long>& r) {
          r[0] = w.flag.load(rlx) ? 1 : 0;
          if (f1)
            thread_fence(acq);
          r[1] = w.data.load(rlx) == 42 ? 1 : 0;
        }});
  };
  o = mpf(true, true);
  BOOST_TEST(!o.count(stale), "MP with fences: " << str(o));
  o = mpf(true, false);
  BOOST_TEST(o.count(stale), "MP, no acquire fence: " << str(o));
  o = mpf(false, true);
  BOOST_TEST(o.count(stale), "MP, no release fence: " << str(o));

  // Release sequence: T0 data, count.store(1, release); T1 count.fetch_add(1, relaxed);
  // T2 reads count == 2 with acquire: synchronises with T0 through T1's RMW.
  auto rs = [](bool rmw) {
    return run<mp_world>(memory_mode::weak, 2,
      {[](mp_world& w, std::vector<long>&) {
         w.data.store(42, rlx);
         w.count.store(1, rel);
       },
        [=](mp_world& w, std::vector<long>&) {
          if (rmw)
            w.count.fetch_add(1, rlx);
          else if (w.count.load(rlx) == 1)
            w.count.store(2, rlx);
        },
        [](mp_world& w, std::vector<long>& r) {
          r[0] = w.count.load(acq) == 2 ? 1 : 0;
          r[1] = w.data.load(rlx) == 42 ? 1 : 0;
        }});
  };
  o = rs(true);
  BOOST_TEST(!o.count(stale), "release sequence through an RMW: " << str(o));
  o = rs(false);
  BOOST_TEST(o.count(stale), "a plain store ends the release sequence: " << str(o));
}

// ---- coherence ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(coherence)
{
  // CoRR in one thread: never new then old.
  auto o = run<xy>(memory_mode::weak, 2,
    {[](xy& w, std::vector<long>&) { w.x.store(1, rlx); },
      [](xy& w, std::vector<long>& r) {
        r[0] = static_cast<long>(w.x.load(rlx));
        r[1] = static_cast<long>(w.x.load(rlx));
      }});
  BOOST_TEST(!o.count({1, 0}), "CoRR: " << str(o));
  BOOST_TEST(o.size() == 3u, str(o));
  // CoRR through happens-before: T1 reads x == 1 then releases y; T2 acquires y, then
  // must not read x == 0.
  o = run<xy>(memory_mode::weak, 2,
    {[](xy& w, std::vector<long>&) { w.x.store(1, rlx); },
      [](xy& w, std::vector<long>&) {
        if (w.x.load(rlx) == 1)
          w.y.store(1, rel);
      },
      [](xy& w, std::vector<long>& r) {
        r[0] = static_cast<long>(w.y.load(acq));
        r[1] = static_cast<long>(w.x.load(rlx));
      }});
  BOOST_TEST(!o.count({1, 0}), "CoRR through happens-before: " << str(o));
  BOOST_TEST(o.count({0, 0}));
  // RMW atomicity.
  o = run<xy>(memory_mode::weak, 2,
    {[](xy& w, std::vector<long>& r) { r[0] = static_cast<long>(w.x.fetch_add(1, rlx)); },
      [](xy& w, std::vector<long>& r) { r[1] = static_cast<long>(w.x.fetch_add(1, rlx)); }});
  BOOST_TEST((o == outcomes{{0, 1}, {1, 0}}), str(o));
}

struct iriw_world
{
  checked_atomic<std::uint64_t> x{0};
  checked_atomic<std::uint64_t> y{0};
};

BOOST_AUTO_TEST_CASE(iriw)
{
  auto iriw = [](std::memory_order ld) {
    return run<iriw_world>(memory_mode::weak, 4,
      {[](iriw_world& w, std::vector<long>&) { w.x.store(1, sc); },
        [](iriw_world& w, std::vector<long>&) { w.y.store(1, sc); },
        [=](iriw_world& w, std::vector<long>& r) {
          r[0] = static_cast<long>(w.x.load(ld));
          r[1] = static_cast<long>(w.y.load(ld));
        },
        [=](iriw_world& w, std::vector<long>& r) {
          r[2] = static_cast<long>(w.y.load(ld));
          r[3] = static_cast<long>(w.x.load(ld));
        }});
  };
  const std::vector<long> disagree{1, 0, 1, 0};
  auto o = iriw(sc);
  BOOST_TEST(!o.count(disagree), "IRIW seq_cst: " << str(o));
  o = iriw(acq);
  BOOST_TEST(o.count(disagree), "IRIW acquire: " << str(o));
}

// ---- types and operations ---------------------------------------------------------------

struct node
{
  int v;
};

struct ops_world
{
  node nodes[2] = {{1}, {2}};
  checked_atomic<node*> p{nullptr};
  checked_atomic<std::uint32_t> s{0};
  checked_atomic<std::int64_t> n{0};
};

BOOST_AUTO_TEST_CASE(operations)
{
  auto o = run<ops_world>(memory_mode::sc, 8,
    {[](ops_world& w, std::vector<long>& r) {
      node* expected = nullptr;
      r[0] = w.p.compare_exchange_strong(expected, &w.nodes[0]) ? 1 : 0;
      r[1] = w.p.fetch_add(1) == &w.nodes[0] ? 1 : 0;
      r[2] = w.p.load()->v;
      r[3] = static_cast<long>(w.s.fetch_or(6u));
      r[4] = static_cast<long>(w.s.fetch_and(3u, acq));
      r[5] = static_cast<long>(w.s.exchange(0xffffffffu) + 0L);
      r[6] = static_cast<long>(w.s.fetch_add(1) + 0L); // wraps to 0
      w.n.fetch_sub(5, rel);
      r[7] = static_cast<long>(w.n.load() * 10 + w.s.load());
    }});
  BOOST_TEST((o == outcomes{{1, 1, 2, 0, 6, 2, 0xffffffffL, -50}}), str(o));
}

// ---- lifetime ------------------------------------------------------------------------------

struct block
{
  checked_atomic<std::uint32_t> state{7};
};

struct pub_world
{
  checked_atomic<block*> head{nullptr};
};

result publish(std::memory_order st, std::memory_order ld)
{
  checker ck;
  auto factory = [&]() -> execution {
    auto w = std::make_shared<pub_world>();
    execution ex;
    ex.threads.push_back([w, st] { w->head.store(new block, st); });
    ex.threads.push_back([w, ld, &ck] {
      if (block* b = w->head.load(ld))
        ck.check(b->state.load(std::memory_order_relaxed) == 7, "block state");
    });
    ex.final_check = [w] { delete w->head.load(); };
    return ex;
  };
  return ck.explore(factory);
}

BOOST_AUTO_TEST_CASE(lifetime)
{
  result r = publish(rel, acq);
  BOOST_TEST(!r.failed, r.message);
  r = publish(rlx, acq);
  BOOST_TEST(r.failed);
  BOOST_TEST(r.message.find("data race") != std::string::npos, r.message);
  r = publish(rel, rlx);
  BOOST_TEST(r.message.find("data race") != std::string::npos, r.message);

  // Access after destruction: T0 destroys the block while T1 may still use it (the
  // storage stays allocated, so the access itself is harmless to the test).
  struct storage
  {
    alignas(block) unsigned char bytes[sizeof(block)];
  };
  checker ck;
  auto factory = [&]() -> execution {
    auto mem = std::make_shared<storage>();
    block* raw = new (mem->bytes) block;
    execution ex;
    ex.threads.push_back([raw, mem] {
      raw->state.store(1, rel);
      raw->~block();
    });
    ex.threads.push_back([raw, mem] { raw->state.load(acq); });
    return ex;
  };
  r = ck.explore(factory);
  BOOST_TEST(r.failed);
  BOOST_TEST(r.message.find("use after destroy") != std::string::npos, r.message);
  std::cout << "checker self-test: use after destroy caught after " << r.executions
            << " executions\n";
}

} // namespace
} // namespace proofs

namespace proofs {
namespace {

// ---- exploration options -------------------------------------------------------------------

struct spin_world
{
  checked_atomic<int> flag{0};
};

/// A spin-wait: T0 waits (yielding) for T1's store. Without spin_yield the search would
/// not end; with it, every execution ends and T0 sees the store.
BOOST_AUTO_TEST_CASE(spin_loops_and_bounds)
{
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
  {
    auto o = run<spin_world>(mode, 1,
      {[](spin_world& w, std::vector<long>& r) {
         int n = 0;
         while (w.flag.load(acq) == 0)
         {
           current_checker()->spin_yield();
           ++n;
         }
         r[0] = n > 3 ? 3 : n;
       },
        [](spin_world& w, std::vector<long>&) { w.flag.store(1, rel); }});
    BOOST_TEST(!o.empty());
  }
  // Nobody stores: the spinning thread is a livelock, reported as such.
  checker ck;
  auto factory = [&]() -> execution {
    auto w = std::make_shared<spin_world>();
    execution ex;
    ex.threads.push_back([w] {
      while (w->flag.load(acq) == 0)
        current_checker()->spin_yield();
    });
    return ex;
  };
  result r = ck.explore(factory);
  BOOST_TEST(r.failed);
  BOOST_TEST(r.message.find("livelock") != std::string::npos, r.message);

  // Preemption bound: 3 threads of 2 stores each; bound 0 leaves only the orders in
  // which threads run to completion one after another (3! = 6), bound -1 all of them.
  auto count = [](int bound) {
    checker c;
    auto f = [&]() -> execution {
      auto w = std::make_shared<iriw_world>();
      execution ex;
      for (int t = 0; t < 3; ++t)
        ex.threads.push_back([w] {
          w->x.store(1, rlx);
          w->y.store(1, rlx);
        });
      return ex;
    };
    options o;
    o.mode = memory_mode::sc;
    o.max_preemptions = bound;
    return c.explore(f, o).executions;
  };
  BOOST_TEST(count(0) == 6u);
  BOOST_TEST(count(-1) == 90u); // 6! / (2! 2! 2!)
  BOOST_TEST(count(1) > count(0));
  BOOST_TEST(count(1) < count(-1));

  // Stale-read bound: MP with relaxed accesses; 0 stale reads = what SC allows.
  auto mp = [](int stale) {
    checker c;
    outcomes seen;
    auto f = [&]() -> execution {
      auto w = std::make_shared<mp_world>();
      auto r = std::make_shared<std::vector<long>>(2, -1);
      execution ex;
      ex.threads.push_back([w] {
        w->data.store(42, rlx);
        w->flag.store(true, rlx);
      });
      ex.threads.push_back([w, r] {
        (*r)[0] = w->flag.load(rlx) ? 1 : 0;
        (*r)[1] = w->data.load(rlx) == 42 ? 1 : 0;
      });
      ex.final_check = [r, &seen] { seen.insert(*r); };
      return ex;
    };
    options o;
    o.max_stale = stale;
    c.explore(f, o);
    return seen;
  };
  BOOST_TEST(!mp(0).count({1, 0}), str(mp(0)));
  BOOST_TEST(mp(1).count({1, 0}), str(mp(1)));
}

} // namespace
} // namespace proofs
