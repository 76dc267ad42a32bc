# Settings for asio_waker's own tests, examples and benchmarks.
# Included from the root CMakeLists.txt only when one of those is built.
# Provides:
#   asio_waker_test_lib      INTERFACE target the tests link: the flavour under test
#                            (asio_waker::asio_waker, or asio_waker::asio_waker_standalone
#                            with ASIO_WAKER_TEST_STANDALONE) + Threads
#   asio_waker_dev_options   INTERFACE target: warnings (+ -Werror if ASIO_WAKER_WERROR)
#   asio_waker_spawn_support target to link by anything using boost::asio::spawn /
#                            yield_context: Boost::context, plus in sanitizer builds
#                            the ucontext runtime (test/toolchain/context_ucontext_runtime.cpp);
#                            empty with ASIO_WAKER_TEST_STANDALONE (no yield_context there)
#   ASIO_WAKER_TEST_ENVIRONMENT  list of VAR=value for sanitizer runtime options
# and, when ASIO_WAKER_SANITIZE is set, applies the sanitizer flags to every
# target created afterwards in this project (directory scope).

# ---- the flavour under test ---------------------------------------------------
add_library(asio_waker_test_lib INTERFACE)
if(ASIO_WAKER_TEST_STANDALONE)
  target_link_libraries(asio_waker_test_lib INTERFACE asio_waker::asio_waker_standalone Threads::Threads)
  set(_asio_waker_tested "standalone Asio from ${ASIO_WAKER_STANDALONE_ASIO_INCLUDE_DIR}")
else()
  target_link_libraries(asio_waker_test_lib INTERFACE asio_waker::asio_waker Threads::Threads)
  set(_asio_waker_tested "Boost.Asio (Boost ${Boost_VERSION})")
endif()
message(STATUS "asio_waker: tests built against ${_asio_waker_tested}")

# ---- warnings ---------------------------------------------------------------
add_library(asio_waker_dev_options INTERFACE)
target_compile_options(asio_waker_dev_options INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra -Wpedantic>
  $<$<AND:$<BOOL:${ASIO_WAKER_WERROR}>,$<CXX_COMPILER_ID:GNU,Clang,AppleClang>>:-Werror>
  # g++ 12 flags a coroutine frame's class operator new/delete pair (Asio's awaitable
  # frames) as mismatched once it inlines the coroutine: GCC PR middle-end/109224.
  # ASan checks real new/delete mismatches at run time (alloc_dealloc_mismatch).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>)

# ---- sanitizers -------------------------------------------------------------
set(ASIO_WAKER_TEST_ENVIRONMENT "")
set(_asio_waker_ucontext OFF)
if(ASIO_WAKER_SANITIZE STREQUAL "thread")
  set(_san_flags -fsanitize=thread -fno-omit-frame-pointer)
  # TSan does not model std::atomic_thread_fence, which Asio's executor refcounts
  # (detail/atomic_count.hpp) and fenced blocks use. Asio 1.26 (Boost 1.81): make Asio
  # use its other variants. Asio 1.33+ dropped *_DISABLE_STD_ATOMIC (always std::atomic;
  # the define is then a no-op), and standalone Asio 1.38.2 detects TSan itself
  # (ASIO_HAS_THREAD_SANITIZER: __tsan_acquire instead of the fence, null fenced block).
  # Standalone Asio 1.22.1's ASIO_DISABLE_STD_ATOMIC would include
  # <boost/detail/atomic_count.hpp>, i.e. Boost, so the standalone flavour only turns
  # off the fenced block.
  if(ASIO_WAKER_TEST_STANDALONE)
    add_compile_definitions(ASIO_DISABLE_FENCED_BLOCK)
  else()
    add_compile_definitions(BOOST_ASIO_DISABLE_STD_ATOMIC BOOST_ASIO_DISABLE_FENCED_BLOCK)
  endif()
  add_compile_definitions(BOOST_USE_UCONTEXT BOOST_USE_TSAN)
  set(_asio_waker_ucontext ON)
  list(APPEND ASIO_WAKER_TEST_ENVIRONMENT
       "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4")
elseif(ASIO_WAKER_SANITIZE STREQUAL "address")
  # ASan + UBSan (+ LSan, on by default with ASan on Linux).
  # clang 14: -fsanitize=function (part of 'undefined') miscompiles coroutines.
  set(_san_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
      $<$<CXX_COMPILER_ID:Clang,AppleClang>:-fno-sanitize=function>)
  add_compile_definitions(BOOST_USE_UCONTEXT BOOST_USE_ASAN)
  set(_asio_waker_ucontext ON)
  list(APPEND ASIO_WAKER_TEST_ENVIRONMENT
       "ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:strict_string_checks=1"
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
elseif(NOT ASIO_WAKER_SANITIZE STREQUAL "")
  message(FATAL_ERROR "ASIO_WAKER_SANITIZE must be '', 'thread' or 'address' (got '${ASIO_WAKER_SANITIZE}')")
endif()
if(_san_flags)
  add_compile_options(${_san_flags})
  add_link_options(${_san_flags})
  message(STATUS "asio_waker: sanitizer '${ASIO_WAKER_SANITIZE}' with ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
endif()

# ---- yield_context / Boost.Context ------------------------------------------
if(ASIO_WAKER_TEST_STANDALONE)
  add_library(asio_waker_spawn_support INTERFACE)   # no yield_context in standalone Asio
elseif(_asio_waker_ucontext)
  # Sanitizer builds use Boost.Context's ucontext backend (BOOST_USE_UCONTEXT,
  # defined above for every TU); its small out-of-line runtime is not in
  # Debian's fcontext-built libboost_context, so we build it ourselves.
  # libboost_context is still linked for stack_traits (no symbol overlap).
  add_library(asio_waker_spawn_support STATIC
    ${PROJECT_SOURCE_DIR}/test/toolchain/context_ucontext_runtime.cpp)
  target_compile_features(asio_waker_spawn_support PUBLIC cxx_std_20)
  target_link_libraries(asio_waker_spawn_support PUBLIC Boost::context Boost::headers
                                                  PRIVATE asio_waker_dev_options)
else()
  add_library(asio_waker_spawn_support INTERFACE)
  target_link_libraries(asio_waker_spawn_support INTERFACE Boost::context)
endif()
