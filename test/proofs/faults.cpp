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
// The helpers (counting_allocator, outcome/record, manual_context) are test/'s own, from
// test/test_support.hpp: the allocator's and the context's `failures` are the faults
// injected through them. An io_context that should run out of work runs through run_all
// (its watchdog fails the test instead of hanging on a lost completion).
//

#define BOOST_TEST_MODULE asio_waker_faults
#include "../test_support.hpp"

#include <boost/test/data/test_case.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <ostream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

using namespace test;

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

/// Adds the faults a helper injected (its `failures`) to the module's count when the
/// scope ends.
class count_faults
{
public:
  explicit count_faults(const int& failures) noexcept : failures_(failures) {}
  ~count_faults() { faults_injected += failures_; }
  count_faults(const count_faults&) = delete;
  count_faults& operator=(const count_faults&) = delete;

private:
  const int& failures_;
};

/// A handler whose allocator counts into `stats` (and fails as it says).
auto allocating(alloc_stats& stats, outcome& o)
{
  return asio::bind_allocator(counting_allocator<void>(&stats), record(o));
}

// How many allocations does one async_wait make through the handler's allocator?
int allocations_per_wait()
{
  asio::io_context ctx;
  asio_waker::atomic_waker w(ctx);
  alloc_stats stats; // fail_countdown 0: never fails
  outcome r;
  w.async_wait(allocating(stats, r));
  w.wake();
  run_all(ctx);
  BOOST_TEST(r.calls == 1);
  BOOST_TEST(stats.live() == 0);
  BOOST_TEST(stats.failures == 0);
  return stats.allocations + stats.failures;
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
    alloc_stats stats;
    stats.fail_countdown = fail_at;
    count_faults counted(stats.failures);
    outcome failed;
    BOOST_CHECK_THROW(w.async_wait(allocating(stats, failed)), std::bad_alloc);
    BOOST_TEST(stats.live() == 0);
    // The permit is still there: the next wait completes with success.
    outcome next;
    w.async_wait(record(next));
    run_all(ctx);
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
    outcome first;
    w.async_wait(record(first));
    alloc_stats stats;
    stats.fail_countdown = fail_at;
    count_faults counted(stats.failures);
    outcome failed;
    BOOST_CHECK_THROW(w.async_wait(allocating(stats, failed)), std::bad_alloc);
    ctx.poll();
    ctx.restart();
    BOOST_TEST(first.calls == 0); // not aborted by the failed replacement
    w.wake();
    run_all(ctx);
    BOOST_TEST(first.calls == 1);
    BOOST_TEST(!first.ec); // completed normally by the wake
    BOOST_TEST(failed.calls == 0);
    BOOST_TEST(stats.live() == 0);
    // and the waker still works
    outcome again;
    w.async_wait(record(again));
    w.wake();
    run_all(ctx);
    BOOST_TEST(again.calls == 1);
  }
}

BOOST_AUTO_TEST_CASE(allocation_failure_without_permit_or_waiter)
{
  expect_faults faults(1);
  asio::io_context ctx;
  asio_waker::atomic_waker w(ctx);
  alloc_stats stats;
  stats.fail_countdown = 1;
  count_faults counted(stats.failures);
  outcome failed;
  BOOST_CHECK_THROW(w.async_wait(allocating(stats, failed)), std::bad_alloc);
  BOOST_TEST(w.cancel() == 0u); // nothing was parked
  w.wake();                     // the permit this stores is consumed by the next wait
  outcome next;
  w.async_wait(record(next));
  run_all(ctx);
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
    outcome r;
    w.wake();
    w.async_wait(record(r));
    run_all(ctx);
    ctx.restart();
    BOOST_TEST(r.calls == 1);
    BOOST_TEST(!r.ec);
    BOOST_TEST(w.cancel() == 0u);
  }
}

// ---- an executor whose execute() throws ----------------------------------------------------

namespace {

// A standard executor on an execution context that no Asio scheduler runs; its
// execute() throws while the context's fail_next_submit says so.
using manual_executor = manual_context::std_executor;
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

/// The child's context, for its terminate handler.
const manual_context* child_context = nullptr;

// Runs `body` on a fresh manual_context in a forked child, with a terminate handler that
// reports whether the fault was injected first; returns the child's status.
int in_child(void (*body)(manual_context&))
{
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0)
  {
    manual_context ctx;
    child_context = &ctx;
    std::set_terminate([] {
      _exit(child_context->failures > 0 ? child_terminated : child_terminated_early);
    });
    body(ctx);
    _exit(child_returned);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : child_killed;
}

/// Parks a wait on `w`, after checking (once) that a wait/wake round trip works on the
/// manual executor: the fault, not a broken fixture, must be what terminates.
void park_after_a_normal_round(manual_context& ctx, manual_waker& w, outcome& r)
{
  outcome first;
  w.async_wait(record(first));
  w.wake();
  ctx.run();
  if (first.calls != 1 || first.ec)
    _exit(child_broken_executor);
  w.async_wait(record(r)); // parked: its hand-off goes through execute()
}

/// A noexcept hand-off whose execute() throws.
struct terminating_path
{
  const char* name;
  void (*body)(manual_context&);
};

std::ostream& operator<<(std::ostream& os, const terminating_path& p)
{
  return os << p.name;
}

// The class doc of basic_atomic_waker ("Hand-off") lists these paths: each hands an
// operation that has already left the waker's state to execute(), and cannot report a
// failure, so std::terminate.
const terminating_path terminating_paths[] = {
  {"wake",
    [](manual_context& ctx) {
      manual_waker w(ctx.get_std_executor());
      outcome r;
      park_after_a_normal_round(ctx, w, r);
      ctx.fail_next_submit = 1;
      w.wake();
    }},
  {"cancel",
    [](manual_context& ctx) {
      manual_waker w(ctx.get_std_executor());
      outcome r;
      park_after_a_normal_round(ctx, w, r);
      ctx.fail_next_submit = 1;
      w.cancel();
    }},
  {"replacing_async_wait",
    [](manual_context& ctx) {
      manual_waker w(ctx.get_std_executor());
      outcome a, b;
      park_after_a_normal_round(ctx, w, a);
      ctx.fail_next_submit = 1;
      w.async_wait(record(b));
    }},
  {"cancellation_signal",
    [](manual_context& ctx) {
      manual_waker w(ctx.get_std_executor());
      outcome first, r;
      w.async_wait(record(first));
      w.wake();
      ctx.run();
      if (first.calls != 1 || first.ec)
        _exit(child_broken_executor);
      asio::cancellation_signal sig;
      w.async_wait(asio::bind_cancellation_slot(sig.slot(), record(r)));
      ctx.fail_next_submit = 1;
      sig.emit(asio::cancellation_type::terminal);
    }},
  {"destructor",
    [](manual_context& ctx) {
      manual_waker w(ctx.get_std_executor());
      outcome r;
      park_after_a_normal_round(ctx, w, r);
      ctx.fail_next_submit = 1;
    }},
};

} // namespace

BOOST_AUTO_TEST_CASE(throwing_execute_on_the_permit_path_rethrows_and_keeps_the_permit)
{
  expect_faults faults(1);
  manual_context ctx;
  count_faults counted(ctx.failures);
  {
    manual_waker w(ctx.get_std_executor());
    w.wake(); // permit stored, no execute()
    ctx.fail_next_submit = 1;
    outcome failed;
    BOOST_CHECK_THROW(w.async_wait(record(failed)), std::runtime_error);
    BOOST_TEST(ctx.queued() == 0u);
    outcome next;
    w.async_wait(record(next)); // the permit was restored
    ctx.run();
    BOOST_TEST(failed.calls == 0);
    BOOST_TEST(next.calls == 1);
    BOOST_TEST(!next.ec);
    // and the executor keeps working: a parked wait, then a wake
    outcome again;
    w.async_wait(record(again));
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
