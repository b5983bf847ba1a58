#!/usr/bin/env python3
"""Generates Runnel's Kafka message structs and codecs from schemata/*.kp.

Usage:
    codegen.py --schemata DIR --out DIR            the library: messages/<api>.h/.cc, apis.h/.cc
    codegen.py --schemata DIR --out DIR --tests    test support: <api>_fill.cc, fill_table.cc

The description format is documented in schemata/README.md. Files are rewritten only when
their text changes, so an edit to one description recompiles only what it affects.
Standard library only; runs under any Python 3.9+.
"""

import argparse
import os
import re
import sys

INF = 1 << 15

SCALARS = {
    # type: (C++ type, writer method, reader method)
    "int8": ("int8_t", "write_int8", "read_int8"),
    "int16": ("int16_t", "write_int16", "read_int16"),
    "int32": ("int32_t", "write_int32", "read_int32"),
    "int64": ("int64_t", "write_int64", "read_int64"),
    "uint16": ("uint16_t", "write_uint16", "read_uint16"),
    "uint32": ("uint32_t", "write_uint32", "read_uint32"),
    "float64": ("double", "write_float64", "read_float64"),
    "bool": ("bool", "write_bool", "read_bool"),
    "uuid": ("uuid", "write_uuid", "read_uuid"),
}
BLOBS = ("string", "bytes", "records")
# Members of a generated message struct besides its fields (nested structs: encode, decode).
RESERVED = {"api", "min_version", "max_version", "first_flexible_version", "encode", "decode"}


class SchemaError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Versions


class Versions:
    """A closed range of versions [lo, hi]; empty when lo > hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    @staticmethod
    def parse(text, where):
        if text == "none":
            return Versions(1, 0)
        m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text)
        if not m:
            raise SchemaError(f"{where}: bad versions '{text}'")
        lo = int(m.group(1))
        if m.group(2) == "+":
            return Versions(lo, INF)
        if m.group(3) is not None:
            return Versions(lo, int(m.group(3)))
        return Versions(lo, lo)

    def empty(self):
        return self.lo > self.hi

    def clip(self, other):
        return Versions(max(self.lo, other.lo), min(self.hi, other.hi))

    def covers(self, other):
        return other.empty() or (self.lo <= other.lo and other.hi <= self.hi)

    def cond(self, within, var="v"):
        """A C++ condition true for versions in self, given the version is in `within`."""
        r = self.clip(within)
        if r.empty():
            return "false"
        parts = []
        if r.lo > within.lo:
            parts.append(f"{var} >= {r.lo}")
        if r.hi < within.hi:
            parts.append(f"{var} <= {r.hi}")
        return " && ".join(parts) if parts else "true"

    def __contains__(self, v):
        return self.lo <= v <= self.hi

    def __iter__(self):
        return iter(range(self.lo, self.hi + 1))

    def __repr__(self):
        return f"{self.lo}-{self.hi}"


# ---------------------------------------------------------------------------------------------
# The description model


class Field:
    def __init__(self, name, type_text, versions, where):
        self.name = name
        self.where = where
        self.versions = versions
        self.nullable = Versions(1, 0)
        self.tag = None
        self.default = None
        self.flex_none = False
        self.is_array = type_text.startswith("[")
        self.elem = type_text[1:-1] if self.is_array else type_text
        if self.is_array and not type_text.endswith("]"):
            raise SchemaError(f"{where}: bad array type '{type_text}'")
        self.struct = None  # a Struct when elem names one

    @property
    def kind(self):
        """'scalar', 'blob', 'struct', or 'array'."""
        if self.is_array:
            return "array"
        if self.struct is not None:
            return "struct"
        if self.elem in BLOBS:
            return "blob"
        return "scalar"


class Struct:
    def __init__(self, name):
        self.name = name
        self.fields = []


class Message:
    def __init__(self, name, versions, flexible, api=None, direction=None):
        self.name = name
        self.versions = versions
        self.flexible = flexible  # Versions, possibly empty
        self.api = api
        self.direction = direction  # "request", "response" or None for headers
        self.root = Struct(name)
        self.structs = []  # nested structs, in definition order


class Api:
    def __init__(self, name, key, versions, flexible):
        self.name, self.key, self.versions, self.flexible = name, key, versions, flexible
        self.messages = []


def parse_options(text, where):
    opts = {}
    for tok in text:
        if "=" not in tok:
            raise SchemaError(f"{where}: expected key=value, got '{tok}'")
        k, v = tok.split("=", 1)
        opts[k] = v
    return opts


def parse_file(path):
    """Returns (api or None, [messages])."""
    api = None
    messages = []
    msg = None
    stack = []  # (indent, Struct)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for lineno, raw in enumerate(lines, 1):
        where = f"{os.path.basename(path)}:{lineno}"
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        toks = line.split()
        if indent == 0:
            head = toks[0]
            if head == "api":
                o = parse_options(toks[2:], where)
                api = Api(toks[1], int(o["key"]), Versions.parse(o["versions"], where),
                          Versions.parse(o.get("flexible", "none"), where))
                continue
            if head in ("request", "response"):
                if api is None:
                    raise SchemaError(f"{where}: '{head}' before 'api'")
                msg = Message(f"{api.name}_{head}", api.versions, api.flexible, api, head)
                api.messages.append(msg)
            elif head == "message":
                o = parse_options(toks[2:], where)
                msg = Message(toks[1], Versions.parse(o["versions"], where),
                              Versions.parse(o.get("flexible", "none"), where))
            else:
                raise SchemaError(f"{where}: unknown section '{head}'")
            msg.flexible = msg.flexible.clip(msg.versions)
            messages.append(msg)
            stack = [(0, msg.root)]
            continue
        if msg is None:
            raise SchemaError(f"{where}: field outside a message")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack:
            raise SchemaError(f"{where}: bad indentation")
        parent = stack[-1][1]
        if parent is None:
            raise SchemaError(f"{where}: indented under a field that defines no struct")
        if len(toks) < 3:
            raise SchemaError(f"{where}: expected '<name> <type> <versions>'")
        field = Field(toks[0], toks[1], Versions.parse(toks[2], where), where)
        field.versions = field.versions.clip(msg.versions)
        if field.versions.empty():
            raise SchemaError(f"{where}: field {field.name} has no version in {msg.versions}")
        o = parse_options(toks[3:], where)
        if "null" in o:
            field.nullable = Versions.parse(o.pop("null"), where).clip(field.versions)
        if "tag" in o:
            field.tag = int(o.pop("tag"))
        if "default" in o:
            field.default = o.pop("default")
        if o.get("flex") == "none":
            field.flex_none = True
            o.pop("flex")
        if o:
            raise SchemaError(f"{where}: unknown options {sorted(o)}")
        parent.fields.append(field)
        if field.elem not in SCALARS and field.elem not in BLOBS:
            existing = next((s for s in msg.structs if s.name == field.elem), None)
            if existing is None:
                existing = Struct(field.elem)
                msg.structs.append(existing)
                stack.append((indent, existing))
            else:
                # A reuse; lines indented under it would redefine it.
                stack.append((indent, None))
            field.struct = existing
        else:
            stack.append((indent, None))
    for m in messages:
        validate(m)
    return api, messages


def all_fields(msg):
    for s in [msg.root] + msg.structs:
        for f in s.fields:
            yield s, f


def validate(msg):
    names = {s.name for s in msg.structs}
    for s, f in all_fields(msg):
        if f.name in names:
            raise SchemaError(f"{f.where}: field name '{f.name}' equals a struct name")
        if f.name in {"encode", "decode"} or (s is msg.root and f.name in RESERVED):
            raise SchemaError(f"{f.where}: field name '{f.name}' is a generated member's name")
        if f.struct is not None and not f.struct.fields:
            raise SchemaError(f"{f.where}: struct '{f.elem}' has no fields")
        if f.tag is not None and not msg.flexible.covers(f.versions):
            raise SchemaError(f"{f.where}: tagged field outside flexible versions")
        if f.kind == "scalar" and not f.nullable.empty():
            raise SchemaError(f"{f.where}: scalars cannot be nullable")
        if f.kind == "struct" and not f.nullable.empty() and not f.nullable.covers(f.versions):
            raise SchemaError(f"{f.where}: a nullable struct must be nullable in all its versions")
        if f.elem == "records" and f.nullable.empty():
            raise SchemaError(f"{f.where}: records are always nullable")
        if f.is_array and f.elem in ("records",):
            raise SchemaError(f"{f.where}: arrays of records are not supported")
        default_value(f)  # raises on a default the field cannot take
    for s in [msg.root] + msg.structs:
        tags = [f.tag for f in s.fields if f.tag is not None]
        if len(tags) != len(set(tags)):
            raise SchemaError(f"{msg.name}.{s.name}: duplicate tags")
        seen = set()
        for f in s.fields:
            if f.name in seen:
                raise SchemaError(f"{f.where}: duplicate field '{f.name}'")
            seen.add(f.name)


# ---------------------------------------------------------------------------------------------
# C++ types and defaults


def is_nullable(f):
    return not f.nullable.empty()


def elem_cpp(f):
    if f.struct is not None:
        return f.struct.name
    if f.elem in SCALARS:
        return SCALARS[f.elem][0]
    if f.elem == "string":
        return "std::string"
    return "bytes"


def field_cpp(f):
    t = elem_cpp(f)
    if f.is_array:
        t = f"std::vector<{t}>"
    if is_nullable(f):
        t = f"std::optional<{t}>"
    return t


INT_LIMITS = {
    "int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1), "uint32": (0, (1 << 32) - 1),
}


NULL = object()  # the default of a field whose default is null


def default_value(f):
    """The default as a Python value: int, float or bool for scalars (None for uuid); for
    strings, bytes and arrays NULL or the text of the value ("" meaning empty). As in Kafka,
    nullable fields, records included, default to empty unless the description says
    `default=null`: a response never carries a null that Kafka's broker would send as empty."""
    d = f.default
    if f.kind == "scalar":
        if f.elem == "bool":
            if d in (None, "false"):
                return False
            if d == "true":
                return True
            raise SchemaError(f"{f.where}: bad bool default '{d}'")
        if f.elem == "uuid":
            if d is not None:
                raise SchemaError(f"{f.where}: uuid defaults are not supported")
            return None
        if f.elem == "float64":
            return float(d) if d is not None else 0.0
        v = int(d, 0) if d is not None else 0
        lo, hi = INT_LIMITS[f.elem]
        if not lo <= v <= hi:
            raise SchemaError(f"{f.where}: default {d} out of range")
        return v
    if f.kind == "struct":
        if d == "null" and is_nullable(f):
            return NULL
        if d is not None:
            raise SchemaError(f"{f.where}: struct fields take no default but null (nullable ones)")
        return ""
    if d == "null":
        if not f.nullable.covers(f.versions):
            raise SchemaError(f"{f.where}: a null default needs the field nullable in all versions")
        return NULL
    if d is None:
        return ""
    if f.elem == "string" and not f.is_array and d.startswith('"') and d.endswith('"'):
        return d[1:-1]
    raise SchemaError(f"{f.where}: unsupported default '{d}'")


def int_literal(elem, v):
    lo, _ = INT_LIMITS[elem]
    if v == lo and elem != "uint16" and elem != "uint32":
        return f"std::numeric_limits<{SCALARS[elem][0]}>::min()"
    return str(v)


def default_init(f):
    """The member initializer, or '' for value-initialized members."""
    dv = default_value(f)
    if f.kind == "scalar":
        if f.elem == "bool":
            return " = true" if dv else " = false"
        if f.elem == "uuid":
            return ""
        if f.elem == "float64":
            return f" = {dv!r}"
        return f" = {int_literal(f.elem, dv)}"
    if f.kind == "struct" or dv is NULL:
        return ""
    if is_nullable(f):
        return "{std::in_place}" if dv == "" else f'{{std::in_place, "{dv}"}}'
    return f' = "{dv}"' if dv else ""


def default_test(f, expr):
    """A C++ condition true when `expr` differs from the field's default (tagged fields)."""
    dv = default_value(f)
    if f.kind == "scalar":
        if f.elem == "bool":
            return f"{expr} != {'true' if dv else 'false'}"
        if f.elem == "uuid":
            return f"{expr} != uuid{{}}"
        if f.elem == "float64":
            return f"{expr} != {dv!r}"
        return f"{expr} != {int_literal(f.elem, dv)}"
    if f.kind == "struct" and not is_nullable(f):
        return f"{expr} != {f.struct.name}{{}}"
    if dv is NULL:
        return f"{expr}.has_value()"
    if is_nullable(f):
        if dv:
            return f'(!{expr} || *{expr} != "{dv}")'
        return f"(!{expr} || !{expr}->empty())"
    if dv:
        return f'{expr} != "{dv}"'
    return f"!{expr}.empty()"


# ---------------------------------------------------------------------------------------------
# Encoders and decoders


class Out:
    def __init__(self):
        self.lines = []
        self.ind = 0

    def __call__(self, text=""):
        self.lines.append(("    " * self.ind + text) if text else "")

    def block(self, head):
        self(head + " {")
        self.ind += 1

    def end(self, tail="}"):
        self.ind -= 1
        self(tail)

    def text(self):
        return "\n".join(self.lines) + "\n"


def flex_expr(msg, f):
    """The C++ expression telling whether field `f` uses compact encodings."""
    if f.flex_none or msg.flexible.empty():
        return "false"
    return "flex"


def emit_encode_value(o, msg, f, expr, w, flex, version_range):
    """Writes `expr` (the field's C++ value) to writer `w`."""
    ncond = f.nullable.cond(version_range)
    if f.kind == "scalar":
        o(f"{w}.{SCALARS[f.elem][1]}({expr});")
    elif f.kind == "struct" and is_nullable(f):
        # A nullable struct is preceded by an int8: -1 when null, 1 when present.
        o(f"if (!{expr}) {{")
        o(f"    {w}.write_int8(-1);")
        o("} else {")
        o(f"    {w}.write_int8(1);")
        o(f"    {expr}->encode({w}, v);")
        o("}")
    elif f.kind == "struct":
        o(f"{expr}.encode({w}, v);")
    elif f.kind == "blob":
        kind = "string" if f.elem == "string" else "bytes"
        if not is_nullable(f):
            o(f"{w}.write_{kind}({expr}, {flex});")
        elif ncond == "true":
            o(f"{w}.write_nullable_{kind}({expr}, {flex});")
        else:
            o(f"if ({ncond}) {{")
            o(f"    {w}.write_nullable_{kind}({expr}, {flex});")
            o("} else {")
            empty = "std::string_view()" if kind == "string" else "std::span<const std::byte>()"
            o(f"    {w}.write_{kind}({expr} ? {value_of(f, expr)} : {empty}, {flex});")
            o("}")
    else:  # array
        def loop(vec):
            size = f"{vec[2:-1]}->size()" if vec.startswith("(*") else f"{vec}.size()"
            o(f"{w}.write_array_length({size}, {flex});")
            o(f"for (const auto& e : {vec.strip('()')}) {{")
            o.ind += 1
            if f.struct is not None:
                o(f"e.encode({w}, v);")
            elif f.elem in SCALARS:
                o(f"{w}.{SCALARS[f.elem][1]}(e);")
            else:
                o(f"{w}.write_{'string' if f.elem == 'string' else 'bytes'}(e, {flex});")
            o.end()

        if not is_nullable(f):
            loop(expr)
        else:
            o(f"if (!{expr}) {{")
            o.ind += 1
            if ncond == "true":
                o(f"{w}.write_null_array({flex});")
            elif ncond == "false":
                o(f"{w}.write_array_length(0, {flex});")
            else:
                o(f"if ({ncond}) {{")
                o(f"    {w}.write_null_array({flex});")
                o("} else {")
                o(f"    {w}.write_array_length(0, {flex});")
                o("}")
            o.end("} else {")
            o.ind += 1
            loop(f"(*{expr})")
            o.end()


def value_of(f, expr):
    if f.elem == "string":
        return f"std::string_view(*{expr})"
    return f"std::span<const std::byte>(*{expr})"


def emit_decode_value(o, msg, f, dst, r, flex, version_range):
    """Reads the field from reader `r` into lvalue `dst`."""
    ncond = f.nullable.cond(version_range)
    if f.kind == "scalar":
        o(f"RUNNEL_KP_READ({dst}, {r}.{SCALARS[f.elem][2]}());")
    elif f.kind == "struct" and is_nullable(f):
        o("{")
        o("    int8_t present = 0;")
        o(f"    RUNNEL_KP_READ(present, {r}.read_int8());")
        o("    if (present < 0) {")
        o(f"        {dst}.reset();")
        o("    } else {")
        o(f"        RUNNEL_KP_CHECK({dst}.emplace().decode({r}, v));")
        o("    }")
        o("}")
    elif f.kind == "struct":
        o(f"RUNNEL_KP_CHECK({dst}.decode({r}, v));")
    elif f.kind == "blob":
        kind = "string" if f.elem == "string" else "bytes"
        if not is_nullable(f):
            o(f"RUNNEL_KP_READ({dst}, {r}.read_{kind}({flex}));")
        elif ncond == "true":
            o(f"RUNNEL_KP_READ({dst}, {r}.read_nullable_{kind}({flex}));")
        else:
            o(f"if ({ncond}) {{")
            o(f"    RUNNEL_KP_READ({dst}, {r}.read_nullable_{kind}({flex}));")
            o("} else {")
            o(f"    RUNNEL_KP_READ({dst}, {r}.read_{kind}({flex}));")
            o("}")
    else:
        o("{")
        o.ind += 1
        nullable_now = "false" if not is_nullable(f) else ncond
        o("int32_t n = 0;")
        o(f"RUNNEL_KP_READ(n, {r}.read_array_length({flex}, {nullable_now}));")
        if is_nullable(f):
            o("if (n < 0) {")
            o(f"    {dst}.reset();")
            o("} else {")
            o.ind += 1
            o(f"auto& vec = {dst}.emplace();")
        else:
            o(f"auto& vec = {dst};")
            o("vec.clear();")
        o("vec.reserve(reserve_hint(n));")
        o("for (int32_t i = 0; i < n; ++i) {")
        o.ind += 1
        if f.struct is not None:
            o("RUNNEL_KP_CHECK(vec.emplace_back().decode(" + r + ", v));")
        elif f.elem in SCALARS:
            o(f"RUNNEL_KP_READ(vec.emplace_back(), {r}.{SCALARS[f.elem][2]}());")
        else:
            kind = "string" if f.elem == "string" else "bytes"
            o(f"RUNNEL_KP_READ(vec.emplace_back(), {r}.read_{kind}({flex}));")
        o.end()
        if is_nullable(f):
            o.end()
        o.end()


def emit_struct_codec(o, msg, s, qual):
    rng = msg.versions
    regular = [f for f in s.fields if f.tag is None]
    tagged = sorted((f for f in s.fields if f.tag is not None), key=lambda f: f.tag)
    has_flex = not msg.flexible.empty()
    flex_line = f"const bool flex = {msg.flexible.cond(rng)};" if has_flex else None

    # encode
    o(f"void {qual}::encode(writer& w, int16_t v) const {{")
    o.ind += 1
    start = len(o.lines)
    if flex_line:
        o(flex_line)
    for f in regular:
        cond = f.versions.cond(rng)
        if cond != "true":
            o.block(f"if ({cond})")
        emit_encode_value(o, msg, f, f.name, "w", flex_expr(msg, f), f.versions)
        if cond != "true":
            o.end()
    if has_flex:
        o.block("if (flex)")
        if not tagged:
            o("w.write_uvarint(0);")
        else:
            conds = []
            for f in tagged:
                c = f.versions.cond(rng)
                t = default_test(f, f.name)
                conds.append(f"({t})" if c == "true" else f"{c} && ({t})")
            for i, c in enumerate(conds):
                o(f"const bool t{i} = {c};")
            o("w.write_uvarint(" + " + ".join(f"uint32_t(t{i})" for i in range(len(conds))) + ");")
            for i, f in enumerate(tagged):
                o.block(f"if (t{i})")
                o("writer tw;")
                emit_encode_value(o, msg, f, f.name, "tw", "true", f.versions)
                o(f"w.write_tagged_field({f.tag}, tw);")
                o.end()
        o.end()
    mark_unused_version(o, start)
    o.end()
    o()

    # decode
    o(f"::runnel::result<void> {qual}::decode(reader& r, int16_t v) {{")
    o.ind += 1
    start = len(o.lines)
    if flex_line:
        o(flex_line)
    for f in regular:
        cond = f.versions.cond(rng)
        if cond != "true":
            o.block(f"if ({cond})")
        emit_decode_value(o, msg, f, f.name, "r", flex_expr(msg, f), f.versions)
        if cond != "true":
            o.end()
    if has_flex:
        o.block("if (flex)")
        if not tagged:
            o("RUNNEL_KP_CHECK(r.skip_tagged_fields());")
        else:
            o("uint32_t count = 0;")
            o("RUNNEL_KP_READ(count, r.read_uvarint());")
            o.block("for (uint32_t i = 0; i < count; ++i)")
            o("uint32_t tag = 0;")
            o("std::span<const std::byte> raw;")
            o("RUNNEL_KP_READ(tag, r.read_uvarint());")
            o("RUNNEL_KP_READ(raw, r.read_tagged_field_bytes());")
            o("reader tr(raw);")
            o.block("switch (tag)")
            for f in tagged:
                o(f"case {f.tag}:")
                o.ind += 1
                c = f.versions.cond(rng)
                if c != "true":
                    o.block(f"if (!({c}))")
                    o("break;  // not in this version: an unknown tag, skipped")
                    o.end()
                emit_decode_value(o, msg, f, f.name, "tr", "true", f.versions)
                o("if (!tr.empty()) {")
                o("    return errc::invalid_tagged_field;")
                o("}")
                o("break;")
                o.ind -= 1
            o("default:")
            o("    break;  // unknown tags are skipped")
            o.end()
            o.end()
        o.end()
    o("return ::runnel::outcome::success();")
    mark_unused_version(o, start)
    o.end()
    o()


def mark_unused_version(o, start):
    """Adds `(void)v;` to a function body (lines from `start`) that never reads `v`."""
    if not any(re.search(r"\bv\b", line) for line in o.lines[start:]):
        o.lines.insert(start, "    " * o.ind + "(void)v;")


def declaration_order(msg):
    """Nested structs, each after every struct its fields hold."""
    done, order = set(), []

    def visit(s, path):
        if s.name in done:
            return
        if s.name in path:
            raise SchemaError(f"{msg.name}: struct '{s.name}' contains itself")
        for f in s.fields:
            if f.struct is not None:
                visit(f.struct, path | {s.name})
        done.add(s.name)
        order.append(s)

    for s in msg.structs:
        visit(s, set())
    return order


def emit_struct_decl(o, msg, s, top):
    doc_versions = f"versions {msg.versions.lo}-{msg.versions.hi}"
    if top:
        o(f"/// The Kafka {camel(msg.name)} message, {doc_versions}"
          + (f", flexible from v{msg.flexible.lo}." if not msg.flexible.empty() else ", never flexible."))
        o("/// Fields absent in a version are skipped; tagged fields are written only when they")
        o("/// differ from their defaults. Plain data: copyable, comparable, no invariants.")
    o(f"struct {s.name} {{")
    o.ind += 1
    if top:
        for n in declaration_order(msg):
            emit_struct_decl(o, msg, n, False)
            o()
        if msg.api is not None:
            o(f"static constexpr api_key api = api_key::{msg.api.name};")
        o(f"static constexpr int16_t min_version = {msg.versions.lo};")
        o(f"static constexpr int16_t max_version = {msg.versions.hi};")
        first_flex = msg.flexible.lo if not msg.flexible.empty() else -1
        o(f"/// -1 when no version is flexible.")
        o(f"static constexpr int16_t first_flexible_version = {first_flex};")
        o()
    for f in s.fields:
        o(f"{field_cpp(f)} {f.name}{default_init(f)};{field_comment(msg, f)}")
    o()
    if top:
        o("/// Appends the encoding of `version`. Precondition: min_version <= version <= max_version.")
        o("void encode(writer& w, int16_t version) const;")
        o("/// Reads the encoding of `version` from `r`, leaving any bytes after it in `r`.")
        o("/// Fails on truncated or malformed input; `*this` is then partly overwritten.")
        o("::runnel::result<void> decode(reader& r, int16_t version);")
    else:
        o("void encode(writer& w, int16_t version) const;")
        o("::runnel::result<void> decode(reader& r, int16_t version);")
    o(f"bool operator==(const {s.name}&) const = default;")
    o.end("};")


def field_comment(msg, f):
    parts = [f"v{f.versions.lo}+" if f.versions.hi >= msg.versions.hi else
             (f"v{f.versions.lo}" if f.versions.lo == f.versions.hi else
              f"v{f.versions.lo}-{f.versions.hi}")]
    if is_nullable(f):
        parts.append(f"nullable v{f.nullable.lo}+" if f.nullable.hi >= f.versions.hi
                     else f"nullable v{f.nullable.lo}-{f.nullable.hi}")
    if f.tag is not None:
        parts.append(f"tag {f.tag}")
    if f.flex_none:
        parts.append("never compact")
    return "  // " + ", ".join(parts)


def camel(name):
    return "".join(p.capitalize() for p in name.split("_"))


GEN_NOTE = "// Generated by src/kafka/protocol/generator/codegen.py from schemata/{src}. Do not edit.\n"


def gen_message_header(src, messages, include_apis):
    o = Out()
    o(GEN_NOTE.format(src=src).rstrip())
    o("#pragma once")
    o()
    for inc in ("cstdint", "limits", "optional", "string", "vector"):
        o(f"#include <{inc}>")
    o()
    if include_apis:
        o('#include "kafka/protocol/messages/apis.h"')
    o('#include "kafka/protocol/types.h"')
    o()
    o("namespace runnel::kafka::protocol {")
    o()
    for m in messages:
        emit_struct_decl(o, m, m.root, True)
        o()
    o("} // namespace runnel::kafka::protocol")
    return o.text()


def gen_message_source(src, header, messages):
    o = Out()
    o(GEN_NOTE.format(src=src).rstrip())
    o(f'#include "kafka/protocol/messages/{header}"')
    o()
    o('#include "kafka/protocol/codegen_support.h"')
    o()
    o("namespace runnel::kafka::protocol {")
    o()
    for m in messages:
        for s in m.structs:
            emit_struct_codec(o, m, s, f"{m.name}::{s.name}")
        emit_struct_codec(o, m, m.root, m.name)
    o("} // namespace runnel::kafka::protocol")
    return o.text()


def gen_apis_header(apis):
    o = Out()
    o("// Generated by src/kafka/protocol/generator/codegen.py from schemata/*.kp. Do not edit.")
    o("#pragma once")
    o()
    o("#include <cstdint>")
    o("#include <span>")
    o("#include <string_view>")
    o()
    o("namespace runnel::kafka::protocol {")
    o()
    o("/// The Kafka apis Runnel speaks, by their wire key.")
    o("enum class api_key : int16_t {")
    for a in sorted(apis, key=lambda a: a.key):
        o(f"    {a.name} = {a.key},")
    o("};")
    o()
    o("/// One row of the api table: the versions Runnel decodes and encodes for an api.")
    o("struct api_support {")
    o("    protocol::api_key key;")
    o("    std::string_view name;")
    o("    int16_t min_version;")
    o("    int16_t max_version;")
    o("    /// The first version with compact encodings and tagged fields; -1 if none.")
    o("    int16_t first_flexible_version;")
    o()
    o("    bool supports(int16_t version) const noexcept {")
    o("        return version >= min_version && version <= max_version;")
    o("    }")
    o("    bool is_flexible(int16_t version) const noexcept {")
    o("        return first_flexible_version >= 0 && version >= first_flexible_version;")
    o("    }")
    o("};")
    o()
    o("/// Every supported api, ordered by key.")
    o("std::span<const api_support> supported_apis() noexcept;")
    o()
    o("/// The row for `key`, or nullptr when Runnel does not speak that api.")
    o("const api_support* find_api(int16_t key) noexcept;")
    o("inline const api_support* find_api(api_key key) noexcept {")
    o("    return find_api(static_cast<int16_t>(key));")
    o("}")
    o()
    o("} // namespace runnel::kafka::protocol")
    return o.text()


def gen_all_header(apis):
    o = Out()
    o("// Generated by src/kafka/protocol/generator/codegen.py from schemata/*.kp. Do not edit.")
    o("#pragma once")
    o()
    o("#include <variant>")
    o()
    o('#include "kafka/protocol/messages/apis.h"')
    o('#include "kafka/protocol/messages/headers.h"')
    for a in sorted(apis, key=lambda a: a.name):
        o(f'#include "kafka/protocol/messages/{a.name}.h"')
    o()
    o("namespace runnel::kafka::protocol {")
    o()
    ordered = sorted(apis, key=lambda a: a.key)
    for d in ("request", "response"):
        o(f"/// Any decoded {d}; the alternatives are ordered by api key.")
        o(f"using any_{d} = std::variant<")
        for i, a in enumerate(ordered):
            o(f"    {a.name}_{d}{',' if i + 1 < len(ordered) else '>;'}")
        o()
    o("} // namespace runnel::kafka::protocol")
    return o.text()


def gen_apis_source(apis):
    ordered = sorted(apis, key=lambda a: a.key)
    o = Out()
    o("// Generated by src/kafka/protocol/generator/codegen.py from schemata/*.kp. Do not edit.")
    o('#include "kafka/protocol/messages/all.h"')
    o()
    o("#include <array>")
    o()
    o('#include "kafka/protocol/codegen_support.h"')
    o('#include "kafka/protocol/dispatch.h"')
    o()
    o("namespace runnel::kafka::protocol {")
    o()
    o("namespace {")
    o(f"constexpr std::array<api_support, {len(ordered)}> api_table{{{{")
    for a in ordered:
        ff = a.flexible.lo if not a.flexible.empty() else -1
        o(f'    {{api_key::{a.name}, "{a.name}", {a.versions.lo}, {a.versions.hi}, {ff}}},')
    o("}};")
    o()
    o("template <typename M, typename Variant>")
    o("::runnel::result<Variant> decode_as(std::span<const std::byte> body, int16_t version) {")
    o("    reader r(body);")
    o("    M m;")
    o("    RUNNEL_KP_CHECK(m.decode(r, version));")
    o("    // Bytes after the message are ignored, as Kafka brokers ignore them.")
    o("    return Variant(std::in_place_type<M>, std::move(m));")
    o("}")
    o("} // namespace")
    o()
    o("std::span<const api_support> supported_apis() noexcept {")
    o("    return api_table;")
    o("}")
    o()
    o("const api_support* find_api(int16_t key) noexcept {")
    o("    switch (key) {")
    for i, a in enumerate(ordered):
        o(f"    case {a.key}:")
        o(f"        return &api_table[{i}];")
    o("    default:")
    o("        return nullptr;")
    o("    }")
    o("}")
    o()
    for d in ("request", "response"):
        o(f"::runnel::result<any_{d}> decode_{d}(")
        o(f"  int16_t key, int16_t version, std::span<const std::byte> body) {{")
        o("    const api_support* api = find_api(key);")
        o("    if (api == nullptr) {")
        o("        return errc::unsupported_api_key;")
        o("    }")
        o("    if (!api->supports(version)) {")
        o("        return errc::unsupported_version;")
        o("    }")
        o("    switch (api->key) {")
        for a in ordered:
            o(f"    case api_key::{a.name}:")
            o(f"        return decode_as<{a.name}_{d}, any_{d}>(body, version);")
        o("    }")
        o("    return errc::unsupported_api_key;")
        o("}")
        o()
    o("} // namespace runnel::kafka::protocol")
    return o.text()


# ---------------------------------------------------------------------------------------------
# Test support: fill every field present in a version with a non-default value


def emit_fill_value(o, msg, f, dst, nulls):
    """Assigns a non-default value (or null, in `nulls` mode where allowed) to `dst`."""
    rng = f.versions
    ncond = f.nullable.cond(rng)
    if is_nullable(f) and nulls:
        if ncond == "true":
            o(f"{dst}.reset();")
            return
        if ncond != "false":
            o(f"if ({ncond}) {{")
            o(f"    {dst}.reset();")
            o("} else {")
            o.ind += 1
            emit_fill_value(o, msg, f, dst, False)
            o.end()
            return
    if f.kind == "scalar":
        if f.elem == "bool":
            o(f"{dst} = {'false' if default_value(f) else 'true'};")
        elif f.elem == "uuid":
            o(f"{dst} = g.next_uuid();")
        elif f.elem == "float64":
            o(f"{dst} = g.next_double();")
        else:
            o(f"{dst} = g.next<{SCALARS[f.elem][0]}>({int_literal(f.elem, default_value(f))});")
    elif f.kind == "struct" and is_nullable(f):
        o(f"fill({dst}.emplace(), v, g, nulls);")
    elif f.kind == "struct":
        o(f"fill({dst}, v, g, nulls);")
    elif f.kind == "blob":
        o(f"{dst} = g.next_{'string' if f.elem == 'string' else 'bytes'}();")
    else:
        vec = dst
        if is_nullable(f):
            o(f"{dst}.emplace();")
            vec = f"(*{dst})"
        o(f"{vec}.resize(2);")
        o(f"for (auto& e : {vec}) {{")
        o.ind += 1
        if f.struct is not None:
            o("fill(e, v, g, nulls);")
        elif f.elem in SCALARS:
            if f.elem == "bool":
                o("e = true;")
            elif f.elem == "uuid":
                o("e = g.next_uuid();")
            else:
                o(f"e = g.next<{SCALARS[f.elem][0]}>(0);")
        else:
            o(f"e = g.next_{'string' if f.elem == 'string' else 'bytes'}();")
        o.end()


def gen_fill_source(src, header, messages):
    o = Out()
    o(GEN_NOTE.format(src=src).rstrip())
    o(f'#include "kafka/protocol/messages/{header}"')
    o('#include "kafka/protocol/tests/fill_support.h"')
    o()
    o("namespace runnel::kafka::protocol::testing {")
    o()
    o("namespace {")
    for m in messages:
        for s in reversed(m.structs):
            o(f"[[maybe_unused]] void fill({m.name}::{s.name}& x, int16_t v, value_source& g, bool nulls);")
    for m in messages:
        for s in reversed(m.structs):
            emit_fill_fn(o, m, s, f"{m.name}::{s.name}")
    o("} // namespace")
    o()
    for m in messages:
        emit_fill_fn(o, m, m.root, m.name)
    o("} // namespace runnel::kafka::protocol::testing")
    return o.text()


def emit_fill_fn(o, m, s, qual):
    o(f"void fill({qual}& x, int16_t v, value_source& g, bool nulls) {{")
    o.ind += 1
    o("(void)v; (void)g; (void)nulls;")
    for f in s.fields:
        cond = f.versions.cond(m.versions)
        if cond != "true":
            o.block(f"if ({cond})")
        # `nulls` is a runtime flag: both branches are emitted only for nullable fields.
        if is_nullable(f):
            o.block("if (nulls)")
            emit_fill_value(o, m, f, f"x.{f.name}", True)
            o.end("} else {")
            o.ind += 1
            emit_fill_value(o, m, f, f"x.{f.name}", False)
            o.end()
        else:
            emit_fill_value(o, m, f, f"x.{f.name}", False)
        if cond != "true":
            o.end()
    o.end()
    o()


def gen_fill_table(apis, header_messages):
    o = Out()
    o("// Generated by src/kafka/protocol/generator/codegen.py from schemata/*.kp. Do not edit.")
    o('#include "kafka/protocol/tests/message_cases.h"')
    o()
    o("namespace runnel::kafka::protocol::testing {")
    o()
    msgs = [m for a in sorted(apis, key=lambda a: a.key) for m in a.messages] + header_messages
    for m in msgs:
        o(f"void fill({m.name}& x, int16_t v, value_source& g, bool nulls);")
    o()
    o("std::vector<message_case> all_message_cases() {")
    o("    return {")
    for m in msgs:
        key = m.api.key if m.api else -1
        req = str(m.direction == "request" or m.name == "request_header").lower()
        o(f'        make_case<{m.name}>("{m.name}", {key}, {req}, fill),')
    o("    };")
    o("}")
    o()
    o("} // namespace runnel::kafka::protocol::testing")
    return o.text()


# ---------------------------------------------------------------------------------------------


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--schemata", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tests", action="store_true")
    args = ap.parse_args()

    apis, header_messages = [], []
    for name in sorted(os.listdir(args.schemata)):
        if not name.endswith(".kp"):
            continue
        try:
            api, msgs = parse_file(os.path.join(args.schemata, name))
        except SchemaError as e:
            print(f"codegen: {e}", file=sys.stderr)
            return 1
        if api is not None:
            if [m.direction for m in api.messages] != ["request", "response"]:
                print(f"codegen: {name}: needs a request and a response", file=sys.stderr)
                return 1
            if name != api.name + ".kp":
                print(f"codegen: {name}: file must be named {api.name}.kp", file=sys.stderr)
                return 1
            apis.append(api)
        else:
            if name != "headers.kp":
                print(f"codegen: {name}: only headers.kp may hold bare messages", file=sys.stderr)
                return 1
            header_messages.extend(msgs)
    keys = [a.key for a in apis]
    if len(keys) != len(set(keys)):
        print("codegen: duplicate api keys", file=sys.stderr)
        return 1

    out = args.out
    if args.tests:
        for a in apis:
            write_if_changed(os.path.join(out, f"{a.name}_fill.cc"),
                             gen_fill_source(f"{a.name}.kp", f"{a.name}.h", a.messages))
        write_if_changed(os.path.join(out, "headers_fill.cc"),
                         gen_fill_source("headers.kp", "headers.h", header_messages))
        write_if_changed(os.path.join(out, "fill_table.cc"), gen_fill_table(apis, header_messages))
        return 0

    mdir = os.path.join(out, "kafka", "protocol", "messages")
    for a in apis:
        write_if_changed(os.path.join(mdir, f"{a.name}.h"),
                         gen_message_header(f"{a.name}.kp", a.messages, True))
        write_if_changed(os.path.join(mdir, f"{a.name}.cc"),
                         gen_message_source(f"{a.name}.kp", f"{a.name}.h", a.messages))
    write_if_changed(os.path.join(mdir, "headers.h"),
                     gen_message_header("headers.kp", header_messages, False))
    write_if_changed(os.path.join(mdir, "headers.cc"),
                     gen_message_source("headers.kp", "headers.h", header_messages))
    write_if_changed(os.path.join(mdir, "apis.h"), gen_apis_header(apis))
    write_if_changed(os.path.join(mdir, "all.h"), gen_all_header(apis))
    write_if_changed(os.path.join(mdir, "apis.cc"), gen_apis_source(apis))
    return 0


if __name__ == "__main__":
    sys.exit(main())
