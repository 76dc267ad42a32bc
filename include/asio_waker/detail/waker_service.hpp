//
// asio_waker/detail/waker_service.hpp
//
// The execution-context service behind basic_atomic_waker. It knows every live waker of
// its context, so that shutting the context down destroys each parked wait without
// invoking its handler (as Asio's timers are destroyed with their scheduler), and so
// that a cancellation signal emitted after its waker was destroyed is recognised and
// ignored. It also finds the Asio scheduler that runs the context, if there is one, for
// allocation-free hand-offs.
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
// * Any other execution context (or ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF defined): the
//   hand-off is `post(executor, wait_op_runner)`, which may allocate inside the executor,
//   and the parked operation holds an executor_work_guard on the waker's executor. In
//   wake(), which is noexcept, a failure of that post calls std::terminate; this is
//   documented on basic_atomic_waker ("Hand-off").
//

#ifndef ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
#define ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP

#include <asio_waker/detail/wait_op.hpp>
#include <asio_waker/detail/waker_state.hpp>

#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

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
    /// Unique in the process, never reused: names the waker to is_live().
    std::uint64_t id = 0;
  };

  explicit waker_service(boost::asio::execution_context& ctx)
    : boost::asio::detail::execution_context_service_base<waker_service>(ctx),
      scheduler_(find_scheduler(ctx))
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().services.insert(this);
  }

  ~waker_service()
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().services.erase(this);
  }

  void construct(implementation_type& impl)
  {
    static std::atomic<std::uint64_t> last_id{0};
    impl.scheduler = scheduler_;
    impl.id = last_id.fetch_add(1, std::memory_order_relaxed) + 1;
    std::lock_guard<std::mutex> lock(mutex_);
    live_.emplace(impl.id, &impl);
  }

  void destroy(implementation_type& impl) noexcept
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.erase(impl.id);
  }

  /// Whether waker `id` of `service` still exists; `service` may have been destroyed
  /// already (a cancellation signal can outlive the execution context). Only the
  /// consumer destroys a waker, and only the consumer asks, so a true answer stays true
  /// while the caller acts on it.
  static bool is_live(const waker_service* service, std::uint64_t id)
  {
    std::lock_guard<std::mutex> registry_lock(registry().mutex);
    if (registry().services.count(service) == 0)
      return false;
    std::lock_guard<std::mutex> lock(service->mutex_);
    return service->live_.count(id) != 0;
  }

  /// Destroys every parked wait without invoking its handler. Runs before the
  /// scheduler's own shutdown (services shut down in reverse order of creation), which
  /// destroys the operations already handed off.
  void shutdown() override
  {
    boost::asio::detail::op_queue<boost::asio::detail::scheduler_operation> ops;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& entry : live_)
        if (wait_op* op = entry.second->state.cancel())
          ops.push(op);
    }
    // `ops` destroys them as it goes out of scope, outside the lock: a handler's
    // destructor may destroy a waker (a coroutine frame that owns one, say), which
    // unlinks it here.
  }

private:
  static boost::asio::detail::scheduler* find_scheduler(
      [[maybe_unused]] boost::asio::execution_context& ctx)
  {
#if defined(ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF)
    return nullptr;
#else
    using boost::asio::detail::scheduler;
    return boost::asio::has_service<scheduler>(ctx)
      ? &boost::asio::use_service<scheduler>(ctx) : nullptr;
#endif
  }

  // The services alive in the process. Never destroyed: a cancellation signal may be
  // emitted during static destruction. Touched only when an execution context's waker
  // service is created or destroyed, and when a cancellation signal is emitted.
  struct registry_type
  {
    std::mutex mutex;
    std::unordered_set<const waker_service*> services;
  };

  static registry_type& registry()
  {
    static registry_type* const instance = new registry_type;
    return *instance;
  }

  boost::asio::detail::scheduler* const scheduler_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, implementation_type*> live_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
