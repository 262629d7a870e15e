# atax_uses_torch(<file> <out-var>): whether <file> reaches LibTorch's headers (<torch/...>,
# <ATen/...>) directly or through the project's own headers ("module/x.h" under src/, or a path
# next to the file), followed recursively. Only such files get the shared precompiled
# <torch/torch.h>: loading that 630 MB header costs a file that does not use it more than it
# saves (src/cli/cmd_report.cpp: 23.5 s with it, 9.2 s without; cmd_train.cpp, which needs
# LibTorch: 24.7 s with it, 35.8 s without; GCC 12, -O2).
function(atax_uses_torch file out)
  get_property(known GLOBAL PROPERTY ATAX_TORCH_${file} SET)
  if(known)
    get_property(v GLOBAL PROPERTY ATAX_TORCH_${file})
    set(${out} ${v} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY ATAX_TORCH_${file} OFF)  # an include cycle ends here
  set(v OFF)
  get_filename_component(dir ${file} DIRECTORY)
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  foreach(line ${lines})
    if(line MATCHES "<(torch|ATen)/")
      set(v ON)
      break()
    endif()
    if(line MATCHES "\"([^\"]+)\"")
      set(inc ${CMAKE_MATCH_1})
      set(found "")
      foreach(cand ${dir}/${inc} ${CMAKE_SOURCE_DIR}/src/${inc})
        get_filename_component(cand ${cand} ABSOLUTE)
        if(EXISTS ${cand})
          set(found ${cand})
          break()
        endif()
      endforeach()
      if(found)
        atax_uses_torch(${found} sub)
        if(sub)
          set(v ON)
          break()
        endif()
      endif()
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY ATAX_TORCH_${file} ${v})
  set(${out} ${v} PARENT_SCOPE)
endfunction()

# atax_pch_only_for_torch(<target> <sources...>): of a target with a precompiled header, the
# sources that do not use LibTorch (atax_uses_torch) compile without it.
function(atax_pch_only_for_torch target)
  foreach(src ${ARGN})
    atax_uses_torch(${src} uses)
    if(NOT uses)
      set_source_files_properties(${src} TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
endfunction()

# atax_torch_pch(<target> <sources...>): atax_model's precompiled <torch/torch.h> for those of the
# sources that use LibTorch, none for the others.
function(atax_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM atax_model)
  atax_pch_only_for_torch(${target} ${ARGN})
endfunction()

# atax_module(<name> DEPS ... [TORCH]): a static library from src/<name>/*.cpp.
# TORCH marks a module that includes LibTorch; it gets the shared precompiled header.
function(atax_module name)
  cmake_parse_arguments(M "TORCH" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cpp)
  if(NOT srcs)
    set(srcs ${CMAKE_SOURCE_DIR}/cmake/empty.cpp)
  endif()
  add_library(atax_${name} STATIC ${srcs})
  target_include_directories(atax_${name} PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(atax_${name} PUBLIC ${M_DEPS})
  target_compile_options(atax_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(M_TORCH AND name STREQUAL "model")
    target_precompile_headers(atax_model PRIVATE <torch/torch.h>)
    atax_pch_only_for_torch(atax_model ${srcs})
  elseif(M_TORCH)
    atax_torch_pch(atax_${name} ${srcs})
  endif()
endfunction()

# atax_test(<file.cpp> DEPS ...): one GoogleTest program per file; its CTest labels come from a
# line "// ctest-labels: unit model" in the file (default: unit).
function(atax_test file)
  cmake_parse_arguments(T "" "" "DEPS" ${ARGN})
  get_filename_component(stem ${file} NAME_WE)
  get_filename_component(dir ${file} DIRECTORY)
  get_filename_component(module ${dir} NAME)
  set(target test_${module}_${stem})
  add_executable(${target} ${file})
  target_link_libraries(${target} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${target} PRIVATE
      ATAX_SOURCE_DIR="${CMAKE_SOURCE_DIR}" ATAX_SHARED_DIR="${CMAKE_SOURCE_DIR}/../shared"
      ATAX_BINARY_DIR="${CMAKE_BINARY_DIR}")
  file(STRINGS ${file} label_line REGEX "^// ctest-labels:")
  set(labels unit)
  if(label_line)
    string(REGEX REPLACE "^// ctest-labels:[ ]*" "" labels "${label_line}")
    separate_arguments(labels)
  endif()
  # Tests that use LibTorch share the library's precompiled <torch/torch.h> (atax_uses_torch).
  atax_uses_torch(${file} uses_torch)
  if(uses_torch)
    target_precompile_headers(${target} REUSE_FROM atax_model)
  endif()
  # Slow tests (the quick demo end to end) get 40 minutes, whatever ctest's default --timeout.
  set(timeout 0)
  if("slow" IN_LIST labels)
    set(timeout 2400)
  endif()
  if(timeout)
    gtest_discover_tests(${target} PROPERTIES LABELS "${labels}" TIMEOUT ${timeout} DISCOVERY_TIMEOUT 60
                         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  else()
    gtest_discover_tests(${target} PROPERTIES LABELS "${labels}" DISCOVERY_TIMEOUT 60
                         WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  endif()
endfunction()
