#include <gtest/gtest.h>
#include "engine/engine.h"
