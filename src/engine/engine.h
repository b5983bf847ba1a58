#pragma once

// The public header of `engine`: columnar batches, expressions, operators, watermarks,
// windows and keyed state, and the fluent pipeline API that wires them together.

#include "engine/batch.h"
#include "engine/errc.h"
#include "engine/expr.h"
#include "engine/types.h"
