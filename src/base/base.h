#pragma once

// The public header of `base`: errors and results, strong integers, byte buffers, CRC32C,
// files, executors, logging (with rate limits), retry backoff and assertions.

#include "base/assert.h"
#include "base/backoff.h"
#include "base/byte_buffer.h"
#include "base/crc32c.h"
#include "base/endian.h"
#include "base/executor.h"
#include "base/fail_point.h"
#include "base/file.h"
#include "base/logging.h"
#include "base/metrics.h"
#include "base/named_type.h"
#include "base/plural.h"
#include "base/result.h"
#include "base/text.h"
