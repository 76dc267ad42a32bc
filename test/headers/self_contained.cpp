//
// test/headers/self_contained.cpp: intentionally empty. test/Jamfile compiles it once
// per public header with that header force-included before its first line
// (`-include`), which proves that the header compiles on its own. CMake does the same
// check with one generated file per header (test/CMakeLists.txt).
//
