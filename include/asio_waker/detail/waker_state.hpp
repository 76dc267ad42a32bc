//
// asio_waker/detail/waker_state.hpp
//
// The lock-free state machine at the heart of asio_waker::basic_atomic_waker.
//
// ## What it has to do
//
// One consumer parks at most one wait operation; any number of producer threads call
// wake(). A wake() that finds a parked operation must take it, so that it (and only it)
// hands the operation to the executor; a wake() that finds none must leave a *permit*
// that the next wait consumes. Wakes coalesce: N wakes with nobody waiting leave one
// permit. Cancellation (cancel(), a cancellation slot, the destructor) and a wake() that
// race for the same parked operation must produce exactly one outcome.
//
// ## The word
//
// Everything lives in ONE atomic machine word:
//
//     EMPTY    = 0     nobody waits, no permit
//     NOTIFIED = 1     no waiter, one permit stored
//     op       = p     a waiter is parked; p is the address of its operation
//                      (operations are at least 2-aligned, so p never equals 0 or 1)
//
// A waiter and a permit never coexist: a wake() that finds a waiter completes it instead
// of storing a permit, and a wait that finds a permit consumes it instead of parking.
//
// ## Who may do what
//
// Producers (any thread, concurrently with everything): wake().
// The consumer (one logical thread at a time, as Asio's "shared objects: unsafe"):
// park (async_wait), cancel(), a cancellation slot's handler, the destructor, and the
// service's shutdown. Producers only ever make two moves: `op -> EMPTY` (take the
// waiter) and `EMPTY|NOTIFIED -> NOTIFIED` (store or refresh the permit). Every other
// move belongs to the consumer. That asymmetry is what keeps each operation down to one
// read-modify-write (RMW) and makes the consumer's loops bounded.
//
// ## Transition table
//
//   from      | wake()  (producer)          | park(q)  (consumer)          | cancel() (consumer)
//   ----------+-----------------------------+------------------------------+---------------------
//   EMPTY     | -> NOTIFIED      CAS release | -> q         CAS acq_rel     | no change   (load)
//             |   (permit stored)           |   (q parked)                 |   returns none
//   NOTIFIED  | -> NOTIFIED  fetch_add(0)   | -> EMPTY     XCHG acquire    | no change   (load)
//             |              release        |   (permit consumed: q is     |   (never clears the
//             |   (permit refreshed: still  |    completed with success)   |    permit)
//             |    a release RMW, see below)|                              |
//   op p      | -> EMPTY         CAS acquire | -> q         CAS acq_rel     | -> EMPTY  CAS acquire
//             |   (p taken: the producer    |   (p taken back: completed   |   (p taken back:
//             |    hands p to the executor  |    with operation_aborted)   |    operation_aborted)
//             |    with success)            |                              |
//
// Every move starts from a relaxed load that picks the row; a failed CAS (or a refresh
// that finds the word changed) re-decides from the value it saw. For the consumer that
// is bounded: producers can change the word at most twice under it (op -> EMPTY, then
// EMPTY -> NOTIFIED; a refresh does not change the value). A cancel() whose CAS fails has
// lost the race to a wake(): the operation is on its way to the executor with success,
// and cancel() reports 0. A wake() retries only when the value changed under it, so some
// thread made progress: wake() is lock-free and never waits for the consumer or for other
// wakers. The refresh is a fetch_add(0), not a CAS: it cannot fail, so any number of
// producers waking a set permit each pay one wait-free RMW, as cheap as an exchange.
//
// ## Costs, uncontended, per call of this class (async_wait makes one or two calls:
// try_consume_permit(), then park() when no permit was stored)
//
//   wake():                1 load + 1 RMW (CAS, or fetch_add(0) on a set permit),
//                          whether or not someone waits.
//   try_consume_permit():  1 load (+ 1 XCHG when a permit is stored).
//   park(q):               1 load + 1 CAS (1 XCHG instead if a permit arrived meanwhile).
//   cancel():              1 load (+ 1 CAS when a waiter is parked).
//
// ## Memory ordering, and why it is enough
//
// * Producer data -> handler. A producer writes its data, then performs a release RMW on
//   the word. If it takes an operation, it then hands that operation to a scheduler queue
//   (a mutex or another release/acquire pair), and the thread that runs the handler
//   acquires it there. If it stores or refreshes the permit, the consumer's acquire XCHG
//   reads a value at or after the producer's RMW in the word's modification order. All
//   producer moves are RMWs, so they form one release sequence: the consumer's acquire
//   synchronizes with EVERY producer whose RMW precedes the XCHG, not only the last one.
//   This is why a wake() that finds NOTIFIED still performs an RMW (fetch_add(0)) instead
//   of returning after a plain load: a load would leave that producer's data unpublished,
//   and a consumer that then consumed the older permit could miss it (tokio's Notify
//   keeps a NOTIFIED -> NOTIFIED RMW for the same reason). The consumer then hands the
//   operation to the executor itself, from the thread that did the acquire.
// * Operation contents -> producer. The consumer constructs the operation, then
//   publishes its address with a release CAS; the producer that takes it does so with an
//   acquire CAS and may then link it into a scheduler queue. The producer's own data
//   needs no release on that CAS: the queue hand-off publishes it.
// * A producer that stores the permit (EMPTY -> NOTIFIED) needs only release: it reads
//   nothing it must see.
// * ABA is harmless: no thread dereferences an address it read before its successful
//   RMW; whatever address a successful CAS removed from the word was parked at that
//   moment.
//
// The state is generic over its atomic type so that the interleaving checker in
// test/proofs runs this very code (and the service's functions that drive it) under a
// scheduler that switches threads at every atomic access.
//

#ifndef ASIO_WAKER_DETAIL_WAKER_STATE_HPP
#define ASIO_WAKER_DETAIL_WAKER_STATE_HPP

#include <atomic>
#include <cstdint>

namespace asio_waker {
namespace detail {

template <typename Op, typename Atomic = std::atomic<std::uintptr_t>>
class basic_waker_state
{
public:
  using op_type = Op;

  static constexpr std::uintptr_t empty = 0;
  static constexpr std::uintptr_t notified = 1;

  /// The outcome of parking an operation.
  struct park_result
  {
    /// The previously parked operation, now owned by the caller, to be completed with
    /// operation_aborted; null when there was none.
    Op* replaced;
    /// True when a permit was found and consumed instead: the new operation was NOT
    /// parked and the caller completes it with success.
    bool consumed_permit;
  };

  basic_waker_state() noexcept : word_(empty) {}
  basic_waker_state(const basic_waker_state&) = delete;
  basic_waker_state& operator=(const basic_waker_state&) = delete;

  /// Producer. Returns the operation it took (now owned by the caller, to be completed
  /// with success), or null when it stored or refreshed the permit instead.
  Op* wake() noexcept
  {
    std::uintptr_t cur = word_.load(std::memory_order_relaxed);
    for (;;)
    {
      if (cur == notified)
      {
        // Refresh: an RMW that writes back what it read. It still joins the release
        // sequence (see "Memory ordering"), and unlike a CAS it cannot fail, so
        // producers hammering a set permit never retry.
        cur = word_.fetch_add(0, std::memory_order_release);
        if (cur == notified)
          return nullptr;
      }
      else if (cur == empty)
      {
        if (word_.compare_exchange_weak(
              cur, notified, std::memory_order_release, std::memory_order_relaxed))
          return nullptr;
      }
      else if (word_.compare_exchange_weak(
                 cur, empty, std::memory_order_acquire, std::memory_order_relaxed))
        return to_op(cur);
    }
  }

  /// Consumer. Consumes the permit if one is stored (one XCHG); otherwise changes
  /// nothing (one load). Lets async_wait skip parking when the answer is known.
  bool try_consume_permit() noexcept
  {
    if (word_.load(std::memory_order_relaxed) != notified)
      return false;
    // Producers can only rewrite NOTIFIED with NOTIFIED, so the exchange returns
    // NOTIFIED. It must be an RMW: see "Memory ordering" above.
    word_.exchange(empty, std::memory_order_acquire);
    return true;
  }

  /// Consumer. Parks `op` (replacing a parked operation), or consumes a permit that is
  /// stored instead. `op` must be at least 2-aligned.
  park_result park(Op* op) noexcept
  {
    const std::uintptr_t mine = reinterpret_cast<std::uintptr_t>(op);
    std::uintptr_t cur = word_.load(std::memory_order_relaxed);
    for (;;)
    {
      if (cur == notified)
      {
        word_.exchange(empty, std::memory_order_acquire);
        return {nullptr, true};
      }
      // cur is EMPTY or our previously parked operation.
      if (word_.compare_exchange_weak(
            cur, mine, std::memory_order_acq_rel, std::memory_order_relaxed))
        return {is_op(cur) ? to_op(cur) : nullptr, false};
    }
  }

  /// Consumer. Takes the parked operation back (to be completed with
  /// operation_aborted). Returns null when none is parked or a wake() took it first.
  /// Never touches a stored permit.
  Op* cancel() noexcept
  {
    std::uintptr_t cur = word_.load(std::memory_order_relaxed);
    if (!is_op(cur))
      return nullptr;
    // Failure means a producer moved op -> EMPTY: the wake won the race.
    if (word_.compare_exchange_strong(
          cur, empty, std::memory_order_acquire, std::memory_order_relaxed))
      return to_op(cur);
    return nullptr;
  }

private:
  static bool is_op(std::uintptr_t v) noexcept { return v > notified; }
  static Op* to_op(std::uintptr_t v) noexcept { return reinterpret_cast<Op*>(v); }

  Atomic word_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_WAKER_STATE_HPP
