#pragma once

// The public header of `net`: shards (one event loop per core) and endpoints. TLS and SASL
// live in `security`.

#include "net/endpoint.h"
#include "net/shard_group.h"
