#pragma once

// The public header of `engine`: columnar batches, expressions, operators, watermarks,
// windows and keyed state, and the fluent pipeline API that wires them together.

#include "engine/batch.h"
#include "engine/checkpoint.h"
#include "engine/connector.h"
#include "engine/errc.h"
#include "engine/exchange.h"
#include "engine/expr.h"
#include "engine/group.h"
#include "engine/join.h"
#include "engine/topn.h"
#include "engine/types.h"
#include "engine/aggregate.h"
#include "engine/operators.h"
#include "engine/parallel.h"
#include "engine/pipeline.h"
#include "engine/sketch.h"
#include "engine/stage.h"
#include "engine/window.h"
