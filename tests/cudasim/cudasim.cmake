# SPIKEOPS_CUDA_SIM=ON: the CUDA sources compiled as C++ against tests/cudasim/include (cudasim.hpp), so that
# the C++ tests run the CUDA kernels on a machine without a GPU. A test build only: the simulated kernels are
# far slower than the CPU kernels.
#
# Each launch `kernel<<<config>>>(args)` is rewritten to `::cudasim::Launch(config).run(kernel, args)` in a copy
# of the file (same lines; `#line` keeps messages pointing at the .cu file). Editing a .cu file re-runs CMake.
function(spikeops_add_cudasim_sources target)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/cudasim)
  set(sources)
  foreach(cu IN LISTS ARGN)
    set(cu_path ${CMAKE_CURRENT_SOURCE_DIR}/${cu})
    get_filename_component(name ${cu} NAME_WE)
    file(READ ${cu_path} text)
    string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_:]*(<[^<>]*>)?)<<<([^>]*)>>>\\("
                         "::cudasim::Launch(\\3).run(\\1, " text "${text}")
    if(text MATCHES "<<<")
      message(FATAL_ERROR "cudasim: a launch in ${cu} is not of the form kernel<<<config>>>(args)")
    endif()
    file(WRITE ${out_dir}/${name}.cpp.new "#line 1 \"${cu_path}\"\n${text}")
    file(COPY_FILE ${out_dir}/${name}.cpp.new ${out_dir}/${name}.cpp ONLY_IF_DIFFERENT)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${cu_path})
    list(APPEND sources ${out_dir}/${name}.cpp)
  endforeach()
  target_sources(${target} PRIVATE ${sources})
  set_source_files_properties(${sources} TARGET_DIRECTORY ${target} PROPERTIES
    INCLUDE_DIRECTORIES "${CMAKE_CURRENT_SOURCE_DIR}/tests/cudasim/include;${CMAKE_CURRENT_SOURCE_DIR}/cuda"
    COMPILE_DEFINITIONS "SPIKEOPS_CUDA_ARCHITECTURES=\"cudasim\""
    COMPILE_OPTIONS "-Wno-unknown-pragmas;-Wno-subobject-linkage")  # #pragma unroll; #line names a header
endfunction()
