# hopgate::http — authority parsing, header rewriting, error pages.
hg_test(unit_http LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/authority_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/forwarding_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/error_pages_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/framing_test.cpp
  LIBS hg_http)
