# Consumer side of the video_io component, loaded by avgradConfig.cmake on
# find_package(avgrad COMPONENTS video_io): recreates the pkg-config target the exported
# avgrad::video_io links to, then loads the export.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(AVGRAD_VIDEO_DEPS QUIET IMPORTED_TARGET libavformat libavcodec libavutil libswscale libswresample)
endif()
if(TARGET PkgConfig::AVGRAD_VIDEO_DEPS)
  include("${CMAKE_CURRENT_LIST_DIR}/avgrad-video_io-targets.cmake")
  set(avgrad_video_io_FOUND TRUE)
else()
  set(avgrad_video_io_FOUND FALSE)
  set(avgrad_NOT_FOUND_MESSAGE "avgrad component video_io needs pkg-config and the FFmpeg libraries "
                               "libavformat, libavcodec, libavutil, libswscale and libswresample")
endif()
