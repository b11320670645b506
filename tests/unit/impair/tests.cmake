hg_test(unit_impair LABEL unit SOURCES ${CMAKE_CURRENT_LIST_DIR}/link_model_test.cpp ${CMAKE_CURRENT_LIST_DIR}/control_test.cpp ${CMAKE_CURRENT_LIST_DIR}/options_test.cpp LIBS hg_impair)
