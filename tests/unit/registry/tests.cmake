# Registry tests. The PostgreSQL half runs against a private server that the `pg_server` ctest
# fixture starts and stops (scripts/pg-test-server.sh); its DSN reaches the test through
# HG_TEST_PG_DSN. The port is derived from the build directory so two build trees can test at once.
# The cluster's data and socket directories live under /tmp (named after the same hash), not under
# the build tree: the server runs as the `postgres` user, which cannot reach a checkout under a
# directory other users cannot traverse (a clone under `mktemp -d`, a 0700 home directory).
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)

hg_test(unit_registry LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/domain_test.cpp ${CMAKE_CURRENT_LIST_DIR}/async_registry_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/pool_test.cpp
  LIBS hg_registry)
hg_test(unit_registry_sqlite LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/registry_sqlite_test.cpp
  LIBS hg_registry SQLite::SQLite3)
hg_test(unit_registry_pg LABEL unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/registry_pg_test.cpp
  LIBS hg_registry PostgreSQL::PostgreSQL)

string(MD5 _hg_pg_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${_hg_pg_hash}" 0 4 _hg_pg_hex)
math(EXPR HG_PG_TEST_PORT "20000 + (0x${_hg_pg_hex} % 10000)")
set(_hg_pg_script ${PROJECT_SOURCE_DIR}/scripts/pg-test-server.sh)
set(_hg_pg_env
  "HG_PG_DIR=/tmp/hopgate-pg-test-${_hg_pg_hex}"
  "HG_PG_PORT=${HG_PG_TEST_PORT}"
  "HG_PG_SCRIPT=${_hg_pg_script}"
  "HG_TEST_PG_DSN=postgres://hopgate@127.0.0.1:${HG_PG_TEST_PORT}/hopgate_test")

add_test(NAME pg_server_start COMMAND ${_hg_pg_script} start)
add_test(NAME pg_server_stop COMMAND ${_hg_pg_script} stop)
set_tests_properties(pg_server_start PROPERTIES FIXTURES_SETUP pg_server ENVIRONMENT "${_hg_pg_env}"
  LABELS unit TIMEOUT 120)
set_tests_properties(pg_server_stop PROPERTIES FIXTURES_CLEANUP pg_server ENVIRONMENT "${_hg_pg_env}"
  LABELS unit TIMEOUT 120)
set_tests_properties(unit_registry_pg PROPERTIES FIXTURES_REQUIRED pg_server
  ENVIRONMENT "${_hg_pg_env}" RESOURCE_LOCK pg_server TIMEOUT 300)
