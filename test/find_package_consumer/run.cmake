# cmake -P script run by the package_consumer test.
# Inputs: SOURCE_DIR, WORK_DIR, CXX_COMPILER, GENERATOR.
# 1. configure SOURCE_DIR (tests/examples off) into WORK_DIR/build, build,
#    install into WORK_DIR/prefix;
# 2. build test/find_package_consumer against the prefix (find_package) and run it;
# 3. build it again with add_subdirectory(SOURCE_DIR) and run it.
foreach(v SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake: ${v} not set")
  endif()
endforeach()

function(step)
  string(REPLACE ";" " " pretty "${ARGN}")
  message(STATUS "+ ${pretty}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${pretty}")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(consumer_src ${SOURCE_DIR}/test/find_package_consumer)
# Fresh prefix every run; the build dirs are reused (incremental, re-configured).
file(REMOVE_RECURSE ${prefix})

set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

# 1. install
step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build ${common}
     -DASIO_WAKER_BUILD_TESTS=OFF -DASIO_WAKER_BUILD_EXAMPLES=OFF -DASIO_WAKER_BUILD_BENCH=OFF
     -DCMAKE_INSTALL_PREFIX=${prefix})
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${CMAKE_COMMAND} --install ${WORK_DIR}/build)
if(NOT EXISTS ${prefix}/lib/cmake/asio_waker/asio_wakerConfig.cmake
   AND NOT EXISTS ${prefix}/lib64/cmake/asio_waker/asio_wakerConfig.cmake
   AND NOT EXISTS ${prefix}/lib/x86_64-linux-gnu/cmake/asio_waker/asio_wakerConfig.cmake)
  file(GLOB_RECURSE found ${prefix}/*Config.cmake)
  message(FATAL_ERROR "asio_wakerConfig.cmake not installed where expected; found: ${found}")
endif()

# 2. find_package from the prefix
step(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/consumer-find ${common}
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-find)
step(${WORK_DIR}/consumer-find/consumer)

# 3. add_subdirectory
step(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/consumer-subdir ${common}
     -DASIO_WAKER_SOURCE_DIR=${SOURCE_DIR})
step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-subdir)
step(${WORK_DIR}/consumer-subdir/consumer)
message(STATUS "package_consumer: OK")
