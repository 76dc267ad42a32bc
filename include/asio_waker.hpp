//
// asio_waker.hpp: the whole library.
//

#ifndef ASIO_WAKER_HPP
#define ASIO_WAKER_HPP

#include <asio_waker/atomic_waker.hpp>
#include <asio_waker/channel.hpp>

#endif // ASIO_WAKER_HPP
