# `cmake --install` gives a package that other projects use with find_package(vmmu).
include(CMakePackageConfigHelpers)

install(TARGETS vmmu EXPORT vmmuTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/vmmu DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET vmmu-cli)
  install(TARGETS vmmu-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(EXPORT vmmuTargets NAMESPACE vmmu:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/vmmu)
configure_package_config_file(cmake/vmmuConfig.cmake.in
  ${PROJECT_BINARY_DIR}/vmmuConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/vmmu)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/vmmuConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/vmmuConfig.cmake ${PROJECT_BINARY_DIR}/vmmuConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/vmmu)
