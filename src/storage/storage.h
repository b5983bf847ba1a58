#pragma once

// The public header of `storage`: the log storage engine.

#include "storage/compactor.h"
#include "storage/errc.h"
#include "storage/file_cache.h"
#include "storage/flusher.h"
#include "storage/log_config.h"
#include "storage/log_manager.h"
#include "storage/partition_log.h"
