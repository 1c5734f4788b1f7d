# Conan 2 recipe: conan create packaging/conan (run from the repository root). The version below must
# equal CMakeLists.txt's project(VERSION); the "version: every copy agrees" test checks it.
# Tested with the real Conan 2.8.1 client against xsimd 14.3.0 (.ci/run, job "conan").
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.1"


class SinglequantConan(ConanFile):
    name = "singlequant"
    version = "0.1.0"
    description = ("Header-only C++20 closed-form rotations (ART, URT, Hadamard) and INT4 "
                   "quantisation for W4A4 LLM inference")
    license = "MIT"
    topics = ("quantization", "llm", "simd", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def export_sources(self):
        # The recipe lives two folders below the sources; exports_sources cannot reach "../..".
        root = os.path.join(self.recipe_folder, "..", "..")
        copy(self, "*.hpp", os.path.join(root, "include"), os.path.join(self.export_sources_folder, "include"))
        copy(self, "LICENSE", root, self.export_sources_folder)
        for helper in ("singlequantDispatch.cmake", "singlequant_dispatch_arch.cpp.in"):
            copy(self, helper, os.path.join(root, "cmake"), os.path.join(self.export_sources_folder, "cmake"))

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # The library supports xsimd 8.1 to 14.x (docs/xsimd.md); ConanCenter ships 13.x and 14.x, and
        # this range is what CI tests through Conan (13.2.0 and 14.3.0 in the plain CMake builds).
        self.requires("xsimd/[>=13.0 <15]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def build(self):
        pass

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))
        # singlequant_add_dispatch_kernels() (runtime ISA dispatch), loaded by CMakeDeps.
        for helper in ("singlequantDispatch.cmake", "singlequant_dispatch_arch.cpp.in"):
            copy(self, helper, os.path.join(self.source_folder, "cmake"),
                 os.path.join(self.package_folder, "lib", "cmake", "singlequant"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "singlequant")
        self.cpp_info.set_property("cmake_target_name", "singlequant::singlequant")
        self.cpp_info.set_property("pkg_config_name", "singlequant")
        self.cpp_info.set_property("cmake_build_modules",
                                   [os.path.join("lib", "cmake", "singlequant", "singlequantDispatch.cmake")])
        self.cpp_info.builddirs = [os.path.join("lib", "cmake", "singlequant")]
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
