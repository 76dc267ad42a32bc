//
// asio_waker/detail/waker_service.hpp
//
// The execution-context service behind basic_atomic_waker, in the shape of Asio's
// deadline_timer_service: the I/O object forwards each call to a member here, with its
// implementation (the state word and a few counters) and, for async_wait, its executor.
//
// The service knows every live waker of its context, so that shutting the context down
// destroys each parked wait without invoking its handler (as Asio's timers are destroyed
// with their scheduler), and so that a cancellation signal emitted after its waker was
// destroyed is recognised and ignored.
//
// The moves that drive the state word and hand a finished wait over (post_with_permit,
// park, take_and_complete, take_and_abort) are static templates over the implementation
// type: the interleaving checker in test/proofs runs these very functions with checked
// atomics, a model scheduler and a model operation.
//

#ifndef ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
#define ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP

#include <asio_waker/detail/config.hpp>
#include <asio_waker/detail/object_registry.hpp>
#include <asio_waker/detail/wait_op.hpp>
#include <asio_waker/detail/waker_state.hpp>

#include <cstddef>
#include <cstdint>

namespace asio_waker {
namespace detail {

/// The per-waker state, embedded in each waker. Generic over the state machine (the
/// checker also runs deliberately broken copies of it) and the scheduler.
template <typename State, typename Scheduler>
struct basic_waker_impl
{
  using op_type = typename State::op_type;

  State state;
  /// Null when no Asio scheduler runs the context: the portable hand-off.
  Scheduler* scheduler = nullptr;
  /// Consumer-owned count of async_wait calls: tells a cancellation slot's handler
  /// whether it still belongs to the current wait.
  std::uint64_t waits_started = 0;
  /// Unique in the process, never reused: names the waker to is_live().
  std::uint64_t id = 0;
};

class waker_service : public net::detail::execution_context_service_base<waker_service>
{
public:
  using implementation_type =
    basic_waker_impl<basic_waker_state<wait_op>, net::detail::scheduler>;

  explicit waker_service(net::execution_context& ctx)
    : net::detail::execution_context_service_base<waker_service>(ctx),
      scheduler_(find_scheduler(ctx))
  {}

  void construct(implementation_type& impl)
  {
    impl.scheduler = scheduler_;
    impl.id = live_.add(impl);
  }

  /// The waker's destructor: aborts a pending wait, as cancel() does.
  void destroy(implementation_type& impl) noexcept
  {
    take_and_abort(impl);
    live_.remove(impl.id);
  }

  template <typename Handler, typename IoExecutor>
  void async_wait(implementation_type& impl, Handler& handler, const IoExecutor& io_ex)
  {
    auto slot = net::get_associated_cancellation_slot(handler);
    const bool is_continuation = handler_cont_helpers::is_continuation(handler);

    // Allocate and construct an operation to wrap the handler.
    using op = wait_handler_op<Handler, IoExecutor>;
    typename op::ptr p = {net::detail::addressof(handler), op::ptr::allocate(handler), 0};
    p.p = new (p.v) op(handler, io_ex);
    ASIO_WAKER_HANDLER_CREATION(
      (this->context(), *p.p, "atomic_waker", &impl, 0, "async_wait"));
    if (!impl.scheduler)
      p.p->track_io_work(io_ex);

    // Fast path: a stored permit completes the wait at once, with one exchange.
    if (impl.state.try_consume_permit())
    {
      wait_op* o = p.p;
      p.v = p.p = 0;
      post_with_permit(impl, o, is_continuation);
      return;
    }

    // May throw; the waker is still untouched.
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(this, &impl, impl.waits_started + 1);

    wait_op* o = p.p;
    p.v = p.p = 0;
    park(impl, o);
  }

  void wake(implementation_type& impl) noexcept
  {
    ASIO_WAKER_HANDLER_OPERATION((this->context(), "atomic_waker", &impl, 0, "wake"));
    take_and_complete(impl);
  }

  std::size_t cancel(implementation_type& impl) noexcept
  {
    ASIO_WAKER_HANDLER_OPERATION((this->context(), "atomic_waker", &impl, 0, "cancel"));
    return take_and_abort(impl);
  }

  /// Destroys every parked wait without invoking its handler. Runs before the
  /// scheduler's own shutdown (services shut down in reverse order of creation), which
  /// destroys the operations already handed off.
  void shutdown() override
  {
    net::detail::op_queue<net::detail::scheduler_operation> ops;
    live_.for_each([&](implementation_type& impl) {
      if (wait_op* op = impl.state.cancel())
        ops.push(op);
    });
    // `ops` destroys them as it goes out of scope, outside the lock: a handler's
    // destructor may destroy a waker (a coroutine frame that owns one, say), which
    // unlinks it here.
  }

  // ---- The moves ---------------------------------------------------------------------
  //
  // How a finished wait reaches its handler (the hand-off):
  //
  // * An Asio scheduler runs the context (io_context except Windows' IOCP one,
  //   thread_pool and system_context everywhere; whatever the waker's executor type: its
  //   own, any_io_executor, a strand...). The wait is a scheduler operation: park()
  //   counts one unit of outstanding work on the scheduler (as a timer does when it is
  //   scheduled), and the hand-off links the operation into the scheduler's queue:
  //   post_deferred_completion for work already counted, post_immediate_completion
  //   otherwise. From a thread that does not run the scheduler that takes the queue
  //   mutex, as every Asio post does, but allocates nothing and cannot throw. The
  //   operation then completes on a scheduler thread and dispatches to the handler's
  //   associated executor (Asio's I/O-object model), which tracks its own work.
  //
  // * Any other execution context (or ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF defined): the
  //   operation holds an executor_work_guard on the waker's executor from async_wait on,
  //   and the hand-off is wait_op::post(), a `post` to that executor, which may allocate
  //   and throw. A wait that consumed the permit puts it back if that post throws, and
  //   the exception leaves async_wait. Elsewhere (wake, cancel, a replacing async_wait,
  //   a cancellation signal, the destructor) the wait has already left the word and
  //   nothing can report the failure: those paths are noexcept, so std::terminate.

  /// A wait that consumed the permit in async_wait (work not counted yet): completes
  /// it with success.
  template <typename Impl>
  static void post_with_permit(Impl& impl, typename Impl::op_type* op, bool is_continuation)
  {
    ++impl.waits_started;
    if (impl.scheduler)
      impl.scheduler->post_immediate_completion(op, is_continuation);
    else
      post_or_restore_permit(impl, op);
  }

  /// Parks a new wait, replacing (and aborting) a parked one, or completes it with
  /// success if a wake() stored the permit since async_wait looked.
  template <typename Impl>
  static void park(Impl& impl, typename Impl::op_type* op)
  {
    ++impl.waits_started;
    if (impl.scheduler)
      impl.scheduler->work_started(); // before the word publishes op: a wake may post it
    const auto parked = impl.state.park(op);
    if (parked.consumed_permit)
    {
      if (impl.scheduler)
        impl.scheduler->post_deferred_completion(op);
      else
        post_or_restore_permit(impl, op);
      return;
    }
    if (parked.replaced)
      post_aborted(impl, parked.replaced);
  }

  /// wake(): completes the parked wait with success, or stores the permit.
  template <typename Impl>
  static void take_and_complete(Impl& impl) noexcept
  {
    if (auto* op = impl.state.wake())
      post_deferred(impl, op);
  }

  /// cancel(): completes the parked wait with operation_aborted. Returns 1 if there was
  /// one, 0 if none was parked or a wake() took it first.
  template <typename Impl>
  static std::size_t take_and_abort(Impl& impl) noexcept
  {
    if (auto* op = impl.state.cancel())
    {
      post_aborted(impl, op);
      return 1;
    }
    return 0;
  }

private:
  /// Hands over a parked wait, whose work is already counted.
  template <typename Impl>
  static void post_deferred(Impl& impl, typename Impl::op_type* op) noexcept
  {
    if (impl.scheduler)
      impl.scheduler->post_deferred_completion(op);
    else
      op->post();
  }

  template <typename Impl>
  static void post_aborted(Impl& impl, typename Impl::op_type* op) noexcept
  {
    op->ec_ = net::error::operation_aborted;
    post_deferred(impl, op);
  }

  /// The portable hand-off of a wait that consumed the permit. If the post throws, the
  /// wait is destroyed, the permit put back (no waiter is parked, so wake() stores it)
  /// and the exception propagates.
  template <typename Impl>
  static void post_or_restore_permit(Impl& impl, typename Impl::op_type* op)
  {
    struct restore_on_unwind
    {
      Impl& impl;
      bool posted = false;
      ~restore_on_unwind()
      {
        if (!posted)
          impl.state.wake();
      }
    } restore{impl};
    op->post();
    restore.posted = true;
  }

  /// Installed in a parked wait's cancellation slot. It acts only while its waker
  /// exists and its wait is still the waker's current one: a stale slot (of a completed
  /// or replaced wait, or of a destroyed waker) never cancels anything.
  class cancellation_handler
  {
  public:
    cancellation_handler(
      waker_service* service, implementation_type* impl, std::uint64_t wait) noexcept
      : service_(service), impl_(impl), waker_id_(impl->id), wait_(wait)
    {}

    void operator()(net::cancellation_type_t type)
    {
      using net::cancellation_type;
      // A cancelled wait has consumed nothing, so every cancellation type is honoured.
      if (!!(type
             & (cancellation_type::terminal | cancellation_type::partial
                | cancellation_type::total))
          && registry_type::is_live(&service_->live_, waker_id_)
          && impl_->waits_started == wait_)
        service_->cancel(*impl_);
    }

  private:
    waker_service* service_;
    implementation_type* impl_;
    std::uint64_t waker_id_;
    std::uint64_t wait_;
  };

  using registry_type = object_registry<implementation_type>;

  net::detail::scheduler* const scheduler_;
  registry_type live_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAKER_SERVICE_HPP
