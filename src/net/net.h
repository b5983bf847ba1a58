#pragma once

// The public header of `net`: shards (one event loop per core). TLS and SASL arrive with the
// Kafka listener.

#include "net/endpoint.h"
#include "net/shard_group.h"
