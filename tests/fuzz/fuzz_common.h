#pragma once
// Shared by the fuzz harnesses: the libFuzzer entry point's contract is that any input
// either loads or raises kiln::Error; anything else (a crash, a sanitizer report, another
// exception) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace kiln::fuzz {

// A per-process scratch file holding the input (for the readers that take a path).
inline std::string write_scratch(const uint8_t* data, size_t size, const char* tag) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln_fuzz_" + tag + "_" +
                           std::to_string(::getpid());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "kiln fuzz finding: %s\n", what);
  std::abort();
}

}  // namespace kiln::fuzz
