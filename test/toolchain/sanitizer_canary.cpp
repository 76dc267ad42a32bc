// Sanitizer canary: deliberately commits the bug class the configured
// sanitizer must catch, so that ctest proves the sanitizer is really active in
// this build: each mode's test passes only if the output matches the
// sanitizer's report (PASS_REGULAR_EXPRESSION in test/CMakeLists.txt; the exit
// status is not checked), and fails on "canary: sanitizer did not fire".
// Built only when ASIO_WAKER_SANITIZE is set.
//   sanitizer_canary race      data race              (TSan)
//   sanitizer_canary uaf       heap-use-after-free    (ASan)
//   sanitizer_canary leak      memory leak            (LSan)
//   sanitizer_canary overflow  signed int overflow    (UBSan)
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>

namespace {
int shared_counter = 0; // deliberately unsynchronised
volatile int sink = 0;
} // namespace

int main(int argc, char** argv)
{
  if (argc < 2)
    return 2;
  const char* mode = argv[1];
  if (std::strcmp(mode, "race") == 0)
  {
    std::thread a([] {
      for (int i = 0; i < 1000; ++i)
        ++shared_counter;
    });
    std::thread b([] {
      for (int i = 0; i < 1000; ++i)
        ++shared_counter;
    });
    a.join();
    b.join();
    sink = shared_counter;
  }
  else if (std::strcmp(mode, "uaf") == 0)
  {
    int* p = new int(1);
    delete p;
    sink = *p;
  }
  else if (std::strcmp(mode, "leak") == 0)
  {
    int* volatile p = new int[16];
    p = nullptr;
    (void)p;
  }
  else if (std::strcmp(mode, "overflow") == 0)
  {
    volatile int big = std::numeric_limits<int>::max();
    int r = big + 1;
    sink = r;
  }
  else
  {
    return 2;
  }
  std::puts("canary: sanitizer did not fire");
  return 0;
}
