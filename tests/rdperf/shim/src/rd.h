/* The example includes "../src/rd.h" relative to an include path. */
#include "../include/rd.h"
