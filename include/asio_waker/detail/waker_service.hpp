//
// asio_waker/detail/waker_service.hpp
//
// The execution-context service behind basic_atomic_waker: it knows every waker of its
// context, so that shutting the context down destroys each parked wait without invoking
// its handler (as Asio's timers are destroyed with their scheduler), and it finds the
// Asio scheduler that runs the context, if there is one, for allocation-free hand-offs.
//
// How a finished wait reaches its handler ("hand-off"):
//
// * The context is run by an Asio scheduler (io_context, thread_pool, system_context,
//   whatever the waker's executor: its own, any_io_executor, a strand...). The wait
//   operation is a scheduler operation: async_wait counts one unit of outstanding work
//   on the scheduler when it parks the operation (as a timer does when it is
//   scheduled), and the hand-off links the operation into the scheduler's queue. That
//   takes the scheduler's queue mutex when called from a thread that does not run the
//   scheduler, as every Asio post does, but allocates nothing and cannot throw. The
//   operation then completes on a scheduler thread and dispatches to the handler's
//   associated executor (Asio's I/O-object model), which also tracks its own work.
//
// * Any other execution context: the hand-off is
//   `post(executor, wait_op_runner)`, which may allocate inside the executor. In
//   wake(), which is noexcept, a failure there calls std::terminate; this is documented
//   on basic_atomic_waker::wake.
//

#ifndef ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
#define ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP

#include <asio_waker/detail/wait_op.hpp>
#include <asio_waker/detail/waker_state.hpp>

#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/execution_context.hpp>

#include <cstdint>
#include <mutex>

namespace asio_waker {
namespace detail {

class waker_service
  : public boost::asio::detail::execution_context_service_base<waker_service>
{
public:
  /// The per-waker state, embedded in each waker.
  struct implementation_type
  {
    basic_waker_state<wait_op> state;
    /// Null when the context has no Asio scheduler: hand off through the executor.
    boost::asio::detail::scheduler* scheduler = nullptr;
    /// Consumer-owned count of async_wait calls: tells a cancellation slot's handler
    /// whether it still belongs to the current wait.
    std::uint64_t waits_started = 0;
    implementation_type* prev = nullptr;
    implementation_type* next = nullptr;
  };

  explicit waker_service(boost::asio::execution_context& ctx)
    : boost::asio::detail::execution_context_service_base<waker_service>(ctx),
      scheduler_(find_scheduler(ctx))
  {
  }

  void construct(implementation_type& impl)
  {
    impl.scheduler = scheduler_;
    std::lock_guard<std::mutex> lock(mutex_);
    impl.next = impls_;
    if (impls_)
      impls_->prev = &impl;
    impls_ = &impl;
  }

  void destroy(implementation_type& impl) noexcept
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (impl.prev)
      impl.prev->next = impl.next;
    else
      impls_ = impl.next;
    if (impl.next)
      impl.next->prev = impl.prev;
    impl.prev = impl.next = nullptr;
  }

  /// Destroys every parked wait without invoking its handler. Runs before the
  /// scheduler's own shutdown (services shut down in reverse order of creation), which
  /// destroys the operations already handed off.
  void shutdown() override
  {
    boost::asio::detail::op_queue<boost::asio::detail::scheduler_operation> ops;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (implementation_type* impl = impls_; impl; impl = impl->next)
        if (wait_op* op = impl->state.cancel())
          ops.push(op);
    }
    // `ops` destroys them as it goes out of scope, outside the lock: a handler's
    // destructor may destroy a waker (a coroutine frame that owns one, say), which
    // unlinks it here.
  }

private:
  static boost::asio::detail::scheduler* find_scheduler(
      boost::asio::execution_context& ctx)
  {
    using boost::asio::detail::scheduler;
    return boost::asio::has_service<scheduler>(ctx)
      ? &boost::asio::use_service<scheduler>(ctx) : nullptr;
  }

  boost::asio::detail::scheduler* const scheduler_;
  std::mutex mutex_;
  implementation_type* impls_ = nullptr;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
