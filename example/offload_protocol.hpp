//
// offload_protocol.hpp
// ~~~~~~~~~~~~~~~~~~~~
//
// The line protocol spoken by offload_server, spawn_server and offload_client.
//
//   request:  <rounds> <text>\n         rounds: 1..max_rounds (decimal), text: printable ASCII
//   reply:    <digest> <text>\n         digest: 16 lowercase hex digits
//   errors:   ERR bad request\n         (the connection stays open)
//             ERR line too long\n       (the server closes the connection)
//
// The digest is deliberately CPU-bound (about `rounds` dependent multiplications), so
// that the servers have a reason to move it off the I/O thread. It is deterministic,
// so clients can check every reply byte for byte.
//

#ifndef ASIO_WAKER_EXAMPLE_OFFLOAD_PROTOCOL_HPP
#define ASIO_WAKER_EXAMPLE_OFFLOAD_PROTOCOL_HPP

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offload {

// Longest accepted request, '\n' included.
constexpr std::size_t max_line = 1024;
constexpr std::uint64_t max_rounds = 10'000'000;

inline constexpr std::string_view bad_request = "ERR bad request\n";
inline constexpr std::string_view line_too_long = "ERR line too long\n";

struct request
{
  std::uint64_t rounds = 0;
  std::string text;
};

inline std::uint64_t digest(std::string_view text, std::uint64_t rounds) noexcept
{
  std::uint64_t h = 0xcbf29ce484222325u; // FNV-1a over the text...
  for (unsigned char c : text)
    h = (h ^ c) * 0x100000001b3u;
  for (std::uint64_t i = 0; i < rounds; ++i) // ...then `rounds` splitmix64 steps.
  {
    h += 0x9e3779b97f4a7c15u;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    h ^= h >> 31;
  }
  return h;
}

// Parses one request line, without its '\n' (a trailing '\r' is tolerated).
inline std::optional<request> parse_request(std::string_view line)
{
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  for (unsigned char c : line)
    if (c < 0x20 || c > 0x7e)
      return std::nullopt;
  auto space = line.find(' ');
  if (space == std::string_view::npos || space == 0)
    return std::nullopt;
  request r;
  auto [end, ec] = std::from_chars(line.data(), line.data() + space, r.rounds);
  if (ec != std::errc{} || end != line.data() + space || r.rounds == 0
      || r.rounds > max_rounds)
    return std::nullopt;
  r.text = line.substr(space + 1);
  return r;
}

inline std::string format_request(std::uint64_t rounds, std::string_view text)
{
  return std::to_string(rounds) + ' ' + std::string(text) + '\n';
}

inline std::string format_reply(std::uint64_t d, std::string_view text)
{
  static constexpr char hex[] = "0123456789abcdef";
  std::string reply(16, '0');
  for (int i = 15; i >= 0; --i, d >>= 4)
    reply[i] = hex[d & 0xf];
  reply += ' ';
  reply += text;
  reply += '\n';
  return reply;
}

} // namespace offload

#endif // ASIO_WAKER_EXAMPLE_OFFLOAD_PROTOCOL_HPP
