# vcpkg overlay port: vcpkg install singlequant --overlay-ports=packaging/vcpkg
set(VCPKG_BUILD_TYPE release)  # header-only

vcpkg_from_github(
  OUT_SOURCE_PATH SOURCE_PATH
  REPO singlequant/singlequant
  REF "v${VERSION}"
  SHA512 0  # fill in when the release tarball exists
  HEAD_REF main
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DSINGLEQUANT_BUILD_TESTS=OFF
    -DSINGLEQUANT_BUILD_BENCHMARKS=OFF
    -DSINGLEQUANT_BUILD_EXAMPLES=OFF
    -DSINGLEQUANT_BUILD_TOOLS=OFF
    -DSINGLEQUANT_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/singlequant)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/debug")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
