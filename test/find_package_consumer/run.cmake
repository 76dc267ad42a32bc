# cmake -P script run by the package_consumer test.
# Inputs: SOURCE_DIR, WORK_DIR, CXX_COMPILER, GENERATOR.
# 1. configure SOURCE_DIR (tests/examples off) into WORK_DIR/build and install it into
#    WORK_DIR/prefix;
# 2. for each flavour (boost, standalone): build test/find_package_consumer against the
#    prefix (find_package) and with add_subdirectory(SOURCE_DIR), and run it. The
#    find_package consumers also build copies of example/offload_server.cpp and
#    example/stream_results.cpp (what a user copies into a project of their own) and
#    run stream_results. The standalone consumers are configured with find_package(Boost)
#    disabled: that flavour must not need Boost. Skipped, saying so, where standalone
#    Asio is not installed.
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
set(copied_examples ${WORK_DIR}/copied-examples)
file(REMOVE_RECURSE ${copied_examples})
file(COPY ${SOURCE_DIR}/example/offload_server.cpp ${SOURCE_DIR}/example/offload_protocol.hpp
          ${SOURCE_DIR}/example/stream_results.cpp DESTINATION ${copied_examples})

set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

# 1. install (header-only: nothing to build)
step(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build ${common}
     -DASIO_WAKER_BUILD_TESTS=OFF -DASIO_WAKER_BUILD_EXAMPLES=OFF -DASIO_WAKER_BUILD_BENCH=OFF
     -DASIO_WAKER_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${prefix})
step(${CMAKE_COMMAND} --install ${WORK_DIR}/build)

# 2. consumers
# (step 1's configure looked for standalone Asio; find_path does not search in cmake -P)
file(STRINGS ${WORK_DIR}/build/CMakeCache.txt standalone_asio
     REGEX "^ASIO_WAKER_STANDALONE_ASIO_INCLUDE_DIR:")
set(flavours boost)
if(standalone_asio MATCHES "=(.+)$" AND NOT CMAKE_MATCH_1 MATCHES "NOTFOUND$")
  list(APPEND flavours standalone)
else()
  message(STATUS "package_consumer: standalone Asio (asio.hpp) not found: standalone flavour "
                 "SKIPPED (Debian: apt-get install libasio-dev)")
endif()
foreach(flavour IN LISTS flavours)
  set(flags -DFLAVOUR=${flavour})
  if(flavour STREQUAL "standalone")
    list(APPEND flags -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON)
  endif()
  foreach(how IN ITEMS find subdir)
    set(dir ${WORK_DIR}/consumer-${flavour}-${how})
    if(how STREQUAL "find")
      set(how_flags -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
                    -DEXAMPLES_DIR=${copied_examples})
    else()
      set(how_flags -DASIO_WAKER_SOURCE_DIR=${SOURCE_DIR})
    endif()
    step(${CMAKE_COMMAND} -S ${consumer_src} -B ${dir} ${common} ${flags} ${how_flags})
    step(${CMAKE_COMMAND} --build ${dir})
    step(${dir}/consumer)
    if(how STREQUAL "find")
      step(${dir}/stream_results 2 50) # 2 workers, 50 jobs: every result, then eof
    endif()
  endforeach()
endforeach()
message(STATUS "package_consumer: OK (${flavours})")
