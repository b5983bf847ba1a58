#pragma once

// The public header of `connect_log`: engine sources and sinks over the embedded log. They
// call the broker in-process (no TCP) and take part in a job's checkpoints: a source's
// offsets and a sink's sealed output are parts of the checkpoint.

#include "connect/log/log_sink.h"
#include "connect/log/log_source.h"
