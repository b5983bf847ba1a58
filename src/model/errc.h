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
    codec_unknown,       ///< compression attribute bits name no codec (5, 6, 7)
    records_undecodable, ///< a compressed records section that its codec cannot inflate
    records_too_large,   ///< a compressed records section inflating past the allowed bound
    batch_invalid,       ///< a header a producer may not send (control, counts, producer fields)
    timestamp_invalid,   ///< LogAppendTime set by a producer, or record timestamps out of range
};

const char* errc_message(errc e) noexcept;
RUNNEL_ERRC_ENUM(errc);

} // namespace runnel::model

RUNNEL_ERRC_REGISTER(runnel::model::errc, "model");
