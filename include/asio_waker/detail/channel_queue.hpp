//
// asio_waker/detail/channel_queue.hpp
//
// The lock-free multi-producer, single-consumer FIFO behind asio_waker's channel, and the
// handshake that wakes its receiver only when the receiver is parked.
//
// ## The list
//
// Values live in a singly linked list of blocks of N slots (N = 32; 2 in the proofs).
// Slot `i` of the stream is slot `i % N` of the block whose `start` is `i - i % N`. Blocks
// are linked in order of `start`, with no gaps.
//
//     free_head_ ... head_block_ ............ tail_block_ ... (spare blocks) -> null
//     (consumer: consumed blocks not yet     (producers: a hint where to start looking
//      reusable, then the one it reads)        for the block of a claimed index)
//
// ## The words
//
//   tail_         index << 1 | CLOSED. A send claims index `tail_ >> 1` with ONE
//                 fetch_add(2) and fails if the value it read had CLOSED set. Closing is
//                 fetch_or(CLOSED): every index below the closing value belongs to a send
//                 that saw CLOSED clear and will publish it; every later claim fails.
//   close_index_  the index at which the stream ends, written once by the closer right
//                 after its fetch_or (all ones until then).
//   slot.state    EMPTY -> READY (value constructed) or EMPTY -> SKIPPED (emplace's
//                 constructor threw), written once by the slot's owner; reset to EMPTY only
//                 when the block is recycled.
//   waiter_       (in basic_channel_core) 0, or the address of the parked receive.
//
// ## Who does what
//
//   producer (any thread)            | consumer (one logical thread)
//   ---------------------------------+-------------------------------------------------
//   claim:   t = tail_.fetch_add(2)  | peek:  load slot(head_).state        (acquire)
//            t & CLOSED -> fail      |        READY -> a value; SKIPPED -> skip it
//   find the block of index t >> 1   |        else close_index_ == head_ -> end of stream
//   (link a block if it is missing)  |        else tail_ >> 1 > head_ -> BUSY: a send has
//   construct the value in its slot  |             claimed head_ and not published yet
//   publish: state = READY (seq_cst) |        else EMPTY
//   notify:  load waiter_ (seq_cst); | pop:   move the value out, destroy it, ++head_
//            only if a receive is    |        (no read-modify-write per value)
//            parked: take it, hand   | park:  waiter_ = op (seq_cst exchange), then peek
//            it to its scheduler     |        again with seq_cst loads; take op back if
//                                    |        anything is there
//
// A stalled producer (preempted between its claim and its publication) is BUSY at the
// head: nothing behind it is taken before it, so per-producer order and the total order
// hold. An asynchronous receive parks meanwhile, and that producer's own publication wakes
// it. try_receive() is the one place that waits: it yields until the value is published,
// because returning "empty" while a later send has already returned would not be
// linearizable (tokio's try_recv made the same choice).
//
// ## Wake only a parked receiver: the store-load handshake
//
//   producer: W1 publish slot (seq_cst store)   consumer: W2 waiter_ = op (seq_cst RMW)
//             R1 load waiter_ (seq_cst)                   R2 load next/slot/close_index
//                                                            (seq_cst)
// All four are sequentially consistent, so they are totally ordered: if R1 does not see
// the parked op, W2 comes after R1, hence after W1, and R2 sees the value. At least one
// side sees the other; no wake is lost. A send to a receiver that is awake (draining, or
// not waiting) performs no read-modify-write on waiter_: one fetch_add on tail_, one
// store and one load. Linking a block is also sequentially consistent, so that R2 cannot
// miss a value whose block it has not seen linked.
//
// ## Block lifetime
//
// Producers find their block starting at tail_block_, which is advanced only past a
// block whose every slot is published (so a producer's block is never behind it). The
// producer that advances it past block B then reads tail_ with fetch_add(0) and records
// that value in B (`observed_tail`) before marking B released: every producer that may
// still walk through B claimed an index below it, and publishes only after its walk. The
// consumer reuses B only when B is released and head_ has passed observed_tail. Reused
// blocks are appended again at the end of the list (within a few hops of tail_block_,
// else freed), so a stream whose producers and receiver keep pace allocates nothing.
//
// ## Allocation
//
// A send that sees the list end near tail_ allocates a block BEFORE claiming, so a failed
// allocation throws std::bad_alloc with nothing claimed. Only if more sends race past the
// end of the list than one block holds does a claimed send have to allocate; it then uses
// std::nothrow and, should even that fail, yields until another thread links the block.
//
// Generic over the atomic template and the block size so that the interleaving checker
// in test/proofs runs this very code.
//

#ifndef ASIO_WAKER_DETAIL_CHANNEL_QUEUE_HPP
#define ASIO_WAKER_DETAIL_CHANNEL_QUEUE_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

namespace asio_waker {
namespace detail {

/// What the consumer finds at the head of the stream.
enum class head_status
{
  value, ///< A value is ready.
  eof,   ///< The stream is closed and every value has been taken.
  busy,  ///< A send has claimed the head and not yet published it.
  empty  ///< Nothing has been sent.
};

template <typename T, std::size_t BlockSize, template <typename> class Atomic = std::atomic>
class basic_channel_queue
{
  static_assert(BlockSize >= 2 && (BlockSize & (BlockSize - 1)) == 0,
    "the block size is a power of two, at least 2");
  static_assert(std::is_nothrow_move_constructible_v<T>,
    "channel values must be nothrow-move-constructible");

public:
  static constexpr std::size_t block_size = BlockSize;

  basic_channel_queue()
  {
    block* first = new block(0);
    tail_block_.store(first, std::memory_order_relaxed);
    head_block_ = free_head_ = first;
  }

  basic_channel_queue(const basic_channel_queue&) = delete;
  basic_channel_queue& operator=(const basic_channel_queue&) = delete;

  /// Destroys the values nobody took and frees every block. No send may be running.
  ~basic_channel_queue()
  {
    for (block* b = head_block_; b; b = b->next.load(std::memory_order_relaxed))
      for (std::size_t k = 0; k < BlockSize; ++k)
        if (b->start + k >= head_
            && b->slots[k].state.load(std::memory_order_relaxed) == ready)
          b->slots[k].value()->~T();
    for (block* b = free_head_; b;)
      delete std::exchange(b, b->next.load(std::memory_order_relaxed));
  }

  // ---- Producers ---------------------------------------------------------------------

  /// Constructs a value from `args` at the end of the stream. Returns false, with nothing
  /// constructed, once the stream is closed. Throws std::bad_alloc (nothing claimed) if a
  /// block cannot be allocated; if T's constructor throws, the slot is marked skipped and
  /// the exception propagates.
  template <typename... Args>
  bool emplace(Args&&... args)
  {
    std::unique_ptr<block> spare;
    const std::uint64_t seen = tail_.load(std::memory_order_relaxed);
    if (seen & closed_bit)
      return false;
    if ((seen >> 1) + BlockSize / 2 >= linked_end_.load(std::memory_order_relaxed))
      spare.reset(new block(0)); // may throw: nothing claimed yet

    const std::uint64_t claimed = tail_.fetch_add(2, std::memory_order_acquire);
    if (claimed & closed_bit)
      return false;
    const std::uint64_t index = claimed >> 1;
    block* b = find_block(index, spare);
    if (spare)
      append(b, spare.release());

    slot& s = b->slots[index % BlockSize];
    struct skip_on_unwind
    {
      slot& s;
      bool constructed = false;
      ~skip_on_unwind()
      {
        if (!constructed)
          s.state.store(skipped, std::memory_order_seq_cst);
      }
    } guard{s};
    ::new (static_cast<void*>(s.storage)) T(std::forward<Args>(args)...);
    guard.constructed = true;
    s.state.store(ready, std::memory_order_seq_cst); // W1 of the handshake
    return true;
  }

  /// Ends the stream after every index claimed so far. Returns true for the call that
  /// closed it. Any thread; the caller then notifies the receiver.
  bool close() noexcept
  {
    const std::uint64_t old = tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
    if (old & closed_bit)
      return false;
    close_index_.store(old >> 1, std::memory_order_seq_cst);
    return true;
  }

  bool is_closed() const noexcept
  {
    return (tail_.load(std::memory_order_acquire) & closed_bit) != 0;
  }

  // ---- The consumer ------------------------------------------------------------------

  /// What is at the head. `order` is acquire on the fast path, seq_cst for the re-check
  /// after parking (R2 of the handshake).
  head_status peek(std::memory_order order = std::memory_order_acquire) noexcept
  {
    for (;;)
    {
      if (head_ - head_block_->start == BlockSize)
      {
        block* next = head_block_->next.load(order);
        if (!next)
          return end_status(order);
        head_block_ = next;
        reclaim();
      }
      const std::uint32_t state = head_block_->slots[head_ % BlockSize].state.load(order);
      if (state == ready)
        return head_status::value;
      if (state != skipped)
        return end_status(order);
      ++head_;
    }
  }

  /// The value at the head. Only after peek() returned head_status::value.
  T& front() noexcept { return *head_block_->slots[head_ % BlockSize].value(); }

  /// Destroys the value at the head and moves on. Only after peek() returned
  /// head_status::value.
  void pop() noexcept
  {
    front().~T();
    ++head_;
  }

private:
  static constexpr std::uint64_t closed_bit = 1;
  static constexpr std::uint32_t empty_slot = 0, ready = 1, skipped = 2;

  struct slot
  {
    Atomic<std::uint32_t> state{empty_slot};
    alignas(T) unsigned char storage[sizeof(T)];
    T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

  struct block
  {
    explicit block(std::uint64_t s) noexcept : start(s) {}

    /// Index of slots[0]. Written before the block is linked, read after.
    std::uint64_t start;
    Atomic<block*> next{nullptr};
    /// Set once tail_block_ has moved past this block, after observed_tail.
    Atomic<std::uint32_t> released{0};
    /// tail_ >> 1 read after tail_block_ moved past: producers that may still walk
    /// through this block all claimed indices below it.
    std::uint64_t observed_tail = 0;
    slot slots[BlockSize];
  };

  head_status end_status(std::memory_order order) const noexcept
  {
    if (close_index_.load(order) == head_)
      return head_status::eof;
    return (tail_.load(order) >> 1) > head_ ? head_status::busy : head_status::empty;
  }

  /// The block holding `index`, linking blocks (the spare first) as needed.
  block* find_block(std::uint64_t index, std::unique_ptr<block>& spare)
  {
    const std::uint64_t start = index - index % BlockSize;
    block* b = tail_block_.load(std::memory_order_acquire);
    while (b->start != start)
    {
      block* next = b->next.load(std::memory_order_acquire);
      if (!next)
        next = link_after(b, spare);
      try_advance_tail_block(b, next);
      b = next;
    }
    return b;
  }

  /// Links a block after `b`, the last block as far as the caller saw. Returns b's
  /// successor, whoever linked it.
  block* link_after(block* b, std::unique_ptr<block>& spare) noexcept
  {
    block* fresh = spare ? spare.release() : new_block_after_claim();
    fresh->start = b->start + BlockSize;
    block* expected = nullptr;
    if (b->next.compare_exchange_strong(
          expected, fresh, std::memory_order_seq_cst, std::memory_order_acquire))
    {
      raise_linked_end(fresh->start + BlockSize);
      return fresh;
    }
    append(expected, fresh); // another producer won: keep ours further down
    return expected;
  }

  /// Appends `fresh` at the end of the list, starting from `b` (alive while the caller
  /// has an unpublished claim at or before it).
  void append(block* b, block* fresh) noexcept
  {
    for (;;)
    {
      fresh->start = b->start + BlockSize;
      block* expected = nullptr;
      if (b->next.compare_exchange_strong(
            expected, fresh, std::memory_order_seq_cst, std::memory_order_acquire))
      {
        raise_linked_end(fresh->start + BlockSize);
        return;
      }
      b = expected;
    }
  }

  static block* new_block_after_claim() noexcept
  {
    for (;;)
    {
      if (block* b = new (std::nothrow) block(0))
        return b;
      std::this_thread::yield();
    }
  }

  /// Moves tail_block_ from `b` to `next` if every slot of `b` is published, and
  /// releases `b` to the consumer.
  void try_advance_tail_block(block* b, block* next) noexcept
  {
    for (std::size_t k = 0; k < BlockSize; ++k)
      if (b->slots[k].state.load(std::memory_order_acquire) == empty_slot)
        return;
    block* expected = b;
    if (!tail_block_.compare_exchange_strong(
          expected, next, std::memory_order_release, std::memory_order_relaxed))
      return;
    b->observed_tail = tail_.fetch_add(0, std::memory_order_acq_rel) >> 1;
    b->released.store(1, std::memory_order_release);
  }

  void raise_linked_end(std::uint64_t end) noexcept
  {
    std::uint64_t cur = linked_end_.load(std::memory_order_relaxed);
    while (cur < end
           && !linked_end_.compare_exchange_weak(
             cur, end, std::memory_order_relaxed, std::memory_order_relaxed))
    {}
  }

  /// Consumer: reuses every block before head_block_ that no producer can still reach.
  void reclaim() noexcept
  {
    while (free_head_ != head_block_)
    {
      block* b = free_head_;
      if (!b->released.load(std::memory_order_acquire) || b->observed_tail > head_)
        return;
      free_head_ = b->next.load(std::memory_order_relaxed);
      recycle(b);
    }
  }

  /// Consumer: resets `b` and appends it within a few hops of tail_block_, or frees it.
  void recycle(block* b) noexcept
  {
    b->next.store(nullptr, std::memory_order_relaxed);
    b->released.store(0, std::memory_order_relaxed);
    for (slot& s : b->slots)
      s.state.store(empty_slot, std::memory_order_relaxed);
    // tail_block_ is never released, so never reclaimed: safe to walk from.
    block* last = tail_block_.load(std::memory_order_acquire);
    for (int hops = 0; hops < 4; ++hops)
    {
      b->start = last->start + BlockSize;
      block* expected = nullptr;
      if (last->next.compare_exchange_strong(
            expected, b, std::memory_order_seq_cst, std::memory_order_acquire))
      {
        raise_linked_end(b->start + BlockSize);
        return;
      }
      last = expected;
    }
    delete b;
  }

  // Producers' words, on their own cache line.
  alignas(64) Atomic<std::uint64_t> tail_{0};
  Atomic<std::uint64_t> close_index_{std::numeric_limits<std::uint64_t>::max()};
  Atomic<std::uint64_t> linked_end_{BlockSize};
  Atomic<block*> tail_block_{nullptr};

  // The consumer's, on another.
  alignas(64) block* head_block_;
  std::uint64_t head_ = 0;
  block* free_head_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_CHANNEL_QUEUE_HPP
