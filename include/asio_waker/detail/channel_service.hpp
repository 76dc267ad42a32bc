//
// asio_waker/detail/channel_service.hpp
//
// The execution-context service behind basic_receiver, in the shape of the waker's: it
// starts receives, cancels them, ends a receiver, and at shutdown ends every receiver of
// its context (a parked receive is destroyed without being invoked).
//
// A receive is a scheduler operation (receive_op) that is parked in the channel's word or
// queued at once. Its values are taken into it when it starts with values there, or, when
// a send hands it over, by the consumer's next call or when its handler is about to run
// (see channel_state.hpp, "Which values a receive gets").
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
#include <optional>
#include <type_traits>
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

/// What one take found: `count` values (appended), or the end of the stream, or
/// nothing; `ec` is no_memory when appending the first value threw (it stays queued).
struct take_result
{
  bool done = false;
  std::size_t count = 0;
  error_code ec;
};

/// Takes up to `limit` values from the head of `queue` into `append`, or sees the end.
template <typename Queue, typename Append>
take_result take_values(Queue& queue, std::size_t limit, Append append) noexcept
{
  std::size_t n = 0;
  head_status s = head_status::empty;
#if defined(__cpp_exceptions)
  try
#endif
  {
    // append first: if it throws, the value stays queued.
    while (n < limit && (s = queue.peek()) == head_status::value)
    {
      append(std::move(queue.front()));
      queue.pop();
      ++n;
    }
  }
#if defined(__cpp_exceptions)
  catch (...)
  {
    if (n == 0)
      return {true, 0, net::error::no_memory};
  }
#endif
  if (n != 0)
    return {true, n, {}};
  if (s == head_status::eof)
    return {true, 0, net::error::eof};
  return {};
}

/// What async_receive delivers: one value, void(error_code, T).
template <typename T, typename IoExecutor>
struct receive_one
{
  using state_type = channel_state<T>;

  state_type* state; // a handle on it only while handed over (see handed_receive_phase)
  IoExecutor io_ex;
  std::uint64_t number = 0; // see basic_channel_core::receives_started
  take_result bound{};      // taken into the operation, before it was posted
  std::optional<T> value;

  void* out_ptr() noexcept { return nullptr; }
  std::size_t max_values() const noexcept { return 1; }

  take_result take(state_type& st) noexcept
  {
    return take_values(st.queue, 1, [&](T&& v) { value.emplace(std::move(v)); });
  }

  /// For a handed-over receive: into the state's storage for it.
  static take_result take_handed(state_type& st, void*, std::size_t) noexcept
  {
    return take_values(st.queue, 1, [&](T&& v) { st.handed_value.emplace(std::move(v)); });
  }

  /// A handed-over receive's value, from the state into the operation.
  void take_handed_value(state_type& st) noexcept
  {
    if (st.handed_value) // T need not be assignable
    {
      value.emplace(std::move(*st.handed_value));
      st.handed_value.reset();
    }
  }

  template <typename Handler>
  void invoke_bound(Handler& handler)
  {
    if (bound.ec || !value)
      std::move(handler)(bound.ec, T());
    else
      std::move(handler)(error_code(), std::move(*value));
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
  using state_type = channel_state<T>;

  state_type* state; // a handle on it only while handed over (see handed_receive_phase)
  IoExecutor io_ex;
  Container* out;
  std::size_t limit;
  std::uint64_t number = 0; // see basic_channel_core::receives_started
  take_result bound{};      // taken into `out`, before the operation was posted

  void* out_ptr() noexcept { return out; }
  std::size_t max_values() const noexcept { return limit; }

  take_result take(state_type& st) noexcept { return take_handed(st, out, limit); }

  static take_result take_handed(state_type& st, void* into, std::size_t n) noexcept
  {
    Container* c = static_cast<Container*>(into);
    return take_values(st.queue, n, [&](T&& v) { c->push_back(std::move(v)); });
  }

  void take_handed_value(state_type&) noexcept {} // already appended to *out

  template <typename Handler>
  void invoke_bound(Handler& handler)
  {
    std::move(handler)(bound.ec, bound.count);
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

/// Whether every thread that runs the receiver's scheduler also runs its I/O executor, so
/// that a receive completing there is already where the receiver's calls run: an
/// io_context's or a thread_pool's executor, alone or in an any_io_executor. Not a strand:
/// its calls are serialized, and the scheduler thread is outside it.
template <typename Executor>
bool scheduler_runs(const Executor& io_ex) noexcept
{
  using io_context_executor = net::io_context::executor_type;
  using thread_pool_executor = net::thread_pool::executor_type;
  if constexpr (std::is_same_v<Executor, io_context_executor>
                || std::is_same_v<Executor, thread_pool_executor>)
    return true;
  else if constexpr (std::is_same_v<Executor, net::any_io_executor>)
    return io_ex.template target<io_context_executor>()
           || io_ex.template target<thread_pool_executor>();
  else
    return false;
}

/// A receive that a send handed over takes its values (or parks again) on the
/// receiver's I/O executor, where the receiver's other calls run, then completes on the
/// handler's associated executor like any other.
template <typename Receive, typename Handler, typename IoExecutor>
class handed_receive_phase
{
public:
  handed_receive_phase(receive_completion<Receive, Handler>&& completion,
    net::detail::handler_work<Handler, IoExecutor>&& work,
    channel_ref<typename Receive::state_type>&& handle)
    : completion_(std::move(completion)), work_(std::move(work)), handle_(std::move(handle))
  {}

  void operator()();

private:
  receive_completion<Receive, Handler> completion_;
  net::detail::handler_work<Handler, IoExecutor> work_;
  channel_ref<typename Receive::state_type> handle_; // the one its park took
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

  /// basic_channel_core::receive_slot::take for this operation.
  static bool take_for(
    channel_core& core, const channel_core::receive_slot& r, bool into_op) noexcept
  {
    auto& st = static_cast<typename std::decay_t<Receive>::state_type&>(core);
    if (into_op) // the consumer owns the operation
    {
      Receive& receive = static_cast<receive_op*>(r.op)->receive_;
      receive.bound = receive.take(st);
      return receive.bound.done;
    }
    // Handed over: the operation may be running elsewhere; only the slot is ours.
    const take_result t = Receive::take_handed(st, r.out, r.limit);
    st.handed_count = t.count;
    st.handed_ec = t.ec;
    return t.done;
  }

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

    // Move the handler out so that the operation's memory is given back before the
    // upcall.
    receive_completion<Receive, Handler> completion(
      self->handler_, self->receive_, self->ec_);
    p.h = net::detail::addressof(completion.handler_);
    p.reset();

    // Neither aborted nor bound at its start: a send handed it over (or, unrun, it was
    // parked or behind at shutdown). It holds the handle its wait took (channel_moves::
    // hold), given back when it is done with the state, run or not.
    const bool handed = !completion.ec_ && !completion.receive_.bound.done;
    channel_ref<typename Receive::state_type> handle(
      handed ? completion.receive_.state : nullptr);

    // Make the upcall if required.
    if (owner)
    {
      if (handed)
      {
        const IoExecutor io_ex = completion.receive_.io_ex;
        const bool in_place =
          !(*completion.receive_.state).scheduler || scheduler_runs(io_ex);
        handed_receive_phase<Receive, Handler, IoExecutor> phase(
          std::move(completion), std::move(work), std::move(handle));
        // Already on the receiver's executor when its scheduler runs it, or when it ran
        // this operation itself (no scheduler): no hop, no allocation. A strand: enter it.
        if (in_place)
          phase();
        else
          net::dispatch(io_ex, std::move(phase));
        return;
      }
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
    using op = receive_op<Receive, Handler, IoExecutor>;
    typename op::ptr p = {net::detail::addressof(handler), op::ptr::allocate(handler), 0};
    p.p = new (p.v) op(handler, io_ex, receive);
    ASIO_WAKER_HANDLER_CREATION(
      (this->context(), *p.p, "channel", &st, 0, "async_receive"));
    if (!st.scheduler)
      p.p->track_io_work(io_ex);

    // May throw; the channel is still untouched.
    if (slot.is_connected())
      slot.template emplace<cancellation_handler>(this, &st, st.receives_started + 1);

    Receive& r = p.p->receive();
    r.number = st.receives_started + 1; // start() counts it
    const channel_core::receive_slot slot_entry{
      p.p, r.number, &op::take_for, r.out_ptr(), r.max_values()};
    p.v = p.p = 0;
    channel_moves::start(st, slot_entry, is_continuation);
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
      channel_moves::detach(core, context_shut_down, [&](wait_op* op) { ops.push(op); });
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
  if (ec_) // aborted: it took nothing
    return receive_.invoke_with_error(handler_, ec_);
  receive_.invoke_bound(handler_);
}

template <typename Receive, typename Handler, typename IoExecutor>
void handed_receive_phase<Receive, Handler, IoExecutor>::operator()()
{
  // On the receiver's executor: the receiver's own calls run here too.
  auto& receive = completion_.receive_;
  auto& st = *receive.state;
  if (channel_moves::finish_handed(st, receive.number))
  {
    receive.bound = take_result{true, st.handed_count, st.handed_ec};
    receive.take_handed_value(st);
    channel_moves::start_behind(st);
  }
  else if (channel_moves::may_park_again(st, receive.number))
  {
    // The head is busy (a send claimed it and has not written it): wait again.
    const IoExecutor io_ex = receive.io_ex;
    st.service->async_receive(st, completion_.handler_, io_ex, std::move(receive));
    return;
  }
  else
  {
    channel_moves::start_behind(st);
    completion_.ec_ = net::error::operation_aborted;
  }
  work_.complete(completion_, completion_.handler_);
}

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_CHANNEL_SERVICE_HPP
