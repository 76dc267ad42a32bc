//
// asio_waker.hpp: the whole library.
//

#ifndef ASIO_WAKER_HPP
#define ASIO_WAKER_HPP

#include <asio_waker/atomic_waker.hpp>

#endif // ASIO_WAKER_HPP
