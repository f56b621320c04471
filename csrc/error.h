// The error plumbing of the C ABI (csrc/dist.cpp, csrc/split_bn.cpp): a C++ exception's message
// copied into the caller's buffer, which the Rust side reads (src/dist.rs, `message`).
#pragma once

#include <cstring>
#include <exception>
#include <string>

namespace unmix_ffi {

inline void write_error(char* err, int len, const std::string& msg) {
  if (err && len > 0) {
    std::strncpy(err, msg.c_str(), len - 1);
    err[len - 1] = '\0';
  }
}

// Runs f; returns 0, or -1 with the exception's message in err.
template <typename F>
int guarded(char* err, int len, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    write_error(err, len, e.what());
  } catch (...) {
    write_error(err, len, "unknown C++ exception");
  }
  return -1;
}

}  // namespace unmix_ffi
