//
// test/semantics.cpp: the permit, one waiter, never inline, work, allocator (contract
// points 1-4 and 10).
//

#define BOOST_TEST_MODULE asio_waker semantics
#include "test_support.hpp"

#include <boost/asio/bind_allocator.hpp>

#include <new>

using namespace test;
using asio_waker::atomic_waker;

BOOST_AUTO_TEST_SUITE(permit, *case_timeout())

BOOST_AUTO_TEST_CASE(wake_before_wait_stores_a_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  outcome o;
  w.async_wait(record(o));
  BOOST_TEST(o.calls == 0); // never inline, even with the permit present
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(wakes_coalesce_into_one_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  for (int i = 0; i < 5; ++i)
    w.wake();
  outcome first, second;
  w.async_wait(record(first));
  run_all(ctx);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(!first.ec);

  // The five wakes left ONE permit: a second wait stays pending.
  w.async_wait(record(second));
  ctx.restart();
  ctx.run_for(50ms);
  BOOST_TEST(second.calls == 0);
  BOOST_TEST(!ctx.stopped());
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(wake_completes_a_pending_wait_without_leaving_a_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome a, b;
  w.async_wait(record(a));
  w.wake();
  BOOST_TEST(a.calls == 0); // not inside wake()
  run_all(ctx);
  BOOST_TEST(a.calls == 1);
  BOOST_TEST(!a.ec);

  w.async_wait(record(b));
  ctx.restart();
  ctx.run_for(50ms);
  BOOST_TEST(b.calls == 0); // no spurious completion
  BOOST_TEST(w.cancel() == 1u);
  run_all(ctx);
  BOOST_TEST(b.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(wake_with_completion_queued_is_a_new_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome a, b;
  w.async_wait(record(a));
  w.wake(); // completes a (queued, not yet run)
  w.wake(); // nobody waits any more: stores the permit
  run_all(ctx);
  BOOST_TEST(a.calls == 1);
  w.async_wait(record(b));
  run_all(ctx);
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(!b.ec);
}

BOOST_AUTO_TEST_CASE(cancel_never_clears_the_permit)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  BOOST_TEST(w.cancel() == 0u);
  outcome o;
  w.async_wait(record(o));
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(a_wait_that_consumed_the_permit_is_completed)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  outcome o;
  w.async_wait(record(o));
  BOOST_TEST(w.cancel() == 0u); // already completed, though its handler has not run
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(cancel_after_wake_returns_zero_and_the_handler_succeeds)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  w.async_wait(record(o));
  w.wake();
  BOOST_TEST(w.cancel() == 0u);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(one_waiter, *case_timeout())

BOOST_AUTO_TEST_CASE(a_new_wait_aborts_the_pending_one)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome first, second;
  w.async_wait(record(first));
  w.async_wait(record(second));
  BOOST_TEST(first.calls == 0); // the abort is not inline either
  ctx.restart();
  ctx.run_for(50ms);
  BOOST_TEST(first.calls == 1);
  BOOST_TEST(first.ec == asio::error::operation_aborted);
  BOOST_TEST(second.calls == 0);
  w.wake();
  run_all(ctx);
  BOOST_TEST(second.calls == 1);
  BOOST_TEST(!second.ec);
}

BOOST_AUTO_TEST_CASE(cancel_returns_one_then_zero)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  BOOST_TEST(w.cancel() == 0u);
  w.async_wait(record(o));
  BOOST_TEST(w.cancel() == 1u);
  BOOST_TEST(w.cancel() == 0u);
  BOOST_TEST(o.calls == 0);
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(o.ec == asio::error::operation_aborted);

  // The waker keeps working, and the cancelled wait left no permit behind.
  outcome again;
  w.async_wait(record(again));
  ctx.restart();
  ctx.run_for(20ms);
  BOOST_TEST(again.calls == 0);
  w.wake();
  run_all(ctx);
  BOOST_TEST(again.calls == 1);
  BOOST_TEST(!again.ec);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(where_handlers_run, *case_timeout())

BOOST_AUTO_TEST_CASE(default_executor_is_the_wakers)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  std::thread::id ran_on;
  w.async_wait([&](error_code) { ran_on = std::this_thread::get_id(); });
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST((ran_on == std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(associated_executor_runs_the_handler)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  atomic_waker w(ctx);
  bool in_strand = false;
  int calls = 0;
  w.async_wait(asio::bind_executor(strand, [&](error_code ec) {
    ++calls;
    in_strand = strand.running_in_this_thread();
    BOOST_TEST(!ec);
  }));
  w.wake();
  run_all(ctx);
  BOOST_TEST(calls == 1);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_CASE(waker_on_a_strand_runs_handlers_in_the_strand)
{
  asio::io_context ctx;
  auto strand = asio::make_strand(ctx);
  asio_waker::basic_atomic_waker<asio::strand<asio::io_context::executor_type>> w(strand);
  bool in_strand = false;
  w.async_wait([&](error_code) { in_strand = strand.running_in_this_thread(); });
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(in_strand);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(outstanding_work, *case_timeout())

BOOST_AUTO_TEST_CASE(run_does_not_return_while_a_wait_is_pending)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  outcome o;
  w.async_wait(record(o));
  ctx.run_for(50ms);
  BOOST_TEST(!ctx.stopped()); // the pending wait is outstanding work

  std::thread producer([&] {
    std::this_thread::sleep_for(30ms);
    w.wake();
  });
  ctx.restart();
  ctx.run_for(watchdog); // returns once the woken handler ran and no work is left
  producer.join();
  BOOST_TEST(ctx.stopped());
  BOOST_TEST(o.calls == 1);
}

BOOST_AUTO_TEST_CASE(work_is_counted_on_the_handlers_executor)
{
  asio::io_context waker_ctx, handler_ctx;
  atomic_waker w(waker_ctx);
  outcome o;
  w.async_wait(asio::bind_executor(handler_ctx, record(o)));
  handler_ctx.run_for(50ms);
  BOOST_TEST(!handler_ctx.stopped()); // work counted on the handler's executor too

  w.wake();
  run_all(waker_ctx);
  BOOST_TEST(o.calls == 0); // dispatched to handler_ctx, not run here
  run_all(handler_ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(!o.ec);
}

BOOST_AUTO_TEST_CASE(no_work_without_a_pending_wait)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  w.wake();
  ctx.run_for(watchdog);
  BOOST_TEST(ctx.stopped()); // a stored permit is not work
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// An allocator that counts, and can be told to fail.
struct alloc_stats
{
  int allocations = 0;
  int deallocations = 0;
  bool fail = false;
};

template <typename T>
struct counting_allocator
{
  using value_type = T;
  alloc_stats* stats;
  explicit counting_allocator(alloc_stats* s) noexcept : stats(s) {}
  template <typename U>
  counting_allocator(const counting_allocator<U>& o) noexcept : stats(o.stats) {}
  T* allocate(std::size_t n)
  {
    if (stats->fail)
      throw std::bad_alloc();
    ++stats->allocations;
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n)
  {
    ++stats->deallocations;
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const counting_allocator<U>& o) const noexcept { return stats == o.stats; }
};

} // namespace

BOOST_AUTO_TEST_SUITE(allocator, *case_timeout())

BOOST_AUTO_TEST_CASE(memory_comes_from_the_associated_allocator_in_async_wait)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  alloc_stats stats;
  outcome o;
  w.async_wait(asio::bind_allocator(counting_allocator<void>(&stats), record(o)));
  BOOST_TEST(stats.allocations == 1);
  std::thread producer([&] { w.wake(); });
  producer.join();
  BOOST_TEST(stats.allocations == 1); // wake() asked the allocator for nothing
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST(stats.deallocations == 1);
}

BOOST_AUTO_TEST_CASE(a_throwing_async_wait_leaves_the_waker_unchanged)
{
  asio::io_context ctx;
  atomic_waker w(ctx);
  alloc_stats failing;
  failing.fail = true;

  // With a wait pending: it stays pending.
  outcome pending;
  w.async_wait(record(pending));
  BOOST_CHECK_THROW(
      w.async_wait(asio::bind_allocator(counting_allocator<void>(&failing), [](error_code) {})),
      std::bad_alloc);
  ctx.restart();
  ctx.run_for(20ms);
  BOOST_TEST(pending.calls == 0);
  w.wake();
  run_all(ctx);
  BOOST_TEST(pending.calls == 1);
  BOOST_TEST(!pending.ec);

  // With a permit stored: it stays stored.
  w.wake();
  BOOST_CHECK_THROW(
      w.async_wait(asio::bind_allocator(counting_allocator<void>(&failing), [](error_code) {})),
      std::bad_alloc);
  outcome later;
  w.async_wait(record(later));
  run_all(ctx);
  BOOST_TEST(later.calls == 1);
  BOOST_TEST(!later.ec);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(executors, *case_timeout())

BOOST_AUTO_TEST_CASE(thread_pool_executor)
{
  asio::thread_pool pool(2);
  asio_waker::basic_atomic_waker<asio::thread_pool::executor_type> w(pool);
  std::atomic<int> calls{0};
  std::atomic<bool> in_pool{false};
  w.async_wait([&](error_code ec) {
    in_pool = pool.get_executor().running_in_this_thread();
    if (!ec)
      ++calls;
  });
  std::thread producer([&] { w.wake(); });
  producer.join();
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
  BOOST_TEST(in_pool.load());
  pool.join();
}

BOOST_AUTO_TEST_CASE(system_executor)
{
  asio_waker::basic_atomic_waker<asio::system_executor> w{asio::system_executor()};
  std::atomic<int> calls{0};
  w.async_wait([&](error_code ec) { if (!ec) ++calls; });
  w.wake();
  BOOST_REQUIRE(spin_until([&] { return calls.load() == 1; }));
}

BOOST_AUTO_TEST_CASE(native_io_context_executor)
{
  asio::io_context ctx;
  asio_waker::basic_atomic_waker<asio::io_context::executor_type> w(ctx.get_executor());
  outcome o;
  w.async_wait(record(o));
  std::thread producer([&] { w.wake(); });
  producer.join();
  run_all(ctx);
  BOOST_TEST(o.calls == 1);
  BOOST_TEST((w.get_executor() == ctx.get_executor()));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// An execution context with no Asio scheduler behind it (a Networking TS style
// executor), to exercise the hand-off through post().
class manual_context : public asio::execution_context
{
public:
  class executor_type
  {
  public:
    explicit executor_type(manual_context& c) noexcept : ctx_(&c) {}
    manual_context& context() const noexcept { return *ctx_; }
    void on_work_started() const noexcept { ++ctx_->work; }
    void on_work_finished() const noexcept { --ctx_->work; }
    template <typename F, typename A> void dispatch(F&& f, const A& a) const { post(std::forward<F>(f), a); }
    template <typename F, typename A> void defer(F&& f, const A& a) const { post(std::forward<F>(f), a); }
    template <typename F, typename A> void post(F&& f, const A&) const
    {
      ctx_->queue.push_back(std::make_unique<task<std::decay_t<F>>>(std::forward<F>(f)));
    }
    bool operator==(const executor_type& o) const noexcept { return ctx_ == o.ctx_; }
    bool operator!=(const executor_type& o) const noexcept { return ctx_ != o.ctx_; }

  private:
    manual_context* ctx_;
  };

  executor_type get_executor() noexcept { return executor_type(*this); }

  std::size_t poll()
  {
    std::size_t n = 0;
    while (!queue.empty())
    {
      auto t = std::move(queue.front());
      queue.erase(queue.begin());
      t->run();
      ++n;
    }
    return n;
  }

  void shutdown_now() { shutdown(); }
  ~manual_context() { shutdown(); queue.clear(); destroy(); }

  int work = 0;

private:
  struct task_base { virtual ~task_base() = default; virtual void run() = 0; };
  template <typename F>
  struct task : task_base
  {
    F f;
    explicit task(F&& fn) : f(std::move(fn)) {}
    void run() override { f(); }
  };
  std::vector<std::unique_ptr<task_base>> queue;
};

} // namespace

BOOST_AUTO_TEST_SUITE(executors_without_a_scheduler, *case_timeout())

BOOST_AUTO_TEST_CASE(hand_off_through_post)
{
  manual_context mc;
  asio_waker::basic_atomic_waker<manual_context::executor_type> w(mc);
  outcome a, b, c;
  w.async_wait(record(a));
  BOOST_TEST(mc.work > 0); // outstanding work on the custom executor
  w.wake();
  BOOST_TEST(a.calls == 0);
  BOOST_TEST(mc.poll() >= 1u);
  BOOST_TEST(a.calls == 1);
  BOOST_TEST(!a.ec);
  BOOST_TEST(mc.work == 0);

  w.wake(); // permit
  w.async_wait(record(b));
  BOOST_TEST(b.calls == 0);
  mc.poll();
  BOOST_TEST(b.calls == 1);
  BOOST_TEST(!b.ec);

  w.async_wait(record(c));
  BOOST_TEST(w.cancel() == 1u);
  mc.poll();
  BOOST_TEST(c.calls == 1);
  BOOST_TEST(c.ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE(shutdown_destroys_queued_and_parked_waits)
{
  destruction_probe probe;
  int invoked = 0;
  {
    manual_context mc;
    asio_waker::basic_atomic_waker<manual_context::executor_type> queued(mc), parked(mc);
    queued.async_wait([&invoked, t = probe.make()](error_code) { ++invoked; });
    queued.wake(); // handed to the executor, never run
    parked.async_wait([&invoked, t = probe.make()](error_code) { ++invoked; });
    mc.shutdown_now(); // the service destroys the parked wait
    BOOST_TEST(*probe.destroyed >= 1);
    BOOST_TEST(invoked == 0);
  } // wakers, then the context (and the queued wait with it)
  BOOST_TEST(invoked == 0);
  BOOST_TEST(*probe.destroyed >= 2);
}

BOOST_AUTO_TEST_SUITE_END()
