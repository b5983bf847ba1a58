#pragma once

// The public header of `connect`: sources and sinks. Today: the Nexmark event generator.

#include "connect/errc.h"
#include "connect/nexmark/generator.h"
