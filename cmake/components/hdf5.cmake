# Optional component avgrad::hdf5: HDF5 dataset reading and writing.
# include/avgrad/data/hdf5.hpp wraps the HDF5 C library. It is optional so that the core stays
# free of system libraries; AVGRAD_HDF5 works like AVGRAD_CUDA: AUTO builds the component when
# pkg-config finds HDF5, ON requires it. pkg-config rather than find_package(HDF5) because
# Debian's hdf5.pc points at the serial build directly, while FindHDF5 goes through the h5cc
# wrapper and picks serial or parallel depending on what else is installed.
set(AVGRAD_HDF5 "AUTO" CACHE STRING "HDF5 component (libhdf5, C API): ON, OFF or AUTO")
set_property(CACHE AVGRAD_HDF5 PROPERTY STRINGS AUTO ON OFF)
set(AVGRAD_WITH_HDF5 OFF)
if(AVGRAD_HDF5 STREQUAL "AUTO")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(AVGRAD_HDF5_DEPS QUIET IMPORTED_TARGET hdf5)
    if(AVGRAD_HDF5_DEPS_FOUND)
      set(AVGRAD_WITH_HDF5 ON)
    endif()
  endif()
elseif(AVGRAD_HDF5)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(AVGRAD_HDF5_DEPS REQUIRED IMPORTED_TARGET hdf5)
  set(AVGRAD_WITH_HDF5 ON)
endif()
if(AVGRAD_WITH_HDF5)
  message(STATUS "avgrad: HDF5 component enabled (hdf5 ${AVGRAD_HDF5_DEPS_VERSION})")
  add_library(avgrad_hdf5 INTERFACE)
  add_library(avgrad::hdf5 ALIAS avgrad_hdf5)
  set_target_properties(avgrad_hdf5 PROPERTIES EXPORT_NAME hdf5)
  target_link_libraries(avgrad_hdf5 INTERFACE avgrad PkgConfig::AVGRAD_HDF5_DEPS)
  target_compile_definitions(avgrad_hdf5 INTERFACE AVGRAD_WITH_HDF5=1)
  list(APPEND AVGRAD_ENABLED_COMPONENTS hdf5)
  install(TARGETS avgrad_hdf5 EXPORT avgrad_hdf5_targets)
  install(EXPORT avgrad_hdf5_targets NAMESPACE avgrad:: FILE avgrad-hdf5-targets.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/hdf5-config.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad
          RENAME avgrad-hdf5.cmake)
else()
  message(STATUS "avgrad: HDF5 component disabled (AVGRAD_HDF5=${AVGRAD_HDF5})")
endif()
