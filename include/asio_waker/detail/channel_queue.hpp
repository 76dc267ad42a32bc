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
//     free_head_ ... head_block_ ...... tail_block_ ... newest_ ... (spares) -> null
//     (consumer: consumed blocks not yet  (producers: never past an unwritten slot;
//      reusable, then the one it reads)    newest_: the newest block a producer found)
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
// Producers find their block by walking forward from newest_ (the newest block any
// producer found), or from tail_block_ when newest_ is already past theirs. tail_block_
// moves only past a block whose every slot is written, so it is never past a block
// that a producer still has to find. (Walking from tail_block_ alone, as tokio does,
// makes every send walk the whole list while one preempted producer holds it back.)
// The producer that moves tail_block_ past block B also moves newest_ and last_ if they
// were B, then
// reads tail_ with fetch_add(0) and records that value in B (`observed_tail`) before
// marking B released: every producer that may still walk through B claimed an index
// below it (one that claimed later synchronizes with that fetch_add, so it sees both
// pointers moved), and publishes only after its walk. The consumer reuses B only when B
// is released and head_ has passed observed_tail. Reused blocks are appended again at
// the end of the list (found from last_, which the same producer moves with newest_),
// as long as the unused blocks there do not cover the largest backlog seen (and 64 KiB,
// at least 4 blocks), else freed; so a stream allocates nothing once it has seen its
// largest backlog, and the channel's memory is that of its busiest moment (freed with
// the channel), as a vector keeps its capacity. tail_block_ is moved by the
// producer that claims the first slot of a block, as far as that block.
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
#include <initializer_list>
#include <limits>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

// Keeps the slow paths out of the send and receive fast paths' frames.
#if defined(__GNUC__)
#define ASIO_WAKER_SLOW_PATH __attribute__((noinline, cold))
#else
#define ASIO_WAKER_SLOW_PATH
#endif

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
    newest_.store(first, std::memory_order_relaxed);
    last_.store(first, std::memory_order_relaxed);
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
    block* spare = nullptr;
    const std::uint64_t seen = tail_.load(std::memory_order_relaxed);
    if (seen & closed_bit)
      return false;
    if ((seen >> 1) + BlockSize / 2 >= linked_end_.load(std::memory_order_relaxed))
      [[unlikely]]
      spare = new block(0); // may throw: nothing claimed yet

    const std::uint64_t claimed = tail_.fetch_add(2, std::memory_order_acquire);
    if (claimed & closed_bit) [[unlikely]]
    {
      delete spare;
      return false;
    }
    const std::uint64_t index = claimed >> 1;
    slot& s = find_block(index, spare)->slots[index % BlockSize];
    if (spare) [[unlikely]]
      append(spare);

    if constexpr (std::is_nothrow_constructible_v<T, Args&&...>)
      ::new (static_cast<void*>(s.storage)) T(std::forward<Args>(args)...);
    else
    {
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
    }
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
    if (head_ != head_end_
        && head_block_->slots[head_ % BlockSize].state.load(order) == ready) [[likely]]
      return head_status::value;
    return peek_slow(order);
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

  /// peek() beyond its fast path: the next block, skipped slots, the end.
  ASIO_WAKER_SLOW_PATH
  head_status peek_slow(std::memory_order order) noexcept
  {
    for (;;)
    {
      if (head_ == head_end_)
      {
        block* next = head_block_->next.load(order);
        if (!next)
          return end_status(order);
        head_block_ = next;
        head_end_ = next->start + BlockSize;
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

  head_status end_status(std::memory_order order) const noexcept
  {
    if (close_index_.load(order) == head_)
      return head_status::eof;
    return (tail_.load(order) >> 1) > head_ ? head_status::busy : head_status::empty;
  }

  /// The block holding `index`, linking blocks (`spare` first) as needed; sets `spare`
  /// to null if it was linked.
  block* find_block(std::uint64_t index, block*& spare)
  {
    const std::uint64_t start = index - index % BlockSize;
    block* b = newest_.load(std::memory_order_acquire);
    if (b->start != start) [[unlikely]]
      b = walk_to(start, b, spare);
    if (index % BlockSize == 0)
      advance_tail_block(b);
    return b;
  }

  /// newest_ is usually our block or the one before. If later claims moved it past
  /// ours, tail_block_ cannot be past ours: it never passes an unwritten slot.
  ASIO_WAKER_SLOW_PATH
  block* walk_to(std::uint64_t start, block* b, block*& spare)
  {
    if (b->start > start)
      b = tail_block_.load(std::memory_order_acquire);
    while (b->start != start)
    {
      block* next = b->next.load(std::memory_order_acquire);
      b = next ? next : link_after(b, spare);
    }
    raise(newest_, b);
    return b;
  }

  /// Links a block after `b`, the last block as far as the caller saw. Returns b's
  /// successor, whoever linked it.
  block* link_after(block* b, block*& spare) noexcept
  {
    block* fresh = spare ? std::exchange(spare, nullptr) : new_block_after_claim();
    fresh->start = b->start + BlockSize;
    block* expected = nullptr;
    if (b->next.compare_exchange_strong(
          expected, fresh, std::memory_order_seq_cst, std::memory_order_acquire))
    {
      linked(fresh);
      return fresh;
    }
    append(fresh); // another producer won: keep ours further down
    return expected;
  }

  /// Appends `fresh` at the end of the list, found from last_.
  ASIO_WAKER_SLOW_PATH
  void append(block* fresh) noexcept
  {
    block* b = last_.load(std::memory_order_acquire);
    for (;;)
    {
      fresh->start = b->start + BlockSize;
      block* expected = nullptr;
      if (b->next.compare_exchange_strong(
            expected, fresh, std::memory_order_seq_cst, std::memory_order_acquire))
      {
        linked(fresh);
        return;
      }
      b = expected;
    }
  }

  /// Book-keeping after `b` was linked at the end.
  void linked(block* b) noexcept
  {
    raise(last_, b);
    const std::uint64_t end = b->start + BlockSize;
    std::uint64_t cur = linked_end_.load(std::memory_order_relaxed);
    while (cur < end
           && !linked_end_.compare_exchange_weak(
             cur, end, std::memory_order_relaxed, std::memory_order_relaxed))
    {}
  }

  ASIO_WAKER_SLOW_PATH static block* new_spare() { return new block(0); }

  static block* new_block_after_claim() noexcept
  {
    for (;;)
    {
      if (block* b = new (std::nothrow) block(0))
        return b;
      std::this_thread::yield();
    }
  }

  /// Moves `hint` forward to `b` unless it is already there or further.
  static void raise(Atomic<block*>& hint, block* b) noexcept
  {
    block* cur = hint.load(std::memory_order_acquire);
    while (cur->start < b->start
           && !hint.compare_exchange_weak(
             cur, b, std::memory_order_release, std::memory_order_acquire))
    {}
  }

  /// Moves tail_block_ forward, up to `mine` (the caller's block, unpublished), past
  /// every block whose slots are all written, releasing each to the consumer.
  ASIO_WAKER_SLOW_PATH
  void advance_tail_block(block* mine) noexcept
  {
    for (;;)
    {
      block* t = tail_block_.load(std::memory_order_acquire);
      if (t->start >= mine->start)
        return;
      for (std::size_t k = 0; k < BlockSize; ++k)
        if (t->slots[k].state.load(std::memory_order_acquire) == empty_slot)
          return;
      block* next = t->next.load(std::memory_order_acquire); // not null: mine follows
      if (!tail_block_.compare_exchange_strong(
            t, next, std::memory_order_release, std::memory_order_relaxed))
        continue;
      // Keep newest_ and last_ at or after tail_block_, before tail_ is read: a
      // producer that claims after that read sees these moves.
      for (Atomic<block*>* hint : {&newest_, &last_})
      {
        block* expected = t;
        hint->compare_exchange_strong(
          expected, next, std::memory_order_release, std::memory_order_relaxed);
      }
      t->observed_tail = tail_.fetch_add(0, std::memory_order_acq_rel) >> 1;
      t->released.store(1, std::memory_order_release);
    }
  }

  /// Consumer: reuses every block before head_block_ that no producer can still reach.
  ASIO_WAKER_SLOW_PATH
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

  /// Consumer: resets `b` and appends it at the end of the list for later sends, or
  /// frees it when the unused blocks there already cover the largest backlog seen (at
  /// least `retained_blocks`): like a vector's capacity, the list keeps what its
  /// busiest moment needed.
  void recycle(block* b) noexcept
  {
    const std::uint64_t end = linked_end_.load(std::memory_order_relaxed);
    const std::uint64_t claimed = tail_.load(std::memory_order_relaxed) >> 1;
    if (claimed > head_ && claimed - head_ > peak_backlog_)
      peak_backlog_ = claimed - head_;
    const std::uint64_t unused = end > claimed ? end - claimed : 0;
    if (unused >= retained_blocks * BlockSize && unused >= peak_backlog_ + BlockSize)
    {
      delete b;
      return;
    }
    b->next.store(nullptr, std::memory_order_relaxed);
    b->released.store(0, std::memory_order_relaxed);
    for (slot& s : b->slots)
      s.state.store(empty_slot, std::memory_order_relaxed);
    append(b);
  }

  /// Unused blocks always kept for later sends: 4, or as many as fit in 64 KiB.
  static constexpr std::uint64_t retained_blocks = sizeof(block) * 4 > 65536
                                                     ? 4
                                                     : 65536 / sizeof(block);

  // Producers' words, on their own cache line.
  alignas(64) Atomic<std::uint64_t> tail_{0};
  Atomic<std::uint64_t> close_index_{std::numeric_limits<std::uint64_t>::max()};
  Atomic<std::uint64_t> linked_end_{BlockSize};
  Atomic<block*> tail_block_{nullptr};
  Atomic<block*> newest_{nullptr};
  Atomic<block*> last_{nullptr};

  // The consumer's, on another.
  alignas(64) block* head_block_;
  std::uint64_t head_ = 0;
  std::uint64_t head_end_ = BlockSize; // head_block_->start + BlockSize
  block* free_head_;
  std::uint64_t peak_backlog_ = 0; // values claimed and not yet taken, at most
};

} // namespace detail
} // namespace asio_waker

#undef ASIO_WAKER_SLOW_PATH

#endif // ASIO_WAKER_DETAIL_CHANNEL_QUEUE_HPP
