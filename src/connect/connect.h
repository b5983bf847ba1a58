#pragma once

// The public header of `connect`: sources and sinks. Here: the Nexmark event generator and
// its events as engine rows; the connectors SQL tables name, and their options.

#include "connect/errc.h"
#include "connect/nexmark/generator.h"
#include "connect/nexmark/rows.h"
#include "connect/options/options.h"
