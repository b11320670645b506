hg_test(unit_server LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/memory_trim_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS hg_server)
