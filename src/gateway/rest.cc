// REST routes over the log: health, topics, records. Every failure is a problem+json answer.

#include <charconv>
#include <map>

#include <boost/json.hpp>

#include "gateway/internal.h"

namespace runnel::gateway {
namespace json = boost::json;

namespace {

using answer = asio::awaitable<std::optional<reply>>;

std::optional<int64_t> parse_int(std::string_view s) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
        return std::nullopt;
    }
    return v;
}

/// Starts `n` callback operations at once and awaits all of their results, in order.
template <typename T, typename Start>
asio::awaitable<std::vector<T>> await_all(std::size_t n, Start start) {
    if (n == 0) {
        co_return std::vector<T>{};
    }
    auto init = [&start, n](auto handler) {
        struct gather {
            std::size_t left;
            std::vector<std::optional<T>> results;
            decltype(handler) done;
        };
        auto g = std::make_shared<gather>(gather{n, std::vector<std::optional<T>>(n), std::move(handler)});
        for (std::size_t i = 0; i < n; ++i) {
            start(i, std::function<void(T)>([g, i](T v) {
                g->results[i].emplace(std::move(v));
                if (--g->left == 0) {
                    std::vector<T> out;
                    for (auto& r : g->results) {
                        out.push_back(std::move(*r));
                    }
                    std::move(g->done)(std::move(out));
                }
            }));
        }
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<T>)>(
      init, asio::use_awaitable);
}

std::string hex_id(const std::array<uint8_t, 16>& id) {
    std::string out;
    for (std::size_t i = 0; i < id.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out += '-';
        }
        out += fmt::format("{:02x}", id[i]);
    }
    return out;
}

asio::awaitable<std::vector<result<broker::offsets_result>>> all_offsets(request_ctx& ctx, const broker::topic_info& t) {
    co_return co_await await_all<result<broker::offsets_result>>(
      static_cast<std::size_t>(t.config.partitions),
      [&](std::size_t i, std::function<void(result<broker::offsets_result>)> done) {
          ctx.st.broker.offsets({t.name, model::partition_id(static_cast<int32_t>(i))}, ctx.exec, std::move(done));
      });
}

asio::awaitable<reply> describe(request_ctx& ctx, const broker::topic_info& t, unsigned status) {
    auto offs = co_await all_offsets(ctx, t);
    json::object o;
    o["name"] = t.name;
    o["id"] = hex_id(t.id);
    json::array parts;
    for (std::size_t i = 0; i < offs.size(); ++i) {
        json::object p;
        p["partition"] = i;
        if (offs[i]) {
            p["log_start_offset"] = offs[i].value().log_start();
            p["log_end_offset"] = offs[i].value().high_watermark();
        } else {
            p["error"] = offs[i].error().message();
        }
        parts.push_back(std::move(p));
    }
    o["partitions"] = std::move(parts);
    json::object configs;
    for (const auto& [k, v] : t.config.to_map()) {
        configs[k] = v;
    }
    o["configs"] = std::move(configs);
    co_return json_reply(status, json::serialize(o));
}

answer get_health(request_ctx& ctx) {
    json::object o;
    o["status"] = "ok";
    o["topics"] = ctx.st.broker.topics()->size();
    o["partitions"] = ctx.st.broker.partition_count();
    co_return json_reply(200, json::serialize(o));
}

answer get_openapi(request_ctx&) {
    reply r;
    r.body = std::string(openapi_document());
    co_return r;
}

answer list_topics(request_ctx& ctx) {
    json::array topics;
    for (const auto& [name, t] : *ctx.st.broker.topics()) {
        if (!authorized(ctx, acl_op::describe, acl_type::topic, name, false)) {
            continue; // hidden, as Metadata hides it
        }
        json::object o;
        o["name"] = name;
        o["partitions"] = t->config.partitions;
        topics.push_back(std::move(o));
    }
    json::object o;
    o["topics"] = std::move(topics);
    co_return json_reply(200, json::serialize(o));
}

answer create_topic(request_ctx& ctx) {
    boost::system::error_code ec;
    auto doc = json::parse(ctx.req.body(), ec);
    if (ec) {
        co_return to_reply(ctx.fail("malformed-json", not_json_detail(ctx.req.body())));
    }
    if (!doc.is_object()) {
        co_return to_reply(ctx.fail("invalid-request", "the body must be an object: {\"name\":…,\"partitions\":N,\"configs\":{…}}"));
    }
    std::string name;
    broker::topic_config cfg;
    cfg.partitions = ctx.st.broker.config().default_partitions;
    for (const auto& [field, v] : doc.as_object()) {
        if (field == "name") {
            if (!v.is_string()) {
                co_return to_reply(ctx.fail("invalid-request", "\"name\" must be a string"));
            }
            name = std::string(v.as_string());
        } else if (field == "partitions") {
            if (!v.is_int64() || v.as_int64() < 1 || v.as_int64() > 100000) {
                co_return to_reply(ctx.fail("invalid-request", "\"partitions\" must be an integer from 1 to 100000"));
            }
            cfg.partitions = static_cast<int32_t>(v.as_int64());
        } else if (field == "configs") {
            if (!v.is_object()) {
                co_return to_reply(ctx.fail("invalid-request", "\"configs\" must be an object of config names to values"));
            }
            for (const auto& [key, value] : v.as_object()) {
                std::string text;
                if (value.is_string()) {
                    text = std::string(value.as_string());
                } else if (value.is_int64() || value.is_uint64()) {
                    text = json::serialize(value);
                } else {
                    co_return to_reply(ctx.fail("invalid-config",
                                                fmt::format("config \"{}\" must be a string or an integer", std::string(key))));
                }
                std::string why;
                if (!cfg.set(key, text, why)) {
                    co_return to_reply(ctx.fail("invalid-config", why));
                }
            }
        } else {
            co_return to_reply(ctx.fail("invalid-request", fmt::format("unknown field \"{}\" (expected name, partitions, configs)",
                                                                       std::string(field))));
        }
    }
    if (name.empty()) {
        co_return to_reply(ctx.fail("invalid-request", "\"name\" is required"));
    }
    std::string why;
    if (!broker::valid_topic_name(name, why)) {
        co_return to_reply(ctx.fail("invalid-topic", why));
    }
    // As CreateTopics: CREATE on the CLUSTER covers every topic (asked quietly), else CREATE on
    // this one.
    if (!authorized(ctx, acl_op::create, acl_type::cluster, security::cluster_resource_name, false)
        && !authorized(ctx, acl_op::create, acl_type::topic, name)) {
        co_return to_reply(forbidden(ctx, acl_op::create, acl_type::topic, name));
    }
    auto created = co_await net::await_pair<result<void>, std::string>(
      [&](auto done) { ctx.st.broker.create_topic(name, cfg, ctx.exec, std::move(done)); });
    if (!created.first) {
        auto p = broker_problem(ctx, created.first.error(), fmt::format("cannot create topic '{}'", name));
        if (!created.second.empty()) {
            p.detail = fmt::format("cannot create topic '{}': {}", name, created.second);
        }
        co_return to_reply(p);
    }
    auto t = ctx.st.broker.topic(name);
    if (!t) {
        co_return to_reply(ctx.fail("internal-error", "the topic vanished right after its creation"));
    }
    auto r = co_await describe(ctx, *t, 201);
    r.headers.emplace_back("Location", "/v1/topics/" + name);
    co_return r;
}

std::shared_ptr<const broker::topic_info> find_topic(request_ctx& ctx, std::optional<reply>& fail) {
    const auto& name = ctx.params.at("name");
    auto t = ctx.st.broker.topic(name);
    if (!t) {
        fail = to_reply(ctx.fail("unknown-topic", fmt::format("topic '{}' does not exist", name)));
    }
    return t;
}

answer get_topic(request_ctx& ctx) {
    std::optional<reply> fail;
    auto t = find_topic(ctx, fail);
    if (!t) {
        co_return fail;
    }
    co_return co_await describe(ctx, *t, 200);
}

answer delete_topic(request_ctx& ctx) {
    std::optional<reply> fail;
    auto t = find_topic(ctx, fail);
    if (!t) {
        co_return fail;
    }
    auto r = co_await await_callback<result<void>>(
      [&](std::function<void(result<void>)> done) { ctx.st.broker.delete_topic(t->name, ctx.exec, std::move(done)); });
    if (!r) {
        co_return to_reply(broker_problem(ctx, r.error(), fmt::format("cannot delete topic '{}'", t->name)));
    }
    co_return json_reply(204, "");
}

answer produce_records(request_ctx& ctx) {
    std::optional<reply> fail;
    auto t = find_topic(ctx, fail);
    if (!t) {
        co_return fail;
    }
    int16_t acks = -1;
    if (auto a = ctx.query.find("acks"); a != ctx.query.end()) {
        if (a->second == "all" || a->second == "-1") {
            acks = -1;
        } else if (a->second == "1") {
            acks = 1;
        } else {
            co_return to_reply(ctx.fail("invalid-parameter", fmt::format("acks must be 'all' or '1', not '{}'", a->second)));
        }
    }
    for (const auto& [k, v] : ctx.query) {
        if (k != "acks" && k != "access_token") {
            co_return to_reply(ctx.fail("invalid-parameter", fmt::format("unknown query parameter '{}' (expected acks)", k)));
        }
    }
    std::vector<produce_record> records;
    if (auto p = parse_produce_body(ctx.req.body(), records)) {
        p->instance = ctx.path;
        co_return to_reply(*p);
    }
    const int32_t n = t->config.partitions;
    // Unkeyed records without a partition all go to one partition per request, in turn.
    const int32_t sticky = static_cast<int32_t>(ctx.st.round_robin.fetch_add(1) % static_cast<uint32_t>(n));
    std::vector<int32_t> where(records.size());
    std::map<int32_t, std::vector<std::size_t>> by_partition;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        int32_t p = sticky;
        if (r.partition) {
            if (*r.partition >= n) {
                co_return to_reply(ctx.fail("unknown-partition",
                                            fmt::format("record {}: topic '{}' has {}, no partition {}", i,
                                                        t->name, counted(n, "partition"), *r.partition)));
            }
            p = *r.partition;
        } else if (r.key) {
            p = partition_for_key(*r.key, n);
        }
        where[i] = p;
        by_partition[p].push_back(i);
    }
    const auto now = model::event_time(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    struct target {
        int32_t partition;
        model::record_batch batch;
    };
    std::vector<target> targets;
    for (const auto& [p, idx] : by_partition) {
        model::record_batch_builder b;
        for (auto i : idx) {
            const auto& r = records[i];
            std::vector<model::record_batch_builder::header_kv> headers;
            for (const auto& [hk, hv] : r.headers) {
                headers.push_back({hk, hv ? std::optional<std::string_view>(*hv) : std::nullopt});
            }
            b.add(r.key ? std::optional<std::string_view>(*r.key) : std::nullopt,
                  r.value ? std::optional<std::string_view>(*r.value) : std::nullopt,
                  r.timestamp ? model::event_time(*r.timestamp) : now, headers);
        }
        targets.push_back({p, b.build()});
    }
    auto results = co_await await_all<result<broker::produce_result>>(
      targets.size(), [&](std::size_t i, std::function<void(result<broker::produce_result>)> done) {
          ctx.st.broker.produce({t->name, model::partition_id(targets[i].partition)}, targets[i].batch.bytes(), acks,
                                ctx.exec, std::move(done));
      });
    std::map<int32_t, int64_t> base;
    for (std::size_t i = 0; i < targets.size(); ++i) {
        if (!results[i]) {
            co_return to_reply(broker_problem(
              ctx, results[i].error(),
              fmt::format("producing to partition {} of '{}'", targets[i].partition, t->name)));
        }
        base[targets[i].partition] = results[i].value().base();
    }
    json::array offsets;
    std::map<int32_t, int64_t> next_in_batch;
    for (std::size_t i = 0; i < records.size(); ++i) {
        json::object o;
        o["partition"] = where[i];
        o["offset"] = base[where[i]] + next_in_batch[where[i]]++;
        offsets.push_back(std::move(o));
    }
    ctx.st.m.records_produced->inc(records.size());
    json::object o;
    o["offsets"] = std::move(offsets);
    co_return json_reply(200, json::serialize(o));
}

/// One partition's part of a read: records rendered as JSON, skipped ranges, where the next
/// read starts, and the partition's bounds.
struct partition_page {
    std::string records; ///< comma-separated JSON objects
    std::string skipped; ///< comma-separated {"from","to","reason"}
    int64_t count = 0;
    int64_t next = 0;
    int64_t start = 0, end = 0;
};

/// Reads up to `limit` records of `tp` from `from` (nullopt: the log start; with `timestamp`,
/// the first record stamped at or after it). A problem for the caller when the broker fails
/// or `from` is outside the log. `tag_skips` names the partition in each skipped range.
asio::awaitable<std::optional<reply>> read_partition(request_ctx& ctx, const std::string& topic, int32_t partition,
                                                     std::optional<int64_t> from, std::optional<int64_t> timestamp,
                                                     int64_t limit, partition_page& page, bool tag_skips = false) {
    model::topic_partition tp{topic, model::partition_id(partition)};
    auto offs = co_await net::invoke_on(ctx.st.broker.owner_of(tp),
                                        [&] { return ctx.st.broker.offsets_local(tp); });
    if (!offs) {
        co_return to_reply(broker_problem(ctx, offs.error(), "reading offsets"));
    }
    page.start = offs.value().log_start();
    page.end = offs.value().high_watermark();
    int64_t next = page.start;
    if (from) {
        if (*from < page.start || *from > page.end) {
            co_return to_reply(ctx.fail("offset-out-of-range",
                                        fmt::format("offset {} of partition {} is outside the log, which holds [{}, {})",
                                                    *from, partition, page.start, page.end)));
        }
        next = *from;
    } else if (timestamp) {
        auto found = co_await net::invoke_on(ctx.st.broker.owner_of(tp), [&] {
            return ctx.st.broker.offset_for_time_local(tp, model::event_time(*timestamp));
        });
        if (!found) {
            co_return to_reply(broker_problem(ctx, found.error(), "looking up the timestamp"));
        }
        next = found.value() ? found.value()->offset() : page.end;
    }
    auto& records = page.records;
    auto& skipped = page.skipped;
    int64_t& count = page.count;
    while (count < limit && next < page.end) {
        auto f = co_await net::invoke_on(ctx.st.broker.owner_of(tp), [&] {
            return ctx.st.broker.fetch_local(tp, model::offset(next), 1 << 20);
        });
        if (!f) {
            co_return to_reply(broker_problem(ctx, f.error(), fmt::format("reading partition {} at {}", partition, next)));
        }
        auto d = decode_batches(topic, tp.partition(), f.value().data.bytes.span(), next);
        if (d.next_offset <= next) {
            break;
        }
        auto skip = d.skipped.begin();
        auto emit_skips_before = [&](int64_t upto) {
            while (skip != d.skipped.end() && skip->from < upto) {
                json::object s;
                if (tag_skips) s["partition"] = partition;
                s["from"] = skip->from;
                s["to"] = skip->to;
                s["reason"] = skip->reason;
                skipped += skipped.empty() ? "" : ",";
                skipped += json::serialize(s);
                next = skip->to;
                ++skip;
            }
        };
        bool full = false;
        for (auto& [o, text] : d.records) {
            emit_skips_before(o);
            if (count == limit) {
                full = true;
                break;
            }
            records += count ? "," : "";
            records += text;
            ++count;
            next = o + 1;
        }
        if (!full) {
            emit_skips_before(INT64_MAX);
            next = d.next_offset;
        }
    }
    page.next = next;
    co_return std::nullopt;
}

/// `offsets=P:O,P:O…` (partition:offset pairs) as a map, or nullopt when malformed.
std::optional<std::map<int32_t, int64_t>> parse_offsets(std::string_view text) {
    std::map<int32_t, int64_t> out;
    while (!text.empty()) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        auto colon = item.find(':');
        if (colon == std::string_view::npos) return std::nullopt;
        auto p = parse_int(item.substr(0, colon));
        auto o = parse_int(item.substr(colon + 1));
        if (!p || !o || *p < 0 || *p > INT32_MAX || *o < 0 || !out.emplace(int32_t(*p), *o).second) return std::nullopt;
    }
    if (out.empty()) return std::nullopt;
    return out;
}

/// GET /v1/topics/{name}/records. With `partition`, one partition from `offset` or
/// `timestamp`; without, every partition: from `offsets=P:O,…` (the `next_offsets` of the
/// previous page; partitions not named start at their log start), from `timestamp`, or from
/// the log start, the page's `limit` shared evenly among the partitions.
answer read_records(request_ctx& ctx) {
    std::optional<reply> fail;
    auto t = find_topic(ctx, fail);
    if (!t) {
        co_return fail;
    }
    std::optional<int64_t> offset;
    std::optional<int64_t> timestamp;
    std::optional<int64_t> partition;
    std::optional<std::map<int32_t, int64_t>> offsets;
    int64_t limit = 100;
    for (const auto& [k, v] : ctx.query) {
        if (k == "access_token") {
            continue;
        }
        if (k != "partition" && k != "offset" && k != "offsets" && k != "timestamp" && k != "limit") {
            co_return to_reply(ctx.fail("invalid-parameter",
                                        fmt::format("unknown query parameter '{}' (expected partition, offset, offsets, "
                                                    "timestamp, limit)", k)));
        }
        if (k == "offsets") {
            offsets = parse_offsets(v);
            if (!offsets) {
                co_return to_reply(ctx.fail("invalid-parameter",
                                            fmt::format("offsets must be PARTITION:OFFSET pairs separated by commas, "
                                                        "each partition once, not '{}'", v)));
            }
            continue;
        }
        auto n = parse_int(v);
        if (!n || *n < 0) {
            co_return to_reply(ctx.fail("invalid-parameter", fmt::format("{} must be a non-negative integer, not '{}'", k, v)));
        }
        if (k == "partition") {
            partition = *n;
        } else if (k == "offset") {
            offset = *n;
        } else if (k == "timestamp") {
            timestamp = *n;
        } else {
            limit = *n;
        }
    }
    if ((offset || offsets) && timestamp) {
        co_return to_reply(ctx.fail("invalid-parameter", "give offsets or a timestamp, not both"));
    }
    if (offset && !partition) {
        co_return to_reply(ctx.fail("invalid-parameter",
                                    "offset needs a partition; for every partition give offsets=PARTITION:OFFSET,…"));
    }
    if (offsets && partition) {
        co_return to_reply(ctx.fail("invalid-parameter", "give partition and offset, or offsets, not both"));
    }
    if (limit < 1 || static_cast<std::size_t>(limit) > ctx.st.opts.max_records_per_get) {
        co_return to_reply(ctx.fail("invalid-parameter",
                                    fmt::format("limit must be from 1 to {}, not {}", ctx.st.opts.max_records_per_get, limit)));
    }
    auto no_partition = [&](int64_t p) {
        return to_reply(ctx.fail("unknown-partition", fmt::format("topic '{}' has {}, no partition {}", t->name,
                                                                  counted(t->config.partitions, "partition"), p)));
    };
    if (partition) {
        if (*partition > INT32_MAX || !t->has_partition(static_cast<int32_t>(*partition))) {
            co_return no_partition(*partition);
        }
        partition_page page;
        if (auto problem = co_await read_partition(ctx, t->name, int32_t(*partition), offset, timestamp, limit, page)) {
            co_return problem;
        }
        std::string body = fmt::format(
          R"({{"topic":{},"partition":{},"records":[{}],"next_offset":{},"log_start_offset":{},"high_watermark":{})",
          json::serialize(json::string(t->name)), *partition, page.records, page.next, page.start, page.end);
        if (!page.skipped.empty()) {
            body += R"(,"skipped":[)" + page.skipped + "]";
        }
        body += "}";
        co_return json_reply(200, std::move(body));
    }
    // Every partition: the limit shared among them, the records of each in offset order.
    if (offsets) {
        for (const auto& [p, o] : *offsets) {
            if (!t->has_partition(p)) {
                co_return no_partition(p);
            }
        }
    }
    const int32_t n = t->config.partitions;
    const int64_t share = std::max<int64_t>(1, limit / std::max(n, 1));
    std::string records, skipped, next_offsets, bounds;
    int64_t count = 0;
    for (int32_t p = 0; p < n; ++p) {
        std::optional<int64_t> from;
        if (offsets) {
            if (auto it = offsets->find(p); it != offsets->end()) from = it->second;
        }
        partition_page page;
        const int64_t quota = std::max<int64_t>(0, std::min(share, limit - count));
        if (auto problem = co_await read_partition(ctx, t->name, p, from, timestamp, quota, page, true)) {
            co_return problem;
        }
        if (page.count) {
            records += count ? "," : "";
            records += page.records;
            count += page.count;
        }
        if (!page.skipped.empty()) {
            skipped += skipped.empty() ? "" : ",";
            skipped += page.skipped;
        }
        next_offsets += fmt::format("{}\"{}\":{}", p ? "," : "", p, page.next);
        bounds += fmt::format(R"({}{{"partition":{},"log_start_offset":{},"high_watermark":{}}})", p ? "," : "", p,
                              page.start, page.end);
    }
    std::string body = fmt::format(R"({{"topic":{},"records":[{}],"next_offsets":{{{}}},"partitions":[{}])",
                                   json::serialize(json::string(t->name)), records, next_offsets, bounds);
    if (!skipped.empty()) {
        body += R"(,"skipped":[)" + skipped + "]";
    }
    body += "}";
    co_return json_reply(200, std::move(body));
}

} // namespace

void add_rest_routes(router<route>& r) {
    r.add("GET", "/v1/health", {&get_health, access::open()});
    r.add("GET", "/v1/openapi.json", {&get_openapi, access::open()});
    // Lists only the topics the principal may DESCRIBE, as Metadata does.
    r.add("GET", "/v1/topics", {&list_topics, access::in_handler(acl_op::describe, acl_type::topic)});
    // The name is in the body: CREATE on the CLUSTER, or on the TOPIC, as CreateTopics checks.
    r.add("POST", "/v1/topics", {&create_topic, access::in_handler(acl_op::create, acl_type::topic)});
    r.add("GET", "/v1/topics/{name}", {&get_topic, access::on_path(acl_op::describe, acl_type::topic, "name")});
    r.add("DELETE", "/v1/topics/{name}", {&delete_topic, access::on_path(acl_op::remove, acl_type::topic, "name")});
    r.add("GET", "/v1/topics/{name}/records", {&read_records, access::on_path(acl_op::read, acl_type::topic, "name")});
    r.add("POST", "/v1/topics/{name}/records",
          {&produce_records, access::on_path(acl_op::write, acl_type::topic, "name")});
}

} // namespace runnel::gateway
