#pragma once

// The public header of `sql`: the Flink SQL dialect's lexer, parser, syntax tree, printer,
// error reporting, type model and the catalog interface the binder resolves names against.

#include "sql/ast.h"
#include "sql/binder.h"
#include "sql/catalog.h"
#include "sql/error.h"
#include "sql/lexer.h"
#include "sql/parser.h"
#include "sql/types.h"
