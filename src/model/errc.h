#pragma once

#include "base/base.h"

namespace runnel::model {

/// Why bytes are not a valid Kafka RecordBatch v2 or record.
enum class errc {
    success = 0,
    batch_truncated,   ///< fewer bytes than the header or the batch length says
    batch_length_invalid,
    unsupported_magic, ///< only magic 2 (RecordBatch v2) is accepted
    crc_mismatch,
    record_malformed,
    records_compressed, ///< records of a compressed batch need decompression first
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::model

RUNNEL_ERRC_REGISTER(runnel::model::errc, "model");
