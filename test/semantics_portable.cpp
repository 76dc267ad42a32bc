//
// test/semantics_portable.cpp: semantics.cpp again, with the portable hand-off forced
// on an io_context (post through the executor, an executor_work_guard while a wait is
// pending), the path that execution contexts without an Asio scheduler take.
//

#define ASIO_WAKER_DISABLE_SCHEDULER_HANDOFF
#define BOOST_TEST_MODULE asio_waker semantics(portable hand - off)

// g++ takes the included .cpp for a header and then warns (-Wsubobject-linkage) about
// coroutine frames holding types of the test cases; harmless in one translation unit.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif

#include "semantics.cpp"
