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
  elseif(M_TORCH)
    target_precompile_headers(atax_${name} REUSE_FROM atax_model)
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
  # Tests of LibTorch modules share the library's precompiled <torch/torch.h>.
  if(module MATCHES "^(model|gguf|train|dist|pipeline)$")
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
