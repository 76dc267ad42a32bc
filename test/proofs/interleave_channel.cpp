//
// test/proofs/interleave_channel.cpp
//
// Interleaving checks of the REAL channel: asio_waker::detail::basic_channel_queue and
// the moves of asio_waker::detail::channel_moves (send, notify, close, start, park,
// resolve, finish_handed, may_park_again, start_behind, take_and_abort, detach),
// instantiated with proofs::checked_atomic, a block size of 2, a model scheduler and a
// model operation, as basic_channel_state<value, 2, checked_atomic, model_scheduler,
// model_op>.
//
// The hand-written glue is what the public classes and the service do around those
// moves, each a few lines, mirrored here:
//   send            sender::send:        channel_moves::send(state, value)
//   drop_sender     sender::reset:       senders.fetch_sub; the last one closes; release()
//   receive         channel_service::async_receive: a receive_slot {op, number,
//                   take_for} and channel_moves::start (which takes the receive's handle
//                   if it waits); when the operation runs, receive_op::do_complete and
//                   handed_receive_phase: aborted -> nothing; values bound at its start
//                   -> those; handed over -> finish_handed (then start_behind), or
//                   may_park_again -> a new receive, or aborted; a handed-over receive
//                   then gives its handle back. take_for is receive_op::take_for, with
//                   detail::take_values (limit 1) mirrored (it is written against the
//                   real queue's head_status, and the mutants have their own)
//   try_receive     basic_receiver::try_receive: resolve; a handed-over receive not yet
//                   served comes first; peek; value -> take; busy ->
//                   std::this_thread::yield() and again; otherwise nothing
//   close           basic_receiver::close: channel_moves::close
//   drop_receiver   basic_receiver::reset without a service: channel_moves::detach,
//                   release()
// std::this_thread::yield() reaches the checker through sched_yield(), defined below (a
// spinning thread is not rescheduled until another one has moved; see checker.hpp).
//
// Thread 0 is the receiver (one logical consumer thread: it also runs the receives'
// completions, as its io_context would); the others are senders.
//
// Invariants checked in every execution:
//   C1 exactly once: a value whose send returned true is delivered once, or, when the
//      receiver is gone, destroyed with the channel; a refused value is neither;
//   C2 per-producer order: each producer's values are delivered in the order it sent;
//   C3 eof only after every accepted value (checked when eof is delivered and at the
//      end: every value whose send returned true was delivered before it);
//   no lost wake: the receiver waiting for a receive that never completes is a deadlock;
//   C6 publication: the slot's value was written (move-constructed) by a thread whose
//      write happens-before the receiver's read of it, and the receiver's last use of a
//      slot happens-before the next write into that slot (its reuse);
//   block lifetime: each block has incarnations (recycle() starts a new one, delete ends
//      it); a thread may touch a block's atomics or slots only through a pointer it
//      obtained (read from a block pointer, or allocated) in the block's current
//      incarnation, and never after delete (the checker also reports any access to a
//      destroyed location). Freed blocks and the freed state are kept (quarantined)
//      until the execution ends, so a stale pointer always reaches the dead location;
//   work: an operation is parked only with its unit of outstanding work counted, and at
//      the end the scheduler's count is one unit per queued operation plus one for a
//      parked one; each operation is handed over once.
//
// The private block type is named through the explicit-instantiation access rule (the
// `rob` template below): the harness needs its layout, not its behaviour.
//
// Mutants: copies of the two headers with one defect each, generated at configure time
// from the real headers by test/proofs/CMakeLists.txt (so they follow the code), each
// must be caught by some scenario.
//

#define BOOST_TEST_MODULE asio_waker_channel_interleavings
#include <boost/test/unit_test.hpp>

#include "checker.hpp"

#include <asio_waker/detail/channel_state.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <vector>

#if defined(ASIO_WAKER_PROOFS_CHANNEL_MUTANTS)
#include "channel_mutants.hpp" // generated (see the top of this file)
#else
#define PROOFS_CHANNEL_MUTANT_LIST(X)
#define PROOFS_CHANNEL_MUTANT_MISSING(X)
#endif

// ---- std::this_thread::yield() inside a checked thread ---------------------------------

extern "C" int sched_yield() noexcept
{
  if (proofs::checker* c = proofs::current_checker(); c && c->in_thread())
  {
    c->spin_yield();
    return 0;
  }
  return static_cast<int>(::syscall(SYS_sched_yield));
}

// ---- quarantine: blocks and states freed during an execution stay allocated -----------

namespace proofs {
namespace chan {

struct quarantine
{
  std::set<const void*> watched; // addresses whose delete is deferred
  std::vector<void*> held;
  bool active = false;
};

inline quarantine& q()
{
  static quarantine* q = new quarantine; // never destroyed (operator delete uses it)
  return *q;
}

inline bool defer_free(void* p) noexcept
{
  quarantine& qq = q();
  if (!qq.active || !p || !qq.watched.count(p))
    return false;
  qq.watched.erase(p);
  qq.held.push_back(p);
  return true;
}

inline void release_quarantine()
{
  quarantine& qq = q();
  qq.active = false;
  for (void* p : qq.held)
    std::free(p);
  qq.held.clear();
  qq.watched.clear();
}

} // namespace chan
} // namespace proofs

void* operator new(std::size_t n)
{
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept
{
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept
{
  if (!proofs::chan::defer_free(p))
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept
{
  operator delete(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept
{
  operator delete(p);
}

// ---- naming the private block type ----------------------------------------------------

namespace proofs {
namespace chan {

template <typename Tag, auto Member>
struct rob
{
  friend constexpr auto get(Tag) noexcept { return Member; }
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-template-friend"
#endif
template <typename Queue>
struct tail_block_of
{
  friend constexpr auto get(tail_block_of) noexcept;
};
template <typename Queue>
struct tail_of
{
  friend constexpr auto get(tail_of) noexcept;
};
template <typename Queue>
struct close_index_of
{
  friend constexpr auto get(close_index_of) noexcept;
};
template <typename Queue>
struct linked_end_of
{
  friend constexpr auto get(linked_end_of) noexcept;
};
template <typename Queue>
struct newest_of
{
  friend constexpr auto get(newest_of) noexcept;
};
template <typename Queue>
struct last_of
{
  friend constexpr auto get(last_of) noexcept;
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

template <typename P>
struct pointee_of;
template <typename C, typename B>
struct pointee_of<checked_atomic<B*> C::*>
{
  using type = B;
};

#define PROOFS_CHANNEL_ROB(Queue)                                                          \
  template struct ::proofs::chan::rob<::proofs::chan::tail_block_of<Queue>,                \
    &Queue::tail_block_>;                                                                  \
  template struct ::proofs::chan::rob<::proofs::chan::tail_of<Queue>, &Queue::tail_>;      \
  template struct ::proofs::chan::rob<::proofs::chan::close_index_of<Queue>,               \
    &Queue::close_index_>;                                                                 \
  template struct ::proofs::chan::rob<::proofs::chan::linked_end_of<Queue>,                \
    &Queue::linked_end_>;                                                                  \
  template struct ::proofs::chan::rob<::proofs::chan::newest_of<Queue>, &Queue::newest_>;  \
  template struct ::proofs::chan::rob<::proofs::chan::last_of<Queue>, &Queue::last_>;

// ---- the model --------------------------------------------------------------------------

constexpr std::size_t block_size = 2;
constexpr int consumer_tid = 0;
constexpr int max_producers = 3; // producer ids 0..3 (3: the setup thread's sends)
constexpr int max_seq = 3;
constexpr int max_ops = 12;

class world_base;
inline world_base*& current_world()
{
  static world_base* w = nullptr;
  return w;
}

/// The channel's value: which producer sent it and its place in that producer's order.
/// Its moves and destruction report to the world (slot writes, reads, disposal).
struct value
{
  int producer = -1;
  int seq = -1;
  int payload_tid = -1;          // the producer's plain write before send()
  std::uint32_t payload_epoch = 0;
  int writer = -1;               // who move-constructed this object (a slot: the producer)
  std::uint32_t write_epoch = 0;
  bool moved_from = false;
  bool destroyed = false;

  value() = default;
  value(int p, int s) : producer(p), seq(s) {}
  value(value&& o) noexcept;
  value& operator=(value&&) = delete;
  ~value();
};

struct model_op
{
  asio_waker::error_code ec_;
  void post(); // the portable hand-off: not used (the model always has a scheduler)

  int id = 0;
  std::uint64_t number = 0; // its number (basic_channel_core::receives_started)
  // What it took when it started (receive_one::bound, value).
  bool bound_done = false;
  std::size_t bound_count = 0;
  bool bound_end = false;
  std::optional<value> val;
  bool started = false;
  int completions = 0;
  bool parked = false;
  bool work_counted = false; // holds a unit of outstanding work while parked
  bool ran = false;
  vclock completion_clock;
};

class model_scheduler
{
public:
  explicit model_scheduler(world_base& w) : w_(w) {}
  void work_started();
  void post_immediate_completion(model_op* op, bool is_continuation);
  void post_deferred_completion(model_op* op);

  long outstanding = 0; // Asio's outstanding work
  long unassigned = 0;  // counted by work_started(), held by no operation yet
  long queued = 0;      // handed over, not yet run

private:
  world_base& w_;
};

struct block_rec
{
  const unsigned char* base;
  int id;
  int incarnation = 0;
  bool deleted = false;
};

struct value_rec
{
  int accepted = -1; // send() result: -1 not returned (yet), 0 refused, 1 accepted
  int delivered = 0;
  int destroyed_in_channel = 0;
  bool before_eof = false;
};

/// Everything that does not depend on the channel implementation's type.
class world_base
{
public:
  checker& c;
  model_scheduler sched{*this};
  std::array<model_op, max_ops> ops;
  int next_op = 0;
  std::vector<block_rec> blocks;
  std::size_t block_bytes = 0;
  std::size_t next_offset = 0; // offset of block::next
  const void* block_next_tag = nullptr;
  const void* tail_block_addr = nullptr;
  const unsigned char* base_ = nullptr; // the state's memory
  std::size_t state_bytes = 0;
  const void* waiter_addr = nullptr;
  // per thread: block id -> incarnation obtained
  std::array<std::map<int, int>, clock_size> holds;
  // slot storage address -> last access (thread, epoch)
  std::map<const void*, std::pair<int, std::uint32_t>> slot_access;
  value_rec values[max_producers + 1][max_seq];
  std::array<int, max_producers + 1> last_seq{};
  std::vector<std::pair<int, int>> delivered_order;
  bool eof_seen = false;
  bool state_deleted = false;
  bool state_deleting = false;
  const void* handles_addr = nullptr;
  const void* tail_addr = nullptr;
  std::vector<std::size_t> state_offsets; // of slots[k].state in a block
  bool receiver_dropped = false;
  int busy_parks = 0; // the receiver parked while a claimed slot was unpublished
  int claims = 0, publishes = 0;
  vclock claim_clock; // the last claim's thread, at the claim

  explicit world_base(checker& ck) : c(ck)
  {
    last_seq.fill(-1);
    for (int i = 0; i < max_ops; ++i)
      ops[i].id = i;
  }
  world_base(const world_base&) = delete;
  world_base& operator=(const world_base&) = delete;
  virtual ~world_base() = default;

  int tslot() const { return checker::slot(c.tid() < 0 ? setup_tid : c.tid()); }

  block_rec* block_of(const void* p)
  {
    auto* b = static_cast<const unsigned char*>(p);
    for (auto& r : blocks)
      if (b >= r.base && b < r.base + block_bytes)
        return &r;
    return nullptr;
  }

  std::string bname(const block_rec& r) const
  {
    return "block " + std::to_string(r.id) + " (incarnation " + std::to_string(r.incarnation)
           + ")";
  }

  /// The current thread touches block memory at p (an atomic or a slot).
  void touch(const void* p, const char* what)
  {
    block_rec* r = block_of(p);
    if (!r)
      return;
    const int t = tslot();
    if (r->deleted)
      c.fail(std::string("use after free: ") + what + " of deleted " + bname(*r));
    if (state_deleting)
      return; // the last handle's owner destroys everything (ordered by `handles`)
    auto it = holds[t].find(r->id);
    if (it == holds[t].end())
      c.fail(std::string("block lifetime: ") + what + " of " + bname(*r)
             + " by a thread that never obtained a pointer to it");
    if (it->second != r->incarnation)
      c.fail(std::string("use after recycle: ") + what + " of " + bname(*r)
             + " through a pointer obtained in incarnation " + std::to_string(it->second));
  }

  void obtain(const void* block_ptr)
  {
    block_rec* r = block_of(block_ptr);
    if (r && r->base == block_ptr)
      holds[tslot()][r->id] = r->incarnation;
  }

  // ---- checker hooks --------------------------------------------------------------------

  void on_create(const void* addr, const void* type)
  {
    if (type != block_next_tag || block_bytes == 0
        || (static_cast<const unsigned char*>(addr) >= base_
            && static_cast<const unsigned char*>(addr) < base_ + state_bytes))
      return;
    // A block pointer outside the state: a block's `next`, so a new block (allocated by
    // the current thread).
    block_rec r{static_cast<const unsigned char*>(addr) - next_offset,
      static_cast<int>(blocks.size())};
    blocks.push_back(r);
    q().watched.insert(r.base);
    holds[tslot()][r.id] = 0;
    if (c.tracing())
      c.event("new block " + std::to_string(r.id));
  }

  void on_destroy(const void* addr, const void* type)
  {
    if (addr == waiter_addr)
      state_deleted = true;
    if (type != block_next_tag)
      return;
    if (block_rec* r = block_of(addr); r && r->base + next_offset == addr)
    {
      r->deleted = true;
      if (c.tracing())
        c.event("delete " + bname(*r));
    }
  }

  void thread_start() { holds[tslot()] = holds[checker::slot(setup_tid)]; }

  void on_access(const checker::access& a)
  {
    touch(a.addr, "atomic access");
    if (a.addr == handles_addr && a.read && a.value_read == 1 && a.wrote && a.value_written == 0)
      state_deleting = true; // release() of the last handle: `delete this` follows
    // Claims (a sender's fetch_add on tail_ that saw it open) and publications (READY
    // stored in a slot's state), for the count of parks on a busy head.
    if (a.addr == tail_addr && a.read && a.wrote && c.tid() != consumer_tid
        && a.value_written == a.value_read + 2 && !(a.value_read & 1))
    {
      ++claims;
      claim_clock = c.clock();
    }
    if (a.wrote && !a.read && a.value_written == 1)
      if (block_rec* r = block_of(a.addr))
      {
        const auto off = static_cast<std::size_t>(static_cast<const unsigned char*>(a.addr) - r->base);
        if (std::find(state_offsets.begin(), state_offsets.end(), off) != state_offsets.end())
          ++publishes;
      }
    if (a.type == block_next_tag)
    {
      if (a.read && a.value_read)
        obtain(reinterpret_cast<const void*>(a.value_read));
      // recycle() starts with next.store(nullptr) by the receiver: a new incarnation.
      if (a.wrote && !a.read && a.value_written == 0 && c.tid() == consumer_tid)
        if (block_rec* r = block_of(a.addr); r && r->base + next_offset == a.addr)
        {
          ++r->incarnation;
          holds[tslot()][r->id] = r->incarnation;
          if (c.tracing())
            c.event("recycle " + bname(*r));
        }
    }
    if (a.addr == waiter_addr && a.wrote && a.value_written != a.value_read)
    {
      if (a.read && a.value_read)
        op_at(a.value_read).parked = false;
      if (a.value_written)
        parked(op_at(a.value_written));
    }
  }

  model_op& op_at(std::uint64_t v) { return *reinterpret_cast<model_op*>(v); }

  // ---- operations and the scheduler --------------------------------------------------

  model_op& new_op()
  {
    c.check(next_op < max_ops, "scenario: too many receives");
    model_op& o = ops[static_cast<std::size_t>(next_op++)];
    o.started = true;
    return o;
  }

  void parked(model_op& o)
  {
    if (c.tid() != consumer_tid)
      c.fail("an operation parked by a sender");
    if (sched.unassigned <= 0 || o.work_counted)
      c.fail("work: op " + std::to_string(o.id) + " parked before work_started() counted it");
    --sched.unassigned;
    o.work_counted = true;
    o.parked = true;
    if (c.tid() == consumer_tid && claims > publishes)
      ++busy_parks;
  }

  void handed(model_op& o, const char* how)
  {
    if (c.tid() != consumer_tid)
      c.yield_point(); // a sender takes the scheduler's lock: a step of its own
    if (o.completions != 0)
      c.fail("op " + std::to_string(o.id) + " handed over twice");
    ++o.completions;
    o.completion_clock = c.clock();
    if (c.tracing())
      c.event(std::string(how) + ": op " + std::to_string(o.id)
              + (o.ec_ ? " (aborted)" : " (success)"));
  }

  /// The receiver's thread runs the operation's completion (its io_context).
  void run(model_op& o)
  {
    c.wait_until([&o] { return o.completions > 0; });
    c.clock().join(o.completion_clock);
    c.check(!o.ran, "op run twice");
    o.ran = true;
    --sched.queued;
    --sched.outstanding;
  }

  // ---- values --------------------------------------------------------------------------

  void slot_write(value& v)
  {
    touch(&v, "value write");
    auto it = slot_access.find(&v);
    if (it != slot_access.end()
        && !c.happened_before(it->second.first, it->second.second, c.clock()))
      c.fail("data race: a slot is written while the receiver's last use of it does not "
             "happen-before (the block was reused too early)");
    v.writer = c.tid();
    v.write_epoch = c.tick();
    slot_access[&v] = {c.tid(), v.write_epoch};
  }

  void slot_read(value& src)
  {
    touch(&src, "value read");
    if (src.destroyed || src.moved_from)
      c.fail("a slot's value is taken twice (or after its destruction)");
    if (!c.happened_before(src.writer, src.write_epoch, c.clock()))
      c.fail("data race: the receiver reads a slot whose value's construction does not "
             "happen-before (publication missing)");
    slot_access[&src] = {c.tid(), c.tick()};
  }

  void slot_destroyed(value& v)
  {
    if (c.tid() >= 0 && c.tid() < max_threads)
      touch(&v, "value destruction");
    if (!v.moved_from && v.producer >= 0 && !v.destroyed)
      ++values[v.producer][v.seq].destroyed_in_channel;
    slot_access[&v] = {c.tid() < 0 ? setup_tid : c.tid(), c.tick()};
  }

  void delivered(const value& v)
  {
    if (v.producer < 0 || v.producer > max_producers || v.seq < 0 || v.seq >= max_seq)
      c.fail("a value nobody sent");
    value_rec& r = values[v.producer][v.seq];
    if (r.delivered != 0)
      c.fail("C1: value " + vname(v) + " delivered twice");
    ++r.delivered;
    if (v.seq <= last_seq[static_cast<std::size_t>(v.producer)])
      c.fail("C2: value " + vname(v) + " delivered after a later value of the same producer");
    last_seq[static_cast<std::size_t>(v.producer)] = v.seq;
    if (!c.happened_before(v.payload_tid, v.payload_epoch, c.clock()))
      c.fail("C6: the producer's writes before send() of " + vname(v)
             + " do not happen-before its receipt");
    if (eof_seen)
      c.fail("C3: value " + vname(v) + " delivered after eof");
    delivered_order.push_back({v.producer, v.seq});
    if (c.tracing())
      c.event("delivered " + vname(v));
  }

  void eof()
  {
    if (eof_seen)
      return; // every later receive sees it too
    eof_seen = true;
    for (int p = 0; p <= max_producers; ++p)
      for (int s = 0; s < max_seq; ++s)
        values[p][s].before_eof = values[p][s].delivered > 0;
    if (c.tracing())
      c.event("eof");
  }

  static std::string vname(const value& v)
  {
    return "P" + std::to_string(v.producer) + "#" + std::to_string(v.seq);
  }

  void final_check_base()
  {
    for (int p = 0; p <= max_producers; ++p)
      for (int s = 0; s < max_seq; ++s)
      {
        const value_rec& r = values[p][s];
        const std::string n = "P" + std::to_string(p) + "#" + std::to_string(s);
        if (r.accepted == 0)
          c.check(r.delivered == 0 && r.destroyed_in_channel == 0,
            "C1: refused value " + n + " was delivered or queued");
        if (r.accepted != 1)
          continue;
        c.check(r.delivered + r.destroyed_in_channel <= 1,
          "C1: accepted value " + n + " delivered and destroyed with the channel");
        if (eof_seen)
          c.check(r.before_eof, "C3: eof was delivered before accepted value " + n);
        if (state_deleted)
          c.check(r.delivered + r.destroyed_in_channel == 1,
            "C1: accepted value " + n + " neither delivered nor destroyed with the channel");
      }
    const long parked = waiter_parked();
    c.check(sched.unassigned == 0, "work: work_started() counted a unit no operation took");
    c.check(sched.outstanding == sched.queued + parked,
      "work: outstanding work " + std::to_string(sched.outstanding) + ", expected "
        + std::to_string(sched.queued) + " queued + " + std::to_string(parked) + " parked");
  }

  long waiter_parked() const
  {
    long n = 0;
    for (auto& o : ops)
      n += o.parked ? 1 : 0;
    return n;
  }
};

inline value::value(value&& o) noexcept
  : producer(o.producer), seq(o.seq), payload_tid(o.payload_tid),
    payload_epoch(o.payload_epoch)
{
  world_base* w = current_world();
  if (w && w->block_of(&o))
    w->slot_read(o);
  o.moved_from = true;
  if (w && w->block_of(this))
    w->slot_write(*this);
}

inline value::~value()
{
  world_base* w = current_world();
  if (w && w->block_of(this))
    w->slot_destroyed(*this);
  destroyed = true;
}

inline void model_op::post()
{
  current_world()->c.fail("model: the portable post() path is not modelled");
}

inline void model_scheduler::work_started()
{
  ++outstanding;
  ++unassigned;
}

inline void model_scheduler::post_immediate_completion(model_op* op, bool)
{
  w_.handed(*op, "post_immediate_completion");
  w_.c.check(!op->work_counted, "work: post_immediate_completion of a counted op");
  ++outstanding;
  ++queued;
}

inline void model_scheduler::post_deferred_completion(model_op* op)
{
  w_.handed(*op, "post_deferred_completion");
  if (!op->work_counted)
  {
    w_.c.check(unassigned > 0, "work: post_deferred_completion of an uncounted op");
    --unassigned;
  }
  op->work_counted = false;
  ++queued;
}

/// A channel implementation: the state template and the moves (the real ones, or a
/// mutant's).
struct real_impl
{
  template <typename T>
  using state = asio_waker::detail::basic_channel_state<T, block_size, checked_atomic,
    model_scheduler, model_op>;
  using moves = asio_waker::detail::channel_moves;
  static constexpr auto not_detached = asio_waker::detail::not_detached;
  static constexpr auto receiver_gone = asio_waker::detail::receiver_gone;
  static constexpr const char* name = "real";
};

template <typename Impl>
using state_of = typename Impl::template state<value>;
template <typename Impl>
using queue_of = std::remove_reference_t<decltype(std::declval<state_of<Impl>&>().queue)>;

template <typename Impl>
class world : public world_base
{
public:
  using state_type = state_of<Impl>;
  using queue_type = queue_of<Impl>;
  using moves = typename Impl::moves;
  using block_type =
    typename pointee_of<decltype(get(tail_block_of<queue_type>{}))>::type;
  using status = decltype(std::declval<queue_type&>().peek());

  state_type* st = nullptr;
  std::vector<std::pair<const void*, std::string>> names_;

  world(checker& ck, int senders) : world_base(ck)
  {
    current_world() = this;
    q().active = true;
    block_bytes = sizeof(block_type);
    alignas(block_type) static unsigned char probe[sizeof(block_type)];
    next_offset = static_cast<std::size_t>(
      reinterpret_cast<unsigned char*>(&reinterpret_cast<block_type*>(probe)->next) - probe);
    block_next_tag = checked_atomic<block_type*>::type_tag();
    c.on_create = [this](const void* a, const void* t) { on_create(a, t); };
    c.on_destroy = [this](const void* a, const void* t) { on_destroy(a, t); };
    c.on_access = [this](const checker::access& a) { on_access(a); };
    c.location_label = [this](const void* a) { return label(a); };

    for (std::size_t k = 0; k < block_size; ++k)
      state_offsets.push_back(static_cast<std::size_t>(
        reinterpret_cast<unsigned char*>(&reinterpret_cast<block_type*>(probe)->slots[k].state)
        - probe));

    // make_channel: the state (one sender, the receiver), then sender copies.
    void* mem = ::operator new(sizeof(state_type));
    q().watched.insert(mem);
    // tail_block_ is constructed before the first block: tell them apart by address.
    alignas(state_type) static unsigned char sprobe[sizeof(state_type)];
    auto* ps = reinterpret_cast<state_type*>(sprobe);
    const auto offset_of = [&](const void* member) {
      return static_cast<std::size_t>(static_cast<const unsigned char*>(member) - sprobe);
    };
    auto* um = static_cast<unsigned char*>(mem);
    base_ = um;
    state_bytes = sizeof(state_type);
    tail_block_addr = um + offset_of(&(ps->queue.*get(tail_block_of<queue_type>{})));
    tail_addr = um + offset_of(&(ps->queue.*get(tail_of<queue_type>{})));
    handles_addr = um + offset_of(&ps->handles);
    names_ = {{waiter_addr = um + offset_of(&ps->waiter), "waiter"},
      {um + offset_of(&ps->handoffs), "handoffs"}, {um + offset_of(&ps->detached), "detached"},
      {um + offset_of(&ps->senders), "senders"}, {handles_addr, "handles"},
      {tail_addr, "tail"}, {tail_block_addr, "tail_block"},
      {um + offset_of(&(ps->queue.*get(close_index_of<queue_type>{}))), "close_index"},
      {um + offset_of(&(ps->queue.*get(linked_end_of<queue_type>{}))), "linked_end"},
      {um + offset_of(&(ps->queue.*get(newest_of<queue_type>{}))), "newest"},
      {um + offset_of(&(ps->queue.*get(last_of<queue_type>{}))), "last"}};
    st = new (mem) state_type();
    st->scheduler = &sched;
    for (int i = 1; i < senders; ++i)
    { // sender's copy constructor
      st->senders.fetch_add(1, std::memory_order_relaxed);
      st->add_ref();
    }
  }

  ~world() override
  {
    c.on_create = nullptr;
    c.on_destroy = nullptr;
    c.on_access = nullptr;
    c.location_label = nullptr;
    current_world() = nullptr;
    if (!state_deleted && !c.failed())
      delete st; // cleanup after the final check (values left are simply destroyed)
    release_quarantine();
  }

  std::string label(const void* a)
  {
    for (auto& [addr, name] : names_)
      if (a == addr)
        return name;
    if (block_rec* r = block_of(a))
    {
      const auto off = static_cast<std::size_t>(static_cast<const unsigned char*>(a) - r->base);
      return "block" + std::to_string(r->id) + "+" + std::to_string(off);
    }
    return "state+" + std::to_string(static_cast<const unsigned char*>(a) - base_);
  }

  // ---- senders -------------------------------------------------------------------------

  bool send(int producer, int seq)
  {
    value v(producer, seq);
    v.payload_tid = c.tid();
    v.payload_epoch = c.tick(); // the plain data the receiver must see
    const bool ok = moves::send(*st, std::move(v));
    values[producer][seq].accepted = ok ? 1 : 0;
    if (c.tracing())
      c.event("send " + vname(v) + (ok ? " accepted" : " refused"));
    return ok;
  }

  void drop_sender()
  {
    if (st->senders.fetch_sub(1, std::memory_order_acq_rel) == 1)
      moves::close(*st);
    st->release();
  }

  // ---- the receiver ----------------------------------------------------------------------

  enum class received
  {
    value,
    eof,
    aborted
  };

  // The receive slot's type (basic_channel_core::receive_slot) and the core type, as
  // named by the slot's `take` pointer.
  using slot_type = typename state_type::receive_slot;
  template <typename F>
  struct first_arg;
  template <typename C, typename S>
  struct first_arg<bool (*)(C&, S&, bool)>
  {
    using type = C;
  };
  using core_type = typename first_arg<decltype(slot_type::take)>::type;

  /// detail::take_values with a limit of 1 (channel_service.hpp; mirrored because it is
  /// written against the real queue's head_status): the head's value into `into`, or
  /// the end of the stream, or nothing.
  struct take_out
  {
    bool done = false;
    std::size_t count = 0;
    bool end = false;
  };
  take_out take_one(std::optional<value>& into)
  {
    const status s = st->queue.peek();
    if (s == status::value)
    {
      into.emplace(std::move(st->queue.front()));
      st->queue.pop();
      delivered(*into); // bound to its receive: C1/C2 are about this order
      return {true, 1, false};
    }
    if (s == status::eof)
    {
      eof();
      return {true, 0, true};
    }
    return {};
  }

  /// receive_op::take_for: into the operation (the consumer owns it) or into the
  /// state's storage for a handed-over receive.
  static bool take_for(core_type& core, const slot_type& r, bool into_op) noexcept
  {
    auto& w = *static_cast<world*>(current_world());
    auto& state = static_cast<state_type&>(core);
    if (into_op)
    {
      model_op& op = *r.op;
      const take_out t = w.take_one(op.val);
      op.bound_done = t.done;
      op.bound_count = t.count;
      op.bound_end = t.end;
      return t.done;
    }
    const take_out t = w.take_one(state.handed_value);
    state.handed_count = t.count;
    state.handed_ec = t.end ? asio_waker::error_code(asio_waker::net::error::eof)
                            : asio_waker::error_code();
    return t.done;
  }

  /// async_receive (one value) and its completion, run to the end.
  received receive() { return finish(start()); }

  /// Runs a started receive's completion (the receiver's io_context), to the end.
  received finish(model_op* op)
  {
    for (;;)
    {
      run(*op);
      received r = complete(op);
      if (op)
        return r;
      op = start(); // parks again: a new receive, which takes a handle if it waits
      release_ref(); // then the handed-over one gives its handle back
    }
  }

  /// channel_service::async_receive's step on the channel (channel_moves::start).
  model_op* start()
  {
    model_op& op = new_op();
    op.number = st->receives_started + 1; // start() counts it
    moves::start(*st, slot_type{&op, op.number, &take_for, nullptr, 1}, false);
    return &op;
  }

  /// The completion (receive_completion::operator()); op becomes null when it parks
  /// again.
  received complete(model_op*& op)
  {
    if (op->ec_)
      return received::aborted; // aborted: it took nothing, and holds no handle
    if (op->bound_done) // completed when it started: its values are in it, no handle
      return invoke(op->bound_count, op->bound_end, op->val);
    // Handed over: it holds the handle its wait took.
    received r = received::aborted;
    if (moves::finish_handed(*st, op->number))
    {
      const std::size_t count = st->handed_count;
      const bool end = count == 0 && st->handed_ec == asio_waker::net::error::eof;
      moves::start_behind(*st);
      std::optional<value> v = std::move(st->handed_value);
      st->handed_value.reset();
      r = invoke(count, end, v);
    }
    else if (moves::may_park_again(*st, op->number))
    {
      op = nullptr;
      return r;
    }
    else
      moves::start_behind(*st);
    release_ref();
    return r;
  }

  received invoke(std::size_t count, bool end, std::optional<value>& v)
  {
    if (count != 0 && v)
    {
      v.reset();
      return received::value;
    }
    if (end)
      return received::eof;
    c.fail("a receive completed with neither a value nor the end of the stream");
    return received::aborted;
  }

  /// Receives until eof (or an abort); returns the number of values.
  int receive_until_eof()
  {
    int n = 0;
    for (;;)
    {
      received r = receive();
      if (r != received::value)
        return n;
      ++n;
    }
  }

  /// basic_receiver::try_receive.
  std::optional<std::pair<int, int>> try_receive()
  {
    auto& queue = st->queue;
    for (;;)
    {
      moves::resolve(*st);
      const status head = queue.peek();
      if (st->handed.op && !st->handed_taken)
      {
        if (head != status::busy)
          return std::nullopt;
        std::this_thread::yield();
        continue;
      }
      switch (head)
      {
      case status::value:
      {
        value v(std::move(queue.front()));
        queue.pop();
        delivered(v);
        return std::pair{v.producer, v.seq};
      }
      case status::busy:
        std::this_thread::yield();
        break;
      default:
        return std::nullopt;
      }
    }
  }

  void close() { moves::close(*st); }

  /// Starts a receive without waiting (a pending async_receive).
  model_op* start_pending() { return start(); }


  void drop_receiver()
  {
    moves::detach(*st, Impl::receiver_gone);
    receiver_dropped = true;
    st->release();
  }

  void release_ref() { st->release(); }

  void final_check() { final_check_base(); }
};

} // namespace chan
} // namespace proofs

PROOFS_CHANNEL_ROB(proofs::chan::queue_of<proofs::chan::real_impl>)

// The mutants: the same moves and queue, from the generated copies.
#define PROOFS_MUTANT_IMPL(M)                                                           \
  namespace proofs::chan {                                                                 \
  struct M##_impl                                                                       \
  {                                                                                        \
    template <typename T>                                                                  \
    using state = mutant_##M::asio_waker::detail::basic_channel_state<T, block_size,     \
      checked_atomic, model_scheduler, model_op>;                                          \
    using moves = mutant_##M::asio_waker::detail::channel_moves;                        \
    static constexpr auto not_detached = mutant_##M::asio_waker::detail::not_detached;    \
    static constexpr auto receiver_gone = mutant_##M::asio_waker::detail::receiver_gone;  \
    static constexpr const char* name = #M;                                              \
  };                                                                                       \
  }                                                                                        \
  PROOFS_CHANNEL_ROB(proofs::chan::queue_of<proofs::chan::M##_impl>)
PROOFS_CHANNEL_MUTANT_LIST(PROOFS_MUTANT_IMPL)

namespace proofs {
namespace chan {

// ---- scenarios ----------------------------------------------------------------------------

template <typename Impl>
struct scenario
{
  using W = world<Impl>;
  std::string name;
  int senders; // sender handles at the start (one per producer thread)
  std::vector<std::function<void(W&)>> threads;
  std::function<void(W&)> check; // after the threads, before the common final check
  int bound_sc = -1;             // preemption bounds (-1: every interleaving)
  int bound_weak = -1;
  int stale_weak = -1; // stale reads per execution in weak mode (-1: unbounded)
  std::function<void(W&)> setup; // before the threads start (as the setup thread)
};

template <typename Impl>
std::vector<scenario<Impl>> scenarios()
{
  using W = world<Impl>;
  using R = typename W::received;
  std::vector<scenario<Impl>> s;
  auto expect = [](W& w, bool ok, const char* what) {
    if (!ok)
      w.c.fail(std::string("scenario: ") + what);
  };

  // The receiver moves past a block while a producer, stalled after its claim, still
  // walks through it: the block may be recycled only once that producer cannot reach it
  // (observed_tail). Two values sent before the threads start fill the first block.
  s.push_back({"recycle_vs_stalled_walk", 3,
    {[expect](W& w) {
       for (int i = 0; i < 4; ++i)
         expect(w, w.receive() == R::value, "a receive did not get a value");
     },
      [](W& w) { w.send(1, 0); }, [](W& w) { w.send(2, 0); }},
    [expect](W& w) { expect(w, w.delivered_order.size() == 4, "4 values delivered"); }, 2, 1,
    2,
    [](W& w) {
      w.send(3, 0);
      w.send(3, 1);
    }});

  // 2 producers x 2 values vs receive: every value, each producer's in order.
  s.push_back({"two_producers_two_values", 2,
    {[expect](W& w) {
       for (int i = 0; i < 4; ++i)
         expect(w, w.receive() == R::value, "a receive did not get a value");
     },
      [](W& w) {
        w.send(1, 0);
        w.send(1, 1);
      },
      [](W& w) {
        w.send(2, 0);
        w.send(2, 1);
      }},
    [expect](W& w) { expect(w, w.delivered_order.size() == 4, "4 values delivered"); }, 2, 1,
    2, nullptr});

  // send vs park vs close: the receiver parks, then closes while the sender sends; it
  // then drains to eof. A send either lands before eof or is refused.
  s.push_back({"send_vs_park_vs_close", 1,
    {[expect](W& w) {
       expect(w, w.receive() == R::value, "the first receive did not get a value");
       w.close();
       w.receive_until_eof();
       expect(w, w.eof_seen, "no eof after close");
     },
      [](W& w) {
        w.send(1, 0);
        w.send(1, 1);
        w.send(1, 2);
      }},
    nullptr, 2, 2, -1, nullptr});

  // last-sender drop vs receive: the stream ends when both senders are gone, after both
  // values; then the receiver goes too and the last handle deletes the state.
  s.push_back({"last_sender_drop_vs_receive", 2,
    {[expect](W& w) {
       const int n = w.receive_until_eof();
       expect(w, n == 2 && w.eof_seen, "both values, then eof");
       w.drop_receiver();
     },
      [](W& w) {
        w.send(1, 0);
        w.drop_sender();
      },
      [](W& w) {
        w.send(2, 0);
        w.drop_sender();
      }},
    [expect](W& w) { expect(w, w.state_deleted, "the last handle deleted the state"); }, 2, 2,
    2, nullptr});

  // receiver drop vs send: a pending receive, then the receiver goes while a sender
  // sends and drops; values accepted are destroyed with the channel, none delivered.
  s.push_back({"receiver_drop_vs_send", 1,
    {[expect](W& w) {
       auto* op = w.start_pending();
       w.drop_receiver();
       // Aborted, or it had completed (a send handed it over) and gets its value.
       w.finish(op);
     },
      [](W& w) {
        w.send(1, 0);
        w.send(1, 1);
        w.drop_sender();
      }},
    [expect](W& w) {
      expect(w, w.state_deleted, "the last handle deleted the state");
      expect(w, w.delivered_order.size() <= 1, "at most the pending receive's value");
    },
    3, 2, -1, nullptr});

  // A producer stalled between claim and publish: the other's later values wait behind
  // it (busy), the receiver parks, the stalled publication wakes it.
  s.push_back({"stalled_producer", 2,
    {[expect](W& w) {
       for (int i = 0; i < 3; ++i)
         expect(w, w.receive() == R::value, "a receive did not get a value");
     },
      [](W& w) { w.send(1, 0); },
      [](W& w) {
        w.send(2, 0);
        w.send(2, 1);
      }},
    [expect](W& w) { expect(w, w.delivered_order.size() == 3, "3 values delivered"); }, 2, 1,
    2, nullptr});

  // try_receive with a producer stalled after its claim: it must return that value
  // (it yields until the value is published), not "empty".
  s.push_back({"stalled_producer_try_receive", 1,
    {[expect](W& w) {
       // The receiver learns of the claim (happens-after it), then tries.
       w.c.wait_until([&w] { return w.claims > 0; });
       w.c.clock().join(w.claim_clock);
       auto v = w.try_receive();
       expect(w, v && v->first == 1 && v->second == 0,
         "try_receive after a claim returned nothing");
     },
      [](W& w) { w.send(1, 0); }},
    nullptr, -1, -1, -1, nullptr});

  // A receive that a send handed over, then try_receive before its handler runs: the
  // handed-over receive gets the head first (values are bound in start order).
  s.push_back({"handed_over_vs_try_receive", 1,
    {[](W& w) {
       auto* op = w.start_pending();
       w.try_receive();
       w.finish(op);
     },
      [](W& w) {
        w.send(1, 0);
        w.send(1, 1);
      }},
    nullptr, 3, 2, -1, nullptr});

  // A second receive replaces the first while a send may be handing the first over:
  // the first is aborted (parked) or gets its value (handed over; the second waits
  // behind it); the second gets the next value.
  s.push_back({"replaced_receive_vs_send", 1,
    {[expect](W& w) {
       auto* first = w.start_pending();
       auto* second = w.start_pending();
       w.finish(first);
       expect(w, w.finish(second) == R::value, "the newer receive got no value");
     },
      [](W& w) {
        w.send(1, 0);
        w.send(1, 1);
      }},
    nullptr, 3, 2, -1, nullptr});

  return s;
}

inline std::string cli_value(const char* prefix)
{
  const std::size_t n = std::strlen(prefix);
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strncmp(mts.argv[i], prefix, n) == 0)
      return mts.argv[i] + n;
  return {};
}

/// The bounds a scenario runs under: its own, raised by --long (one more preemption,
/// stale reads unbounded), or set by --bound= / --stale=.
template <typename Impl>
options effective_options(const scenario<Impl>& sc, memory_mode mode, options opt)
{
  opt.mode = mode;
  opt.max_preemptions = mode == memory_mode::sc ? sc.bound_sc : sc.bound_weak;
  opt.max_stale = mode == memory_mode::sc ? -1 : sc.stale_weak;
  auto& mts = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < mts.argc; ++i)
    if (std::strcmp(mts.argv[i], "--long") == 0)
    {
      if (opt.max_preemptions >= 0)
        ++opt.max_preemptions;
      opt.max_stale = -1;
    }
  if (auto v = cli_value("--bound="); !v.empty())
    opt.max_preemptions = std::atoi(v.c_str());
  if (auto v = cli_value("--stale="); !v.empty())
    opt.max_stale = std::atoi(v.c_str());
  if (opt.max_steps < 3000)
    opt.max_steps = 3000;
  return opt;
}

template <typename Impl>
result run_scenario(const scenario<Impl>& sc, memory_mode mode, options opt,
  std::uint64_t* busy_execs = nullptr)
{
  checker ck;
  opt = effective_options(sc, mode, opt);
  std::uint64_t busy = 0;
  auto factory = [&]() -> execution {
    auto w = std::make_shared<world<Impl>>(ck, sc.senders);
    if (sc.setup)
      sc.setup(*w);
    execution ex;
    for (auto& t : sc.threads)
      ex.threads.push_back([w, t] {
        w->thread_start();
        t(*w);
      });
    ex.final_check = [w, &sc, &busy] {
      if (sc.check)
        sc.check(*w);
      w->final_check();
      if (w->busy_parks > 0)
        ++busy;
    };
    return ex;
  };
  result r = ck.explore(factory, opt);
  if (busy_execs)
    *busy_execs = busy;
  return r;
}

inline std::string bound_name(const options& o)
{
  std::string s = o.max_preemptions < 0 ? std::string("every interleaving")
                                        : "preemptions <= " + std::to_string(o.max_preemptions);
  if (o.mode == memory_mode::weak)
    s += o.max_stale < 0 ? ", stale reads unbounded"
                         : ", stale reads <= " + std::to_string(o.max_stale);
  return s;
}

} // namespace chan
} // namespace proofs

using namespace proofs;
using namespace proofs::chan;

BOOST_AUTO_TEST_CASE(real_channel_all_scenarios)
{
  const std::string only = cli_value("--only=");
  const std::string modes = cli_value("--mode=");
  for (memory_mode mode : {memory_mode::sc, memory_mode::weak})
  {
    const char* tag = mode == memory_mode::sc ? "sc" : "weak";
    if (!modes.empty() && modes != tag)
      continue;
    std::uint64_t total = 0;
    for (auto& sc : scenarios<real_impl>())
    {
      if (!only.empty() && sc.name != only)
        continue;
      std::uint64_t busy = 0;
      result r = run_scenario(sc, mode, options{}, &busy);
      std::cout << "channel[" << tag << "] " << sc.name << ": " << r.executions
                << " executions, max " << r.max_choices << " choice points ("
                << bound_name(effective_options(sc, mode, options{})) << ")";
      if (sc.name == "stalled_producer")
        std::cout << "; the receiver parked on a busy head in " << busy << " of them";
      std::cout << (r.bounded ? " (BOUNDED)" : "") << (r.failed ? "  FAILED" : "")
                << std::endl;
      total += r.executions;
      BOOST_TEST(!r.bounded);
      if (sc.name == "stalled_producer")
        BOOST_TEST(busy > 0u, "the stalled-producer case (busy head) is reached");
      BOOST_TEST(!r.failed, sc.name << " [" << tag << "]: " << r.message << "\n" << r.trace);
    }
    std::cout << "channel[" << tag << "] total: " << total << " executions" << std::endl;
  }
}

template <typename Impl>
void expect_caught()
{
  bool caught = false;
  for (memory_mode mode : {memory_mode::weak, memory_mode::sc})
  {
    for (auto& sc : scenarios<Impl>())
    {
      result r = run_scenario(sc, mode, options{});
      if (r.failed)
      {
        std::cout << "channel mutant " << Impl::name << ": caught by " << sc.name << " ["
                  << (mode == memory_mode::sc ? "sc" : "weak") << "] after " << r.executions
                  << " executions: " << r.message << '\n'
                  << r.trace << std::flush;
        caught = true;
        break;
      }
    }
    if (caught)
      break;
  }
  if (!caught)
    std::cout << "channel mutant " << Impl::name << ": NOT caught" << std::endl;
  BOOST_TEST(caught, "channel mutant " << Impl::name << " was NOT caught");
}

#define PROOFS_MUTANT_TEST(name)                                                           \
  BOOST_AUTO_TEST_CASE(caught_##name) { expect_caught<proofs::chan::name##_impl>(); }
PROOFS_CHANNEL_MUTANT_LIST(PROOFS_MUTANT_TEST)

#define PROOFS_MUTANT_MISSING_TEST(name)                                                   \
  BOOST_AUTO_TEST_CASE(caught_##name)                                                      \
  {                                                                                        \
    BOOST_TEST(false, "channel mutant " #name " could not be generated: its text is no "   \
                      "longer in the header (update test/proofs/CMakeLists.txt)");          \
  }
PROOFS_CHANNEL_MUTANT_MISSING(PROOFS_MUTANT_MISSING_TEST)
