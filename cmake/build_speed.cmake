# Compile-time settings that keep `make build` short on a small machine (docs/decisions/0006-build-time.md).
#
# RelWithDebInfo (what `make build` uses) keeps line tables and function names (-g1: backtraces,
# perf, addr2line and gdb's `bt` work) but not variable and type information, which costs about a
# quarter of the compile time of the template-heavy files (Beast, Asio, gtest). The Debug build
# (the sanitizer build) uses -g1 as well (below). -DRUNNEL_FULL_DEBUG_INFO=ON restores -g in both.
option(RUNNEL_FULL_DEBUG_INFO "Full debug information (-g) in RelWithDebInfo builds" OFF)
if(NOT RUNNEL_FULL_DEBUG_INFO)
  string(REGEX REPLACE "(^| )-g( |$)" "\\1-g1\\2" CMAKE_CXX_FLAGS_RELWITHDEBINFO "${CMAKE_CXX_FLAGS_RELWITHDEBINFO}")
endif()

# The sanitizer build (Debug, `make test-asan`) needs line tables for its reports, not variable
# and type information: -g1 there too, unless full debug information is asked for.
if(RUNNEL_SANITIZE AND NOT RUNNEL_FULL_DEBUG_INFO)
  string(REGEX REPLACE "(^| )-g( |$)" "\\1-g1\\2" CMAKE_CXX_FLAGS_DEBUG "${CMAKE_CXX_FLAGS_DEBUG}")
endif()
