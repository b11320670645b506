hg_test(unit_proto LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/wire_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/frame_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/meta_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/range_set_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/connection_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/congestion_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/buffers_test.cpp
  LIBS hg_proto)
