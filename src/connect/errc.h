#pragma once

#include "base/base.h"

namespace runnel::connect {

enum class errc {
    success = 0,
    invalid_config, ///< a connector option is missing, malformed or out of range
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::connect

RUNNEL_ERRC_REGISTER(runnel::connect::errc, "connect");
