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
