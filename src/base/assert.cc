#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace runnel::detail {

void assert_failed(const char* cond, const char* why, const char* file, int line, const char* function) {
    std::fprintf(stderr, "runnel: assertion failed: %s (%s) at %s:%d in %s\n", cond, why, file, line,
                 function);
    std::fflush(stderr);
    std::abort();
}

} // namespace runnel::detail
