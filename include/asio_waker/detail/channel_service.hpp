//
// asio_waker/detail/channel_service.hpp
//
// The execution-context service behind basic_receiver, in the shape of the waker's: it
// starts receives, cancels them, ends a receiver, and at shutdown ends every receiver of
// its context (a parked receive is destroyed without being invoked).
//
// A receive is a scheduler operation (receive_op) that is parked in the channel's word or
// queued at once; when it runs, it takes its values inside the dispatch to its handler's
// associated executor (see channel_state.hpp, "Values are taken where the handler runs").
//

#ifndef ASIO_WAKER_DETAIL_CHANNEL_SERVICE_HPP
#define ASIO_WAKER_DETAIL_CHANNEL_SERVICE_HPP

#include <asio_waker/detail/channel_state.hpp>
#include <asio_waker/detail/config.hpp>
#include <asio_waker/detail/object_registry.hpp>
#include <asio_waker/detail/wait_op.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace asio_waker {
namespace detail {

class channel_service;

/// Slots per block: 32 values of a channel share one allocation, recycled.
inline constexpr std::size_t channel_block_size = 32;

using channel_core =
  basic_channel_core<std::atomic, net::detail::scheduler, wait_op, channel_service>;

template <typename T>
using channel_state = basic_channel_state<T, channel_block_size, std::atomic,
  net::detail::scheduler, wait_op, channel_service>;

/// One counted handle on a channel's state (adopts the count it is given).
template <typename State>
class channel_ref
{
public:
  explicit channel_ref(State* state) noexcept : state_(state) {}
  channel_ref(channel_ref&& other) noexcept : state_(std::exchange(other.state_, nullptr))
  {}
  channel_ref& operator=(channel_ref&& other) noexcept
  {
    if (this != &other)
    {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~channel_ref() { reset(); }

  State& operator*() const noexcept { return *state_; }
  State* get() const noexcept { return state_; }

  void reset() noexcept
  {
    if (State* s = std::exchange(state_, nullptr))
      s->release();
  }

private:
  State* state_;
};

/// What async_receive delivers: one value, void(error_code, T).
template <typename T, typename IoExecutor>
struct receive_one
{
  channel_ref<channel_state<T>> state;
  IoExecutor io_ex;
  std::uint64_t number = 0; // set when it starts (see basic_channel_core)

  template <typename Handler>
  void take_and_invoke(Handler& handler)
  {
    auto& queue = (*state).queue;
    T value(std::move(queue.front()));
    queue.pop();
    std::move(handler)(error_code(), std::move(value));
  }

  template <typename Handler>
  void invoke_with_error(Handler& handler, const error_code& ec)
  {
    std::move(handler)(ec, T());
  }
};

/// What async_receive_many delivers: 1..limit values appended to *out,
/// void(error_code, std::size_t).
template <typename T, typename Container, typename IoExecutor>
struct receive_many
{
  channel_ref<channel_state<T>> state;
  IoExecutor io_ex;
  Container* out;
  std::size_t limit;
  std::uint64_t number = 0; // set when it starts (see basic_channel_core)

  template <typename Handler>
  void take_and_invoke(Handler& handler)
  {
    auto& queue = (*state).queue;
    std::size_t n = 0;
#if defined(__cpp_exceptions)
    try
#endif
    {
      do
      {
        // push_back first: if it throws, the value stays queued.
        out->push_back(std::move(queue.front()));
        queue.pop();
        ++n;
      } while (n < limit && queue.peek() == head_status::value);
    }
#if defined(__cpp_exceptions)
    catch (...)
    {
      if (n == 0) // nothing taken: the exception leaves the completion, as a handler's
        throw;
      // The values taken are in `out`: deliver them; the one that failed stays queued.
    }
#endif
    std::move(handler)(error_code(), n);
  }

  template <typename Handler>
  void invoke_with_error(Handler& handler, const error_code& ec)
  {
    std::move(handler)(ec, std::size_t(0));
  }
};

/// The function a finished receive dispatches to its handler's executor: it takes the
/// values there, or parks the receive again if there are none after all.
template <typename Receive, typename Handler>
class receive_completion
{
public:
  receive_completion(Handler& handler, Receive& receive, const error_code& ec)
    : handler_(std::move(handler)), receive_(std::move(receive)), ec_(ec)
  {}

  void operator()();

  Handler handler_;
  Receive receive_;
  error_code ec_;
};

template <typename Receive, typename Handler, typename IoExecutor>
class receive_op : public io_work_op<IoExecutor>
{
public:
  ASIO_WAKER_DEFINE_HANDLER_PTR(receive_op);

  receive_op(Handler& handler, const IoExecutor& io_ex, Receive& receive)
    : io_work_op<IoExecutor>(&receive_op::do_complete), handler_(std::move(handler)),
      work_(handler_, io_ex), receive_(std::move(receive))
  {}

  Receive& receive() noexcept { return receive_; }

  // owner != null: complete (the scheduler, or an executor, runs us);
  // owner == null: destroy without invoking (shutdown, an abandoned queue).
  static void do_complete(void* owner, net::detail::scheduler_operation* base,
    const error_code& /*scheduler_ec*/, std::size_t /*bytes*/)
  {
    // Take ownership of the operation's object.
    receive_op* self = static_cast<receive_op*>(base);
    ptr p = {net::detail::addressof(self->handler_), self, self};

    ASIO_WAKER_HANDLER_COMPLETION((*self));

    // Take ownership of the operation's outstanding work.
    net::detail::handler_work<Handler, IoExecutor> work(std::move(self->work_));

    // Move the handler (and the channel handle) out so that the operation's memory is
    // given back before the upcall.
    receive_completion<Receive, Handler> completion(
      self->handler_, self->receive_, self->ec_);
    p.h = net::detail::addressof(completion.handler_);
    p.reset();

    // Make the upcall if required.
    if (owner)
    {
      net::detail::fenced_block b(net::detail::fenced_block::half);
      ASIO_WAKER_HANDLER_INVOCATION_BEGIN((completion.ec_));
      work.complete(completion, completion.handler_);
      ASIO_WAKER_HANDLER_INVOCATION_END;
    }
  }

private:
  Handler handler_;
  net::detail::handler_work<Handler, IoExecutor> work_;
  Receive receive_;
};

class channel_service : public net::detail::execution_context_service_base<channel_service>
{
public:
  explicit channel_service(net::execution_context& ctx)
    : net::detail::execution_context_service_base<channel_service>(ctx),
      scheduler_(find_scheduler(ctx))
  {}

  /// A new receiver: registers its channel.
  void construct(channel_core& core)
  {
    core.scheduler = scheduler_;
    core.id = live_.add(core);
    core.service = this;
  }

  /// The receiver's destructor: aborts a pending receive, closes the channel, and waits
  /// for a send that is handing a receive over at this moment.
  void destroy(channel_core& core) noexcept
  {
    channel_moves::detach(core, receiver_gone);
    live_.remove(core.id);
    core.service = nullptr;
  }

  template <typename State, typename Handler, typename IoExecutor, typename Receive>
  void async_receive(
    State& st, Handler& handler, const IoExecutor& io_ex, Receive&& receive)
  {
    auto slot = net::get_associated_cancellation_slot(handler);
    const bool is_continuation = handler_cont_helpers::is_continuation(handler);

    // Allocate and construct an operation to wrap the handler.
    using op = receive_op<std::decay_t<Receive>, Handler, IoExecutor>;
    typename op::ptr p = {net::detail::addressof(handler), op::ptr::allocate(handler), 0};
    p.p = new (p.v) op(handler, io_ex, receive);
    ASIO_WAKER_HANDLER_CREATION(
      (this->context(), *p.p, "channel", &st, 0, "async_receive"));
    if (!st.scheduler)
      p.p->track_io_work(io_ex);

    // May throw; the channel is still untouched.
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(this, &st, st.receives_started + 1);

    p.p->receive().number = st.receives_started + 1; // start_receive counts it
    wait_op* o = p.p;
    p.v = p.p = 0;
    channel_moves::start_receive(st, o, is_continuation);
  }

  std::size_t cancel(channel_core& core) noexcept
  {
    ASIO_WAKER_HANDLER_OPERATION((this->context(), "channel", &core, 0, "cancel"));
    return channel_moves::cancel(core);
  }

  /// Ends every receiver of the context: no further send succeeds, a parked receive is
  /// destroyed without being invoked. Runs before the scheduler's own shutdown, which
  /// destroys the receives already handed over.
  void shutdown() override
  {
    net::detail::op_queue<net::detail::scheduler_operation> ops;
    live_.for_each([&](channel_core& core) {
      if (wait_op* op = channel_moves::detach(core, context_shut_down))
        ops.push(op);
      core.service = nullptr;
    });
    live_.clear();
    // `ops` destroys them as it goes out of scope, outside the registry's lock: a
    // handler's destructor may destroy a receiver.
  }

private:
  /// Installed in a parked receive's cancellation slot. It acts only while its receiver
  /// exists and its receive is still the current one.
  class cancellation_handler
  {
  public:
    cancellation_handler(
      channel_service* service, channel_core* core, std::uint64_t receive) noexcept
      : service_(service), core_(core), id_(core->id), receive_(receive)
    {}

    void operator()(net::cancellation_type_t type)
    {
      using net::cancellation_type;
      // A cancelled receive has taken nothing, so every cancellation type is honoured.
      if (!!(type
             & (cancellation_type::terminal | cancellation_type::partial
                | cancellation_type::total))
          && registry_type::is_live(&service_->live_, id_)
          && core_->receives_started == receive_)
        service_->cancel(*core_);
    }

  private:
    channel_service* service_;
    channel_core* core_;
    std::uint64_t id_;
    std::uint64_t receive_;
  };

  using registry_type = object_registry<channel_core>;

  net::detail::scheduler* const scheduler_;
  registry_type live_;
};

template <typename Receive, typename Handler>
void receive_completion<Receive, Handler>::operator()()
{
  if (!ec_)
  {
    auto& st = *receive_.state;
    if (st.detached.load(std::memory_order_acquire) != not_detached
        || st.receives_started != receive_.number) // replaced by a newer receive
      ec_ = net::error::operation_aborted;
    else
      switch (st.queue.peek())
      {
      case head_status::value:
        receive_.take_and_invoke(handler_);
        return;
      case head_status::eof:
        ec_ = net::error::eof;
        break;
      default: // taken by try_receive meanwhile, or the head is busy
        if (st.cancelled_receive == receive_.number)
        {
          ec_ = net::error::operation_aborted; // cancelled after its hand-off
          break;
        }
        const auto io_ex = receive_.io_ex;
        st.service->async_receive(st, handler_, io_ex, std::move(receive_));
        return;
      }
  }
  receive_.invoke_with_error(handler_, ec_);
}

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_CHANNEL_SERVICE_HPP
