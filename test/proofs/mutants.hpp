//
// test/proofs/mutants.hpp
//
// Deliberately broken copies of asio_waker::detail::basic_waker_state (test-only). Each
// one differs from the real state machine in ONE place; the interleaving checker must
// find a violation in each, which shows that it would catch that class of defect in the
// real code. The real code is NOT copied here for the passing runs: those use
// asio_waker/detail/waker_state.hpp itself. A mutant has the real state's interface
// (op_type, park_result, wake, try_consume_permit, park, cancel), so the checker drives
// it through the same, real, waker_service functions.
//

#ifndef ASIO_WAKER_PROOFS_MUTANTS_HPP
#define ASIO_WAKER_PROOFS_MUTANTS_HPP

#include <atomic>
#include <cstdint>

namespace proofs {
namespace mutants {

enum class kind
{
  wake_load_on_notified, // wake(): returns after a plain load that sees NOTIFIED
  wake_exchange,         // wake(): one unconditional exchange(NOTIFIED)
  wake_release_only,     // wake(): CAS with memory_order_release (no acquire of the op)
  consume_relaxed,       // try_consume_permit()/park(): exchange with memory_order_relaxed
  cancel_plain_store,    // cancel(): load, then a plain store of EMPTY (no CAS)
  park_plain_store,      // park(): load, then a plain store of the op (no CAS)
  park_drops_replaced,   // park(): forgets to return the replaced operation
};

inline const char* name(kind k)
{
  switch (k)
  {
  case kind::wake_load_on_notified:
    return "wake_load_on_notified";
  case kind::wake_exchange:
    return "wake_exchange";
  case kind::wake_release_only:
    return "wake_release_only";
  case kind::consume_relaxed:
    return "consume_relaxed";
  case kind::cancel_plain_store:
    return "cancel_plain_store";
  case kind::park_plain_store:
    return "park_plain_store";
  case kind::park_drops_replaced:
    return "park_drops_replaced";
  }
  return "?";
}

template <kind K>
struct mutant
{
  template <typename Op, typename Atomic>
  class state
  {
  public:
    using op_type = Op;

    static constexpr std::uintptr_t empty = 0;
    static constexpr std::uintptr_t notified = 1;
    struct park_result
    {
      Op* replaced;
      bool consumed_permit;
    };

    state() noexcept : word_(empty) {}

    Op* wake() noexcept
    {
      if constexpr (K == kind::wake_exchange)
      {
        std::uintptr_t prev = word_.exchange(notified, std::memory_order_acq_rel);
        return is_op(prev) ? to_op(prev) : nullptr;
      }
      std::uintptr_t cur = word_.load(std::memory_order_relaxed);
      for (;;)
      {
        if constexpr (K == kind::wake_load_on_notified)
          if (cur == notified)
            return nullptr;
        const std::uintptr_t next = is_op(cur) ? empty : notified;
        constexpr auto order = K == kind::wake_release_only ? std::memory_order_release
                                                            : std::memory_order_acq_rel;
        if (word_.compare_exchange_weak(cur, next, order, std::memory_order_relaxed))
          return is_op(cur) ? to_op(cur) : nullptr;
      }
    }

    bool try_consume_permit() noexcept
    {
      if (word_.load(std::memory_order_relaxed) != notified)
        return false;
      word_.exchange(empty, consume_order);
      return true;
    }

    park_result park(Op* op) noexcept
    {
      const std::uintptr_t mine = reinterpret_cast<std::uintptr_t>(op);
      std::uintptr_t cur = word_.load(std::memory_order_relaxed);
      for (;;)
      {
        if (cur == notified)
        {
          word_.exchange(empty, consume_order);
          return {nullptr, true};
        }
        if constexpr (K == kind::park_plain_store)
        {
          word_.store(mine, std::memory_order_release);
          return {is_op(cur) ? to_op(cur) : nullptr, false};
        }
        if (word_.compare_exchange_weak(
              cur, mine, std::memory_order_acq_rel, std::memory_order_relaxed))
        {
          if constexpr (K == kind::park_drops_replaced)
            return {nullptr, false};
          return {is_op(cur) ? to_op(cur) : nullptr, false};
        }
      }
    }

    Op* cancel() noexcept
    {
      std::uintptr_t cur = word_.load(std::memory_order_relaxed);
      if (!is_op(cur))
        return nullptr;
      if constexpr (K == kind::cancel_plain_store)
      {
        word_.store(empty, std::memory_order_relaxed);
        return to_op(cur);
      }
      if (word_.compare_exchange_strong(
            cur, empty, std::memory_order_acquire, std::memory_order_relaxed))
        return to_op(cur);
      return nullptr;
    }

  private:
    static constexpr std::memory_order consume_order =
      K == kind::consume_relaxed ? std::memory_order_relaxed : std::memory_order_acquire;
    static bool is_op(std::uintptr_t v) noexcept { return v > notified; }
    static Op* to_op(std::uintptr_t v) noexcept { return reinterpret_cast<Op*>(v); }
    Atomic word_;
  };
};

} // namespace mutants
} // namespace proofs

#endif // ASIO_WAKER_PROOFS_MUTANTS_HPP
