//
// asio_waker/detail/wait_op.hpp
//
// The pending wait: a type-erased Asio scheduler operation that owns the user's
// handler and the outstanding work on the handler's executor.
//
// Being a scheduler_operation is what makes wake() allocation-free: when the waker's
// execution context is run by an Asio scheduler (io_context, thread_pool,
// system_context), the producer links the operation itself into the scheduler's
// intrusive queue, exactly as Asio's timers hand their expired waits over. Its memory
// comes from the handler's associated allocator, taken in async_wait and given back on
// the thread that completes (or destroys) it, so Asio's recycling allocator makes the
// steady state allocation-free.
//

#ifndef ASIO_WAKER_DETAIL_WAIT_OP_HPP
#define ASIO_WAKER_DETAIL_WAIT_OP_HPP

#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_tracking.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/scheduler_operation.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <optional>
#include <utility>

namespace asio_waker {
namespace detail {

/// The type-erased part, all that the state machine and the service see.
class wait_op : public boost::asio::detail::scheduler_operation
{
public:
  /// The result. Success unless the consumer aborts the wait before handing it off;
  /// a producer that takes the operation writes nothing to it.
  boost::system::error_code ec_;

protected:
  explicit wait_op(func_type complete_func) noexcept
    : scheduler_operation(complete_func)
  {
  }
};

template <typename Handler, typename IoExecutor>
class wait_handler_op : public wait_op
{
public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(wait_handler_op);

  wait_handler_op(Handler& handler, const IoExecutor& io_ex)
    : wait_op(&wait_handler_op::do_complete),
      handler_(std::move(handler)),
      work_(handler_, io_ex)
  {
  }

  // owner != null: complete (the scheduler, or an executor, runs us);
  // owner == null: destroy without invoking (shutdown, an abandoned queue).
  static void do_complete(void* owner, boost::asio::detail::scheduler_operation* base,
      const boost::system::error_code& /*scheduler_ec*/, std::size_t /*bytes*/)
  {
    wait_handler_op* self = static_cast<wait_handler_op*>(base);
    ptr p = { boost::asio::detail::addressof(self->handler_), self, self };

    BOOST_ASIO_HANDLER_COMPLETION((*self));

    boost::asio::detail::handler_work<Handler, IoExecutor> work(
        std::move(self->work_));
    std::optional<boost::asio::executor_work_guard<IoExecutor>> io_work(
        std::move(self->io_work_));

    // Move the handler out so that the operation's memory is given back before the
    // upcall: a sub-object of the handler may own that memory's allocator.
    boost::asio::detail::binder1<Handler, boost::system::error_code>
      handler(self->handler_, self->ec_);
    p.h = boost::asio::detail::addressof(handler.handler_);
    p.reset();

    if (owner)
    {
      BOOST_ASIO_HANDLER_INVOCATION_BEGIN((handler.arg1_));
      work.complete(handler, handler.handler_);
      BOOST_ASIO_HANDLER_INVOCATION_END;
    }
  }

  /// Counts outstanding work on the waker's executor while the wait is pending, when no
  /// Asio scheduler does it (handler_work leaves that to the I/O object's service for
  /// an io_context's own executor).
  void track_io_work(const IoExecutor& io_ex)
  {
    io_work_.emplace(io_ex);
  }

private:
  Handler handler_;
  boost::asio::detail::handler_work<Handler, IoExecutor> work_;
  std::optional<boost::asio::executor_work_guard<IoExecutor>> io_work_;
};

/// Carries a finished operation to an executor that is not run by an Asio scheduler.
/// Owns the operation: destroyed without running (the executor shut down), it destroys
/// the operation without invoking its handler.
class wait_op_runner
{
public:
  explicit wait_op_runner(wait_op* op) noexcept : op_(op) {}
  wait_op_runner(wait_op_runner&& other) noexcept
    : op_(std::exchange(other.op_, nullptr))
  {
  }
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

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAIT_OP_HPP
