//
// asio_waker/detail/object_registry.hpp
//
// The live I/O objects of one service, and the live services of one kind.
//
// A service knows every object of its execution context, so that shutting the context
// down reaches each pending operation (as Asio's timers are destroyed with their
// scheduler). A cancellation handler installed in a slot may be emitted after its object,
// or even its whole execution context, is gone; it names its object by an id that is
// never reused, and asks is_live() before touching it.
//

#ifndef ASIO_WAKER_DETAIL_OBJECT_REGISTRY_HPP
#define ASIO_WAKER_DETAIL_OBJECT_REGISTRY_HPP

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace asio_waker {
namespace detail {

template <typename Impl>
class object_registry
{
public:
  object_registry()
  {
    std::lock_guard<std::mutex> lock(all().mutex);
    all().registries.insert(this);
  }

  ~object_registry()
  {
    std::lock_guard<std::mutex> lock(all().mutex);
    all().registries.erase(this);
  }

  object_registry(const object_registry&) = delete;
  object_registry& operator=(const object_registry&) = delete;

  /// Registers `impl`; returns its id, unique in the process.
  std::uint64_t add(Impl& impl)
  {
    static std::atomic<std::uint64_t> last_id{0};
    const std::uint64_t id = last_id.fetch_add(1, std::memory_order_relaxed) + 1;
    std::lock_guard<std::mutex> lock(mutex_);
    live_.emplace(id, &impl);
    return id;
  }

  void remove(std::uint64_t id) noexcept
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.erase(id);
  }

  /// Forgets every object (the service has shut down, its objects are detached).
  void clear() noexcept
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.clear();
  }

  /// Calls f(impl) for every registered object, under the registry's mutex (f must not
  /// add or remove objects).
  template <typename F>
  void for_each(F f)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& entry : live_)
      f(*entry.second);
  }

  /// Whether object `id` of `registry` still exists; `registry` may have been destroyed
  /// already. Only the consumer destroys an object, and only the consumer asks, so a
  /// true answer stays true while the caller acts on it.
  static bool is_live(const object_registry* registry, std::uint64_t id)
  {
    std::lock_guard<std::mutex> all_lock(all().mutex);
    if (all().registries.count(registry) == 0)
      return false;
    std::lock_guard<std::mutex> lock(registry->mutex_);
    return registry->live_.count(id) != 0;
  }

private:
  // The registries alive in the process. Never destroyed: a cancellation signal may be
  // emitted during static destruction.
  struct all_type
  {
    std::mutex mutex;
    std::unordered_set<const object_registry*> registries;
  };

  static all_type& all()
  {
    static all_type* const instance = new all_type;
    return *instance;
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Impl*> live_;
};

} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_DETAIL_OBJECT_REGISTRY_HPP
