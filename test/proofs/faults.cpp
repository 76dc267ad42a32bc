//
// test/proofs/faults.cpp -- fault injection for basic_atomic_waker.
//
// * An allocator (associated with the handler through bind_allocator) that fails on the
//   Nth allocation: async_wait throws std::bad_alloc and the waker is unchanged (the
//   permit is kept; a previous waiter stays pending and is later completed normally).
// * A handler that throws: the exception propagates out of run(), the waker keeps working.
// * An executor whose execute() throws, on an execution context that is not run by an
//   Asio scheduler (the service's portable hand-off, wait_op::post, posts there):
//   async_wait's permit path rethrows and keeps the permit (post_or_restore_permit);
//   every noexcept hand-off (wake(), cancel(), a replacing async_wait, a cancellation
//   signal, the destructor) calls std::terminate, checked in a forked child.
//
// The injected faults are counted; each test checks that its faults were injected, and
// the total is printed when the module ends ("faults injected: N", read by ci.sh).
//
// The helpers (failing allocator, recorder, manual context) are this file's own: the
// test/ helpers are not part of this standalone project.
//

#define BOOST_TEST_MODULE asio_waker_faults
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <asio_waker/atomic_waker.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <deque>
#include <exception>
#include <iostream>
#include <memory>
#include <new>
#include <ostream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

int faults_injected = 0;

/// Prints the module's total when it ends (a global fixture, not a test).
struct report_faults
{
  ~report_faults() { std::cout << "faults injected: " << faults_injected << std::endl; }
};

/// Checks, at the end of a scope, that exactly `expected` faults were injected in it.
class expect_faults
{
public:
  explicit expect_faults(int expected) : expected_(expected), before_(faults_injected) {}
  ~expect_faults()
  {
    BOOST_TEST(faults_injected - before_ == expected_, "faults injected in this test");
  }

private:
  int expected_;
  int before_;
};

// ---- a failing allocator ------------------------------------------------------------------

struct alloc_plan
{
  int countdown = 0; // fail when it reaches 0 on an allocation; <0: never
  int allocations = 0;
  int live = 0;
};

template <typename T>
struct failing_allocator
{
  using value_type = T;
  alloc_plan* plan;
  explicit failing_allocator(alloc_plan* p) noexcept : plan(p) {}
  template <typename U>
  failing_allocator(const failing_allocator<U>& o) noexcept : plan(o.plan) {}
  T* allocate(std::size_t n)
  {
    ++plan->allocations;
    if (plan->countdown > 0 && --plan->countdown == 0)
    {
      ++faults_injected;
      throw std::bad_alloc();
    }
    ++plan->live;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n)
  {
    --plan->live;
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const failing_allocator<U>& o) const noexcept { return plan == o.plan; }
  template <typename U>
  bool operator!=(const failing_allocator<U>& o) const noexcept { return plan != o.plan; }
};

struct recorder
{
  int calls = 0;
  error_code ec;
  auto handler()
  {
    return [this](error_code e) {
      ++calls;
      ec = e;
    };
  }
};

// How many allocations does one async_wait make through the handler's allocator?
int allocations_per_wait()
{
  asio::io_context ctx;
  asio_waker::atomic_waker w(ctx);
  alloc_plan plan;
  plan.countdown = -1;
  recorder r;
  w.async_wait(asio::bind_allocator(failing_allocator<void>(&plan), r.handler()));
  w.wake();
  ctx.run();
  BOOST_TEST(r.calls == 1);
  BOOST_TEST(plan.live == 0);
  return plan.allocations;
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(report_faults);

BOOST_AUTO_TEST_CASE(allocation_failure_keeps_the_permit)
{
  const int n = allocations_per_wait();
  BOOST_TEST_REQUIRE(n >= 1);
  expect_faults faults(n);
  for (int fail_at = 1; fail_at <= n; ++fail_at)
  {
    asio::io_context ctx;
    asio_waker::atomic_waker w(ctx);
    w.wake(); // permit stored
    alloc_plan plan;
    plan.countdown = fail_at;
    recorder failed;
    BOOST_CHECK_THROW(
        w.async_wait(asio::bind_allocator(failing_allocator<void>(&plan), failed.handler())),
        std::bad_alloc);
    BOOST_TEST(plan.live == 0);
    // The permit is still there: the next wait completes with success.
    recorder next;
    w.async_wait(next.handler());
    ctx.run();
    BOOST_TEST(failed.calls == 0);
    BOOST_TEST(next.calls == 1);
    BOOST_TEST(!next.ec);
  }
}

BOOST_AUTO_TEST_CASE(allocation_failure_leaves_the_pending_wait)
{
  const int n = allocations_per_wait();
  expect_faults faults(n);
  for (int fail_at = 1; fail_at <= n; ++fail_at)
  {
    asio::io_context ctx;
    asio_waker::atomic_waker w(ctx);
    recorder first;
    w.async_wait(first.handler());
    alloc_plan plan;
    plan.countdown = fail_at;
    recorder failed;
    BOOST_CHECK_THROW(
        w.async_wait(asio::bind_allocator(failing_allocator<void>(&plan), failed.handler())),
        std::bad_alloc);
    ctx.poll();
    ctx.restart();
    BOOST_TEST(first.calls == 0); // not aborted by the failed replacement
    w.wake();
    ctx.run();
    BOOST_TEST(first.calls == 1);
    BOOST_TEST(!first.ec); // completed normally by the wake
    BOOST_TEST(failed.calls == 0);
    BOOST_TEST(plan.live == 0);
    // and the waker still works
    recorder again;
    w.async_wait(again.handler());
    w.wake();
    ctx.restart();
    ctx.run();
    BOOST_TEST(again.calls == 1);
  }
}

BOOST_AUTO_TEST_CASE(allocation_failure_without_permit_or_waiter)
{
  expect_faults faults(1);
  asio::io_context ctx;
  asio_waker::atomic_waker w(ctx);
  alloc_plan plan;
  plan.countdown = 1;
  recorder failed;
  BOOST_CHECK_THROW(
      w.async_wait(asio::bind_allocator(failing_allocator<void>(&plan), failed.handler())),
      std::bad_alloc);
  BOOST_TEST(w.cancel() == 0u); // nothing was parked
  w.wake();                     // the permit this stores is consumed by the next wait
  recorder next;
  w.async_wait(next.handler());
  ctx.run();
  BOOST_TEST(next.calls == 1);
  BOOST_TEST(!next.ec);
}

// ---- throwing handlers -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(throwing_handler_propagates_and_the_waker_keeps_working)
{
  expect_faults faults(4);
  asio::io_context ctx;
  asio_waker::atomic_waker w(ctx);
  auto throwing = [](error_code) {
    ++faults_injected;
    throw std::runtime_error("handler throws");
  };
  for (int round = 0; round < 3; ++round)
  {
    // success path, aborted path (replacement) and the permit path
    w.async_wait(throwing);
    if (round == 1)
      w.async_wait(throwing);
    w.wake();
    BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
    if (round == 1)
      BOOST_CHECK_THROW(ctx.run(), std::runtime_error); // the other one
    ctx.restart();
    recorder r;
    w.wake();
    w.async_wait(r.handler());
    ctx.run();
    ctx.restart();
    BOOST_TEST(r.calls == 1);
    BOOST_TEST(!r.ec);
    BOOST_TEST(w.cancel() == 0u);
  }
}

// ---- an executor whose execute() throws ----------------------------------------------------

namespace {

class manual_context : public asio::execution_context
{
public:
  struct task
  {
    virtual ~task() = default;
    virtual void run() = 0;
  };
  template <typename F>
  struct task_impl : task
  {
    F f;
    explicit task_impl(F&& ff) : f(std::move(ff)) {}
    void run() override { f(); }
  };

  int fail_next_execute = 0; // number of upcoming execute() calls that throw
  std::deque<std::unique_ptr<task>> queue;

  std::size_t run()
  {
    std::size_t n = 0;
    while (!queue.empty())
    {
      auto t = std::move(queue.front());
      queue.pop_front();
      t->run();
      ++n;
    }
    return n;
  }
  ~manual_context() { shutdown(); queue.clear(); destroy(); }
};

struct manual_executor
{
  manual_context* ctx;

  bool operator==(const manual_executor& o) const noexcept { return ctx == o.ctx; }
  bool operator!=(const manual_executor& o) const noexcept { return ctx != o.ctx; }

  manual_context& query(asio::execution::context_t) const noexcept { return *ctx; }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept
  {
    return asio::execution::blocking.never;
  }
  manual_executor require(asio::execution::blocking_t::never_t) const noexcept { return *this; }
  manual_executor require(asio::execution::blocking_t::possibly_t) const noexcept { return *this; }

  template <typename F>
  void execute(F&& f) const
  {
    if (ctx->fail_next_execute > 0)
    {
      --ctx->fail_next_execute;
      ++faults_injected;
      throw std::runtime_error("execute() fails");
    }
    ctx->queue.push_back(std::make_unique<manual_context::task_impl<std::decay_t<F>>>(std::forward<F>(f)));
  }
};

static_assert(asio::execution::is_executor<manual_executor>::value);

using manual_waker = asio_waker::basic_atomic_waker<manual_executor>;

/// A child's exit status: what in_child's body did.
enum child_status
{
  child_returned = 0,          // the body returned: nothing terminated
  child_terminated = 42,       // std::terminate, after the injected fault
  child_terminated_early = 43, // std::terminate, but no fault was injected
  child_broken_executor = 44,  // the manual executor did not work before the fault
  child_killed = 45            // died of a signal
};

// Runs `body` in a forked child, with a terminate handler that reports whether the fault
// was injected first; returns the child's status.
int in_child(void (*body)())
{
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0)
  {
    std::set_terminate([] { _exit(faults_injected > 0 ? child_terminated : child_terminated_early); });
    body();
    _exit(child_returned);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : child_killed;
}

/// Parks a wait on `w`, after checking (once) that a wait/wake round trip works on the
/// manual executor: the fault, not a broken fixture, must be what terminates.
void park_after_a_normal_round(manual_context& ctx, manual_waker& w, recorder& r)
{
  recorder first;
  w.async_wait(first.handler());
  w.wake();
  ctx.run();
  if (first.calls != 1 || first.ec)
    _exit(child_broken_executor);
  w.async_wait(r.handler()); // parked: its hand-off goes through execute()
}

/// A noexcept hand-off whose execute() throws.
struct terminating_path
{
  const char* name;
  void (*body)();
};

std::ostream& operator<<(std::ostream& os, const terminating_path& p) { return os << p.name; }

// The class doc of basic_atomic_waker ("Hand-off") lists these paths: each hands an
// operation that has already left the waker's state to execute(), and cannot report a
// failure, so std::terminate.
const terminating_path terminating_paths[] = {
  {"wake", [] {
     manual_context ctx;
     manual_waker w(manual_executor{&ctx});
     recorder r;
     park_after_a_normal_round(ctx, w, r);
     ctx.fail_next_execute = 1;
     w.wake();
   }},
  {"cancel", [] {
     manual_context ctx;
     manual_waker w(manual_executor{&ctx});
     recorder r;
     park_after_a_normal_round(ctx, w, r);
     ctx.fail_next_execute = 1;
     w.cancel();
   }},
  {"replacing_async_wait", [] {
     manual_context ctx;
     manual_waker w(manual_executor{&ctx});
     recorder a, b;
     park_after_a_normal_round(ctx, w, a);
     ctx.fail_next_execute = 1;
     w.async_wait(b.handler());
   }},
  {"cancellation_signal", [] {
     manual_context ctx;
     manual_waker w(manual_executor{&ctx});
     recorder first, r;
     w.async_wait(first.handler());
     w.wake();
     ctx.run();
     if (first.calls != 1 || first.ec)
       _exit(child_broken_executor);
     asio::cancellation_signal sig;
     w.async_wait(asio::bind_cancellation_slot(sig.slot(), r.handler()));
     ctx.fail_next_execute = 1;
     sig.emit(asio::cancellation_type::terminal);
   }},
  {"destructor", [] {
     manual_context ctx;
     {
       manual_waker w(manual_executor{&ctx});
       recorder r;
       park_after_a_normal_round(ctx, w, r);
       ctx.fail_next_execute = 1;
     }
   }},
};

} // namespace

BOOST_AUTO_TEST_CASE(throwing_execute_on_the_permit_path_rethrows_and_keeps_the_permit)
{
  expect_faults faults(1);
  manual_context ctx;
  {
    manual_waker w(manual_executor{&ctx});
    w.wake(); // permit stored, no execute()
    ctx.fail_next_execute = 1;
    recorder failed;
    BOOST_CHECK_THROW(w.async_wait(failed.handler()), std::runtime_error);
    BOOST_TEST(ctx.queue.empty());
    recorder next;
    w.async_wait(next.handler()); // the permit was restored
    ctx.run();
    BOOST_TEST(failed.calls == 0);
    BOOST_TEST(next.calls == 1);
    BOOST_TEST(!next.ec);
    // and the executor keeps working: a parked wait, then a wake
    recorder again;
    w.async_wait(again.handler());
    w.wake();
    ctx.run();
    BOOST_TEST(again.calls == 1);
    BOOST_TEST(!again.ec);
  }
}

BOOST_DATA_TEST_CASE(throwing_execute_in_a_noexcept_hand_off_terminates,
    boost::unit_test::data::make(terminating_paths), path)
{
  const int status = in_child(path.body);
  BOOST_TEST(status == child_terminated, path.name << ": child status " << status);
  if (status == child_terminated)
    ++faults_injected; // in the child; counted here
}
