// The Catch2 main of the test executable (every tests/test_*.cpp links into it).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
