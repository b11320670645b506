hg_test(unit_tls LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/certs_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/cookie_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/dtls_engine_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/tls_stream_engine_test.cpp
  LIBS hg_tls)
