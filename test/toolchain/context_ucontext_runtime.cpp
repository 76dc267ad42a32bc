// Runtime part of Boost.Context's ucontext backend, for sanitizer builds.
//
// Why this file exists: under ASan/TSan, Boost.Context (used by
// boost::asio::spawn / yield_context) must be compiled with BOOST_USE_UCONTEXT
// (plus BOOST_USE_ASAN or BOOST_USE_TSAN), because the default fcontext
// backend switches stacks behind the sanitizers' back.  The ucontext backend
// is header-only except for a few out-of-line members that the headers only
// declare.  Debian's libboost_context is built for fcontext and does not
// contain them (it only provides stack_traits and the *_fcontext functions),
// so we define them here.  This is our own implementation of what the
// declarations in <boost/context/fiber_ucontext.hpp> and
// <boost/context/continuation_ucontext.hpp> require:
//
//   static fiber_activation_record*& fiber_activation_record::current() noexcept;
//     A per-thread slot holding the activation record of the context that is
//     running on this thread right now.  Before the first switch on a thread
//     it must already point at a record describing the thread's own stack
//     ("main context"), because resume() reads current() as the "from" record.
//   fiber_activation_record_initializer() noexcept / ~...initializer()
//     Declared as the hook that sets up / tears down that main-context record.
//
// The packaged libboost_context may (and should) still be linked: it supplies
// boost::context::stack_traits used by the stack allocators, and defines none
// of the symbols below, so there is no clash.
//
// Build this file (and every translation unit that includes Boost.Context)
// with the same BOOST_USE_UCONTEXT / BOOST_USE_ASAN / BOOST_USE_TSAN macros:
// the layout of the records depends on them.
//
// Not provided: the callcc/continuation API (<boost/context/continuation.hpp>,
// activation_record::current()).  Its header cannot even be included in the
// same translation unit as the fiber one under ucontext (both define
// detail::forced_unwind), and nothing in Asio 1.81 uses it.

#if !defined(BOOST_USE_UCONTEXT)
#error "context_ucontext_runtime.cpp must be compiled with BOOST_USE_UCONTEXT"
#endif

#include <boost/context/fiber.hpp>

#include <memory>

namespace boost {
namespace context {
namespace detail {

namespace {

// Owns the main-context record of one thread and tracks which record is
// running on it.  One instance per thread (thread_local below), created on
// the first use of current() on that thread and destroyed at thread exit, when
// the thread is back on its own stack.  The main record is never deallocated
// through the record's deallocate() (a no-op for main contexts), only here.
struct thread_fiber_state
{
  std::unique_ptr<fiber_activation_record> main_record;
  fiber_activation_record* running = nullptr;

  // The record's default constructor is the "toplevel context" one: it
  // captures the thread's context (getcontext) and, under TSan, the
  // thread's own TSan fiber.  It can only fail on getcontext()/new failure;
  // since current() is noexcept, that terminates, as upstream would.
  thread_fiber_state()
    : main_record(new fiber_activation_record()), running(main_record.get())
  {}

  thread_fiber_state(const thread_fiber_state&) = delete;
  thread_fiber_state& operator=(const thread_fiber_state&) = delete;
};

thread_fiber_state& state_for_this_thread()
{
  thread_local thread_fiber_state state;
  return state;
}

} // namespace

fiber_activation_record*& fiber_activation_record::current() noexcept
{
  return state_for_this_thread().running;
}

fiber_activation_record_initializer::fiber_activation_record_initializer() noexcept
{
  (void)state_for_this_thread();
}

fiber_activation_record_initializer::~fiber_activation_record_initializer() = default;

} // namespace detail
} // namespace context
} // namespace boost
