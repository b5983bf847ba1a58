// Boost.JSON's header-only form, compiled once for the fuzz targets that parse JSON (the fuzz
// build does not link Debian's compiled libboost_json).
#include <boost/json/src.hpp>
