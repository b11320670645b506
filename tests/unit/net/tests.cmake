hg_test(unit_net LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/clock_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/udp_io_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/half_open_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/accept_backoff_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/tls_socket_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/loki_pusher_test.cpp
  LIBS hg_net)
