#include "gateway/records.h"

#include <algorithm>
#include <cstring>

#include <boost/json.hpp>

#include "model/decompress.h"

namespace runnel::gateway {
namespace json = boost::json;

/// The most a compressed batch may inflate to (Kafka batches are at most a few MiB).
using model::max_inflated_bytes;

namespace {

std::string_view as_text(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A key or value field: string as its text, null as null, any other JSON as compact text.
std::optional<std::string> field_text(const json::value& v) {
    if (v.is_null()) {
        return std::nullopt;
    }
    if (v.is_string()) {
        return std::string(v.as_string());
    }
    return json::serialize(v);
}

std::optional<problem> parse_record(const json::value& v, std::size_t index, produce_record& out) {
    auto where = [index](std::string_view what) { return fmt::format("record {}: {}", index, what); };
    if (!v.is_object()) {
        return make_problem("invalid-request", where("a record must be a JSON object"));
    }
    for (const auto& [name, field] : v.as_object()) {
        if (name == "key") {
            out.key = field_text(field);
        } else if (name == "value") {
            out.value = field_text(field);
        } else if (name == "headers") {
            if (field.is_null()) {
                continue;
            }
            if (!field.is_object()) {
                return make_problem("invalid-request", where("\"headers\" must be an object of strings"));
            }
            for (const auto& [hname, hvalue] : field.as_object()) {
                if (hvalue.is_null()) {
                    out.headers.emplace_back(std::string(hname), std::nullopt);
                } else if (hvalue.is_string()) {
                    out.headers.emplace_back(std::string(hname), std::string(hvalue.as_string()));
                } else {
                    return make_problem("invalid-request",
                                        where(fmt::format("header \"{}\" must be a string or null", std::string(hname))));
                }
            }
        } else if (name == "partition") {
            if (field.is_null()) {
                continue;
            }
            if (!field.is_int64() && !field.is_uint64()) {
                return make_problem("invalid-request", where("\"partition\" must be an integer"));
            }
            auto p = field.is_int64() ? field.as_int64() : static_cast<int64_t>(field.as_uint64());
            if (p < 0 || p > INT32_MAX) {
                return make_problem("invalid-request", where(fmt::format("\"partition\" {} is negative or too large", p)));
            }
            out.partition = static_cast<int32_t>(p);
        } else if (name == "timestamp") {
            if (field.is_null()) {
                continue;
            }
            if (!field.is_int64() && !field.is_uint64()) {
                return make_problem("invalid-request", where("\"timestamp\" must be an integer (milliseconds since the epoch)"));
            }
            auto t = field.is_int64() ? field.as_int64() : -1;
            if (t < 0) {
                return make_problem("invalid-request", where("\"timestamp\" must be between 0 and 2^63-1"));
            }
            out.timestamp = t;
        } else {
            return make_problem("invalid-request",
                                where(fmt::format("unknown field \"{}\" (expected key, value, headers, partition, timestamp)",
                                                  std::string(name))));
        }
    }
    return std::nullopt;
}

} // namespace

std::string not_json_detail(std::string_view body, std::size_t max_depth) {
    json::parse_options opts;
    opts.max_depth = max_depth;
    json::stream_parser p({}, opts);
    boost::system::error_code ec;
    std::size_t at = p.write_some(body.data(), body.size(), ec);
    if (!ec) {
        p.finish(ec);
        at = body.size();
    }
    if (!ec) return "the body is not JSON";
    at = std::min(at, body.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at; ++i) {
        if (body[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return fmt::format("the body is not JSON: {} at line {}, column {} (byte {}{})", ec.message(), line, column, at,
                       at == body.size() ? ", the end of the body" : "");
}

std::optional<problem> parse_produce_body(std::string_view body, std::vector<produce_record>& out) {
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = 64;
    auto doc = json::parse(body, ec, {}, opts);
    if (ec) {
        return make_problem("malformed-json", not_json_detail(body, opts.max_depth));
    }
    const json::array* records = nullptr;
    if (doc.is_array()) {
        records = &doc.as_array();
    } else if (doc.is_object() && doc.as_object().contains("records")) {
        const auto& obj = doc.as_object();
        if (obj.size() != 1) {
            return make_problem("invalid-request", "a body with \"records\" has no other fields");
        }
        if (!obj.at("records").is_array()) {
            return make_problem("invalid-request", "\"records\" must be an array");
        }
        records = &obj.at("records").as_array();
    } else if (doc.is_object()) {
        out.resize(1);
        return parse_record(doc, 0, out[0]);
    } else {
        return make_problem("invalid-request", "the body must be a record object, an array of records or {\"records\":[…]}");
    }
    if (records->empty()) {
        return make_problem("invalid-request", "no records to produce");
    }
    out.resize(records->size());
    for (std::size_t i = 0; i < records->size(); ++i) {
        if (auto p = parse_record((*records)[i], i, out[i])) {
            return p;
        }
    }
    return std::nullopt;
}

namespace {

using text::append_json_string;
using text::base64_encode;
using text::valid_utf8;

std::optional<std::string_view> text_of(const std::optional<std::span<const std::byte>>& b) {
    if (!b) {
        return std::nullopt;
    }
    return as_text(*b);
}

} // namespace

void append_bytes_field(std::string& out, std::string_view name, std::optional<std::string_view> bytes,
                        bool embed_json) {
    if (!bytes) {
        fmt::format_to(std::back_inserter(out), ",\"{}\":null", name);
        return;
    }
    const std::string_view text = *bytes;
    if (!valid_utf8(text)) {
        fmt::format_to(std::back_inserter(out), ",\"{}_base64\":\"{}\"", name, base64_encode(text));
        return;
    }
    if (embed_json) {
        auto first = text.find_first_not_of(" \t\r\n");
        if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
            boost::system::error_code ec;
            auto v = json::parse(text, ec);
            if (!ec) {
                fmt::format_to(std::back_inserter(out), ",\"{}\":", name);
                out += json::serialize(v);
                return;
            }
        }
    }
    fmt::format_to(std::back_inserter(out), ",\"{}\":", name);
    append_json_string(out, text);
}

std::string render_record(std::string_view topic, int32_t partition, const model::record_view& r) {
    // Written directly rather than through a JSON object: this runs once per record served.
    std::string out;
    out.reserve(96 + topic.size() + (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0));
    out += "{\"topic\":";
    append_json_string(out, topic);
    fmt::format_to(std::back_inserter(out), ",\"partition\":{},\"offset\":{},\"timestamp\":{}", partition,
                   r.offset_value(), r.timestamp());
    append_bytes_field(out, "key", text_of(r.key), false);
    append_bytes_field(out, "value", text_of(r.value), true);
    out += ",\"headers\":{";
    bool first = true;
    bool any_binary = false;
    for (const auto& [name, value] : r.headers) {
        auto n = as_text(name);
        if (value && !valid_utf8(as_text(*value))) {
            any_binary = true;
            continue;
        }
        out += first ? "" : ",";
        first = false;
        append_json_string(out, valid_utf8(n) ? std::string(n) : base64_encode(n));
        out += ':';
        if (value) {
            append_json_string(out, as_text(*value));
        } else {
            out += "null";
        }
    }
    out += '}';
    if (any_binary) {
        out += ",\"headers_base64\":{";
        first = true;
        for (const auto& [name, value] : r.headers) {
            if (!value || valid_utf8(as_text(*value))) {
                continue;
            }
            auto n = as_text(name);
            out += first ? "" : ",";
            first = false;
            append_json_string(out, valid_utf8(n) ? std::string(n) : base64_encode(n));
            fmt::format_to(std::back_inserter(out), ":\"{}\"", base64_encode(as_text(*value)));
        }
        out += '}';
    }
    out += '}';
    return out;
}

decoded_records decode_batches(std::string_view topic, int32_t partition, std::span<const std::byte> bytes,
                               int64_t from) {
    decoded_records out;
    out.next_offset = from;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        auto h = model::parse_batch_header(bytes.subspan(pos));
        if (!h || h.value().size_bytes() > bytes.size() - pos) {
            break;
        }
        const auto& hdr = h.value();
        auto batch = bytes.subspan(pos, hdr.size_bytes());
        pos += hdr.size_bytes();
        if (hdr.next_offset()() <= from) {
            continue;
        }
        out.next_offset = hdr.next_offset()();
        if (hdr.is_control() || hdr.record_count == 0) {
            continue;
        }
        std::vector<std::byte> inflated;
        std::string why;
        auto plain = model::uncompressed_batch(batch, hdr, max_inflated_bytes, inflated, why);
        if (!plain) {
            out.skipped.push_back({std::max(hdr.base_offset(), from), hdr.next_offset()(), why});
            continue;
        }
        auto records = model::decode_records(*plain);
        if (!records) {
            out.skipped.push_back({std::max(hdr.base_offset(), from), hdr.next_offset()(),
                                   fmt::format("undecodable batch: {}", records.error().message())});
            continue;
        }
        for (const auto& r : records.value()) {
            if (r.offset_value() < from) {
                continue;
            }
            out.records.emplace_back(r.offset_value(), render_record(topic, partition, r));
        }
    }
    return out;
}

} // namespace runnel::gateway
