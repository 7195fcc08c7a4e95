# Consumer side of the hdf5 component, loaded by avgradConfig.cmake on
# find_package(avgrad COMPONENTS hdf5): recreates the pkg-config target the exported
# avgrad::hdf5 links to, then loads the export.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(AVGRAD_HDF5_DEPS QUIET IMPORTED_TARGET hdf5)
endif()
if(TARGET PkgConfig::AVGRAD_HDF5_DEPS)
  include("${CMAKE_CURRENT_LIST_DIR}/avgrad-hdf5-targets.cmake")
  set(avgrad_hdf5_FOUND TRUE)
else()
  set(avgrad_hdf5_FOUND FALSE)
  set(avgrad_NOT_FOUND_MESSAGE "avgrad component hdf5 needs pkg-config and HDF5 (pkg-config module hdf5)")
endif()
