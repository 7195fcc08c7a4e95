# The study pipeline on the study's own data formats: AudioSet feature files (HDF5) and
# Kinetics-Sounds-style clip folders (FFmpeg). Each program needs its optional component, so it
# is built only when that component is. Included from examples/CMakeLists.txt.
if(TARGET avgrad::hdf5)
  avgrad_add_example(audioset_features ${CMAKE_CURRENT_LIST_DIR}/audioset_features.cpp)
  target_link_libraries(audioset_features PRIVATE avgrad::hdf5)
endif()
if(TARGET avgrad::video_io)
  avgrad_add_example(kinetics_sounds ${CMAKE_CURRENT_LIST_DIR}/kinetics_sounds.cpp)
  target_link_libraries(kinetics_sounds PRIVATE avgrad::video_io)
endif()

# End to end on small synthetic inputs that a test program writes: the pipeline must finish and
# its result files hold values in sane ranges; bad inputs must fail with a message naming them.
if(AVGRAD_BUILD_TESTS)
  set(AVGRAD_EXAMPLES_DATA_DIR ${PROJECT_SOURCE_DIR}/tests/examples_data)
  if(TARGET avgrad::hdf5)
    add_executable(audioset_e2e ${AVGRAD_EXAMPLES_DATA_DIR}/audioset_e2e.cpp)
    target_link_libraries(audioset_e2e PRIVATE avgrad::hdf5)
    add_test(NAME example_audioset_features_e2e
             COMMAND audioset_e2e run $<TARGET_FILE:audioset_features> ${CMAKE_CURRENT_BINARY_DIR}/examples_data/audioset/run)
    add_test(NAME example_audioset_features_bad_input
             COMMAND audioset_e2e bad-input $<TARGET_FILE:audioset_features> ${CMAKE_CURRENT_BINARY_DIR}/examples_data/audioset/bad)
    # Without any test program in between: a missing file is refused by name (the exit status is
    # checked by the bad-input test).
    add_test(NAME example_audioset_features_missing_file
             COMMAND audioset_features --train ${CMAKE_CURRENT_BINARY_DIR}/no-such-features.h5)
    set_tests_properties(example_audioset_features_e2e example_audioset_features_bad_input PROPERTIES LABELS example
                         TIMEOUT 300)
    set_tests_properties(example_audioset_features_missing_file PROPERTIES LABELS example TIMEOUT 60
                         PASS_REGULAR_EXPRESSION "--train: File does not exist: .*no-such-features.h5")
  endif()
endif()

# The clips are made with the ffmpeg CLI (a CI dependency beside FFmpeg's libraries).
if(AVGRAD_BUILD_TESTS AND TARGET avgrad::video_io)
  add_executable(kinetics_e2e ${AVGRAD_EXAMPLES_DATA_DIR}/kinetics_e2e.cpp)
  target_compile_features(kinetics_e2e PRIVATE cxx_std_20)
  add_test(NAME example_kinetics_sounds_e2e
           COMMAND kinetics_e2e run $<TARGET_FILE:kinetics_sounds> ${CMAKE_CURRENT_BINARY_DIR}/examples_data/kinetics/run)
  add_test(NAME example_kinetics_sounds_bad_input
           COMMAND kinetics_e2e bad-input $<TARGET_FILE:kinetics_sounds>
                   ${CMAKE_CURRENT_BINARY_DIR}/examples_data/kinetics/bad)
  add_test(NAME example_kinetics_sounds_missing_csv
           COMMAND kinetics_sounds --csv ${CMAKE_CURRENT_BINARY_DIR}/no-such-labels.csv)
  set_tests_properties(example_kinetics_sounds_e2e example_kinetics_sounds_bad_input PROPERTIES LABELS example
                       TIMEOUT 300)
  set_tests_properties(example_kinetics_sounds_missing_csv PROPERTIES LABELS example TIMEOUT 60
                       PASS_REGULAR_EXPRESSION "--csv: File does not exist: .*no-such-labels.csv")
endif()
