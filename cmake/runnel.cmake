# runnel_library(NAME storage SRCS a.cc b.cc DEPS runnel::base runnel::model)
#
# One folder is one module is one library. DEPS are the module's public
# dependencies: what its public header needs. Everything includes by the
# project-absolute path "module/header.h".
function(runnel_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PRIVATE_DEPS;PCH" ${ARGN})
  set(target runnel_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS})
  add_library(runnel::${ARG_NAME} ALIAS ${target})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  if(ARG_PCH)
    target_precompile_headers(${target} PRIVATE ${ARG_PCH})
  endif()
endfunction()

# runnel_test(NAME storage_test SRCS a_test.cc DEPS runnel::storage LABELS unit [SHARDS n])
#
# A GoogleTest binary registered with CTest. Unit tests carry the label
# "unit" so the sanitizer build can run exactly them; with RUNNEL_UNIT_TESTS off (the
# release build of `make build` and `make test`, which run them only under the sanitizers)
# they are not defined at all. SHARDS n registers the binary as n CTest tests, each running
# every n-th test case (GoogleTest's sharding), so a long suite uses every core of `ctest -j`.
function(runnel_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT;SHARDS" "SRCS;DEPS;LABELS" ${ARGN})
  if("unit" IN_LIST ARG_LABELS AND NOT RUNNEL_UNIT_TESTS)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_SHARDS OR ARG_SHARDS LESS 2)
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  else()
    math(EXPR last "${ARG_SHARDS} - 1")
    foreach(i RANGE ${last})
      add_test(NAME ${ARG_NAME}_shard${i} COMMAND ${ARG_NAME})
      set_tests_properties(${ARG_NAME}_shard${i} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
        ENVIRONMENT "GTEST_TOTAL_SHARDS=${ARG_SHARDS};GTEST_SHARD_INDEX=${i}")
    endforeach()
  endif()
  if("unit" IN_LIST ARG_LABELS)
    set_property(GLOBAL APPEND PROPERTY RUNNEL_UNIT_TESTS ${ARG_NAME})
  endif()
endfunction()

# A target that builds every unit test and nothing else (the sanitizer build uses it).
function(runnel_unit_tests_target)
  get_property(tests GLOBAL PROPERTY RUNNEL_UNIT_TESTS)
  add_custom_target(unit_tests DEPENDS ${tests})
endfunction()

# runnel_no_unity(a.cc b.cc): these files define file-local names that a neighbour in the same
# unity batch defines too; they are compiled on their own. Call it in the folder of the target.
function(runnel_no_unity)
  set_source_files_properties(${ARGN} PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
endfunction()
