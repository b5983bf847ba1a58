#pragma once

// The public header of `model`: the domain vocabulary shared by storage, broker and engine.

#include "model/errc.h"
#include "model/fundamental.h"
#include "model/decompress.h"
#include "model/record_batch.h"
#include "model/validate.h"
