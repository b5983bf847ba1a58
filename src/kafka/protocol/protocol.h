#pragma once

// The public header of `kafka/protocol`: the Kafka wire codec. Primitive reader and writer,
// request and response headers, one generated struct per message of every supported api
// (kafka/protocol/messages/<api>.h, generated from schemata/<api>.kp), the api table and
// request dispatch.

#include "kafka/protocol/dispatch.h"
#include "kafka/protocol/errc.h"
#include "kafka/protocol/header.h"
#include "kafka/protocol/messages/all.h"
#include "kafka/protocol/messages/apis.h"
#include "kafka/protocol/types.h"
#include "kafka/protocol/wire.h"
