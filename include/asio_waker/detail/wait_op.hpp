//
// asio_waker/detail/wait_op.hpp
//
// The pending wait: a type-erased Asio scheduler operation that owns the user's
// handler and the outstanding work on the handler's executor.
//
// Being a scheduler_operation is what makes wake() allocation-free: when the waker's
// execution context is run by an Asio scheduler, the producer links the operation itself
// into the scheduler's intrusive queue, exactly as Asio's timers hand their expired
// waits over. Its memory comes from the handler's associated allocator, taken in
// async_wait and given back on the thread that completes (or destroys) it, so Asio's
// recycling allocator makes the steady state allocation-free.
//

#ifndef ASIO_WAKER_DETAIL_WAIT_OP_HPP
#define ASIO_WAKER_DETAIL_WAIT_OP_HPP

#include <asio_waker/detail/config.hpp>

#include <cstddef>
#include <optional>
#include <utility>

namespace asio_waker {
namespace detail {

/// The Asio scheduler that runs `ctx`, whose queue takes finished operations directly;
/// null when there is none (or ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF is defined): the
/// portable hand-off, wait_op::post(), is used then.
inline net::detail::scheduler* find_scheduler([[maybe_unused]] net::execution_context& ctx)
{
#if defined(ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF)
  return nullptr;
#else
  using net::detail::scheduler;
  return net::has_service<scheduler>(ctx) ? &net::use_service<scheduler>(ctx) : nullptr;
#endif
}

/// The type-erased part, all that the state machine and the service see.
class wait_op : public net::detail::scheduler_operation
{
public:
  /// The result. Success unless the consumer aborts the wait before handing it off;
  /// a producer that takes the operation writes nothing to it.
  error_code ec_;

  /// The portable hand-off (no Asio scheduler runs the context): posts the operation to
  /// the executor of the waker that started it. May throw whatever that post throws;
  /// the operation is then destroyed without being invoked.
  void post() { post_func_(this); }

protected:
  using post_func_type = void (*)(wait_op*);

  wait_op(func_type complete_func, post_func_type post_func) noexcept
    : scheduler_operation(complete_func), post_func_(post_func)
  {}

private:
  post_func_type post_func_;
};

/// Carries a finished operation to an executor that is not run by an Asio scheduler.
/// Owns the operation: destroyed without running (the executor shut down, or the post
/// threw), it destroys the operation without invoking its handler.
class wait_op_runner
{
public:
  explicit wait_op_runner(wait_op* op) noexcept : op_(op) {}
  wait_op_runner(wait_op_runner&& other) noexcept : op_(std::exchange(other.op_, nullptr))
  {}
  wait_op_runner& operator=(wait_op_runner&&) = delete;
  ~wait_op_runner()
  {
    if (op_)
      op_->destroy();
  }

  void operator()()
  {
    wait_op* op = std::exchange(op_, nullptr);
    op->complete(op, op->ec_, 0);
  }

private:
  wait_op* op_;
};

/// A wait_op that can also carry outstanding work on its I/O executor and post itself
/// there: the portable hand-off, for execution contexts that no Asio scheduler runs.
template <typename IoExecutor>
class io_work_op : public wait_op
{
public:
  /// Counts outstanding work on the I/O object's executor until the operation
  /// completes, and keeps that executor for the portable hand-off. Only for contexts
  /// that no Asio scheduler runs: there the scheduler counts the work of a parked
  /// operation, as for a timer, and handler_work leaves the I/O executor's work to the
  /// I/O object.
  void track_io_work(const IoExecutor& io_ex) { io_work_.emplace(io_ex); }

protected:
  explicit io_work_op(func_type complete_func) noexcept
    : wait_op(complete_func, &io_work_op::do_post)
  {}

private:
  static void do_post(wait_op* base)
  {
    // The post counts work on the executor until the operation has run, so the guard
    // can go once it returns; it must leave the operation first, which may be running
    // on another thread by then.
    io_work_op* self = static_cast<io_work_op*>(base);
    const net::executor_work_guard<IoExecutor> io_work(std::move(*self->io_work_));
    self->io_work_.reset();
    net::post(io_work.get_executor(), wait_op_runner(self));
  }

  std::optional<net::executor_work_guard<IoExecutor>> io_work_;
};

template <typename Handler, typename IoExecutor>
class wait_handler_op : public io_work_op<IoExecutor>
{
public:
  ASIO_WAKER_DEFINE_HANDLER_PTR(wait_handler_op);

  wait_handler_op(Handler& handler, const IoExecutor& io_ex)
    : io_work_op<IoExecutor>(&wait_handler_op::do_complete), handler_(std::move(handler)),
      work_(handler_, io_ex)
  {}

  // owner != null: complete (the scheduler, or an executor, runs us);
  // owner == null: destroy without invoking (shutdown, an abandoned queue).
  static void do_complete(void* owner, net::detail::scheduler_operation* base,
    const error_code& /*scheduler_ec*/, std::size_t /*bytes*/)
  {
    // Take ownership of the operation's object.
    wait_handler_op* self = static_cast<wait_handler_op*>(base);
    ptr p = {net::detail::addressof(self->handler_), self, self};

    ASIO_WAKER_HANDLER_COMPLETION((*self));

    // Take ownership of the operation's outstanding work. (io_work_ is already empty
    // unless the operation is being destroyed unrun: do_post gave it up.)
    net::detail::handler_work<Handler, IoExecutor> work(std::move(self->work_));

    // Move the handler out so that the operation's memory is given back before the
    // upcall: a sub-object of the handler may own that memory's allocator.
    net::detail::binder1<Handler, error_code> handler(self->handler_, self->ec_);
    p.h = net::detail::addressof(handler.handler_);
    p.reset();

    // Make the upcall if required.
    if (owner)
    {
      net::detail::fenced_block b(net::detail::fenced_block::half);
      ASIO_WAKER_HANDLER_INVOCATION_BEGIN((handler.arg1_));
      work.complete(handler, handler.handler_);
      ASIO_WAKER_HANDLER_INVOCATION_END;
    }
  }

private:
  Handler handler_;
  net::detail::handler_work<Handler, IoExecutor> work_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAIT_OP_HPP
