#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace runnel::security::testing {

/// A temporary directory removed by the destructor.
struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "runnel-security-test-XXXXXX").string();
        path = ::mkdtemp(pattern.data());
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

} // namespace runnel::security::testing
