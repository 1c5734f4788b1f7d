# Checks the xsimd found by find_package(xsimd CONFIG) and repairs Debian's 8.1 export.
#
# Debian builds xsimd 8.1 with ENABLE_XTL_COMPLEX, so its exported target links a bare "xtl" but its
# config never finds xtl: linking xsimd then fails with "cannot find -lxtl" (xsimd issue 869). The
# headers do not need xtl, so when no xtl target exists we define an empty one.
if(NOT TARGET xsimd)
  message(FATAL_ERROR "singlequant: find_package(xsimd) did not define the target 'xsimd'")
endif()
if(DEFINED xsimd_VERSION AND xsimd_VERSION VERSION_LESS 8.1)
  message(FATAL_ERROR "singlequant needs xsimd >= 8.1, found ${xsimd_VERSION}")
endif()
get_target_property(_singlequant_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
if(_singlequant_xsimd_links MATCHES "(^|;)xtl($|;)" AND NOT TARGET xtl)
  find_package(xtl CONFIG QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
unset(_singlequant_xsimd_links)
