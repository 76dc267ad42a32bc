//
// asio_waker/atomic_waker.hpp
//
// basic_atomic_waker: wake one Asio wait from any thread, without locks, lost wake-ups
// or per-wake allocations.
//

#ifndef ASIO_WAKER_ATOMIC_WAKER_HPP
#define ASIO_WAKER_ATOMIC_WAKER_HPP

#include <asio_waker/detail/wait_op.hpp>
#include <asio_waker/detail/waker_service.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_tracking.hpp>
#include <boost/asio/detail/handler_type_requirements.hpp>
#include <boost/asio/detail/non_const_lvalue.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <type_traits>

namespace asio_waker {

/// Wakes one asynchronous wait from any thread.
///
/// A consumer waits with `async_wait` (completion signature
/// `void(boost::system::error_code)`); producers on any thread call `wake()`.
///
/// * **Permit.** `wake()` with no wait pending stores one permit; wakes coalesce (N
///   wakes, nobody waiting: one permit). `async_wait` with a permit stored consumes it
///   and completes with success. No wake is lost: every `wake()` either completes the
///   pending wait with success or leaves the permit set.
/// * **One waiter.** A new `async_wait` while one is pending completes the earlier one
///   with `boost::asio::error::operation_aborted` and takes its place.
/// * **Never inline.** The handler is never invoked inside `async_wait`, `wake`,
///   `cancel`, the destructor or a cancellation signal's `emit()`; it runs as if by
///   `post` on its associated executor (default: the waker's executor).
/// * **Work.** While a wait is pending, outstanding work is counted on the waker's
///   executor and on the handler's associated executor.
/// * **Cancellation.** `cancel()` and per-operation cancellation (terminal, partial and
///   total) complete the pending wait with `operation_aborted`. Racing a `wake()`,
///   exactly one of the two wins; a wake that loses leaves the permit.
/// * **Memory.** Writes a thread makes before `wake()` are visible to the handler of
///   the wait that this wake completes, or that consumes the permit it set or
///   refreshed (wake is a release, the completion an acquire).
///
/// **Thread safety.** `wake()` may be called concurrently with anything, including
/// other `wake()` calls. Everything else (`async_wait`, `cancel`, emitting a wait's
/// cancellation signal, destruction) is the consumer's, and must not run concurrently
/// with itself, as for any Asio I/O object. A waker must not outlive its execution
/// context, and its destructor must not run concurrently with `wake()`. A waker is not
/// movable: producers hold references to it. Emitting a wait's cancellation signal after
/// the wait completed, was replaced, or its waker was destroyed does nothing.
///
/// **Hand-off.** A finished wait reaches its handler without allocating or throwing when
/// the waker's execution context is run by Asio's scheduler (io_context, thread_pool,
/// system_context on POSIX). Otherwise (an execution context of your own, Windows' IOCP
/// io_context, or `ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF` defined) a parked wait holds an
/// `executor_work_guard` on the waker's executor and is handed to it with `post`. If
/// that post throws: in `async_wait` when a permit is consumed, the
/// exception propagates and the permit is put back; in `wake()`, `cancel()`, a replacing
/// `async_wait`, a cancellation signal and the destructor, which cannot report it
/// (the wait is already taken out of the waker), `std::terminate` is called.
///
/// **Lock-free?** The waker's own state is one atomic word changed without locks
/// (`wake()`: one load and one read-modify-write when uncontended). Handing a completed
/// wait to an `io_context` from a foreign thread takes whatever that scheduler takes
/// (its queue mutex), as every Asio `post` does; with
/// `BOOST_ASIO_CONCURRENCY_HINT_UNSAFE` that is nothing, and `wake()` must come from the
/// thread running the `io_context`. Constructing or destroying a waker and emitting a
/// cancellation signal take the waker service's mutex.
template <typename Executor = boost::asio::any_io_executor>
class basic_atomic_waker
{
public:
  using executor_type = Executor;

  /// Rebinds the waker to another executor type (see `as_default_on`).
  template <typename Executor1>
  struct rebind_executor
  {
    using other = basic_atomic_waker<Executor1>;
  };

  explicit basic_atomic_waker(const executor_type& ex)
    : executor_(ex),
      service_(&boost::asio::use_service<detail::waker_service>(context_of(ex)))
  {
    service_->construct(impl_);
  }

  template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
  explicit basic_atomic_waker(ExecutionContext& ctx)
    : basic_atomic_waker(executor_type(ctx.get_executor()))
  {
  }

  basic_atomic_waker(const basic_atomic_waker&) = delete;
  basic_atomic_waker& operator=(const basic_atomic_waker&) = delete;

  /// A pending wait completes with `operation_aborted` (never inline). A stored permit
  /// is discarded.
  ~basic_atomic_waker()
  {
    if (detail::wait_op* op = impl_.state.cancel())
      hand_off_aborted(op);
    service_->destroy(impl_);
  }

  executor_type get_executor() const noexcept { return executor_; }

  /// Starts an asynchronous wait for a `wake()`.
  ///
  /// Completes with success when a permit is stored (consuming it) or when a later
  /// `wake()` arrives; with `operation_aborted` when cancelled, replaced by a newer
  /// `async_wait`, or when the waker is destroyed. The memory the operation needs
  /// comes from the handler's associated allocator. If that allocation (or installing
  /// the cancellation handler) throws, the exception propagates and the waker is
  /// unchanged: an earlier wait stays pending and the permit is untouched.
  template <
    BOOST_ASIO_COMPLETION_TOKEN_FOR(void(boost::system::error_code)) WaitToken
      = boost::asio::default_completion_token_t<executor_type>>
  auto async_wait(WaitToken&& token = boost::asio::default_completion_token_t<executor_type>())
  {
    return boost::asio::async_initiate<WaitToken, void(boost::system::error_code)>(
        initiate_async_wait(this), token);
  }

  /// Completes the pending wait with success, or stores the permit if none is pending.
  ///
  /// Callable from any thread at any time; never waits for the consumer or for other
  /// wakers. Allocates nothing when the waker's execution context is run by an Asio
  /// scheduler (io_context, thread_pool, system_context), whatever the executor type.
  /// With any other execution context the completion is handed over with `post` on
  /// the waker's executor, which may allocate; see "Hand-off" above.
  void wake() noexcept
  {
    BOOST_ASIO_HANDLER_OPERATION((service_->context(), "atomic_waker", this, 0, "wake"));
    if (detail::wait_op* op = impl_.state.wake())
      hand_off(op);
  }

  /// Completes the pending wait with `operation_aborted` (never inline).
  /// Returns 1 if a wait was cancelled, 0 if none was pending or a `wake()` already
  /// completed it. Never clears a stored permit.
  std::size_t cancel()
  {
    BOOST_ASIO_HANDLER_OPERATION((service_->context(), "atomic_waker", this, 0, "cancel"));
    if (detail::wait_op* op = impl_.state.cancel())
    {
      hand_off_aborted(op);
      return 1;
    }
    return 0;
  }

private:
  using op_type = detail::wait_op;

  class initiate_async_wait
  {
  public:
    using executor_type = Executor;

    explicit initiate_async_wait(basic_atomic_waker* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename WaitHandler>
    void operator()(WaitHandler&& handler) const
    {
      BOOST_ASIO_WAIT_HANDLER_CHECK(WaitHandler, handler) type_check;
      boost::asio::detail::non_const_lvalue<WaitHandler> handler2(handler);
      self_->start_wait(handler2.value);
    }

  private:
    basic_atomic_waker* self_;
  };

  // Installed in the wait's cancellation slot. It only acts while its waker exists and
  // its wait is still the waker's current one: a stale slot (of a completed or
  // replaced wait, or of a destroyed waker) never cancels anything.
  class cancellation_handler
  {
  public:
    cancellation_handler(basic_atomic_waker* self, std::uint64_t wait) noexcept
      : self_(self), service_(self->service_), waker_id_(self->impl_.id), wait_(wait)
    {
    }

    void operator()(boost::asio::cancellation_type_t type)
    {
      using boost::asio::cancellation_type;
      if (!!(type & (cancellation_type::terminal | cancellation_type::partial
              | cancellation_type::total))
          && detail::waker_service::is_live(service_, waker_id_)
          && self_->impl_.waits_started == wait_)
        self_->cancel();
    }

  private:
    basic_atomic_waker* self_;
    detail::waker_service* service_;
    std::uint64_t waker_id_;
    std::uint64_t wait_;
  };

  template <typename Handler>
  void start_wait(Handler& handler)
  {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    const bool is_continuation =
      boost_asio_handler_cont_helpers::is_continuation(handler);

    using op = detail::wait_handler_op<Handler, Executor>;
    typename op::ptr p = { boost::asio::detail::addressof(handler),
      op::ptr::allocate(handler), 0 };
    p.p = new (p.v) op(handler, executor_);
    BOOST_ASIO_HANDLER_CREATION((service_->context(), *p.p, "atomic_waker", this, 0,
          "async_wait"));

    // Fast path: a stored permit completes the wait at once, with one exchange.
    if (impl_.state.try_consume_permit())
    {
      ++impl_.waits_started;
      op_type* o = p.p;
      p.v = p.p = 0;
      hand_off_new(o, is_continuation);
      return;
    }

    // May throw; the waker is still untouched.
    if (!impl_.scheduler)
      p.p->track_io_work(executor_);
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(this, impl_.waits_started + 1);

    // Nothing below throws, but the portable hand-off of a permit consumed by park().
    ++impl_.waits_started;
    if (impl_.scheduler)
      impl_.scheduler->work_started(); // as a timer counts its pending wait
    op_type* o = p.p;
    p.v = p.p = 0;
    const auto parked = impl_.state.park(o);
    if (parked.consumed_permit)
    {
      // A wake() stored a permit since the check above: complete at once.
      if (impl_.scheduler)
        impl_.scheduler->post_deferred_completion(o);
      else
        post_or_restore_permit(o);
      return;
    }
    if (parked.replaced)
      hand_off_aborted(parked.replaced);
  }

  // Hands a taken (parked) operation, whose work is already counted, to the executor.
  void hand_off(op_type* op) noexcept
  {
    if (impl_.scheduler)
      impl_.scheduler->post_deferred_completion(op);
    else
      boost::asio::post(executor_, detail::wait_op_runner(op));
  }

  void hand_off_aborted(op_type* op) noexcept
  {
    op->ec_ = boost::asio::error::operation_aborted;
    hand_off(op);
  }

  // Hands a new operation that consumed a permit, whose work is not yet counted, to
  // the executor.
  void hand_off_new(op_type* op, bool is_continuation)
  {
    if (impl_.scheduler)
      impl_.scheduler->post_immediate_completion(op, is_continuation);
    else
      post_or_restore_permit(op);
  }

  // The executor path of a wait that consumed a permit: if post throws, the wait is
  // destroyed, the permit put back and the exception propagates from async_wait.
  void post_or_restore_permit(op_type* op)
  {
    try
    {
      boost::asio::post(executor_, detail::wait_op_runner(op));
    }
    catch (...)
    {
      impl_.state.wake(); // no waiter is parked: this restores the permit
      throw;
    }
  }

  static boost::asio::execution_context& context_of(const executor_type& ex)
  {
    if constexpr (boost::asio::execution::is_executor<executor_type>::value)
      return boost::asio::query(ex, boost::asio::execution::context);
    else
      return ex.context();
  }

  executor_type executor_;
  detail::waker_service* service_;
  detail::waker_service::implementation_type impl_;
};

/// A waker on the polymorphic I/O executor.
using atomic_waker = basic_atomic_waker<>;

} // namespace asio_waker

#endif // ASIO_WAKER_ATOMIC_WAKER_HPP
