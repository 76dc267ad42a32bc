# Checks that README.md shows a source file verbatim: the ```cpp block that follows the
# line "<!-- snippet: NAME -->" must be the file's text, byte for byte. ctest runs it
# (example/CMakeLists.txt), so the README's first snippet is always a file that builds.
#
#   cmake -DREADME=<README.md> -DSOURCE_DIR=<repository root> -DNAME=<path, e.g.
#         example/readme_snippet.cpp> [-DOUT=<file for the README's copy>] -P check_readme_snippet.cmake
cmake_minimum_required(VERSION 3.21)

file(READ "${README}" readme)
file(READ "${SOURCE_DIR}/${NAME}" snippet)

set(open "<!-- snippet: ${NAME} -->\n```cpp\n")
string(FIND "${readme}" "${open}" start)
if(start EQUAL -1)
  message(FATAL_ERROR "${README}: no line \"<!-- snippet: ${NAME} -->\" followed by a ```cpp block")
endif()
string(LENGTH "${open}" open_length)
math(EXPR start "${start} + ${open_length}")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "\n```\n" end)
if(end EQUAL -1)
  message(FATAL_ERROR "${README}: the block after \"<!-- snippet: ${NAME} -->\" is not closed")
endif()
math(EXPR end "${end} + 1")   # the block's last newline
string(SUBSTRING "${rest}" 0 ${end} block)

if(NOT "${block}" STREQUAL "${snippet}")
  if(OUT)
    file(WRITE "${OUT}" "${block}")
    execute_process(COMMAND diff -u "${OUT}" "${SOURCE_DIR}/${NAME}")
  endif()
  message(FATAL_ERROR "README.md's copy of ${NAME} differs from the file (diff above: "
                      "README's copy, then the file): paste the file into the README")
endif()
message(STATUS "README.md shows ${NAME} verbatim")
