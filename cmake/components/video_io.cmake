# Optional component avgrad::video_io: video decoding through FFmpeg.
# include/avgrad/data/{video,clip_folder}.hpp wrap libavformat/libavcodec/libswscale/libswresample.
# They are optional so that the core stays free of system multimedia libraries;
# AVGRAD_VIDEO_IO works like AVGRAD_CUDA: AUTO builds the component when pkg-config finds all
# five FFmpeg libraries, ON requires them.
set(AVGRAD_VIDEO_IO "AUTO" CACHE STRING "Video I/O component (FFmpeg libav*): ON, OFF or AUTO")
set_property(CACHE AVGRAD_VIDEO_IO PROPERTY STRINGS AUTO ON OFF)
set(AVGRAD_WITH_VIDEO_IO OFF)
set(_avgrad_video_modules libavformat libavcodec libavutil libswscale libswresample)
if(AVGRAD_VIDEO_IO STREQUAL "AUTO")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(AVGRAD_VIDEO_DEPS QUIET IMPORTED_TARGET ${_avgrad_video_modules})
    if(AVGRAD_VIDEO_DEPS_FOUND)
      set(AVGRAD_WITH_VIDEO_IO ON)
    endif()
  endif()
elseif(AVGRAD_VIDEO_IO)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(AVGRAD_VIDEO_DEPS REQUIRED IMPORTED_TARGET ${_avgrad_video_modules})
  set(AVGRAD_WITH_VIDEO_IO ON)
endif()
if(AVGRAD_WITH_VIDEO_IO)
  message(STATUS "avgrad: video I/O component enabled (libavformat ${AVGRAD_VIDEO_DEPS_libavformat_VERSION}, "
                 "libavcodec ${AVGRAD_VIDEO_DEPS_libavcodec_VERSION})")
  add_library(avgrad_video_io INTERFACE)
  add_library(avgrad::video_io ALIAS avgrad_video_io)
  set_target_properties(avgrad_video_io PROPERTIES EXPORT_NAME video_io)
  target_link_libraries(avgrad_video_io INTERFACE avgrad PkgConfig::AVGRAD_VIDEO_DEPS)
  target_compile_definitions(avgrad_video_io INTERFACE AVGRAD_WITH_VIDEO_IO=1)
  list(APPEND AVGRAD_ENABLED_COMPONENTS video_io)
  install(TARGETS avgrad_video_io EXPORT avgrad_video_io_targets)
  install(EXPORT avgrad_video_io_targets NAMESPACE avgrad:: FILE avgrad-video_io-targets.cmake
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/video_io-config.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/avgrad
          RENAME avgrad-video_io.cmake)
else()
  message(STATUS "avgrad: video I/O component disabled (AVGRAD_VIDEO_IO=${AVGRAD_VIDEO_IO})")
endif()
unset(_avgrad_video_modules)
