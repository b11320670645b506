hg_test(unit_core LABEL unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/result_test.cpp LIBS hg_core)
