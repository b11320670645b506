hg_test(unit_acme LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/crypto_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/messages_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/order_flow_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/storage_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/tls_alpn_test.cpp
  LIBS hg_acme)
if(TARGET unit_acme)
  find_package(nlohmann_json 3.11 REQUIRED)
  target_link_libraries(unit_acme PRIVATE nlohmann_json::nlohmann_json)
endif()
