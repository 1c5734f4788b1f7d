# Runs the -fno-exceptions program on bad input; it must fail and print the function and the sizes.
execute_process(COMMAND ${PROGRAM} bad RESULT_VARIABLE result ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(result EQUAL 0)
  message(FATAL_ERROR "expected an abort, got exit code 0")
endif()
if(NOT err MATCHES "singlequant::dot: sizes differ: 3 vs 2")
  message(FATAL_ERROR "stderr lacks the message: '${err}'")
endif()
message(STATUS "aborted as expected with: ${err}")
