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
// ## Which values a receive gets: bound when it completes, in start order
//
// A receive completes (and can no longer be cancelled) when it starts with values or
// the end of the stream there, or when a send hands it over. Its values are bound to it
// by the consumer, in the order receives started:
//
//   completes                      | its values are taken (consumer side)
//   -------------------------------+----------------------------------------------------
//   at its start (values queued),  | right there, into the operation, before it is
//   or taken back after parking    | posted
//   handed over by a send          | at the receiver's next call (a new receive,
//                                  | try_receive, cancel) or when its handler is about
//                                  | to run, whichever comes first, into `handed`
//
// So a try_receive or a newer receive never takes the values of a receive that has
// completed and not run yet. While one handed-over receive has not run, a newer receive
// that finds nothing does not park in the word (a send could hand it over too); it waits
// `behind`, and the handed-over one starts it when it runs. A handed-over receive that
// finds nothing when it is about to run (the head is busy: a send claimed it and has not
// written it) parks again, unless it was cancelled or a newer receive waits behind it:
// then it completes with operation_aborted.
//
// ## Lifetime
//
// `handles` counts the receiver, every sender and every receive that waits: parked,
// behind, or handed over and not run yet (hold() takes its handle with its unit of work).
// Only such a receive uses the state when it runs, perhaps after the receiver is gone; a
// receive that completes at its start, or that the consumer takes back, holds none (two
// read-modify-writes less per value in a stream). The last handle deletes the state,
// destroying the values nobody took. `senders` counts the senders; the
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
#include <optional>
#include <thread>
#include <type_traits>
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

  // ---- The consumer's book-keeping (one logical thread; see the header comment) ----

  /// A receive that has not completed, or was handed over and has not run: its
  /// operation (compared, and dereferenced only while the consumer owns it) and where
  /// its values go.
  struct receive_slot
  {
    Op* op = nullptr;
    std::uint64_t number = 0;
    /// Takes up to the receive's limit of values for it, or sees the end of the stream:
    /// into the operation (when the consumer owns it) or into `handed_*` below. Returns
    /// false when there is nothing.
    bool (*take)(basic_channel_core& st, const receive_slot& r, bool into_op) = nullptr;
    void* out = nullptr;
    std::size_t limit = 1;
  };

  receive_slot parked; // in `waiter`, unless a send has taken it since
  receive_slot handed; // handed over by a send, not run yet
  receive_slot behind; // started while `handed` had not run; work counted, not in `waiter`
  bool handed_taken = false; // `handed`'s values are taken: handed_count, or the end
  std::size_t handed_count = 0;
  error_code handed_ec; // eof, or no_memory (see take_values)

  /// Receives are numbered from 1 as they start (one that parks again gets a new
  /// number); cancelled_receive is one that was handed over when cancel() came.
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

  /// The value taken for a handed-over async_receive (see `handed`).
  std::optional<T> handed_value;
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
    using value_type = typename State::value_type;
    if constexpr (std::is_nothrow_constructible_v<value_type, Args&&...>)
    {
      // Only the block allocation before the claim can throw: nothing to notify then.
      if (!st.queue.emplace(std::forward<Args>(args)...))
        return false;
      notify(st);
      return true;
    }
    else
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

  /// The consumer parks `op`, which found nothing (W2 of the handshake, then R2). Returns
  /// false if a send published meanwhile and `op` was taken back: the caller completes
  /// it (its work is counted, it holds no handle). A parked receive holds a unit of
  /// outstanding work and a handle; both are taken here unless `counted`.
  template <typename Core>
  static bool park(Core& st, typename Core::op_type* op, bool counted = false)
  {
    if (!counted)
      hold(st); // before the word publishes op: a send may post it
    st.waiter.store(reinterpret_cast<std::uintptr_t>(op), std::memory_order_seq_cst);
    if (!has_result(st.queue.peek(std::memory_order_seq_cst)))
      return true;
    // A send published before it could see us parked: take the receive back (unless a
    // send took it meanwhile, which then hands it over).
    std::uintptr_t mine = reinterpret_cast<std::uintptr_t>(op);
    if (st.waiter.compare_exchange_strong(
          mine, 0, std::memory_order_acq_rel, std::memory_order_relaxed))
    {
      st.release(); // taken back: it completes bound, without the state
      return false;
    }
    return true;
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

  // ---- The consumer's moves (one logical thread; see "Which values a receive gets") --

  /// Learns whether a send has handed the parked receive over, and takes the values of
  /// a handed-over receive that has not run yet, if they are there.
  template <typename Core>
  static void resolve(Core& st) noexcept
  {
    if (st.parked.op
        && st.waiter.load(std::memory_order_acquire)
             != reinterpret_cast<std::uintptr_t>(st.parked.op))
    {
      st.handed = std::exchange(st.parked, {});
      st.handed_taken = false;
    }
    if (st.handed.op && !st.handed_taken)
      st.handed_taken = st.handed.take(st, st.handed, false);
  }

  /// Starts receive `r`, whose operation the consumer owns (work not counted yet, no
  /// handle held); r.number is receives_started + 1.
  template <typename Core>
  static void start(Core& st, const typename Core::receive_slot& r, bool is_continuation)
  {
    resolve(st);
    ++st.receives_started;
    auto* op = r.op;
    if (st.detached.load(std::memory_order_acquire) != not_detached)
    {
      op->ec_ = net::error::operation_aborted;
      post_immediate(st, op, is_continuation);
      return;
    }
    abort_pending(st);
    if (st.handed.op && !st.handed_taken)
      return wait_behind(st, r); // the handed-over receive comes first
    if (r.take(st, r, true))
      return post_immediate(st, op, is_continuation);
    if (st.handed.op)
      return wait_behind(st, r); // a second handed-over receive would have nowhere to go
    if (park(st, op))
      st.parked = r;
    else
    {
      r.take(st, r, true);
      post_deferred(st, op);
    }
  }

  /// The handler of the handed-over receive `number` is about to run (on its executor).
  /// Returns whether its values were taken (st.handed_count / handed_eof, and the
  /// state's own storage for one value); `handed` is cleared either way. Then the caller
  /// delivers, aborts or parks it again, and calls start_behind().
  template <typename Core>
  static bool finish_handed(Core& st, std::uint64_t number) noexcept
  {
    resolve(st);
    const bool taken = st.handed.number == number && st.handed_taken;
    if (st.handed.number == number)
    {
      st.handed = {};
      st.handed_taken = false;
    }
    return taken;
  }

  /// Whether a handed-over receive that found nothing when about to run parks again:
  /// not if it was cancelled, a newer receive waits behind it, or the receiver is gone.
  template <typename Core>
  static bool may_park_again(const Core& st, std::uint64_t number) noexcept
  {
    return st.cancelled_receive != number && !st.behind.op
           && st.detached.load(std::memory_order_acquire) == not_detached;
  }

  /// Starts the receive that waited behind a handed-over one (its work is counted).
  template <typename Core>
  static void start_behind(Core& st)
  {
    if (!st.behind.op)
      return;
    typename Core::receive_slot r = std::exchange(st.behind, {});
    if (r.take(st, r, true))
    {
      post_deferred(st, r.op);
      st.release(); // the handle wait_behind took: a bound receive needs no state
      return;
    }
    if (park(st, r.op, true))
      st.parked = r;
    else
    {
      r.take(st, r, true);
      post_deferred(st, r.op);
    }
  }

  /// cancel() and a cancellation signal: aborts the pending receive (parked, or waiting
  /// behind). A handed-over receive has completed: it still takes its values, and if it
  /// finds none when about to run it completes with operation_aborted instead of
  /// parking again. Returns 1 if a pending receive was aborted.
  template <typename Core>
  static std::size_t cancel(Core& st) noexcept
  {
    resolve(st);
    if (abort_pending(st))
      return 1;
    if (st.handed.op && !st.handed_taken)
      st.cancelled_receive = st.handed.number;
    return 0;
  }

  /// The receiver's end (its destructor, or its context's shutdown: then the pending
  /// receives are given to `destroy` instead of being aborted). Closes the stream, and
  /// returns once no send is handing a receive to the scheduler any more.
  template <typename Core, typename Destroy>
  static void detach(Core& st, detached_reason why, Destroy&& destroy) noexcept
  {
    st.detached.store(why, std::memory_order_release);
    if (why == context_shut_down)
    {
      if (std::uintptr_t cur = st.waiter.exchange(0, std::memory_order_acq_rel))
        destroy(to_op(st, cur));
      if (st.behind.op)
        destroy(st.behind.op);
      st.parked = st.behind = {};
    }
    else
      abort_pending(st);
    st.close_queue();
    while (st.handoffs.load(std::memory_order_acquire) != 0)
      std::this_thread::yield();
  }

  template <typename Core>
  static void detach(Core& st, detached_reason why) noexcept
  {
    detach(st, why, [](typename Core::op_type*) {});
  }

  /// Whether a receive that finds `s` at the head completes now.
  static bool has_result(head_status s) noexcept
  {
    return s == head_status::value || s == head_status::eof;
  }

private:
  /// Aborts the pending receive: parked (unless a send took it: then it is handed over)
  /// or waiting behind. Returns 1 if there was one.
  template <typename Core>
  static std::size_t abort_pending(Core& st) noexcept
  {
    if (st.parked.op)
    {
      if (take_and_abort(st))
      {
        st.parked = {};
        return 1;
      }
      resolve(st);
    }
    if (st.behind.op)
    {
      post_aborted(st, std::exchange(st.behind, {}).op);
      return 1;
    }
    return 0;
  }

  template <typename Core>
  static void wait_behind(Core& st, const typename Core::receive_slot& r)
  {
    hold(st); // as if parked
    st.behind = r;
  }

  /// What a receive that waits (parked, behind, handed over) holds: a unit of
  /// outstanding work and a handle on the state, which a handed-over receive needs when
  /// it runs, even after the receiver is gone.
  template <typename Core>
  static void hold(Core& st) noexcept
  {
    if (st.scheduler)
      st.scheduler->work_started();
    st.add_ref();
  }

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

  /// Completes a waiting receive that the consumer took back with operation_aborted;
  /// the receiver is there, so its handle can go now.
  template <typename Core>
  static void post_aborted(Core& st, typename Core::op_type* op) noexcept
  {
    op->ec_ = net::error::operation_aborted;
    post_deferred(st, op);
    st.release();
  }
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_CHANNEL_STATE_HPP
