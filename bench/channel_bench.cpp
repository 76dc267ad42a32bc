// channel_bench: streams of std::uint64_t from plain threads into one coroutine,
// asio_waker's channel against its peers (issue 9, point 7).
//
//   channel_bench [--reps N] [--scenarios s,p] [--only name,name] [--producers 1,2,4,8]
//                 [--seconds S] [--window N] [--rounds N] [--data-dir DIR] [--quick]
//   channel_bench --cycle NAME VALUES [BATCH]   scenario (c), one thread, for callgrind
//                                               (subtract VALUES = 0)
//   channel_bench --list                        contender names, one a line
//   channel_bench --list-cycle                  the contenders that (c) runs
//
// See bench/README.md ("channel_bench") for what each scenario measures.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/version.hpp>

#include "channel_contenders.hpp"
#include "harness.hpp"
#include "malloc_count.hpp"

namespace bench {

struct options
{
  int reps = 5;
  std::set<std::string> scenarios{"s", "p"};
  std::set<std::string> only; // empty: all
  std::string data_dir;
  std::vector<int> producers{1, 2, 4, 8};
  double s_seconds = 0.3;    // producers send for this long, then the consumer drains
  u64 window = 1u << 16;     // values in flight, all producers together; 0: unbounded
  u64 max_values = 50000000; // per stream run, all producers together
  int pp_rounds = 20000;     // ping-pong round trips per repetition (after 10% warm-up)
};

template <class C>
bool selected(const options& o)
{
  return o.only.empty() || o.only.count(C::name) != 0;
}

inline constexpr u64 end_marker = ~u64{0};
inline constexpr int producer_shift = 40; // value = producer << 40 | sequence (from 1)

// The consumer coroutine: the contender's own loop, then the time it finished.
template <class C, class Sink>
asio::awaitable<void> consumer_main(C& c, Sink& sink, clock_type::time_point& done,
  asio::executor_work_guard<asio::io_context::executor_type>& guard)
{
  co_await c.drain(sink);
  done = clock_type::now();
  guard.reset();
}

// The calling thread's voluntary context switches so far: each time the io thread found
// nothing to run and blocked in the scheduler, whatever the contender.
inline long voluntary_switches()
{
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}

inline void rethrow(std::exception_ptr e)
{
  if (e)
    std::rethrow_exception(e);
}

// ---------------------------------------------------------------------------
// (s) stream: P producer threads send flat out for `seconds` (each checks a stop flag
// every 256 values), then the main thread sends an end marker; the consumer coroutine
// checks every value (per-producer order) and finishes once it has the marker and every
// value sent. values/s = values sent / (consumer finished - producers released).
struct stream_result
{
  double values_per_s = 0;
  double receives_per_value = 0;
  double parks_per_value = 0;
  double allocs_per_value = 0;
  double queued_at_stop = 0;   // fraction of all values still queued when producers stopped
  double sleeps_per_value = 0; // the consumer thread's voluntary context switches
  u64 values = 0;
  u64 errors = 0;
};

template <class C>
stream_result run_stream(int producers, const options& o)
{
  asio::io_context ctx;
  C c(ctx);
  struct alignas(64) shared_counter
  {
    std::atomic<u64> v{0};
  };
  shared_counter received; // written by the consumer, read by producers (window)
  std::atomic<u64> expected{~u64{0}};
  std::vector<u64> next_seq(producers, 1);
  u64 count = 0, errors = 0;
  bool marker_seen = false;

  auto sink = [&](u64 v) -> bool {
    if (v == end_marker)
    {
      marker_seen = true;
    }
    else
    {
      u64 p = v >> producer_shift, seq = v & ((u64{1} << producer_shift) - 1);
      if (p >= u64(producers) || seq != next_seq[p])
        ++errors;
      else
        next_seq[p] = seq + 1;
      ++count;
      received.v.store(count, std::memory_order_relaxed);
    }
    return !(marker_seen && count == expected.load(std::memory_order_acquire));
  };

  clock_type::time_point done;
  std::atomic<bool> consumer_ready{false};
  alloc_counts cons0{}, cons1{};
  long sleeps = 0;
  std::thread consumer([&] {
    cons0 = thread_alloc_counts();
    long nvcsw0 = voluntary_switches();
    auto guard = asio::make_work_guard(ctx);
    asio::co_spawn(ctx, consumer_main(c, sink, done, guard), rethrow);
    consumer_ready.store(true, std::memory_order_release);
    ctx.run();
    cons1 = thread_alloc_counts();
    sleeps = voluntary_switches() - nvcsw0;
  });

  struct alignas(64) producer_result
  {
    u64 sent = 0;
    u64 allocs = 0;
  };
  std::vector<producer_result> res(producers);
  std::atomic<int> started{0};
  std::atomic<bool> go{false}, stop{false};
  const u64 limit = o.max_values / producers;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      alloc_counts a0 = thread_alloc_counts();
      u64 seq = 0;
      {
        typename C::producer prod(c);
        const u64 tag = u64(p) << producer_shift;
        started.fetch_add(1);
        while (!go.load(std::memory_order_acquire))
          std::this_thread::yield();
        while (seq < limit && !stop.load(std::memory_order_relaxed))
        {
          for (int k = 0; k < 256 && seq < limit; ++k)
            prod.send(tag | ++seq);
          // The window: at most about `window` values in flight, all producers together.
          while (o.window != 0
                 && seq * producers > o.window + received.v.load(std::memory_order_relaxed))
          {
            if (stop.load(std::memory_order_relaxed))
              break;
            std::this_thread::yield();
          }
        }
      }
      res[p].sent = seq;
      res[p].allocs = thread_alloc_counts().allocs - a0.allocs;
    });
  spin_until([&] {
    return consumer_ready.load(std::memory_order_acquire) && started.load() == producers;
  });
  auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.s_seconds));
  stop.store(true);
  u64 received_at_stop = received.v.load(std::memory_order_relaxed);
  for (auto& t : threads)
    t.join();
  u64 total = 0, allocs = 0;
  for (auto& r : res)
  {
    total += r.sent;
    allocs += r.allocs;
  }
  alloc_counts m0 = thread_alloc_counts();
  expected.store(total, std::memory_order_release);
  {
    typename C::producer prod(c);
    prod.send(end_marker);
  }
  allocs += thread_alloc_counts().allocs - m0.allocs;
  consumer.join();
  allocs += cons1.allocs - cons0.allocs;

  stream_result r;
  r.values = total;
  r.errors = errors + (count != total ? 1 : 0);
  r.values_per_s = double(total) / std::chrono::duration<double>(done - t0).count();
  r.receives_per_value = double(c.receives) / double(total);
  r.parks_per_value = C::parks_observable ? double(c.parks) / double(total) : NAN;
  r.allocs_per_value = malloc_counting() ? double(allocs) / double(total) : NAN;
  r.sleeps_per_value = double(sleeps) / double(total);
  r.queued_at_stop =
    total > received_at_stop ? double(total - received_at_stop) / double(total) : 0.0;
  return r;
}

// ---------------------------------------------------------------------------
// (p) ping-pong: two io_contexts, each run by its own thread, each with a consumer
// coroutine on its own instance of the contender. A value goes to B; B's consumer sends
// value + 1 back to A from its sink; A's consumer times the round trip and sends the next.
// Both io threads are idle between messages: every send finds its receiver parked.
struct pingpong_result
{
  double ns_per_round_trip = 0;
  double allocs_per_round_trip = 0;
};

template <class C>
pingpong_result run_pingpong(int warm, int rounds)
{
  asio::io_context ctx_a, ctx_b;
  C to_a(ctx_a), to_b(ctx_b);
  std::optional<typename C::producer> send_a, send_b;
  send_a.emplace(to_a);
  send_b.emplace(to_b);
  stats per;
  per.v.reserve(rounds);
  clock_type::time_point t0;
  int n = 0;
  alloc_counts a_first{}, a_last{}, b_first{}, b_last{};
  auto sink_b = [&](u64 v) -> bool {
    if (v == end_marker)
      return false;
    if (v == u64(2 * warm + 1))
      b_first = thread_alloc_counts();
    if (v == u64(2 * (warm + rounds) + 1) - 2)
      b_last = thread_alloc_counts();
    send_a->send(v + 1);
    return true;
  };
  auto sink_a = [&](u64 v) -> bool {
    auto t1 = clock_type::now();
    ++n;
    if (n > warm)
      per.add(std::chrono::duration<double, std::nano>(t1 - t0).count());
    if (n == warm)
      a_first = thread_alloc_counts();
    if (n == warm + rounds)
    {
      a_last = thread_alloc_counts();
      send_b->send(end_marker);
      return false;
    }
    t0 = clock_type::now();
    send_b->send(v + 1);
    return true;
  };
  clock_type::time_point done_a, done_b;
  auto run_side = [](
                    asio::io_context& ctx, auto& c, auto& sink, clock_type::time_point& d) {
    auto guard = asio::make_work_guard(ctx);
    asio::co_spawn(ctx, consumer_main(c, sink, d, guard), rethrow);
    ctx.run();
  };
  std::thread tb([&] { run_side(ctx_b, to_b, sink_b, done_b); });
  std::thread ta([&] { run_side(ctx_a, to_a, sink_a, done_a); });
  t0 = clock_type::now();
  send_b->send(1);
  ta.join();
  tb.join();
  pingpong_result r;
  r.ns_per_round_trip = per.median();
  r.allocs_per_round_trip =
    malloc_counting() && rounds > 1
      ? double((a_last.allocs - a_first.allocs) + (b_last.allocs - b_first.allocs)) / rounds
      : NAN;
  return r;
}

// ---------------------------------------------------------------------------
// (c) single thread, one io_context::run(): a coroutine sends BATCH values through a
// producer, then receives them (one async_receive_some, or BATCH async_receive_one), and
// again. Every receive completes through a posted completion (never inline): for the
// waker contenders, the wait consumes the permit the sends left, then takes the values.
struct cycle_result
{
  double ns_per_value = 0;
  double allocs_per_value = 0;
  u64 errors = 0;
};

template <class C>
asio::awaitable<void> cycle_loop(C& c, long warm_cycles, long cycles, int batch,
  cycle_result& r, asio::executor_work_guard<asio::io_context::executor_type>& guard)
{
  typename C::producer prod(c);
  std::vector<u64> out;
  out.reserve(2048);
  u64 next_send = 1, next_take = 1;
  clock_type::time_point t0{};
  alloc_counts a0{};
  for (long i = 0; i < warm_cycles + cycles; ++i)
  {
    if (i == warm_cycles)
    {
      a0 = thread_alloc_counts();
      t0 = clock_type::now();
    }
    for (int k = 0; k < batch; ++k)
      prod.send(next_send++);
    for (int got = 0; got < batch;)
    {
      out.clear();
      if constexpr (C::one_per_receive)
        out.push_back(co_await c.async_receive_one(awaitable_tok));
      else
        co_await c.async_receive_some(out, awaitable_tok);
      for (u64 v : out)
      {
        if (v != next_take)
          ++r.errors;
        next_take = v + 1;
      }
      got += int(out.size());
    }
  }
  if (cycles > 0)
  {
    double values = double(cycles) * batch;
    r.ns_per_value =
      std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / values;
    r.allocs_per_value = double(thread_alloc_counts().allocs - a0.allocs) / values;
  }
  guard.reset();
}

template <class C>
cycle_result run_cycle(long values, int batch)
{
  asio::io_context ctx;
  C c(ctx);
  cycle_result r;
  long warm = std::max(200L, 16384L / batch);
  auto guard = asio::make_work_guard(ctx);
  asio::co_spawn(ctx, cycle_loop(c, warm, values / batch, batch, r, guard), rethrow);
  ctx.run();
  return r;
}

// ---------------------------------------------------------------------------
// Tables.

// A row per contender: median, min, max, then the median's ratio to each peer present.
class ratio_table
{
public:
  ratio_table(std::string title, std::string unit, std::string note,
    std::vector<std::string> peers, std::vector<std::string> extra_cols = {})
    : title_(std::move(title)), unit_(std::move(unit)), note_(std::move(note)),
      peers_(std::move(peers)), extra_cols_(std::move(extra_cols))
  {}

  stats& row(const std::string& name)
  {
    if (!rows_.count(name))
      order_.push_back(name);
    return rows_[name];
  }
  stats& extra(const std::string& name, std::size_t col) { return extra_[{name, col}]; }
  double median(const std::string& name) const
  {
    auto it = rows_.find(name);
    return it == rows_.end() ? NAN : it->second.median();
  }

  void print(std::FILE* out) const
  {
    std::fprintf(out, "\n#### %s\n\n", title_.c_str());
    if (!note_.empty())
      std::fprintf(out, "%s\n\n", note_.c_str());
    std::vector<std::string> peers;
    for (auto& p : peers_)
      if (rows_.count(p))
        peers.push_back(p);
    std::size_t reps = 0;
    for (auto& [k, s] : rows_)
      reps = std::max(reps, s.v.size());
    std::fprintf(out, "| contender | median %s | min | max |", unit_.c_str());
    for (auto& p : peers)
      std::fprintf(out, " x %s |", p.c_str());
    for (auto& e : extra_cols_)
      std::fprintf(out, " %s |", e.c_str());
    std::fprintf(out, "\n|---|---:|---:|---:|");
    for (std::size_t i = 0; i < peers.size() + extra_cols_.size(); ++i)
      std::fprintf(out, "---:|");
    std::fprintf(out, "\n");
    for (auto& name : order_)
    {
      const stats& s = rows_.at(name);
      double m = s.median();
      std::fprintf(out, "| %s | %s | %s | %s |", name.c_str(), fmt(m).c_str(),
        fmt(s.min()).c_str(), fmt(s.max()).c_str());
      for (auto& p : peers)
        std::fprintf(out, " %s |", fmt(m / median(p)).c_str());
      for (std::size_t i = 0; i < extra_cols_.size(); ++i)
      {
        auto it = extra_.find({name, i});
        std::fprintf(
          out, " %s |", it == extra_.end() ? "n/a" : fmt3(it->second.median()).c_str());
      }
      std::fprintf(out, "\n");
    }
    std::fprintf(out, "\n(%zu repetitions per row; extra columns: medians.)\n", reps);
    std::fflush(out);
  }

  // name <TAB> median <TAB> min <TAB> max [<TAB> extra median]...
  void write_tsv(std::FILE* out) const
  {
    for (auto& name : order_)
    {
      const stats& s = rows_.at(name);
      std::fprintf(out, "%s\t%.6g\t%.6g\t%.6g", name.c_str(), s.median(), s.min(), s.max());
      for (std::size_t i = 0; i < extra_cols_.size(); ++i)
      {
        auto it = extra_.find({name, i});
        std::fprintf(out, "\t%.6g", it == extra_.end() ? NAN : it->second.median());
      }
      std::fprintf(out, "\n");
    }
  }

  // Small per-value figures (allocations, waits) need more than fmt's 2 decimals.
  static std::string fmt3(double x)
  {
    if (std::isnan(x))
      return "n/a";
    if (x == 0 || std::fabs(x) >= 1)
      return fmt(x);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2g", x);
    return buf;
  }

private:
  std::string title_, unit_, note_;
  std::vector<std::string> peers_, extra_cols_;
  std::vector<std::string> order_;
  std::map<std::string, stats> rows_;
  std::map<std::pair<std::string, std::size_t>, stats> extra_;
};

struct data_file
{
  std::FILE* f = nullptr;
  data_file(const options& o, const std::string& name)
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

const std::vector<std::string> stream_peers{
  "cc_receive", "cc_try_first", "mc_waker", "mc_waker_tokens", "mc_post_per_value"};

std::string contender_names(bool cycle_only)
{
  std::string s;
  for_each_channel_contender([&]<class C>() {
    // (c) runs the channel and the queue+waker peers; the concurrent_channel rows would
    // only show its mutex and per-value completion again, mutex_deque_waker likewise.
    if (!cycle_only || std::string(C::name).rfind("cc_", 0) != 0)
      s += std::string(C::name) + "\n";
  });
  return s;
}

int cycle_mode(const std::string& name, long values, int batch)
{
  bool found = false;
  for_each_channel_contender([&]<class C>() {
    if (name == C::name)
    {
      found = true;
      cycle_result r = run_cycle<C>(values, batch);
      std::printf(
        "%s values=%ld batch=%d allocs_per_value=%.4f ns_per_value=%.1f errors=%llu\n",
        C::name, values, batch, r.allocs_per_value, r.ns_per_value,
        static_cast<unsigned long long>(r.errors));
      if (r.errors)
        found = false;
    }
  });
  if (!found)
  {
    std::fprintf(
      stderr, "unknown contender, or values out of order, in --cycle %s\n", name.c_str());
    return 2;
  }
  return 0;
}

void print_header(const options& o)
{
  std::printf("## channel_bench results\n\n");
  std::printf("- hardware threads: %u; repetitions per row: %d\n",
    std::thread::hardware_concurrency(), o.reps);
  std::printf("- compiler: %s; Boost %d.%d\n",
#if defined(__clang__)
    "clang " __clang_version__,
#else
    "g++ " __VERSION__,
#endif
    BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000);
  std::printf("- stream: producers send for %.2f s; in-flight window %s; value u64\n",
    o.s_seconds,
    o.window ? (std::to_string(o.window) + " values").c_str() : "none (unbounded)");
#if !defined(BENCH_HAVE_MOODYCAMEL)
  std::printf("- moodycamel::ConcurrentQueue not found at build time: mc_* contenders "
              "skipped (Debian: libconcurrentqueue-dev)\n");
#endif
  if (!malloc_counting())
    std::printf("- WARNING: sanitizer build, heap allocations are not counted\n");
  std::fflush(stdout);
}

// Target ratios from issue 9, in this run. `ge`: the ratio must be >= bound.
void print_targets(const options& o, const std::map<int, ratio_table>& s_t,
  const std::map<int, std::map<std::string, stats>>& s_allocs)
{
  struct target
  {
    const char* what;
    const char* num;
    const char* den; // nullptr: an absolute figure (allocations per value)
    double bound;
    bool ge;
  };
  const target targets[] = {
    {"aw_receive_many / mc_waker", "aw_receive_many", "mc_waker", 1.0, true},
    {"aw_receive_many / cc_try_first", "aw_receive_many", "cc_try_first", 3.0, true},
    {"aw_receive_many / mc_waker_tokens (stretch)", "aw_receive_many", "mc_waker_tokens",
      0.8, true},
    {"aw_receive / mc_post_per_value", "aw_receive", "mc_post_per_value", 0.9, true},
    {"aw_receive / cc_receive (about 5 expected)", "aw_receive", "cc_receive", NAN, true},
    {"aw_receive_many heap allocations per value", "aw_receive_many", nullptr, 0.002,
      false},
    {"aw_receive heap allocations per value", "aw_receive", nullptr, 0.002, false},
  };
  std::printf("\n#### (s) stream: issue 9 targets, as ratios of medians in this run\n\n");
  std::printf("Values/s ratios per producer count; n/a where a contender was not built "
              "or not selected.\n\n");
  std::printf("| target | bound |");
  for (int p : o.producers)
    std::printf(" P=%d |", p);
  std::printf(" met at every P |\n|---|---:|");
  for (std::size_t i = 0; i < o.producers.size(); ++i)
    std::printf("---:|");
  std::printf("---|\n");
  for (auto& t : targets)
  {
    std::printf("| %s | %s |", t.what,
      std::isnan(t.bound) ? "-"
                          : ((t.ge ? ">= " : "<= ") + ratio_table::fmt3(t.bound)).c_str());
    bool all = true, any = false;
    for (int p : o.producers)
    {
      double x = NAN;
      if (t.den)
      {
        x = s_t.at(p).median(t.num) / s_t.at(p).median(t.den);
      }
      else
      {
        auto it = s_allocs.at(p).find(t.num);
        if (it != s_allocs.at(p).end())
          x = it->second.median();
      }
      if (!std::isnan(x))
      {
        any = true;
        if (!std::isnan(t.bound) && !(t.ge ? x >= t.bound : x <= t.bound))
          all = false;
      }
      std::printf(" %s |", t.den ? fmt(x).c_str() : ratio_table::fmt3(x).c_str());
    }
    std::printf(" %s |\n", std::isnan(t.bound) || !any ? "-" : all ? "yes" : "**no**");
  }
  // Scaling: issue 9 asks for P=15 >= 0.8x P=1 on a 16-core machine
  // (--producers 1,2,4,8,15 there); on 2 cores the ratios are shown for information.
  auto p1 = std::find(o.producers.begin(), o.producers.end(), 1);
  auto p15 = std::find(o.producers.begin(), o.producers.end(), 15);
  for (const char* name : {"aw_receive_many", "aw_receive"})
  {
    std::printf("| %s values/s at P / at P=1 | >= 0.8 at P=15 (16 cores) |", name);
    for (int p : o.producers)
    {
      double x =
        p1 == o.producers.end() ? NAN : s_t.at(p).median(name) / s_t.at(1).median(name);
      std::printf(" %s |", fmt(x).c_str());
    }
    double x15 = p1 == o.producers.end() || p15 == o.producers.end()
                   ? NAN
                   : s_t.at(15).median(name) / s_t.at(1).median(name);
    std::printf(" %s |\n", std::isnan(x15) ? "- (no P=15)" : x15 >= 0.8 ? "yes" : "**no**");
  }
  std::fflush(stdout);
}

int run_all(const options& o)
{
  print_header(o);
  u64 total_errors = 0;

  if (o.scenarios.count("s"))
  {
    std::map<int, ratio_table> s_t;
    std::map<int, std::map<std::string, stats>> s_allocs;
    for (int p : o.producers)
    {
      char title[200];
      std::snprintf(title, sizeof title, "(s) stream, %d producer thread%s: values/s", p,
        p == 1 ? "" : "s");
      s_t.emplace(
        p, ratio_table(title, "values/s",
             "End to end, higher is better. receives: receive or wait operations the "
             "consumer started, per value; parks: of those, started with nothing queued "
             "(n/a: not observable from outside); allocs: heap allocations per value, all "
             "threads; queued: share of the values still queued when the producers "
             "stopped.",
             stream_peers,
             {"receives/value", "parks/value", "sleeps/value", "allocs/value", "queued"}));
    }
    for (int rep = 0; rep < o.reps; ++rep)
      for (int p : o.producers)
        for_each_channel_contender([&]<class C>() {
          if (!selected<C>(o))
            return;
          auto r = run_stream<C>(p, o);
          if (r.errors)
          {
            std::fprintf(stderr, "%s, %d producers: %llu values lost or out of order\n",
              C::name, p, static_cast<unsigned long long>(r.errors));
            total_errors += r.errors;
          }
          auto& t = s_t.at(p);
          t.row(C::name).add(r.values_per_s);
          t.extra(C::name, 0).add(r.receives_per_value);
          if (!std::isnan(r.parks_per_value))
            t.extra(C::name, 1).add(r.parks_per_value);
          if (!std::isnan(r.allocs_per_value))
          {
            t.extra(C::name, 3).add(r.allocs_per_value);
            s_allocs[p][C::name].add(r.allocs_per_value);
          }
          t.extra(C::name, 2).add(r.sleeps_per_value);
          t.extra(C::name, 4).add(r.queued_at_stop);
        });

    // Summary: median values/s per P, and the median over P.
    std::printf("\n#### (s) stream: values/s by producer threads (medians)\n\n");
    std::printf("| contender |");
    for (int p : o.producers)
      std::printf(" P=%d |", p);
    std::printf(" median over P |\n|---|");
    for (std::size_t i = 0; i <= o.producers.size(); ++i)
      std::printf("---:|");
    std::printf("\n");
    data_file dv(o, "channel_s_values.dat");
    if (dv.f)
      std::fprintf(dv.f, "threads");
    for_each_channel_contender([&]<class C>() {
      if (!selected<C>(o))
        return;
      if (dv.f)
        std::fprintf(dv.f, "\t%s", C::name);
      stats over;
      std::printf("| %s |", C::name);
      for (int p : o.producers)
      {
        double m = s_t.at(p).median(C::name);
        over.add(m);
        std::printf(" %s |", fmt(m).c_str());
      }
      std::printf(" %s |\n", fmt(over.median()).c_str());
    });
    if (dv.f)
    {
      std::fprintf(dv.f, "\n");
      for (int p : o.producers)
      {
        std::fprintf(dv.f, "%d", p);
        for_each_channel_contender([&]<class C>() {
          if (selected<C>(o))
            std::fprintf(dv.f, "\t%.6g", s_t.at(p).median(C::name));
        });
        std::fprintf(dv.f, "\n");
      }
    }
    print_targets(o, s_t, s_allocs);
    for (int p : o.producers)
    {
      s_t.at(p).print(stdout);
      data_file df(o, "channel_s_" + std::to_string(p) + ".tsv");
      if (df.f)
        s_t.at(p).write_tsv(df.f);
    }
  }

  if (o.scenarios.count("p"))
  {
    ratio_table t("(p) ping-pong: one value there and back, two io threads", "ns",
      "Per repetition, the median round trip (lower is better): A sends to B's "
      "receiver, B's consumer sends value + 1 back to A's. Both io threads are idle "
      "between messages, so every send wakes a parked receiver (and a sleeping "
      "thread). allocs: heap allocations per round trip, both io threads.",
      stream_peers, {"allocs/round trip"});
    for (int rep = 0; rep < o.reps; ++rep)
      for_each_channel_contender([&]<class C>() {
        if (!selected<C>(o))
          return;
        auto r = run_pingpong<C>(o.pp_rounds / 10, o.pp_rounds);
        t.row(C::name).add(r.ns_per_round_trip);
        if (!std::isnan(r.allocs_per_round_trip))
          t.extra(C::name, 0).add(r.allocs_per_round_trip);
      });
    t.print(stdout);
    data_file df(o, "channel_p.tsv");
    if (df.f)
      t.write_tsv(df.f);
  }
  return total_errors ? 1 : 0;
}

} // namespace bench

namespace {
std::vector<std::string> split(const std::string& s)
{
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.push_back(item);
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
    if (a == "--list" || a == "--list-cycle")
    {
      std::fputs(bench::contender_names(a == "--list-cycle").c_str(), stdout);
      return 0;
    }
    else if (a == "--cycle")
    {
      std::string name = next();
      long values = std::atol(next().c_str());
      int batch = 1;
      if (i + 1 < argc && argv[i + 1][0] != '-')
        batch = std::max(1, std::min(1024, std::atoi(argv[++i])));
      return bench::cycle_mode(name, values, batch);
    }
    else if (a == "--reps")
      o.reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--scenarios")
    {
      auto v = split(next());
      o.scenarios = {v.begin(), v.end()};
    }
    else if (a == "--only")
    {
      auto v = split(next());
      o.only = {v.begin(), v.end()};
    }
    else if (a == "--producers")
    {
      o.producers.clear();
      for (auto& s : split(next()))
        o.producers.push_back(std::max(1, std::atoi(s.c_str())));
    }
    else if (a == "--seconds")
      o.s_seconds = std::atof(next().c_str());
    else if (a == "--window")
      o.window = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--rounds")
      o.pp_rounds = std::max(10, std::atoi(next().c_str()));
    else if (a == "--data-dir")
      o.data_dir = next();
    else if (a == "--quick")
    {
      o.s_seconds = 0.05;
      o.pp_rounds = 2000;
    }
    else
    {
      std::fprintf(stderr,
        "usage: %s [--reps N] [--scenarios s,p] [--only name,...] [--producers 1,2,4,8] "
        "[--seconds S] [--window N] [--rounds N] [--data-dir DIR] [--quick]\n"
        "       %s --cycle NAME VALUES [BATCH] | --list | --list-cycle\n",
        argv[0], argv[0]);
      return 2;
    }
  }
  return bench::run_all(o);
}
