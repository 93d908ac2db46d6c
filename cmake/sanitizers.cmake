# -DSYNQ_SANITIZE=ON builds everything with AddressSanitizer and UndefinedBehaviorSanitizer.
if(SYNQ_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
