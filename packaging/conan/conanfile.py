# Conan 2 recipe: conan create packaging/conan (run from the repository root). The version below must
# equal CMakeLists.txt's project(VERSION); the "version: every copy agrees" test checks it.
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
    exports_sources = ("../../include/*", "../../LICENSE", "../../cmake/*")

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # ConanCenter ships xsimd 13/14 only; singlequant supports 8.1 and later.
        self.requires("xsimd/[>=13.0 <15]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def build(self):
        pass

    def package(self):
        root = os.path.join(self.source_folder, "..", "..")
        copy(self, "LICENSE", root, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(root, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "singlequant")
        self.cpp_info.set_property("cmake_target_name", "singlequant::singlequant")
        self.cpp_info.set_property("pkg_config_name", "singlequant")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
