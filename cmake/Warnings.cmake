# One place for the warning set: every target of the project uses it, and warnings are errors.
# The presets use both compilers (release and tsan: g++; asan: clang++), so a flag only one of
# them knows goes in that compiler's branch below, with the reason next to it (clang rejects
# GCC-only -W options as unknown, which -Werror makes fatal).
set(VMMU_WARNING_FLAGS
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough -Werror)

if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*address")
    # GCC 12 at -O1 with ASan reports -Wmaybe-uninitialized false positives (the asan preset
    # needed this while it used g++; it uses clang++ now). Only for GCC ASan builds by hand.
    list(APPEND VMMU_WARNING_FLAGS -Wno-maybe-uninitialized)
  endif()
endif()

function(vmmu_set_warnings target)
  target_compile_options(${target} PRIVATE ${VMMU_WARNING_FLAGS})
endfunction()
