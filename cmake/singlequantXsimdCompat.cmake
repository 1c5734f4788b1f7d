# Checks the xsimd found by find_package(xsimd CONFIG) and repairs Debian's 8.1 export.
#
# Debian builds xsimd 8.1 with ENABLE_XTL_COMPLEX, so its exported target links a bare "xtl" but its
# config never finds xtl: linking xsimd then fails with "cannot find -lxtl" (xsimd issue 869). The
# headers do not need xtl, so when no xtl target exists we define an empty one.
if(NOT TARGET xsimd)
  message(FATAL_ERROR "singlequant: find_package(xsimd) did not define the target 'xsimd'")
endif()
# Supported: xsimd 8.1 (Debian 12) to 14.x; tested: 8.1.0, 13.2.0, 14.3.0 (docs/xsimd.md). The C++
# side bridges the API differences in detail/xsimd_compat.hpp.
if(DEFINED xsimd_VERSION AND xsimd_VERSION VERSION_LESS 8.1)
  message(FATAL_ERROR "singlequant needs xsimd >= 8.1, found ${xsimd_VERSION} (${xsimd_DIR})")
endif()
if(DEFINED xsimd_VERSION AND xsimd_VERSION VERSION_GREATER_EQUAL 15)
  message(WARNING "singlequant is tested with xsimd 8.1, 13.2 and 14.3; found ${xsimd_VERSION}")
endif()
# A build that must use one xsimd (CI's compatibility jobs) says which; any other is an error.
if(SINGLEQUANT_EXPECT_XSIMD_VERSION AND NOT xsimd_VERSION VERSION_EQUAL SINGLEQUANT_EXPECT_XSIMD_VERSION)
  message(FATAL_ERROR "singlequant: expected xsimd ${SINGLEQUANT_EXPECT_XSIMD_VERSION}, "
                      "found ${xsimd_VERSION} at ${xsimd_DIR} (set CMAKE_PREFIX_PATH or xsimd_DIR)")
endif()
get_target_property(_singlequant_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
if(_singlequant_xsimd_links MATCHES "(^|;)xtl($|;)" AND NOT TARGET xtl)
  find_package(xtl CONFIG QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
unset(_singlequant_xsimd_links)
