// waker_bench: asio_waker::atomic_waker against its peers.
//
//   waker_bench [--reps N] [--scenarios a1,a2,b,c,d] [--only name,name] [--data-dir DIR]
//               [--quick]
//   waker_bench --cycle NAME ITERS      one contender, scenario (c), no timing output
//                                       (for callgrind / strace: subtract ITERS=0)
//   waker_bench --idle-pingpong NAME ITERS   one contender, scenario (a2), for strace
//   waker_bench --list                  contender names, one a line
//
// See bench/README.md for what each scenario measures.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "contenders.hpp"
#include "harness.hpp"
#include "malloc_count.hpp"

namespace bench {

struct options
{
  int reps = 5;
  std::set<std::string> scenarios{"a1", "a2", "b", "c", "d"};
  std::set<std::string> only; // empty: all
  std::string data_dir;
  // sizes
  int a1_iters = 20000;
  int a2_iters = 1000;
  int a2_gap_us = 50;
  int busy_ns = 1000;
  double b_seconds = 0.5;
  double d_seconds = 0.1;
  int c_iters = 200000;
  std::vector<int> threads{1, 2, 4, 8, 16};
};

template <class C>
bool selected(const options& o)
{
  return o.only.empty() || o.only.count(C::name) != 0;
}

// Run the consumer of contender `c` on the calling thread until on_wake returns false.
// `before_run` is called on that thread just before io_context::run() (Asio contenders).
template <class C, class OnWake, class Parked, class BeforeRun>
void consume(
  asio::io_context& ctx, C& c, OnWake& on_wake, Parked& parked, BeforeRun before_run)
{
  if constexpr (C::plain_thread)
  {
    c.consume(make_thunk(on_wake), make_thunk(parked));
  }
  else
  {
    auto guard = asio::make_work_guard(ctx);
    auto f = [&] {
      bool more = on_wake();
      if (!more)
        guard.reset();
      return more;
    };
    c.start(make_thunk(f), make_thunk(parked));
    before_run();
    ctx.run();
  }
}

// The io thread's "busy" load for (a1): a chain of short handlers, each re-posting itself.
// Each handler spins for `ns` nanoseconds (default 1000, --busy-ns).
struct busy_chain
{
  asio::io_context* ctx;
  const std::atomic<bool>* stop;
  int ns;
  void operator()() const
  {
    auto end = clock_type::now() + std::chrono::nanoseconds(ns);
    while (clock_type::now() < end)
      cpu_relax();
    if (!stop->load(std::memory_order_relaxed))
      asio::post(*ctx, *this);
  }
};

// ---------------------------------------------------------------------------
// (a) ping-pong round trip. The producer wakes, then spins until the consumer has
// acknowledged through `ack`; the consumer acknowledges from `parked`, i.e. only once it
// has parked again, so every wake meets a parked waiter.
struct pingpong_result
{
  double ns_per_round_trip = 0;
  double producer_allocs_per_wake = 0;
  double consumer_allocs_per_cycle = 0;
};

template <class C>
pingpong_result run_pingpong(bool busy, int busy_ns, int warm, int iters, int gap_us)
{
  asio::io_context ctx;
  C c(ctx);
  std::atomic<long> ack{-1};
  std::atomic<bool> stop{false};
  long count = 0;
  alloc_counts cons0{}, cons1{};

  auto on_wake = [&] {
    ++count;
    if (count == warm)
      cons0 = thread_alloc_counts();
    if (count == warm + iters)
      cons1 = thread_alloc_counts();
    return !stop.load(std::memory_order_relaxed);
  };
  auto parked = [&] { ack.store(count, std::memory_order_release); };

  std::thread consumer([&] {
    consume(ctx, c, on_wake, parked, [&] {
      if (busy)
        asio::post(ctx, busy_chain{&ctx, &stop, busy_ns});
    });
  });

  spin_until([&] { return ack.load(std::memory_order_acquire) >= 0; });
  auto round_trip = [&](long i) {
    c.wake();
    spin_until([&] { return ack.load(std::memory_order_acquire) >= i; });
  };
  long i = 0;
  for (; i < warm; ++i)
    round_trip(i + 1);

  pingpong_result r;
  // Each round trip is timed on its own and the repetition reports the median round trip:
  // on a shared 2-vCPU machine a mean is dominated by the moments another process takes a
  // core. Idle (a2): a gap before each wake lets the io thread fall asleep in run(); only
  // the wake -> acknowledged interval is timed.
  stats per;
  per.v.reserve(iters);
  alloc_counts p0 = thread_alloc_counts();
  for (int k = 0; k < iters; ++k, ++i)
  {
    if (gap_us > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    auto t0 = clock_type::now();
    round_trip(i + 1);
    per.add(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count());
  }
  alloc_counts p1 = thread_alloc_counts();
  r.ns_per_round_trip = per.median();

  stop.store(true);
  c.wake();
  consumer.join();
  r.producer_allocs_per_wake = double(p1.allocs - p0.allocs) / iters;
  r.consumer_allocs_per_cycle = double(cons1.allocs - cons0.allocs) / iters;
  return r;
}

// ---------------------------------------------------------------------------
// (b) burst: P producers call wake() flat out for a fixed time; the consumer counts its
// wake-ups.
struct burst_result
{
  double producer_wakes_per_s = 0;
  double consumer_wakeups_per_s = 0;
};

template <class C>
burst_result run_burst(int producers, double seconds)
{
  asio::io_context ctx;
  C c(ctx);
  std::atomic<bool> ready{false}, go{false}, stop_prod{false}, stop_cons{false};
  std::atomic<std::uint64_t> wakeups{0};
  auto on_wake = [&] {
    wakeups.store(wakeups.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return !stop_cons.load(std::memory_order_relaxed);
  };
  auto parked = [&] { ready.store(true, std::memory_order_release); };
  std::thread consumer([&] { consume(ctx, c, on_wake, parked, [] {}); });
  spin_until([&] { return ready.load(std::memory_order_acquire); });

  std::vector<std::uint64_t> counts(producers * 8, 0); // padded
  std::vector<std::thread> prod;
  for (int p = 0; p < producers; ++p)
    prod.emplace_back([&, p] {
      while (!go.load(std::memory_order_acquire))
        std::this_thread::yield();
      std::uint64_t n = 0;
      while (!stop_prod.load(std::memory_order_relaxed))
      {
        for (int k = 0; k < 16; ++k)
          c.wake();
        n += 16;
      }
      counts[p * 8] = n;
    });
  std::uint64_t w0 = wakeups.load();
  auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop_prod.store(true);
  double dt = seconds_since(t0);
  std::uint64_t w1 = wakeups.load();
  for (auto& t : prod)
    t.join();
  stop_cons.store(true);
  c.wake();
  consumer.join();
  std::uint64_t total = 0;
  for (int p = 0; p < producers; ++p)
    total += counts[p * 8];
  return {double(total) / dt, double(w1 - w0) / dt};
}

// ---------------------------------------------------------------------------
// (c) single-thread wake/wait cycle inside ONE io_context::run(): the consumer, once
// parked, calls wake() itself (from `parked`, i.e. from inside the initiation, after the
// coroutine has suspended), so each cycle is: wake -> (post) -> resume -> park.
struct cycle_result
{
  double ns_per_cycle = 0;
  double allocs_per_cycle = 0;
};

template <class C>
cycle_result run_cycle(long warm, long iters)
{
  asio::io_context ctx;
  C c(ctx);
  long n = 0;
  clock_type::time_point t0, t1;
  alloc_counts a0{}, a1{};
  auto on_wake = [&] {
    ++n;
    if (n == warm)
    {
      a0 = thread_alloc_counts();
      t0 = clock_type::now();
    }
    if (n == warm + iters)
    {
      t1 = clock_type::now();
      a1 = thread_alloc_counts();
      return false;
    }
    return true;
  };
  auto parked = [&] { c.wake(); };
  consume(ctx, c, on_wake, parked, [] {});
  cycle_result r;
  if (iters > 0)
  {
    r.ns_per_cycle = std::chrono::duration<double, std::nano>(t1 - t0).count() / iters;
    r.allocs_per_cycle = double(a1.allocs - a0.allocs) / iters;
  }
  return r;
}

// ---------------------------------------------------------------------------
// (d) wake() alone, nobody waiting: T threads call wake() flat out for a fixed time.
// Returns total calls per second.
template <class C>
double run_wake_alone(int threads, double seconds)
{
  auto ctx = std::make_unique<asio::io_context>();
  auto c = std::make_unique<C>(*ctx);
  std::atomic<bool> go{false}, stop{false};
  std::atomic<int> started{0};
  std::vector<std::uint64_t> counts(threads * 8, 0);
  std::vector<std::thread> th;
  for (int t = 0; t < threads; ++t)
    th.emplace_back([&, t] {
      started.fetch_add(1);
      while (!go.load(std::memory_order_acquire))
        std::this_thread::yield();
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed))
      {
        for (int k = 0; k < 16; ++k)
          c->wake();
        n += 16;
      }
      counts[t * 8] = n;
    });
  spin_until([&] { return started.load() == threads; });
  auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  double dt = seconds_since(t0);
  for (auto& t : th)
    t.join();
  std::uint64_t total = 0;
  for (int t = 0; t < threads; ++t)
    total += counts[t * 8];
  c.reset();
  ctx.reset(); // raw_post: destroys the queued handlers, outside the timed region
  return double(total) / dt;
}

// ---------------------------------------------------------------------------

struct data_file
{
  std::FILE* f = nullptr;
  data_file(const options& o, const char* name)
  {
    if (!o.data_dir.empty())
    {
      std::string p = o.data_dir + "/" + name;
      f = std::fopen(p.c_str(), "w");
      if (!f)
        std::fprintf(stderr, "cannot write %s\n", p.c_str());
    }
  }
  ~data_file()
  {
    if (f)
      std::fclose(f);
  }
};

std::string contender_names()
{
  std::string s;
  for_each_contender([&]<class C>() { s += std::string(C::name) + "\n"; });
  return s;
}

int cycle_mode(const std::string& name, long iters)
{
  bool found = false;
  for_each_contender([&]<class C>() {
    if constexpr (!C::plain_thread)
    {
      if (name == C::name)
      {
        found = true;
        cycle_result r = run_cycle<C>(1000, iters);
        std::printf(
          "%s cycles=%ld allocs_per_cycle=%.3f\n", C::name, iters, r.allocs_per_cycle);
      }
    }
  });
  if (!found)
  {
    std::fprintf(stderr, "unknown contender for --cycle: %s\n", name.c_str());
    return 2;
  }
  return 0;
}

// Machine calibration: two plain threads bounce one atomic each way; ns per round trip.
// Every cross-thread wake pays at least a few of these cache-line transfers.
double calibrate_line_round_trip()
{
  std::atomic<long> a{0}, b{0};
  const long n = 20000;
  std::thread t([&] {
    for (long i = 1; i <= n; ++i)
    {
      spin_until([&] { return a.load(std::memory_order_acquire) == i; });
      b.store(i, std::memory_order_release);
    }
  });
  stats per;
  per.v.reserve(n);
  for (long i = 1; i <= n; ++i)
  {
    auto t0 = clock_type::now();
    a.store(i, std::memory_order_release);
    spin_until([&] { return b.load(std::memory_order_acquire) == i; });
    per.add(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count());
  }
  t.join();
  return per.median(); // timed like the ping-pongs: per round trip, median
}

// One idle ping-pong (a2) for one contender, for `strace -c`: 100 warm-up round trips,
// then `iters` (subtract a run with iters = 0).
int idle_pingpong_mode(const std::string& name, int iters, int gap_us)
{
  bool found = false;
  for_each_contender([&]<class C>() {
    if (name == C::name)
    {
      found = true;
      auto r = run_pingpong<C>(false, 0, 100, iters, gap_us);
      std::printf(
        "%s idle round trips=%d median_ns=%.0f\n", C::name, iters, r.ns_per_round_trip);
    }
  });
  if (!found)
  {
    std::fprintf(stderr, "unknown contender: %s\n", name.c_str());
    return 2;
  }
  return 0;
}

void print_header(const options& o)
{
  std::printf("## waker_bench results\n\n");
  std::printf("- hardware threads: %u; repetitions per row: %d\n",
    std::thread::hardware_concurrency(), o.reps);
  if (!malloc_counting())
    std::printf("- WARNING: sanitizer build, heap allocations are not counted (all 0)\n");
  std::printf("- compiler: %s; Boost %d.%d\n",
#if defined(__clang__)
    "clang " __clang_version__,
#else
    "g++ " __VERSION__,
#endif
    BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000);
  if (!o.scenarios.empty() && !o.scenarios.count("none"))
  {
    stats cal;
    for (int i = 0; i < 5; ++i)
      cal.add(calibrate_line_round_trip());
    std::printf(
      "- machine calibration: two threads bouncing one atomic (a cache-line round trip "
      "between cores), median round trip of 20000: median %s ns, min %s, max %s (5 runs)\n",
      fmt(cal.median()).c_str(), fmt(cal.min()).c_str(), fmt(cal.max()).c_str());
  }
  std::fflush(stdout);
}

void run_all(const options& o)
{
  print_header(o);
  std::map<std::string, stats> a1_prod, a1_cons, a2_prod, a2_cons;

  // (a1) and (a2)
  for (int busy = 1; busy >= 0; --busy)
  {
    const char* sc = busy ? "a1" : "a2";
    if (!o.scenarios.count(sc))
      continue;
    table t(
      busy ? "(a1) busy ping-pong: round trip, io thread busy running short handlers"
           : "(a2) idle ping-pong: round trip, io thread asleep in run() before each wake",
      "ns",
      busy
        ? "Per repetition, the median over round trips of wake -> acknowledged (the "
          "consumer "
          "acknowledges once parked again), back to back (lower is better). The io thread "
          "runs a chain of short (--busy-ns, default 1000 ns) handlers. mutex_condvar has "
          "no "
          "io thread: its consumer sleeps in the condition variable (its idle figure "
          "without "
          "a gap)."
        : "Per repetition, the median over round trips of wake -> acknowledged, with a "
          "sleep "
          "before each wake so the io thread is asleep in run() (lower is better).");
    std::map<std::string, stats> prod_allocs, cons_allocs;
    for (int rep = 0; rep < o.reps; ++rep)
    {
      for_each_contender([&]<class C>() {
        if (!selected<C>(o))
          return;
        auto r = run_pingpong<C>(busy, o.busy_ns, busy ? o.a1_iters / 10 : 100,
          busy ? o.a1_iters : o.a2_iters, busy ? 0 : o.a2_gap_us);
        t.row(C::name).add(r.ns_per_round_trip);
        prod_allocs[C::name].add(r.producer_allocs_per_wake);
        cons_allocs[C::name].add(r.consumer_allocs_per_cycle);
      });
    }
    t.print(stdout);
    data_file df(o, busy ? "a1.tsv" : "a2.tsv");
    if (df.f)
      t.write_tsv(df.f);
    if (busy)
    {
      a1_prod = prod_allocs;
      a1_cons = cons_allocs;
    }
    else
    {
      a2_prod = prod_allocs;
      a2_cons = cons_allocs;
    }
  }

  // (c)
  std::map<std::string, stats> c_allocs;
  if (o.scenarios.count("c"))
  {
    table t("(c) single-thread wake/wait cycle in one io_context::run(): time", "ns",
      "ns per cycle, natively (callgrind instructions and syscalls per cycle: see the next "
      "tables, made by bench/cycle_counts.sh). mutex_condvar: n/a (needs two threads).");
    for (int rep = 0; rep < o.reps; ++rep)
    {
      for_each_contender([&]<class C>() {
        if constexpr (!C::plain_thread)
        {
          if (!selected<C>(o))
            return;
          auto r = run_cycle<C>(1000, o.c_iters);
          t.row(C::name).add(r.ns_per_cycle);
          c_allocs[C::name].add(r.allocs_per_cycle);
        }
      });
    }
    t.print(stdout);
    data_file df(o, "c_time.tsv");
    if (df.f)
      t.write_tsv(df.f);
  }

  // allocation summary
  if (!c_allocs.empty() || !a1_prod.empty() || !a2_prod.empty())
  {
    std::printf("\n#### Heap allocations (counted at the malloc level)\n\n");
    std::printf("Median over repetitions. (c): per steady-state single-thread cycle. "
                "a1/a2: per `wake()` "
                "on the producer thread (a thread that does not run the io_context), and "
                "per cycle on "
                "the io thread (frees of the producer's blocks are not allocations).\n\n");
    std::printf(
      "| contender | (c) per cycle | a1 per foreign wake | a1 io thread per cycle | "
      "a2 per foreign wake | a2 io thread per cycle |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    auto cell = [](std::map<std::string, stats>& m, const char* n) {
      auto it = m.find(n);
      return it == m.end() ? std::string("n/a") : fmt(it->second.median());
    };
    data_file df(o, "allocs.tsv");
    for_each_contender([&]<class C>() {
      if (!selected<C>(o))
        return;
      std::printf("| %s | %s | %s | %s | %s | %s |\n", C::name,
        cell(c_allocs, C::name).c_str(), cell(a1_prod, C::name).c_str(),
        cell(a1_cons, C::name).c_str(), cell(a2_prod, C::name).c_str(),
        cell(a2_cons, C::name).c_str());
      if (df.f)
        std::fprintf(df.f, "%s\t%s\t%s\t%s\t%s\t%s\n", C::name,
          cell(c_allocs, C::name).c_str(), cell(a1_prod, C::name).c_str(),
          cell(a1_cons, C::name).c_str(), cell(a2_prod, C::name).c_str(),
          cell(a2_cons, C::name).c_str());
    });
    std::fflush(stdout);
  }

  // (b)
  if (o.scenarios.count("b"))
  {
    std::map<int, table> prod_t, cons_t;
    for (int p : o.threads)
    {
      char title[200];
      std::snprintf(title, sizeof title, "(b) burst, %d producer%s: consumer wake-ups/s", p,
        p == 1 ? "" : "s");
      cons_t.emplace(
        p, table(title, "wake-ups/s",
             "Higher is better. raw_post is not in (b): it does not coalesce, its "
             "queue would grow without bound."));
      std::snprintf(title, sizeof title,
        "(b) burst, %d producer%s: producer wake() calls/s (all producers)", p,
        p == 1 ? "" : "s");
      prod_t.emplace(p, table(title, "calls/s", "Higher is better."));
    }
    for (int rep = 0; rep < o.reps; ++rep)
      for (int p : o.threads)
        for_each_contender([&]<class C>() {
          if constexpr (C::coalesces)
          {
            if (!selected<C>(o))
              return;
            auto r = run_burst<C>(p, o.b_seconds);
            cons_t.at(p).row(C::name).add(r.consumer_wakeups_per_s);
            prod_t.at(p).row(C::name).add(r.producer_wakes_per_s);
          }
        });
    for (int p : o.threads)
      cons_t.at(p).print(stdout);
    for (int p : o.threads)
      prod_t.at(p).print(stdout);
    // gnuplot data: threads, then one column per contender (median)
    data_file dc(o, "b_consumer.dat"), dp(o, "b_producer.dat");
    for (auto* pair : {&dc, &dp})
    {
      if (!pair->f)
        continue;
      auto& tabs = pair == &dc ? cons_t : prod_t;
      std::fprintf(pair->f, "threads");
      for_each_contender([&]<class C>() {
        if (C::coalesces && selected<C>(o))
          std::fprintf(pair->f, "\t%s", C::name);
      });
      std::fprintf(pair->f, "\n");
      for (int p : o.threads)
      {
        std::fprintf(pair->f, "%d", p);
        for_each_contender([&]<class C>() {
          if (C::coalesces && selected<C>(o))
            std::fprintf(pair->f, "\t%.6g", tabs.at(p).median(C::name));
        });
        std::fprintf(pair->f, "\n");
      }
    }
  }

  // (d)
  if (o.scenarios.count("d"))
  {
    std::map<int, table> ns_t;
    for (int p : o.threads)
    {
      char title[200];
      std::snprintf(title, sizeof title,
        "(d) wake() alone, nobody waiting, %d thread%s: ns per call", p, p == 1 ? "" : "s");
      ns_t.emplace(
        p, table(title, "ns/call",
             "Per thread: run time / calls made by one thread (lower is better); "
             "beyond 2 threads the 2 cores are time-shared, which multiplies this by "
             "threads/2 even with no contention at all. raw_post posts every call."));
    }
    for (int rep = 0; rep < o.reps; ++rep)
      for (int p : o.threads)
        for_each_contender([&]<class C>() {
          if (!selected<C>(o))
            return;
          double calls_per_s = run_wake_alone<C>(p, o.d_seconds);
          ns_t.at(p).row(C::name).add(1e9 * p / calls_per_s);
        });
    for (int p : o.threads)
      ns_t.at(p).print(stdout);
    data_file dd(o, "d_ns.dat");
    if (dd.f)
    {
      std::fprintf(dd.f, "threads");
      for_each_contender([&]<class C>() {
        if (selected<C>(o))
          std::fprintf(dd.f, "\t%s", C::name);
      });
      std::fprintf(dd.f, "\n");
      for (int p : o.threads)
      {
        std::fprintf(dd.f, "%d", p);
        for_each_contender([&]<class C>() {
          if (selected<C>(o))
            std::fprintf(dd.f, "\t%.6g", ns_t.at(p).median(C::name));
        });
        std::fprintf(dd.f, "\n");
      }
    }
  }
}

} // namespace bench

namespace {
std::set<std::string> split(const std::string& s)
{
  std::set<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.insert(item);
  return out;
}
} // namespace

int main(int argc, char** argv)
{
  bench::options o;
  for (int i = 1; i < argc; ++i)
  {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
      {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--list")
    {
      std::fputs(bench::contender_names().c_str(), stdout);
      return 0;
    }
    else if (a == "--cycle")
    {
      std::string name = next();
      long iters = std::atol(next().c_str());
      return bench::cycle_mode(name, iters);
    }
    else if (a == "--idle-pingpong")
    {
      std::string name = next();
      int iters = std::atoi(next().c_str());
      return bench::idle_pingpong_mode(name, iters, o.a2_gap_us);
    }
    else if (a == "--busy-ns")
    {
      o.busy_ns = std::atoi(next().c_str());
    }
    else if (a == "--reps")
    {
      o.reps = std::max(1, std::atoi(next().c_str()));
    }
    else if (a == "--scenarios")
    {
      o.scenarios = split(next());
    }
    else if (a == "--only")
    {
      o.only = split(next());
    }
    else if (a == "--data-dir")
    {
      o.data_dir = next();
    }
    else if (a == "--quick")
    {
      o.a1_iters = 2000;
      o.a2_iters = 200;
      o.b_seconds = 0.05;
      o.d_seconds = 0.03;
      o.c_iters = 20000;
    }
    else
    {
      std::fprintf(stderr,
        "usage: %s [--reps N] [--scenarios a1,a2,b,c,d] [--only name,...] "
        "[--data-dir DIR] [--quick] | --cycle NAME ITERS | --list\n",
        argv[0]);
      return 2;
    }
  }
  bench::run_all(o);
  return 0;
}
