//
// asio_waker/detail/channel_state.hpp
//
// The shared state of one channel (the queue, the parked receive, the handle counts) and
// the moves that drive it: a send and its notification, parking a receive, taking it
// back, closing, and the receiver's end.
//
// ## The parked receive: one word, fewer moves than the waker's
//
//   waiter = 0     no receive is parked
//   waiter = op    the receive `op` is parked; its outstanding work is counted
//
//   move            | who       | how                                | then
//   ----------------+-----------+------------------------------------+------------------------
//   park(op)        | consumer  | exchange(op) seq_cst (W2)          | an op it replaced is
//                   |           |                                    | aborted; peek again with
//                   |           |                                    | seq_cst loads (R2)
//   take back       | consumer  | CAS op -> 0                        | op completed (at once, or
//                   |           |                                    | aborted: cancel)
//   notify          | producer  | load seq_cst (R1); only if an op:  | op handed to its
//                   | or closer |   handoffs += 1, CAS op -> 0,      | scheduler with success;
//                   |           |   hand off, handoffs -= 1          | it finds its values when
//                   |           |                                    | it runs
//
// There is no permit: the queue itself is the record of what was sent, so a notify that
// finds nobody parked does nothing, not even a read-modify-write. That is where the
// channel beats "queue + waker.wake() per value" (see channel_queue.hpp for why the
// store-load pair cannot lose a wake).
//
// ## Values are taken where the handler runs
//
// A receive does not take its values when it is handed over but when it runs, inside the
// dispatch to its handler's associated executor (a strand, say). So every consumer
// action (try_receive, the taking, a new receive) runs in that one logical thread, and a
// cancelled, replaced or destroyed receive never held a value. A receive that runs and
// finds nothing (a try_receive took it, or the head was busy) parks again.
//
// ## Lifetime
//
// `handles` counts the receiver, every sender and every receive in flight; the last one
// deletes the state, destroying the values nobody took. `senders` counts the senders; the
// last one closes the stream. A sender touches the receiver's scheduler only while it
// holds a parked receive it took, and `handoffs` counts those moments: the receiver's
// destruction and its context's shutdown wait for them to end (a few instructions), so a
// sender may outlive both.
//

#ifndef ASIO_WAKER_DETAIL_CHANNEL_STATE_HPP
#define ASIO_WAKER_DETAIL_CHANNEL_STATE_HPP

#include <asio_waker/detail/channel_queue.hpp>
#include <asio_waker/detail/config.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>

namespace asio_waker {
namespace detail {

/// Why receives stop: the receiver is gone, or its execution context shut down.
enum detached_reason : std::uint32_t
{
  not_detached = 0,
  receiver_gone = 1,
  context_shut_down = 2
};

/// The part of a channel's state that does not depend on its value type: all that its
/// service sees. Generic over the atomics, the scheduler and the operation type so that
/// the interleaving checker runs it.
template <template <typename> class Atomic, typename Scheduler, typename Op,
  typename Service = void>
class basic_channel_core
{
public:
  using op_type = Op;
  using scheduler_type = Scheduler;

  virtual ~basic_channel_core() = default;

  /// Closes the stream; true for the call that closed it.
  virtual bool close_queue() noexcept = 0;

  /// Drops one handle; the last one deletes the state.
  void release() noexcept
  {
    if (handles.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

  void add_ref() noexcept { handles.fetch_add(1, std::memory_order_relaxed); }

  // Shared by every thread.
  alignas(64) Atomic<std::uintptr_t> waiter{0};
  Atomic<std::uint32_t> handoffs{0};
  Atomic<std::uint32_t> detached{not_detached};
  alignas(64) Atomic<std::size_t> senders{1};
  Atomic<std::size_t> handles{2};

  // Set when the receiver is created (and `service` cleared at shutdown); read by the
  // senders that hand over a receive.
  Scheduler* scheduler = nullptr;
  Service* service = nullptr;
  std::uint64_t id = 0;

  // The consumer's: receives are numbered from 1 as they start (a receive that parks
  // again gets a new number); cancelled_receive is the number of one that was already
  // handed over when cancel() came.
  std::uint64_t receives_started = 0;
  std::uint64_t cancelled_receive = 0;
};

/// The whole state of a channel of T.
template <typename T, std::size_t BlockSize, template <typename> class Atomic,
  typename Scheduler, typename Op, typename Service = void>
class basic_channel_state final : public basic_channel_core<Atomic, Scheduler, Op, Service>
{
public:
  using value_type = T;

  bool close_queue() noexcept override { return queue.close(); }

  basic_channel_queue<T, BlockSize, Atomic> queue;
};

/// The moves. Static templates over the state, so the checker runs these very functions
/// with checked atomics, a model scheduler and a model operation.
struct channel_moves
{
  /// A send: the value at the end of the stream, then wake the receive if one is parked.
  /// Also when emplace throws: a constructor that throws after the claim leaves a
  /// skipped slot, which a parked receive must see too (its store is the W1 then).
  template <typename State, typename... Args>
  static bool send(State& st, Args&&... args)
  {
    struct notify_on_exit
    {
      State& st;
      bool sent = true;
      ~notify_on_exit()
      {
        if (sent)
          notify(st);
      }
    } guard{st};
    guard.sent = st.queue.emplace(std::forward<Args>(args)...);
    return guard.sent;
  }

  /// Hands a parked receive to its scheduler (R1 of the handshake); nothing when none is.
  template <typename Core>
  static void notify(Core& st) noexcept
  {
    std::uintptr_t cur = st.waiter.load(std::memory_order_seq_cst);
    if (cur == 0)
      return;
    // Counted before the take, so that the receiver's end and the context's shutdown,
    // which take the word with an acquire CAS, see this hand-off and wait for it.
    st.handoffs.fetch_add(1, std::memory_order_seq_cst);
    if (st.waiter.compare_exchange_strong(
          cur, 0, std::memory_order_acq_rel, std::memory_order_relaxed))
      post_deferred(st, to_op(st, cur));
    st.handoffs.fetch_sub(1, std::memory_order_release);
  }

  /// Closes the stream (the last sender, or the receiver's close()) and wakes a parked
  /// receive so that it sees the end once it has taken every value.
  template <typename Core>
  static void close(Core& st) noexcept
  {
    st.close_queue();
    notify(st);
  }

  /// The consumer starts a receive: completes it at once when a value or the end of the
  /// stream is there, parks it otherwise. A receive already parked is aborted.
  template <typename State>
  static void start_receive(State& st, typename State::op_type* op, bool is_continuation)
  {
    ++st.receives_started;
    if (st.detached.load(std::memory_order_acquire) != not_detached)
    {
      op->ec_ = net::error::operation_aborted;
      post_immediate(st, op, is_continuation);
      return;
    }
    if (has_result(st.queue.peek()))
    {
      take_and_abort(st);
      post_immediate(st, op, is_continuation);
      return;
    }
    if (st.scheduler)
      st.scheduler->work_started(); // before the word publishes op: a send may post it
    const std::uintptr_t replaced =
      st.waiter.exchange(reinterpret_cast<std::uintptr_t>(op), std::memory_order_seq_cst);
    if (replaced != 0)
      post_aborted(st, to_op(st, replaced));
    if (has_result(st.queue.peek(std::memory_order_seq_cst)))
    {
      // A send published before it could see us parked: take the receive back and
      // complete it (unless a send took it meanwhile).
      std::uintptr_t mine = reinterpret_cast<std::uintptr_t>(op);
      if (st.waiter.compare_exchange_strong(
            mine, 0, std::memory_order_acq_rel, std::memory_order_relaxed))
        post_deferred(st, op);
    }
  }

  /// Takes the parked receive back and completes it with operation_aborted. 1 if there
  /// was one.
  template <typename Core>
  static std::size_t take_and_abort(Core& st) noexcept
  {
    // Acquire: reading 0 written by a send's take makes that send's handoffs count
    // visible to detach().
    std::uintptr_t cur = st.waiter.load(std::memory_order_acquire);
    if (cur == 0
        || !st.waiter.compare_exchange_strong(
          cur, 0, std::memory_order_acquire, std::memory_order_relaxed))
      return 0;
    post_aborted(st, to_op(st, cur));
    return 1;
  }

  /// cancel() and a cancellation signal: aborts the current receive. If a send has
  /// already handed it over, it still takes a value when it runs, but it no longer waits
  /// for one: finding nothing, it completes with operation_aborted instead of parking
  /// again. Returns 1 if the receive was parked.
  template <typename Core>
  static std::size_t cancel(Core& st) noexcept
  {
    if (take_and_abort(st))
      return 1;
    st.cancelled_receive = st.receives_started;
    return 0;
  }

  /// The receiver's end (its destructor, or its context's shutdown with `take` set to
  /// hand the parked receive to the caller instead of aborting it). Closes the stream,
  /// and returns once no send is handing a receive to the scheduler any more.
  template <typename Core>
  static typename Core::op_type* detach(Core& st, detached_reason why) noexcept
  {
    st.detached.store(why, std::memory_order_release);
    typename Core::op_type* taken = nullptr;
    if (why == context_shut_down)
    {
      std::uintptr_t cur = st.waiter.exchange(0, std::memory_order_acq_rel);
      taken = cur ? to_op(st, cur) : nullptr;
    }
    else
      take_and_abort(st);
    st.close_queue();
    while (st.handoffs.load(std::memory_order_acquire) != 0)
      std::this_thread::yield();
    return taken;
  }

  /// Whether a receive that finds `s` at the head completes now.
  static bool has_result(head_status s) noexcept
  {
    return s == head_status::value || s == head_status::eof;
  }

private:
  template <typename Core>
  static typename Core::op_type* to_op(Core&, std::uintptr_t v) noexcept
  {
    return reinterpret_cast<typename Core::op_type*>(v);
  }

  template <typename Core>
  static void post_immediate(Core& st, typename Core::op_type* op, bool is_continuation)
  {
    if (st.scheduler)
      st.scheduler->post_immediate_completion(op, is_continuation);
    else
      op->post();
  }

  /// Hands over a parked receive, whose work is already counted.
  template <typename Core>
  static void post_deferred(Core& st, typename Core::op_type* op) noexcept
  {
    if (st.scheduler)
      st.scheduler->post_deferred_completion(op);
    else
      op->post();
  }

  template <typename Core>
  static void post_aborted(Core& st, typename Core::op_type* op) noexcept
  {
    op->ec_ = net::error::operation_aborted;
    post_deferred(st, op);
  }
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_CHANNEL_STATE_HPP
