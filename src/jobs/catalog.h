#pragma once

// How a SQL pipeline's catalog checks a CREATE TABLE against the connectors this process has.

#include "sql/catalog.h"

namespace runnel::jobs {

/// The check every catalog that plans a pipeline uses (`sql::memory_catalog cat(connector_check())`):
/// the table names a known connector, and each option is one it reads, with a value of the
/// option's type (`connect::connector_registry`).
sql::options_check connector_check();

} // namespace runnel::jobs
