# Admin API handlers, AuthValidator, CIDR parsing and the domain CLI, over registry fakes.
find_package(nlohmann_json 3.11 REQUIRED)
hg_test(unit_admin LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/cidr_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/api_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/auth_validator_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/domain_cli_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics_access_test.cpp
  LIBS hg_admin nlohmann_json::nlohmann_json)
