# Consumer side of the audio_io component, loaded by avgradConfig.cmake on
# find_package(avgrad COMPONENTS audio_io): recreates the pkg-config target the exported
# avgrad::audio_io links to, then loads the export.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(AVGRAD_AUDIO_DEPS QUIET IMPORTED_TARGET sndfile soxr)
endif()
if(TARGET PkgConfig::AVGRAD_AUDIO_DEPS)
  include("${CMAKE_CURRENT_LIST_DIR}/avgrad-audio_io-targets.cmake")
  set(avgrad_audio_io_FOUND TRUE)
else()
  set(avgrad_audio_io_FOUND FALSE)
  set(avgrad_NOT_FOUND_MESSAGE "avgrad component audio_io needs pkg-config, libsndfile and libsoxr")
endif()
