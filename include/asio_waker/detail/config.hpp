//
// asio_waker/detail/config.hpp
//
// Which Asio the library is built on, and the only place that knows.
//
// By default asio_waker uses Boost.Asio (`boost::asio`, `boost::system::error_code`).
// Define ASIO_WAKER_STANDALONE_ASIO before including any asio_waker header to use
// standalone Asio instead (`::asio`, `std::error_code`, no Boost at all). Every other
// file names the Asio in use as `asio_waker::net` and its error code as
// `asio_waker::error_code`, and uses the ASIO_WAKER_* spellings of the few Asio macros
// below. Both flavours take the same code path on every tested release (Boost.Asio 1.81
// and 1.38.0, standalone Asio 1.22.1 and 1.38.2): nothing here depends on the version.
//

#ifndef ASIO_WAKER_DETAIL_CONFIG_HPP
#define ASIO_WAKER_DETAIL_CONFIG_HPP

#if defined(ASIO_WAKER_STANDALONE_ASIO)

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/detail/bind_handler.hpp>
#include <asio/detail/fenced_block.hpp>
#include <asio/detail/handler_alloc_helpers.hpp>
#include <asio/detail/handler_cont_helpers.hpp>
#include <asio/detail/handler_tracking.hpp>
#include <asio/detail/handler_type_requirements.hpp>
#include <asio/detail/handler_work.hpp>
#include <asio/detail/io_object_impl.hpp>
#include <asio/detail/memory.hpp>
#include <asio/detail/non_const_lvalue.hpp>
#include <asio/detail/op_queue.hpp>
#include <asio/detail/scheduler.hpp>
#include <asio/detail/scheduler_operation.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/executor.hpp>
#include <asio/io_context.hpp>
#include <asio/is_executor.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>
#include <asio/thread_pool.hpp>
#include <asio/version.hpp>

#include <system_error>

#define ASIO_WAKER_ASIO_FLAVOUR "standalone Asio"
#define ASIO_WAKER_ASIO_VERSION ASIO_VERSION

#define ASIO_WAKER_COMPLETION_TOKEN_FOR(sig) ASIO_COMPLETION_TOKEN_FOR(sig)
#define ASIO_WAKER_WAIT_HANDLER_CHECK(handler_type, handler)                               \
  ASIO_WAIT_HANDLER_CHECK(handler_type, handler)
#define ASIO_WAKER_DEFINE_HANDLER_PTR(op) ASIO_DEFINE_HANDLER_PTR(op)
#define ASIO_WAKER_HANDLER_CREATION(args) ASIO_HANDLER_CREATION(args)
#define ASIO_WAKER_HANDLER_OPERATION(args) ASIO_HANDLER_OPERATION(args)
#define ASIO_WAKER_HANDLER_COMPLETION(args) ASIO_HANDLER_COMPLETION(args)
#define ASIO_WAKER_HANDLER_INVOCATION_BEGIN(args) ASIO_HANDLER_INVOCATION_BEGIN(args)
#define ASIO_WAKER_HANDLER_INVOCATION_END ASIO_HANDLER_INVOCATION_END

namespace asio_waker {
namespace net = ::asio;
using error_code = std::error_code;
namespace detail {
namespace handler_cont_helpers = ::asio_handler_cont_helpers;
} // namespace detail
} // namespace asio_waker

#else // Boost.Asio

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_tracking.hpp>
#include <boost/asio/detail/handler_type_requirements.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/io_object_impl.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/non_const_lvalue.hpp>
#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/scheduler_operation.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution/executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/version.hpp>
#include <boost/system/error_code.hpp>

#define ASIO_WAKER_ASIO_FLAVOUR "Boost.Asio"
#define ASIO_WAKER_ASIO_VERSION BOOST_ASIO_VERSION

#define ASIO_WAKER_COMPLETION_TOKEN_FOR(sig) BOOST_ASIO_COMPLETION_TOKEN_FOR(sig)
#define ASIO_WAKER_WAIT_HANDLER_CHECK(handler_type, handler)                               \
  BOOST_ASIO_WAIT_HANDLER_CHECK(handler_type, handler)
#define ASIO_WAKER_DEFINE_HANDLER_PTR(op) BOOST_ASIO_DEFINE_HANDLER_PTR(op)
#define ASIO_WAKER_HANDLER_CREATION(args) BOOST_ASIO_HANDLER_CREATION(args)
#define ASIO_WAKER_HANDLER_OPERATION(args) BOOST_ASIO_HANDLER_OPERATION(args)
#define ASIO_WAKER_HANDLER_COMPLETION(args) BOOST_ASIO_HANDLER_COMPLETION(args)
#define ASIO_WAKER_HANDLER_INVOCATION_BEGIN(args) BOOST_ASIO_HANDLER_INVOCATION_BEGIN(args)
#define ASIO_WAKER_HANDLER_INVOCATION_END BOOST_ASIO_HANDLER_INVOCATION_END

namespace asio_waker {
namespace net = ::boost::asio;
using error_code = ::boost::system::error_code;
namespace detail {
namespace handler_cont_helpers = ::boost_asio_handler_cont_helpers;
} // namespace detail
} // namespace asio_waker

#endif // ASIO_WAKER_STANDALONE_ASIO

#endif // ASIO_WAKER_DETAIL_CONFIG_HPP
