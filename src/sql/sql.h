#pragma once

// The public header of `sql`: the Flink SQL dialect's lexer, parser, syntax tree, printer,
// error reporting, type model, the catalog interface the binder resolves names against and the
// server's catalog store (`sql/session.h`, which plans, is included on its own).

#include "sql/ast.h"
#include "sql/binder.h"
#include "sql/catalog.h"
#include "sql/catalog_store.h"
#include "sql/error.h"
#include "sql/lexer.h"
#include "sql/parser.h"
#include "sql/types.h"
