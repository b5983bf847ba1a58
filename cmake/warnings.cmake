# Warnings are errors everywhere. Each disabled warning says why.
add_compile_options(
  -Wall -Wextra -Werror -Wcast-align -Wimplicit-fallthrough
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>
  $<$<COMPILE_LANGUAGE:CXX>:-Woverloaded-virtual>
)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 reports false positives inside std::vector/std::string with -O2
  # (GCC bugs 105329, 105651); they fire in library code, not ours.
  add_compile_options(-Wno-restrict -Wno-stringop-overflow)
endif()

if(RUNNEL_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14 cannot emit -fsanitize=function's checks in coroutines ("Cannot represent a
    # difference across sections"); g++ has no such check either, so both builds check the same.
    add_compile_options(-fno-sanitize=function)
  endif()
endif()

if(RUNNEL_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
