// The connector 'test' the SQL unit tests' tables name: rows come from the test itself, so it
// reads no option. Registered before any test runs.

#include "connect/options/options.h"

namespace {

const bool registered = [] {
    runnel::connect::connector_spec c;
    c.id = "test";
    c.source = c.sink = true;
    c.description = "rows given by a unit test";
    runnel::connect::connector_registry::global().add(std::move(c));
    return true;
}();

} // namespace
