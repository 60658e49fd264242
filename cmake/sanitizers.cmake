# Sanitizer and fuzzing builds. Included by the top-level CMakeLists.txt before any target, so the
# flags reach every library, test and tool.
#   -DQNEXT_SANITIZE=address  ASan + UBSan, stopping at the first report (scripts/test.sh --sanitize)
#   -DQNEXT_SANITIZE=thread   TSan (scripts/test.sh --tsan)
#   -DQNEXT_FUZZ=ON           clang only: libraries with -fsanitize=fuzzer-no-link,address,undefined
#                             and the libFuzzer targets in fuzz/ (scripts/fuzz.sh)
# Line tables (-g1) keep the sanitizers' stack traces readable at little build cost.
set(QNEXT_SANITIZE "" CACHE STRING "Build with sanitizers: address (ASan + UBSan) or thread (TSan); empty: none")
set_property(CACHE QNEXT_SANITIZE PROPERTY STRINGS "" address thread)
option(QNEXT_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang: CC=clang CXX=clang++)" OFF)

set(_qnext_san "")
if(QNEXT_SANITIZE STREQUAL "address")
  set(_qnext_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(QNEXT_SANITIZE STREQUAL "thread")
  set(_qnext_san -fsanitize=thread)
elseif(NOT QNEXT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "QNEXT_SANITIZE must be address, thread or empty, not '${QNEXT_SANITIZE}'")
endif()

if(QNEXT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "QNEXT_FUZZ needs clang (libFuzzer): configure with CC=clang CXX=clang++")
  endif()
  if(_qnext_san)
    message(FATAL_ERROR "QNEXT_FUZZ brings its own sanitizers; leave QNEXT_SANITIZE empty")
  endif()
  set(_qnext_san -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  # The GCC-only warning switches set on the AVX-512 kernels are unknown to clang.
  add_compile_options(-Wno-unknown-warning-option)
endif()

if(_qnext_san)
  add_compile_options(${_qnext_san} -g1)
  add_link_options(${_qnext_san})
endif()
