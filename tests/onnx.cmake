# The ONNX importer/exporter's tests (included by tests/CMakeLists.txt when kiln_onnx is
# built): gtest binaries tests/onnx_*_test.cpp, and the conformance runner over Debian's
# libonnx-testdata, which fails when a test in onnx_expected_pass.txt stops passing.
file(GLOB KILN_ONNX_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/onnx_*_test.cpp)
foreach(src ${KILN_ONNX_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE kiln_onnx onnx onnx_proto kiln_test_support GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE KILN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(${name} PRIVATE nlohmann_json::nlohmann_json)
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
  set_tests_properties(${name} PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_WAIT_POLICY=passive"
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
endforeach()

add_executable(onnx_conformance ${CMAKE_CURRENT_SOURCE_DIR}/onnx_conformance.cpp)
target_link_libraries(onnx_conformance PRIVATE kiln_onnx onnx onnx_proto)
add_test(NAME onnx_conformance COMMAND onnx_conformance
  --expected ${CMAKE_CURRENT_SOURCE_DIR}/onnx_expected_pass.txt)
set_tests_properties(onnx_conformance PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=passive;OMP_NUM_THREADS=1")
