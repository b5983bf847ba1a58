#include "gateway/router.h"

#include <boost/json.hpp>

#include "base/text.h"

namespace runnel::gateway {
namespace {

struct problem_kind {
    std::string_view kind;
    unsigned status;
    std::string_view title;
};

// Every problem the gateway answers with; docs/api.md lists the same table.
constexpr problem_kind kinds[] = {
  {"malformed-json", 400, "Malformed JSON"},
  {"invalid-request", 400, "Invalid request"},
  {"invalid-sql", 400, "Invalid SQL"},
  {"invalid-parameter", 400, "Invalid parameter"},
  {"invalid-topic", 400, "Invalid topic"},
  {"invalid-config", 400, "Invalid topic configuration"},
  {"offset-out-of-range", 400, "Offset out of range"},
  {"unauthorized", 401, "Unauthorized"},
  {"not-found", 404, "Not found"},
  {"unknown-topic", 404, "Unknown topic"},
  {"unknown-partition", 404, "Unknown partition"},
  {"unknown-pipeline", 404, "Unknown pipeline"},
  {"unknown-group", 404, "Unknown group"},
  {"unknown-view", 404, "Unknown view"},
  {"unknown-key", 404, "Unknown key"},
  {"invalid-encoding", 400, "Invalid text encoding"},
  {"forbidden", 403, "Forbidden"},
  {"forbidden-host", 403, "Forbidden host"},
  {"forbidden-origin", 403, "Forbidden origin"},
  {"method-not-allowed", 405, "Method not allowed"},
  {"topic-exists", 409, "Topic already exists"},
  {"pipeline-exists", 409, "Pipeline already exists"},
  {"invalid-pipeline", 422, "Pipeline refused"},
  {"payload-too-large", 413, "Payload too large"},
  {"invalid-record", 422, "Record refused"},
  {"unsupported-media-type", 415, "Unsupported media type"},
  {"upgrade-required", 426, "Upgrade required"},
  {"internal-error", 500, "Internal error"},
  {"storage-error", 507, "Storage failure"},
  {"unavailable", 503, "Service unavailable"},
};


} // namespace

problem make_problem(std::string_view kind, std::string detail, std::string instance) {
    for (const auto& k : kinds) {
        if (k.kind == kind) {
            return problem{k.status, std::string(kind), std::string(k.title), std::move(detail), std::move(instance), {}};
        }
    }
    RUNNEL_ASSERT(false, "unknown problem kind");
    return {};
}

std::string problem_json(const problem& p) {
    boost::json::object o;
    o["type"] = "urn:runnel:problem:" + p.kind;
    o["title"] = p.title;
    o["status"] = p.status;
    // Details quote what the client sent; what is not UTF-8 would make the answer not JSON.
    o["detail"] = text::scrub_utf8(p.detail);
    if (!p.instance.empty()) {
        o["instance"] = text::scrub_utf8(p.instance);
    }
    return boost::json::serialize(o);
}

reply to_reply(const problem& p) {
    reply r;
    r.status = p.status;
    r.content_type = "application/problem+json";
    r.body = problem_json(p);
    r.headers = p.headers;
    return r;
}


std::optional<std::map<std::string, std::string>> parse_query(std::string_view q, std::string& why) {
    std::map<std::string, std::string> out;
    std::size_t i = 0;
    while (i < q.size()) {
        auto j = q.find('&', i);
        if (j == std::string_view::npos) {
            j = q.size();
        }
        auto part = q.substr(i, j - i);
        i = j + 1;
        if (part.empty()) {
            continue;
        }
        auto eq = part.find('=');
        auto name = percent_decode(part.substr(0, eq), true);
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
        if (!name || !value) {
            why = fmt::format("broken percent escape in query parameter '{}'", part);
            return std::nullopt;
        }
        out[*name] = *value;
    }
    return out;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    auto q = target.find('?');
    if (q == std::string_view::npos) {
        return {target, {}};
    }
    return {target.substr(0, q), target.substr(q + 1)};
}

} // namespace runnel::gateway
