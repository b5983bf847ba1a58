#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace runnel::detail {

void assert_failed(const char* cond, const char* why, std::source_location where) {
    std::fprintf(
      stderr,
      "runnel: assertion failed: %s (%s) at %s:%u in %s\n",
      cond,
      why,
      where.file_name(),
      static_cast<unsigned>(where.line()),
      where.function_name());
    std::fflush(stderr);
    std::abort();
}

} // namespace runnel::detail
