//
// test/compile_fail/channel_throwing_move.cpp: must NOT compile (contract.md Part 3, C9:
// "T must be nothrow-move-constructible (checked at compile time)").
//
// The build of this file is the test: test/CMakeLists.txt runs it and passes when the
// compiler fails with the line below's message, i.e. at the library's static_assert and
// not for any other reason. With ASIO_WAKER_COMPILE_FAIL_CONTROL defined the move
// constructor is noexcept and the file compiles (checked by the same CMake rule), so the
// test cannot pass because of a typo.
//
// expect: nothrow-move-constructible
//

#include <asio_waker/channel.hpp>

#include <utility>

#if defined(ASIO_WAKER_COMPILE_FAIL_CONTROL)
#define ASIO_WAKER_TEST_MOVE_IS_NOEXCEPT true
#else
#define ASIO_WAKER_TEST_MOVE_IS_NOEXCEPT false
#endif

struct throwing_move
{
  throwing_move() = default;
  throwing_move(throwing_move&&) noexcept(ASIO_WAKER_TEST_MOVE_IS_NOEXCEPT) {}
  throwing_move& operator=(throwing_move&&) noexcept(ASIO_WAKER_TEST_MOVE_IS_NOEXCEPT)
  {
    return *this;
  }
};

int main()
{
  asio_waker::net::io_context ctx;
  auto ch = asio_waker::make_channel<throwing_move>(ctx);
  ch.first.send(throwing_move());
  return ch.second.try_receive() ? 0 : 1;
}
