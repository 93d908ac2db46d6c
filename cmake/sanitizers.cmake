# -DSYNQ_SANITIZE=ON (or =address) builds everything with AddressSanitizer and
# UndefinedBehaviorSanitizer; -DSYNQ_SANITIZE=thread with ThreadSanitizer (`.ci/dev tsan`).
# The two cannot be combined: TSan and ASan each own the shadow memory.
if(SYNQ_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(SYNQ_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# -DSYNQ_FUZZ=ON (with CC=clang CXX=clang++): everything is instrumented for libFuzzer's coverage
# and checked by ASan+UBSan (UBSan aborts, so the fuzzer sees it); tests/fuzz links the fuzzers.
if(SYNQ_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SYNQ_FUZZ needs clang: configure with CC=clang CXX=clang++")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
