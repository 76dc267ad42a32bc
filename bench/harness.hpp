#pragma once
// A small self-contained harness: repetitions, medians, Markdown tables, data files.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0)
{
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spin for up to ~50 us, then yield: on 2 oversubscribed cores a pure spin can starve
// the thread we wait for.
template <class Pred>
void spin_until(Pred pred)
{
  if (pred())
    return;
  auto t0 = clock_type::now();
  bool yield = false;
  for (unsigned i = 1; !pred(); ++i)
  {
    if (yield)
    {
      std::this_thread::yield();
    }
    else
    {
      cpu_relax();
      if ((i & 255) == 0 && clock_type::now() - t0 > std::chrono::microseconds(50))
        yield = true;
    }
  }
}

struct stats
{
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  bool empty() const { return v.empty(); }
  double median() const
  {
    if (v.empty())
      return NAN;
    auto s = v;
    std::sort(s.begin(), s.end());
    std::size_t n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
  double min() const { return v.empty() ? NAN : *std::min_element(v.begin(), v.end()); }
  double max() const { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }
};

inline std::string fmt(double x)
{
  if (std::isnan(x))
    return "n/a";
  char buf[64];
  double a = std::fabs(x);
  if (a == 0)
    std::snprintf(buf, sizeof buf, "0");
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3g", x);
  else if (a >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", x);
  else if (a >= 10)
    std::snprintf(buf, sizeof buf, "%.1f", x);
  else
    std::snprintf(buf, sizeof buf, "%.2f", x);
  return buf;
}

// One table: a row per contender (in insertion order), median/min/max of the
// repetitions, and the ratio of each median to raw_post's and post_resume's.
class table
{
public:
  table(std::string title, std::string unit, std::string note = {})
    : title_(std::move(title)), unit_(std::move(unit)), note_(std::move(note))
  {}

  stats& row(const std::string& name)
  {
    auto it = rows_.find(name);
    if (it == rows_.end())
    {
      order_.push_back(name);
      it = rows_.emplace(name, stats{}).first;
    }
    return it->second;
  }
  void set_remark(const std::string& name, std::string remark)
  {
    remarks_[name] = std::move(remark);
  }
  bool has(const std::string& name) const { return rows_.count(name) != 0; }
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
    double base_raw = median("raw_post"), base_pr = median("post_resume");
    std::size_t reps = 0;
    for (auto& [k, s] : rows_)
      reps = std::max(reps, s.v.size());
    std::fprintf(out,
      "| contender | median %s | min | max | x raw_post | x post_resume |%s\n",
      unit_.c_str(), remarks_.empty() ? "" : " remark |");
    std::fprintf(out, "|---|---:|---:|---:|---:|---:|%s\n", remarks_.empty() ? "" : "---|");
    for (auto& name : order_)
    {
      const stats& s = rows_.at(name);
      double m = s.median();
      std::string r1 = std::isnan(base_raw) ? "n/a" : fmt(m / base_raw);
      std::string r2 = std::isnan(base_pr) ? "n/a" : fmt(m / base_pr);
      std::fprintf(out, "| %s | %s | %s | %s | %s | %s |", name.c_str(), fmt(m).c_str(),
        fmt(s.min()).c_str(), fmt(s.max()).c_str(), r1.c_str(), r2.c_str());
      if (!remarks_.empty())
      {
        auto it = remarks_.find(name);
        std::fprintf(out, " %s |", it == remarks_.end() ? "" : it->second.c_str());
      }
      std::fprintf(out, "\n");
    }
    std::fprintf(out, "\n(%zu repetitions per row.)\n", reps);
    std::fflush(out);
  }

  // name <TAB> median <TAB> min <TAB> max
  void write_tsv(std::FILE* out) const
  {
    for (auto& name : order_)
    {
      const stats& s = rows_.at(name);
      std::fprintf(
        out, "%s\t%.6g\t%.6g\t%.6g\n", name.c_str(), s.median(), s.min(), s.max());
    }
  }

private:
  std::string title_, unit_, note_;
  std::vector<std::string> order_;
  std::map<std::string, stats> rows_;
  std::map<std::string, std::string> remarks_;
};

} // namespace bench
