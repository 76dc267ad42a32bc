//
// asio_waker/channel.hpp
//
// A lock-free multi-producer, single-consumer channel: senders on any thread, one
// receiver that is an Asio I/O object.
//

#ifndef ASIO_WAKER_CHANNEL_HPP
#define ASIO_WAKER_CHANNEL_HPP

#include <asio_waker/detail/channel_service.hpp>
#include <asio_waker/detail/config.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

namespace asio_waker {

template <typename T>
class sender;

template <typename T, typename Executor = net::any_io_executor>
class basic_receiver;

/// A receiver on the polymorphic I/O executor.
template <typename T>
using receiver = basic_receiver<T>;

/// Creates a channel of T whose receiver uses the I/O executor `ex`.
/**
 * @returns The channel's first sender and its receiver. The channel's state lives until
 * the receiver, every sender and every receive still waiting for its values are gone (a
 * receive that has its values, or its error, no longer needs the state).
 *
 * @throws std::bad_alloc The state, its first block of slots, or the channel service of
 * the executor's execution context could not be allocated.
 */
template <typename T, typename Executor>
requires(net::execution::is_executor<Executor>::value || net::is_executor<Executor>::value)
  std::pair<sender<T>, basic_receiver<T, Executor>> make_channel(const Executor& ex);

/// Creates a channel of T whose receiver uses the executor of `context`.
template <typename T, typename ExecutionContext>
requires std::is_convertible_v<ExecutionContext&, net::execution_context&>
  std::pair<sender<T>, basic_receiver<T>> make_channel(ExecutionContext& context)
{
  return make_channel<T>(typename basic_receiver<T>::executor_type(context.get_executor()));
}

/// The sending end of a channel: a counted handle, cheap to copy, usable from any thread.
/**
 * The last sender destroyed (or assigned over) closes the channel: the receiver takes
 * every value sent before, then sees net::error::eof.
 *
 * @par Thread Safety
 * @e Distinct @e objects: Safe.@n
 * @e Shared @e objects: Safe for send(), emplace() and is_closed(), from any number of
 * threads at once, concurrently with anything the receiver does, including its
 * destruction, and after its execution context is gone. Copying, assigning and
 * destroying one sender object are, as for any object, not safe concurrently with other
 * calls on that same object.
 *
 * @par Progress
 * send() and emplace() take no lock and never wait for the receiver or for other
 * senders: one fetch_add claims a slot, one store publishes the value, and one load tells
 * whether the receiver is parked. Only a send that finds it parked does more: it hands
 * the receive to the receiver's scheduler (taking that scheduler's queue mutex from a
 * foreign thread, as every Asio post does; nothing is allocated when an Asio scheduler
 * runs the receiver's context). A new block of 32 slots is allocated when the list runs
 * out; blocks the receiver is done with are reused, so a stream in balance allocates
 * nothing.
 *
 * Moved-from senders may only be destroyed or assigned to.
 */
template <typename T>
class sender
{
public:
  /// Another handle on the same channel.
  sender(const sender& other) noexcept : state_(other.state_)
  {
    state_->senders.fetch_add(1, std::memory_order_relaxed);
    state_->add_ref();
  }

  sender(sender&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

  sender& operator=(const sender& other) noexcept
  {
    if (this != &other)
      *this = sender(other);
    return *this;
  }

  sender& operator=(sender&& other) noexcept
  {
    if (this != &other)
    {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }

  /// Drops this handle. The last sender closes the channel.
  ~sender() { reset(); }

  /// Sends `value`.
  /**
   * @returns true if the value is in the channel: it will be delivered to exactly one
   * successful receive, unless the receiver is destroyed first (the value is then
   * destroyed with the channel). false once the channel is closed (by the receiver's
   * close(), its destruction or its context's shutdown); the value is then destroyed.
   *
   * A release: the receive that gets the value sees every write made before send().
   *
   * @throws std::bad_alloc A new block of slots was needed and could not be allocated;
   * nothing was sent.
   */
  bool send(T value) const
  {
    return detail::channel_moves::send(*state_, std::move(value));
  }

  /// Constructs a value in the channel from `args`.
  /**
   * As send(), but the value is constructed in its slot. If T's constructor throws, the
   * exception propagates and no value is delivered for this call (its slot is skipped).
   * Returns false, constructing nothing, once the channel is closed.
   */
  template <typename... Args>
  bool emplace(Args&&... args) const
  {
    return detail::channel_moves::send(*state_, std::forward<Args>(args)...);
  }

  /// Whether sends fail now: the receiver closed the channel, was destroyed, or its
  /// execution context shut down. (A closed channel stays closed.)
  bool is_closed() const noexcept { return state_->queue.is_closed(); }

private:
  template <typename U, typename Executor>
  requires(net::execution::is_executor<Executor>::value
           || net::is_executor<Executor>::value) friend std::pair<sender<U>,
    basic_receiver<U, Executor>> make_channel(const Executor&);

  /// Adopts one sender count and one handle count.
  explicit sender(detail::channel_state<T>* state) noexcept : state_(state) {}

  void reset() noexcept
  {
    if (detail::channel_state<T>* s = std::exchange(state_, nullptr))
    {
      if (s->senders.fetch_sub(1, std::memory_order_acq_rel) == 1)
        detail::channel_moves::close(*s);
      s->release();
    }
  }

  detail::channel_state<T>* state_;
};

/// The receiving end of a channel: an Asio I/O object.
/**
 * The receiver takes values in the order of one total order that is consistent with
 * every sender's own order (a linearizable FIFO), one receive at a time.
 *
 * @li **End of stream.** When the channel is closed (close(), or every sender is gone)
 * and every value has been taken, receives complete with net::error::eof and
 * try_receive() returns nothing. Closing never drops a value that a send accepted.
 *
 * @li **One receive at a time.** A new async_receive() or async_receive_many() while one
 * is pending completes the earlier one with net::error::operation_aborted.
 *
 * @li **Never inline.** A handler is never invoked inside the initiating function,
 * cancel(), close(), the destructor, a cancellation signal's emit() or a send; it runs
 * as if by `post` on its associated executor (default: the receiver's executor).
 *
 * @li **Work.** While a receive is pending, outstanding work is counted on the
 * receiver's executor and on the handler's associated executor.
 *
 * @li **Fairness.** A completion is always posted, even when values are waiting, so a
 * coroutine draining a fast stream lets the context's other handlers run between two
 * receives. async_receive_many() takes up to `limit` values per completion: that bounds
 * both the batch and the time a receive holds its thread.
 *
 * @li **A stalled sender.** A send that has claimed its place in the stream but not yet
 * written its value (its thread was preempted between the two) is "busy" at the head:
 * nothing sent after it is taken before it. A pending receive waits meanwhile, and that
 * send completes it; try_receive() yields the thread until the value is written (the
 * only place where the receiver waits for a sender), because returning nothing while a
 * later send has already returned would break the FIFO order.
 *
 * @par Thread Safety
 * @e Distinct @e objects: Safe.@n
 * @e Shared @e objects: Unsafe. The receiver's functions, and its handlers, run in one
 * logical thread at a time (one thread, or a strand); senders are safe against all of
 * them. Emitting a pending receive's cancellation signal counts as a call of cancel().
 * A receive that a send handed over takes its values on the receiver's I/O executor
 * (inside the strand when that executor is a strand) before its handler is dispatched
 * to the handler's own executor: so when several threads run the context, give the
 * receiver the strand its calls run on.
 *
 * @par Lifetime
 * The destructor closes the channel: sends fail from then on, and the values nobody
 * took are destroyed with the last handle (a sender, or a receive still waiting for its
 * values: one that a send handed over may run, or be destroyed, after the receiver).
 * Shutting the execution context down does the same to every receiver of the context,
 * and destroys a pending receive's handler without invoking it. The receiver's
 * destruction and the shutdown may wait, for a few instructions, for a send that is
 * handing a receive to the scheduler at that moment; no send ever waits for the receiver.
 *
 * @par Example
 * @code
 * // Workers stream results to a coroutine, which ends when the last sender is gone.
 * net::awaitable<void> consume(asio_waker::receiver<result> rx)
 * {
 *   std::vector<result> batch;
 *   for (;;)
 *   {
 *     auto [ec, n] = co_await rx.async_receive_many(batch, 1024, net::as_tuple(net::use_awaitable));
 *     if (ec) // net::error::eof: every result was received
 *       co_return;
 *     print(batch);
 *     batch.clear();
 *   }
 * }
 * {
 *   auto [tx, rx] = asio_waker::make_channel<result>(ctx);
 *   for (int i = 0; i != 4; ++i)
 *     net::post(pool, [tx] { tx.send(compute()); }); // each task holds a sender
 *   net::co_spawn(ctx, consume(std::move(rx)), net::detached);
 * } // the first sender goes here; the last task's copy ends the stream
 * @endcode
 *
 * Moved-from receivers may only be destroyed or assigned to. Move-assigning a receiver
 * first does to its current channel what the destructor does.
 */
template <typename T, typename Executor>
class basic_receiver
{
  static_assert(std::is_nothrow_move_constructible_v<T>,
    "asio_waker::channel values must be nothrow-move-constructible");

public:
  /// The type of the executor associated with the object.
  using executor_type = Executor;

  /// The type of the values received.
  using value_type = T;

  /// Rebinds the receiver to another executor.
  template <typename Executor1>
  struct rebind_executor
  {
    /// The receiver type when rebound to the specified executor.
    using other = basic_receiver<T, Executor1>;
  };

  /// Takes over `other`'s channel, including a pending receive.
  basic_receiver(basic_receiver&& other) noexcept
    : executor_(other.executor_), service_(other.service_),
      state_(std::exchange(other.state_, nullptr))
  {}

  /// Ends the current channel (as the destructor does), then takes over `other`'s.
  basic_receiver& operator=(basic_receiver&& other) noexcept
  {
    if (this != &other)
    {
      reset();
      executor_ = other.executor_;
      service_ = other.service_;
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }

  basic_receiver(const basic_receiver&) = delete;
  basic_receiver& operator=(const basic_receiver&) = delete;

  /// Closes the channel and gives up this handle.
  /**
   * A pending receive completes with net::error::operation_aborted (never inline),
   * including one already handed over but not yet run. Sends fail from now on. The
   * values nobody took are destroyed with the last handle.
   */
  ~basic_receiver() { reset(); }

  /// Gets the executor associated with the object.
  executor_type get_executor() const noexcept { return executor_; }

  /// Starts an asynchronous receive of one value.
  /**
   * An initiating function for an @ref asynchronous_operation; always returns
   * immediately. The receive completes, and its handler is called exactly once:
   * @li with success and the value at the head of the stream, as soon as there is one;
   * @li with net::error::eof once the channel is closed and every value taken;
   * @li with net::error::operation_aborted when it is cancelled (cancel(), its
   * cancellation slot) or replaced by a newer receive while it waits, or when the
   * receiver is destroyed before a value was taken for it.
   *
   * If the execution context shuts down first, the handler is destroyed without being
   * invoked. A receive completes when it starts with a value (or the end) there, or when
   * a send hands it over; from then on it can no longer be cancelled or replaced, and
   * its value is bound to it in the order receives started: neither try_receive() nor a
   * newer receive takes it, whichever handler runs first. (A handed-over receive whose
   * value is not written yet when its handler is about to run, because a send is busy at
   * the head, waits again.) A receive that completes with an error took nothing.
   *
   * @param token The completion token that will be used to produce a completion
   * handler. The function signature of the completion handler must be:
   * @code void handler(
   *   error_code ec, // Result of operation.
   *   T value        // The value; T() on error.
   * ); @endcode
   * Regardless of whether the receive completes immediately or not, the handler is not
   * invoked from within this function; it is completed as if by `post` on its
   * associated executor (not its associated immediate executor).
   *
   * @par Completion Signature
   * @code void(error_code, T) @endcode
   * T must be default-constructible for this function (the value passed with an error).
   *
   * @par Per-Operation Cancellation
   * @li @c cancellation_type::terminal
   * @li @c cancellation_type::partial
   * @li @c cancellation_type::total
   *
   * @throws std::bad_alloc (or what the associated allocator throws), and what
   * installing the cancellation handler throws; the channel is then unchanged.
   */
  template <ASIO_WAKER_COMPLETION_TOKEN_FOR(void(error_code, T))
              ReceiveToken = net::default_completion_token_t<executor_type>>
  auto async_receive(
    ReceiveToken&& token = net::default_completion_token_t<executor_type>())
  {
    static_assert(std::is_default_constructible_v<T>,
      "async_receive passes T() with an error: use async_receive_many for this T");
    return net::async_initiate<ReceiveToken, void(error_code, T)>(
      initiate_async_receive(this), token);
  }

  /// Starts an asynchronous receive of up to `limit` values, appended to `out`.
  /**
   * As async_receive(), but the receive completes with 1 to `limit` values (a `limit` of
   * 0 counts as 1): everything queued up to the limit when its values are taken (see
   * async_receive()), appended with `out.push_back(std::move(value))` before the handler
   * runs. Nothing is appended on error. `out` must stay valid until the handler runs.
   *
   * If push_back throws, the value that failed stays queued: the receive completes with
   * the values appended before it, or, if there are none, with net::error::no_memory.
   *
   * A handed-over receive that waits again allocates its operation anew from the
   * handler's associated allocator; if that throws, the exception propagates from the
   * completion (out of `run()`), as from a handler.
   *
   * @par Completion Signature
   * @code void(error_code, std::size_t) @endcode
   */
  template <typename Container,
    ASIO_WAKER_COMPLETION_TOKEN_FOR(void(error_code, std::size_t))
      ReceiveToken = net::default_completion_token_t<executor_type>>
  auto async_receive_many(Container& out, std::size_t limit,
    ReceiveToken&& token = net::default_completion_token_t<executor_type>())
  {
    return net::async_initiate<ReceiveToken, void(error_code, std::size_t)>(
      initiate_async_receive_many(this), token, &out, limit == 0 ? 1 : limit);
  }

  /// Takes the value at the head of the stream, if there is one.
  /**
   * Returns nothing when no value is queued (also after the end of the stream), and
   * never takes the values bound to a receive that has completed and not run yet. If a
   * send is busy at the head (see the class), waits for it, yielding the thread.
   */
  std::optional<T> try_receive()
  {
    auto& st = *state_;
    auto& queue = st.queue;
    for (;;)
    {
      // A receive that a send handed over gets the head first.
      detail::channel_moves::resolve(st);
      const detail::head_status head = queue.peek();
      if (st.handed.op && !st.handed_taken)
      {
        if (head != detail::head_status::busy)
          return std::nullopt;
        std::this_thread::yield(); // its value is not written yet
        continue;
      }
      switch (head)
      {
      case detail::head_status::value:
      {
        std::optional<T> value(std::move(queue.front()));
        queue.pop();
        return value;
      }
      case detail::head_status::busy:
        std::this_thread::yield();
        break;
      default:
        return std::nullopt;
      }
    }
  }

  /// Closes the channel: sends fail from now on; the values queued stay receivable, then
  /// receives complete with net::error::eof.
  void close() noexcept { detail::channel_moves::close(*state_); }

  /// Whether the channel is closed (close(), every sender gone, or the context shut
  /// down). Values may remain to be received.
  bool is_closed() const noexcept { return state_->queue.is_closed(); }

  /// Completes the pending receive with net::error::operation_aborted.
  /**
   * @returns 1 if a receive was waiting and is now cancelled; 0 if none was, or if a
   * send has already handed it over (it has completed: it keeps its value; if its value
   * was not written yet, it completes with net::error::operation_aborted instead of
   * waiting again).
   */
  std::size_t cancel() noexcept { return service_->cancel(*state_); }

private:
  template <typename U, typename Executor1>
  requires(net::execution::is_executor<Executor1>::value
           || net::is_executor<Executor1>::value) friend std::pair<sender<U>,
    basic_receiver<U, Executor1>> make_channel(const Executor1&);

  basic_receiver(const executor_type& ex, detail::channel_service& service,
    detail::channel_state<T>* state) noexcept
    : executor_(ex), service_(&service), state_(state)
  {}

  void reset() noexcept
  {
    if (detail::channel_state<T>* s = std::exchange(state_, nullptr))
    {
      if (s->service)
        s->service->destroy(*s);
      else
        detail::channel_moves::detach(*s, detail::receiver_gone);
      s->release();
    }
  }

  class initiate_async_receive
  {
  public:
    using executor_type = Executor;

    explicit initiate_async_receive(basic_receiver* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename ReceiveHandler>
    void operator()(ReceiveHandler&& handler) const
    {
      net::detail::non_const_lvalue<ReceiveHandler> handler2(handler);
      self_->service_->async_receive(*self_->state_, handler2.value, self_->executor_,
        detail::receive_one<T, Executor>{self_->state_, self_->executor_, {}, {}, {}});
    }

  private:
    basic_receiver* self_;
  };

  class initiate_async_receive_many
  {
  public:
    using executor_type = Executor;

    explicit initiate_async_receive_many(basic_receiver* self) noexcept : self_(self) {}

    executor_type get_executor() const noexcept { return self_->get_executor(); }

    template <typename ReceiveHandler, typename Container>
    void operator()(ReceiveHandler&& handler, Container* out, std::size_t limit) const
    {
      net::detail::non_const_lvalue<ReceiveHandler> handler2(handler);
      self_->service_->async_receive(*self_->state_, handler2.value, self_->executor_,
        detail::receive_many<T, Container, Executor>{
          self_->state_, self_->executor_, out, limit, {}, {}});
    }

  private:
    basic_receiver* self_;
  };

  Executor executor_;
  detail::channel_service* service_;
  detail::channel_state<T>* state_;
};

template <typename T, typename Executor>
requires(net::execution::is_executor<Executor>::value || net::is_executor<Executor>::value)
  std::pair<sender<T>, basic_receiver<T, Executor>> make_channel(const Executor& ex)
{
  net::execution_context& context = [&]() -> net::execution_context& {
    if constexpr (net::execution::is_executor<Executor>::value)
      return net::query(ex, net::execution::context);
    else
      return ex.context();
  }();
  auto& service = net::use_service<detail::channel_service>(context);
  // One sender and one receiver: senders = 1, handles = 2.
  std::unique_ptr<detail::channel_state<T>> state(new detail::channel_state<T>);
  service.construct(*state);
  detail::channel_state<T>* s = state.release();
  return {sender<T>(s), basic_receiver<T, Executor>(ex, service, s)};
}

} // namespace asio_waker

#endif // ASIO_WAKER_CHANNEL_HPP
