//
// asio_waker/atomic_waker.hpp
//
// basic_atomic_waker: wake one Asio wait from any thread, without locks, lost wake-ups
// or per-wake allocations.
//

#ifndef ASIO_WAKER_ATOMIC_WAKER_HPP
#define ASIO_WAKER_ATOMIC_WAKER_HPP

#include <asio_waker/detail/config.hpp>
#include <asio_waker/detail/waker_service.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

namespace asio_waker {

/// Wakes one asynchronous wait from any thread.
/**
 * A consumer waits with async_wait(); producers on any thread call wake(). The waker
 * holds at most one pending wait and at most one permit:
 *
 * @li **Permit.** wake() with no wait pending stores one permit; wakes coalesce (N
 * wakes, nobody waiting: one permit). async_wait() with a permit stored consumes it and
 * completes with success. No wake is lost: every wake() either completes the pending
 * wait with success or leaves the permit set.
 *
 * @li **One waiter.** A new async_wait() while one is pending completes the earlier
 * one with net::error::operation_aborted and takes its place.
 *
 * @li **Never inline.** The handler is never invoked inside async_wait(), wake(),
 * cancel(), the destructor or a cancellation signal's emit(); it runs as if by `post`
 * on its associated executor (default: the waker's executor).
 *
 * @li **Work.** While a wait is pending, outstanding work is counted on the waker's
 * executor and on the handler's associated executor: `io_context::run()` does not
 * return while a coroutine awaits a wake.
 *
 * @li **Memory.** Writes a thread makes before wake() are visible to the handler of
 * the wait that this wake completes, or that consumes the permit it set or refreshed
 * (wake is a release, the completion an acquire).
 *
 * @par Thread Safety
 * @e Distinct @e objects: Safe.@n
 * @e Shared @e objects: Unsafe, with the specific exception of wake(), which may be
 * called from any thread, concurrently with any member function except the destructor.
 * Emitting a pending wait's cancellation signal counts as a call of cancel().
 *
 * @par Hand-off
 * A finished wait reaches its handler without allocating or throwing when an Asio
 * scheduler runs the waker's execution context (thread_pool and system_context
 * everywhere, io_context except on Windows, where it is IOCP). Otherwise (an execution
 * context of your own, Windows' io_context, or `ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF`
 * defined) a pending wait holds an `executor_work_guard` on the waker's executor and is
 * handed over with `post`, which may allocate. If that post throws when async_wait()
 * consumed a permit, the permit is put back and the exception propagates; in wake(),
 * cancel(), a replacing async_wait(), a cancellation signal and the destructor, which
 * cannot report it, std::terminate is called.
 *
 * @par Lock-free, precisely
 * The waker's own state is one atomic word changed without locks (wake(): one load and
 * one read-modify-write when uncontended). Handing a completed wait to an `io_context`
 * from a foreign thread takes whatever that scheduler takes (its queue mutex), as every
 * Asio `post` does; with `ASIO_CONCURRENCY_HINT_UNSAFE` that is nothing, and wake()
 * must then come from the thread that runs the `io_context`. Constructing or destroying
 * a waker and emitting a cancellation signal take a mutex of the waker service.
 *
 * @par Example
 * @code
 * // A coroutine on an io_context sleeps until a worker thread has news.
 * asio_waker::atomic_waker waker(ctx);
 * std::thread worker([&] { publish_results(); waker.wake(); });
 * co_await waker.async_wait(net::use_awaitable); // sees what publish_results() wrote
 * @endcode
 *
 * A waker is not movable (producers hold references to it), must not outlive its
 * execution context, and must not be destroyed while a wake() may still be running.
 */
template <typename Executor = net::any_io_executor>
class basic_atomic_waker
{
public:
  /// The type of the executor associated with the object.
  using executor_type = Executor;

  /// Rebinds the waker to another executor (see `as_default_on`).
  template <typename Executor1>
  struct rebind_executor
  {
    /// The waker type when rebound to the specified executor.
    using other = basic_atomic_waker<Executor1>;
  };

  /// Constructs a waker with no wait pending and no permit.
  /**
   * @param ex The I/O executor that the waker uses, by default, to dispatch handlers
   * for its asynchronous operations.
   *
   * @throws std::bad_alloc The first waker of an execution context creates its waker
   * service; every waker is registered with it (under its mutex).
   */
  explicit basic_atomic_waker(const executor_type& ex) : impl_(0, ex) {}

  /// Constructs a waker with no wait pending and no permit.
  /**
   * @param context An execution context which provides the I/O executor that the
   * waker uses, by default, to dispatch handlers for its asynchronous operations.
   *
   * @throws std::bad_alloc As for the constructor from an executor.
   */
  template <typename ExecutionContext>
  requires std::is_convertible_v<ExecutionContext&, net::execution_context&>
  explicit basic_atomic_waker(ExecutionContext& context) : impl_(0, 0, context) {}

  basic_atomic_waker(const basic_atomic_waker&) = delete;
  basic_atomic_waker& operator=(const basic_atomic_waker&) = delete;

  /// Destroys the waker.
  /**
   * A pending wait completes with net::error::operation_aborted, as if by calling
   * cancel() (never inline). A stored permit is discarded. Must not run concurrently
   * with wake().
   */
  ~basic_atomic_waker() = default;

  /// Gets the executor associated with the object.
  executor_type get_executor() const noexcept { return impl_.get_executor(); }

  /// Starts an asynchronous wait for a wake().
  /**
   * This function is used to asynchronously wait for the waker to be woken. It is an
   * initiating function for an @ref asynchronous_operation, and always returns
   * immediately.
   *
   * The wait completes, and its handler is called exactly once:
   * @li with success, at once, if a permit is stored (consuming it);
   * @li with success when a later wake() arrives;
   * @li with net::error::operation_aborted when it is cancelled (cancel(), its
   * cancellation slot), replaced by a newer async_wait(), or the waker is destroyed.
   *
   * If the execution context shuts down first, the handler is destroyed without being
   * invoked, as for Asio's own I/O objects.
   *
   * @param token The completion token that will be used to produce a completion
   * handler, which will be called when the wait completes. Potential completion tokens
   * include @ref use_future, @ref use_awaitable, @ref yield_context, @ref deferred, or
   * a function object with the correct completion signature. The function signature of
   * the completion handler must be:
   * @code void handler(
   *   const error_code& error // Result of operation.
   * ); @endcode
   * Regardless of whether the asynchronous operation completes immediately or not, the
   * completion handler will not be invoked from within this function. A wait that
   * consumes a stored permit is completed as if by `post` on the handler's associated
   * executor (not its associated immediate executor).
   *
   * The memory the operation needs comes from the handler's associated allocator, taken
   * here; wake() never asks it for memory.
   *
   * @par Completion Signature
   * @code void(error_code) @endcode
   *
   * @par Per-Operation Cancellation
   * This asynchronous operation supports cancellation for the following
   * net::cancellation_type values:
   * @li @c cancellation_type::terminal
   * @li @c cancellation_type::partial
   * @li @c cancellation_type::total
   * A cancelled wait has consumed nothing, so it has no side effects. Racing a wake(),
   * exactly one of the two wins; a wake() that loses leaves the permit set.
   *
   * @throws std::bad_alloc (or what the associated allocator throws) when the operation
   * cannot be allocated, and whatever installing the cancellation handler in the slot
   * throws. The waker is then unchanged: an earlier wait stays pending and the permit is
   * untouched. On the portable hand-off (see the class), what `post` throws when a
   * permit is consumed; the permit is put back.
   */
  template <ASIO_WAKER_COMPLETION_TOKEN_FOR(void(error_code))
              WaitToken = net::default_completion_token_t<executor_type>>
  auto async_wait(WaitToken&& token = net::default_completion_token_t<executor_type>())
  {
    return net::async_initiate<WaitToken, void(error_code)>(
      initiate_async_wait(this), token);
  }

  /// Completes the pending wait with success, or stores the permit if none is pending.
  /**
   * May be called from any thread, concurrently with any member function except the
   * destructor (and not after the execution context is gone). Lock-free: it never waits
   * for the consumer or for other wake() calls; handing a completed wait to the
   * scheduler from a thread that does not run it takes the scheduler's queue mutex, as
   * any Asio `post` does (see "Lock-free, precisely" on the class).
   *
   * A release: the handler of the wait this wake() completes, or of the wait that
   * consumes the permit it stored or refreshed, sees every write made before it.
   *
   * Allocates nothing and cannot fail when an Asio scheduler runs the waker's execution
   * context (thread_pool and system_context everywhere, io_context except on Windows),
   * whatever the executor type. Otherwise the completion is handed over with `post`,
   * which may allocate; if that throws, std::terminate is called (see "Hand-off").
   */
  void wake() noexcept { impl_.get_service().wake(impl_.get_implementation()); }

  /// Completes the pending wait with net::error::operation_aborted.
  /**
   * The consumer's call (see "Thread Safety"); the handler is never invoked inside it.
   *
   * @returns 1 if a wait was cancelled, 0 if none was pending.
   *
   * @note If a wake() has already taken the pending wait when cancel() is called, the
   * wait's handler has been queued for invocation with success and can no longer be
   * cancelled: cancel() returns 0. cancel() never clears a stored permit.
   *
   * @throws Nothing. On the portable hand-off a failing `post` calls std::terminate.
   */
  std::size_t cancel() noexcept
  {
    return impl_.get_service().cancel(impl_.get_implementation());
  }

private:
  class initiate_async_wait
  {
  public:
    using executor_type = Executor;

    explicit initiate_async_wait(basic_atomic_waker* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename WaitHandler>
    void operator()(WaitHandler&& handler) const
    {
      // If you get an error on the following line it means that your handler does
      // not meet the documented type requirements for a WaitHandler.
      ASIO_WAKER_WAIT_HANDLER_CHECK(WaitHandler, handler) type_check;

      net::detail::non_const_lvalue<WaitHandler> handler2(handler);
      self_->impl_.get_service().async_wait(
        self_->impl_.get_implementation(), handler2.value, self_->impl_.get_executor());
    }

  private:
    basic_atomic_waker* self_;
  };

  // The executor, the service and the implementation, as Asio's I/O objects hold them.
  // Mutable because io_object_impl's accessors are not const in any Asio release, while
  // get_executor() is.
  mutable net::detail::io_object_impl<detail::waker_service, Executor> impl_;
};

/// A waker on the polymorphic I/O executor.
using atomic_waker = basic_atomic_waker<>;

} // namespace asio_waker

#endif // ASIO_WAKER_ATOMIC_WAKER_HPP
