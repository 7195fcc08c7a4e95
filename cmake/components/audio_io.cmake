# Optional component avgrad::audio_io: audio file I/O and resampling.
# include/avgrad/audio/{io,resample}.hpp wrap libsndfile and libsoxr. They are optional so that
# the core stays free of system audio libraries; AVGRAD_AUDIO_IO works like AVGRAD_CUDA:
# AUTO builds the component when pkg-config finds both libraries, ON requires them.
set(AVGRAD_AUDIO_IO "AUTO" CACHE STRING "Audio I/O component (libsndfile + libsoxr): ON, OFF or AUTO")
set_property(CACHE AVGRAD_AUDIO_IO PROPERTY STRINGS AUTO ON OFF)
set(AVGRAD_WITH_AUDIO_IO OFF)
if(AVGRAD_AUDIO_IO STREQUAL "AUTO")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(AVGRAD_AUDIO_DEPS QUIET IMPORTED_TARGET sndfile soxr)
    if(AVGRAD_AUDIO_DEPS_FOUND)
      set(AVGRAD_WITH_AUDIO_IO ON)
    endif()
  endif()
elseif(AVGRAD_AUDIO_IO)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(AVGRAD_AUDIO_DEPS REQUIRED IMPORTED_TARGET sndfile soxr)
  set(AVGRAD_WITH_AUDIO_IO ON)
endif()
if(AVGRAD_WITH_AUDIO_IO)
  message(STATUS "avgrad: audio I/O component enabled "
                 "(sndfile ${AVGRAD_AUDIO_DEPS_sndfile_VERSION}, soxr ${AVGRAD_AUDIO_DEPS_soxr_VERSION})")
  add_library(avgrad_audio_io INTERFACE)
  add_library(avgrad::audio_io ALIAS avgrad_audio_io)
  set_target_properties(avgrad_audio_io PROPERTIES EXPORT_NAME audio_io)
  target_link_libraries(avgrad_audio_io INTERFACE avgrad PkgConfig::AVGRAD_AUDIO_DEPS)
  target_compile_definitions(avgrad_audio_io INTERFACE AVGRAD_WITH_AUDIO_IO=1)
  list(APPEND AVGRAD_ENABLED_COMPONENTS audio_io)
  install(TARGETS avgrad_audio_io EXPORT avgrad_audio_io_targets)
  install(EXPORT avgrad_audio_io_targets NAMESPACE avgrad:: FILE avgrad-audio_io-targets.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/audio_io-config.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad
          RENAME avgrad-audio_io.cmake)
else()
  message(STATUS "avgrad: audio I/O component disabled (AVGRAD_AUDIO_IO=${AVGRAD_AUDIO_IO})")
endif()
