#include "connect/options/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "base/text.h"

namespace runnel::connect {
namespace {

option_spec opt(std::string name, option_type type, std::string description, std::string default_value = {}) {
    option_spec o;
    o.name = std::move(name);
    o.type = type;
    o.description = std::move(description);
    o.default_value = std::move(default_value);
    return o;
}

option_spec required(std::string name, std::string description) {
    auto o = opt(std::move(name), option_type::text, std::move(description));
    o.required = true;
    return o;
}

option_spec choice(std::string name, std::vector<std::string> choices, std::string description,
                   std::string default_value = {}) {
    auto o = opt(std::move(name), option_type::choice, std::move(description), std::move(default_value));
    o.choices = std::move(choices);
    return o;
}

option_spec idle_timeout() {
    return opt(std::string(idle_timeout_option), option_type::duration,
               "after this long without records a partition stops holding the watermark back");
}

/// The options of tables on a topic: the embedded log's (`topic`) or an external cluster's
/// (`kafka` with properties.bootstrap.servers).
std::vector<option_spec> topic_options() {
    return {
      required("topic", "the topic's name"),
      choice("format", {"json", "csv", "raw"}, "how a record's value is decoded (a sink writes json)", "json"),
      choice("value.format", {"json", "csv", "raw"}, "the same as 'format'", "json"),
      opt("json.ignore-parse-errors", option_type::boolean,
          "count records that do not decode instead of sending them to <pipeline>.dead", "false"),
      choice("scan.startup.mode", {"earliest-offset", "latest-offset", "timestamp", "group-offsets"},
             "where reading starts", "earliest-offset"),
      opt("scan.startup.timestamp-millis", option_type::integer,
          "with scan.startup.mode 'timestamp': the first record's time, epoch milliseconds"),
      choice("sink.delivery-guarantee", {"exactly-once", "at-least-once"}, "what a crash may cause", "exactly-once"),
      opt("sink.partitions", option_type::integer, "the partitions of a topic the sink creates", "1"),
      choice("properties.security.protocol", {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"},
             "how the client reaches an external cluster", "plaintext"),
      choice("properties.sasl.mechanism", {"plain", "scram-sha-256", "scram-sha-512", "oauthbearer"},
             "the SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"),
      opt("properties.sasl.jaas.config", option_type::text,
          "Flink's form: '<PlainLoginModule|ScramLoginModule> required username=\"u\" password=\"p\";'"),
      opt("properties.sasl.username", option_type::text, "the SASL user (instead of sasl.jaas.config)"),
      opt("properties.sasl.password", option_type::text, "the SASL user's password"),
      opt("properties.ssl.truststore.location", option_type::text,
          "a PEM file of the CA certificates to trust (the same as ssl.ca.location; JKS and PKCS12 are refused)"),
      opt("properties.ssl.keystore.location", option_type::text,
          "a PEM file holding the client's certificate and private key (mTLS; JKS and PKCS12 are refused)"),
      opt("properties.ssl.key.password", option_type::text, "the password of ssl.key.location's private key"),
      opt("properties.ssl.endpoint.identification.algorithm", option_type::text,
          "https (check the broker's name against its certificate, the default) or empty/none"),
      opt("properties.", option_type::text,
          "any other Kafka client property, given to librdkafka unchanged: bootstrap.servers (an external "
          "cluster), ssl.ca.location, ssl.certificate.location, ssl.key.location, group.id, …"),
      idle_timeout(),
    };
}

std::vector<connector_spec> builtin_specs() {
    std::vector<connector_spec> out;
    {
        connector_spec c;
        c.id = "topic";
        c.source = c.sink = true;
        c.options = topic_options();
        c.description = "a topic of the embedded log";
        out.push_back(std::move(c));
    }
    {
        connector_spec c;
        c.id = "kafka";
        c.source = c.sink = true;
        c.options = topic_options();
        c.description = "a Kafka cluster's topic (properties.bootstrap.servers), else the embedded log's";
        out.push_back(std::move(c));
    }
    {
        connector_spec c;
        c.id = "datagen";
        c.source = true;
        c.options = {
          opt("rows-per-second", option_type::integer, "rows made per second (0: as fast as possible)"),
          opt("number-of-rows", option_type::integer, "rows made in all (none: without end)"),
          opt("seed", option_type::integer, "the random generator's seed"),
          opt("fields.", option_type::text, "fields.<column>.kind|min|max|length|start|end|null-rate"),
          idle_timeout(),
        };
        c.description = "random or sequential rows";
        out.push_back(std::move(c));
    }
    {
        connector_spec c;
        c.id = "nexmark";
        c.source = true;
        c.options = {choice("event", {"bid", "auction", "person", "all"},
                            "which events the table holds (all: the nested shape, with event_type)", "bid"),
                     idle_timeout()};
        for (const char* n : {"first-event.rate", "rate", "events.num", "seed", "base-time", "person.proportion",
                              "auction.proportion", "bid.proportion", "person.avg-size", "auction.avg-size",
                              "bid.avg-size", "bid.hot-ratio.auctions", "auction.hot-ratio.sellers",
                              "bid.hot-ratio.bidders", "person.active", "auction.in-flight",
                              "out-of-order.group-size"}) {
            c.options.push_back(opt(n, option_type::number, "a setting of the Nexmark generator"));
        }
        c.description = "the Nexmark benchmark's auction events";
        out.push_back(std::move(c));
    }
    {
        connector_spec c;
        c.id = "file";
        c.aliases = {"filesystem"};
        c.source = c.sink = true;
        c.options = {
          required("path", "a file, a directory or a glob to read; the file a sink appends to"),
          choice("format", {"json", "csv", "raw"}, "how lines are decoded or written (a sink: json or csv)"),
          opt("json.ignore-parse-errors", option_type::boolean,
              "count lines that do not decode instead of sending them to <pipeline>.dead", "false"),
          idle_timeout(),
        };
        c.options[1].required = true;
        c.description = "lines of local files";
        out.push_back(std::move(c));
    }
    {
        connector_spec c;
        c.id = "blackhole";
        c.sink = true;
        c.description = "discards what it is given";
        out.push_back(std::move(c));
    }
    return out;
}

/// Why `value` is not a value of option `o`, or empty when it is.
std::string bad_value(const option_spec& o, std::string_view value) {
    switch (o.type) {
    case option_type::text: return {};
    case option_type::integer: {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec == std::errc() && p == value.data() + value.size() && !value.empty()) return {};
        return "must be a whole number";
    }
    case option_type::number: {
        double d = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
        if (ec == std::errc() && p == value.data() + value.size() && !value.empty()) return {};
        return "must be a number";
    }
    case option_type::boolean: {
        const auto v = text::to_lower(value);
        return v == "true" || v == "false" ? std::string() : "is true or false";
    }
    case option_type::duration:
        return duration_ms(value) ? std::string() : "must be a duration such as '500 ms', '5 s', '2 min' or '1 h'";
    case option_type::choice: {
        const auto v = text::to_lower(value);
        if (std::find(o.choices.begin(), o.choices.end(), v) != o.choices.end()) return {};
        std::string list;
        for (std::size_t i = 0; i < o.choices.size(); ++i) {
            list += (i == 0 ? "" : i + 1 == o.choices.size() ? " or " : ", ") + o.choices[i];
        }
        return "is " + list;
    }
    }
    return {};
}

std::string shown_name(const option_spec& o) { return o.is_prefix() ? o.name + "*" : o.name; }

} // namespace

const option_spec* connector_spec::option(std::string_view key) const noexcept {
    for (const auto& o : options) {
        if (o.is_prefix() ? key.size() > o.name.size() && key.starts_with(o.name) : key == o.name) return &o;
    }
    return nullptr;
}

connector_registry& connector_registry::global() {
    static connector_registry r = [] {
        connector_registry x;
        for (auto& s : builtin_specs()) x.add(std::move(s));
        return x;
    }();
    return r;
}

void connector_registry::add(connector_spec spec) {
    spec.id = text::to_lower(spec.id);
    std::erase_if(_specs, [&](const connector_spec& s) { return s.id == spec.id; });
    _specs.push_back(std::move(spec));
    std::sort(_specs.begin(), _specs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
}

const connector_spec* connector_registry::find(std::string_view id) const noexcept {
    const auto want = text::to_lower(id);
    for (const auto& s : _specs) {
        if (s.id == want || std::find(s.aliases.begin(), s.aliases.end(), want) != s.aliases.end()) return &s;
    }
    return nullptr;
}

std::optional<option_problem> connector_registry::check(std::string_view table, option_list options) const {
    std::optional<std::size_t> at;
    for (std::size_t i = 0; i < options.size(); ++i) {
        if (options[i].first == connector_option) at = i;
    }
    if (!at) return std::nullopt;
    const auto& id = options[*at].second;
    const connector_spec* spec = find(id);
    if (!spec) {
        std::vector<std::string> ids;
        std::string list;
        for (const auto& s : _specs) {
            ids.push_back(s.id);
            list += (list.empty() ? "" : ", ") + s.id;
        }
        const auto near = text::closest_name(id, ids);
        return option_problem{at, fmt::format("table {}: connector '{}' is not one Runnel has{} ({})", table, id,
                                              near.empty() ? "" : fmt::format("; did you mean '{}'?", near), list)};
    }
    for (std::size_t i = 0; i < options.size(); ++i) {
        const auto& [key, value] = options[i];
        if (key == connector_option) continue;
        const option_spec* o = spec->option(key);
        if (!o) {
            std::vector<std::string> names;
            std::string list;
            for (const auto& s : spec->options) {
                names.push_back(s.name);
                list += (list.empty() ? "" : ", ") + shown_name(s);
            }
            const auto near = text::closest_name(key, names);
            return option_problem{
              i, fmt::format("table {}: option '{}' is not one the {} connector reads{}{}", table, key, spec->id,
                             near.empty() ? "" : fmt::format("; did you mean '{}'?", near),
                             list.empty() ? " (it reads none)" : " (" + list + ")")};
        }
        if (auto why = bad_value(*o, value); !why.empty()) {
            return option_problem{i, fmt::format("table {}: option '{}' {}, not '{}'", table, key, why, value)};
        }
    }
    for (const auto& o : spec->options) {
        if (!o.required) continue;
        const bool given = std::any_of(options.begin(), options.end(), [&](const auto& kv) { return kv.first == o.name; });
        if (!given) {
            return option_problem{std::nullopt, fmt::format("table {}: the {} connector needs option '{}' ({})", table,
                                                            spec->id, o.name, o.description)};
        }
    }
    return std::nullopt;
}

bool common_option(std::string_view key) noexcept { return key == connector_option || key == idle_timeout_option; }

std::optional<int64_t> duration_ms(std::string_view text) {
    std::string_view s = text;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || n < 0) return std::nullopt;
    std::string unit = text::to_lower(std::string_view(p, std::size_t(s.data() + s.size() - p)));
    unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
    int64_t unit_ms = 0;
    if (unit.empty() || unit == "ms") unit_ms = 1;
    else if (unit == "s" || unit == "sec" || unit == "second" || unit == "seconds") unit_ms = 1000;
    else if (unit == "min" || unit == "minute" || unit == "minutes") unit_ms = 60'000;
    else if (unit == "h" || unit == "hour" || unit == "hours") unit_ms = 3'600'000;
    else if (unit == "d" || unit == "day" || unit == "days") unit_ms = 86'400'000;
    if (unit_ms == 0 || n > std::numeric_limits<int64_t>::max() / unit_ms) return std::nullopt;
    return n * unit_ms;
}

} // namespace runnel::connect
