#pragma once

#include "base/base.h"

namespace runnel::storage {

enum class errc {
    success = 0,
    offset_out_of_range, ///< before the log start or after its end
    corrupt_data,        ///< a stored batch failed its checks; nothing at or past it is served
    batch_too_large,     ///< larger than the log's max batch size
    log_failed,          ///< an fsync failed; the log takes no more writes (see docs/operations)
    closed,
    invalid_config,
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::storage

RUNNEL_ERRC_REGISTER(runnel::storage::errc, "storage");
