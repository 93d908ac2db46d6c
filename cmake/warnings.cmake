# Warning flags for synq's own targets (not for generated code).
set(SYNQ_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)
function(synq_warnings target)
  target_compile_options(${target} PRIVATE ${SYNQ_WARNINGS})
endfunction()
