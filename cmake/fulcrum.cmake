# fulcrum_module(NAME SOURCES... DEPS ...): a static library for src/<NAME>, namespace fulcrum::<NAME>.
function(fulcrum_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(fulcrum_${name} STATIC ${M_SOURCES})
  target_include_directories(fulcrum_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(fulcrum_${name} PUBLIC ${M_DEPS} PRIVATE fulcrum_warnings)
endfunction()

# fulcrum_unit_test(NAME [PREFIX p] SOURCES... DEPS ...): a GoogleTest binary registered with
# ctest, one ctest per test; PREFIX ("store.") is prepended to their names.
find_package(GTest REQUIRED)
include(GoogleTest)
function(fulcrum_unit_test name)
  cmake_parse_arguments(T "" "PREFIX" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main fulcrum_warnings)
  gtest_discover_tests(${name} TEST_PREFIX "${T_PREFIX}" DISCOVERY_MODE PRE_TEST
                       PROPERTIES LABELS unit)
endfunction()

# llhttp, compiled from the C sources Debian's node-llhttp ships (the only HTTP/1 parser we use).
set(FULCRUM_LLHTTP_DIR /usr/share/llhttp)
if(EXISTS ${FULCRUM_LLHTTP_DIR}/llhttp.c)
  add_library(llhttp STATIC ${FULCRUM_LLHTTP_DIR}/llhttp.c ${FULCRUM_LLHTTP_DIR}/api.c
                            ${FULCRUM_LLHTTP_DIR}/http.c)
  target_include_directories(llhttp SYSTEM PUBLIC /usr/share/include/llhttp)
  set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
  # Loose mode accepts any two bytes after chunk data where CRLF belongs ("5\r\nhelloXX0\r\n\r\n"):
  # request smuggling material. Strict mode rejects it (pinned by
  # Rules/HttpRequestRejectTest.*/MissingCrlfAfterChunkData).
  target_compile_definitions(llhttp PRIVATE LLHTTP_STRICT_MODE=1)
endif()
