#include "connect/nexmark/rows.h"
#include "base/text.h"

#include <algorithm>
#include <cctype>
#include <span>

#include <fmt/format.h>

namespace runnel::connect::nexmark {
namespace {

namespace en = runnel::engine;

struct field {
    const char* name; ///< lower case
    bool text;        ///< a string field; the others are integers (times in ms)
};

constexpr field bid_fields[] = {{"auction", false}, {"bidder", false}, {"price", false}, {"channel", true},
                                {"url", true},      {"datetime", false}, {"extra", true}};
constexpr field auction_fields[] = {{"id", false},      {"itemname", true}, {"description", true}, {"initialbid", false},
                                    {"reserve", false}, {"datetime", false}, {"expires", false},   {"seller", false},
                                    {"category", false}, {"extra", true}};
constexpr field person_fields[] = {{"id", false},  {"name", true},  {"emailaddress", true}, {"creditcard", true},
                                   {"city", true}, {"state", true}, {"datetime", false},    {"extra", true}};

std::span<const field> fields_of(const std::string& kind) {
    if (kind == "bid") return bid_fields;
    if (kind == "auction") return auction_fields;
    return person_fields;
}

} // namespace

en::result<row_reader> row_reader::make(const std::map<std::string, std::string>& options, en::schema_ptr columns) {
    auto cfg = generator_config::from_options(options);
    if (!cfg) return en::error(en::errc::invalid_argument, fmt::format("nexmark options: {}", cfg.error().message()));
    row_reader r;
    r._cfg = cfg.value();
    r._schema = std::move(columns);
    auto kind = options.find("event");
    const bool has_event_type = std::any_of(r._schema->fields().begin(), r._schema->fields().end(),
                                            [](const en::field& f) { return text::to_lower(f.name) == "event_type"; });
    if (has_event_type && (kind == options.end() || text::to_lower(kind->second) == "all")) {
        if (auto n = r.make_nested(); !n) return n.error();
        if (auto s = r.seek(0); !s) return s.error();
        return r;
    }
    const auto kind_name = text::to_lower(kind == options.end() ? "bid" : kind->second);
    if (kind_name != "bid" && kind_name != "auction" && kind_name != "person") {
        return en::error(en::errc::invalid_argument,
                         fmt::format("option 'event' is bid, auction or person, not '{}'", kind_name));
    }
    r._kind = kind_name == "bid" ? event_kind::bid : kind_name == "auction" ? event_kind::auction : event_kind::person;
    const auto fs = fields_of(kind_name);
    for (const auto& f : r._schema->fields()) {
        auto it = std::find_if(fs.begin(), fs.end(), [&](const field& x) { return text::to_lower(f.name) == x.name; });
        if (it == fs.end()) {
            return en::error(en::errc::unknown_column, fmt::format("a nexmark {} has no field '{}'", kind_name, f.name));
        }
        if (it->text != (f.type.id == en::type_id::string) || (!it->text && !f.type.is_integral())) {
            return en::error(en::errc::type_mismatch,
                             fmt::format("nexmark field '{}' is {}, not {}", f.name,
                                         it->text ? "a string" : "an integer or a timestamp", f.type.name()));
        }
        r._fields.push_back(int(it - fs.begin()));
        r._want |= field_mask{1} << r._fields.back();
    }
    r._bytes_per_row.assign(r._fields.size(), 0.0);
    r._ints.resize(r._fields.size());
    const auto& c = r._cfg;
    r._total = int64_t(c.person_proportion) + c.auction_proportion + c.bid_proportion;
    r._share = r._kind == event_kind::bid ? c.bid_proportion
               : r._kind == event_kind::auction ? c.auction_proportion
                                                : c.person_proportion;
    if (auto s = r.seek(0); !s) return s.error();
    return r;
}

en::result<void> row_reader::make_nested() {
    static constexpr std::pair<const char*, event_kind> kinds[] = {
        {"person", event_kind::person}, {"auction", event_kind::auction}, {"bid", event_kind::bid}};
    for (const auto& f : _schema->fields()) {
        const std::string name = text::to_lower(f.name);
        nested_column n;
        if (name == "event_type") {
            if (!f.type.is_integral() || f.type.id == en::type_id::timestamp) {
                return en::error(en::errc::type_mismatch, fmt::format("nexmark field 'event_type' is an integer, not {}", f.type.name()));
            }
            n.event_type = true;
            _nested_cols.push_back(n);
            continue;
        }
        auto dot = name.find('.');
        std::string kind_name = name.substr(0, dot);
        auto k = std::find_if(std::begin(kinds), std::end(kinds), [&](const auto& x) { return kind_name == x.first; });
        if (k == std::end(kinds)) {
            return en::error(en::errc::unknown_column,
                             fmt::format("a nexmark event has event_type and the ROWs person, auction and bid, not '{}'", f.name));
        }
        n.kind = k->second;
        if (dot == std::string::npos) {
            if (f.type.id != en::type_id::boolean) {
                return en::error(en::errc::type_mismatch, fmt::format("nexmark field '{}' is a ROW, not {}", f.name, f.type.name()));
            }
        } else {
            const auto fs = fields_of(kind_name);
            const std::string sub = name.substr(dot + 1);
            auto it = std::find_if(fs.begin(), fs.end(), [&](const field& x) { return sub == x.name; });
            if (it == fs.end()) {
                return en::error(en::errc::unknown_column, fmt::format("a nexmark {} has no field '{}'", kind_name, f.name.substr(dot + 1)));
            }
            if (it->text != (f.type.id == en::type_id::string) || (!it->text && !f.type.is_integral())) {
                return en::error(en::errc::type_mismatch,
                                 fmt::format("nexmark field '{}' is {}, not {}", f.name,
                                             it->text ? "a string" : "an integer or a timestamp", f.type.name()));
            }
            n.field = int(it - fs.begin());
            _nested_want[std::size_t(n.kind)] |= field_mask{1} << n.field;
        }
        _nested_cols.push_back(n);
    }
    return outcome::success();
}

en::result<void> row_reader::seek(int64_t position) {
    auto g = generator::create(_cfg);
    if (!g) return en::error(en::errc::invalid_argument, fmt::format("nexmark generator: {}", g.error().message()));
    _gen.emplace(std::move(g).value());
    // Every event is a function of its position alone: nothing before it needs generating.
    if (position > 0) _gen->skip(_cfg.max_events == 0 ? position : std::min(position, _cfg.max_events));
    return outcome::success();
}

en::batch row_reader::next(std::size_t max_rows, std::size_t max_events) {
    en::batch b(_schema);
    if (!_nested_cols.empty()) {
        for (std::size_t c = 0; c < _nested_cols.size(); ++c) b.mutable_col(c).reserve(std::min(max_rows, max_events));
        read_nested(b, max_rows, max_events);
        b.seal();
        return b;
    }
    // Room for the rows these events should give, so the columns do not grow as they fill.
    const auto expected = std::min<std::size_t>(max_rows, max_events * std::size_t(_share) / std::size_t(_total) + 1);
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        auto& col = b.mutable_col(c);
        col.reserve(expected);
        if (col.type().id != en::type_id::string) {
            if (_ints[c].size() < max_rows) _ints[c].resize(max_rows);
        } else if (_bytes_per_row[c] > 0) {
            col.reserve_bytes(std::size_t(_bytes_per_row[c] * 1.1 * double(expected)) + 64);
        }
    }
    std::size_t rows = 0;
    switch (_kind) {
    case event_kind::bid: rows = read<bid>(b, max_rows, max_events); break;
    case event_kind::auction: rows = read<auction>(b, max_rows, max_events); break;
    case event_kind::person: rows = read<person>(b, max_rows, max_events); break;
    }
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        if (b.col(c).type().id != en::type_id::string) b.mutable_col(c).append_int64(_ints[c].data(), rows);
    }
    b.seal();
    if (rows > 0) {
        for (std::size_t c = 0; c < _fields.size(); ++c) {
            const auto& col = b.col(c);
            if (col.type().id != en::type_id::string) continue;
            // The arena holds the rows' strings back to back.
            const auto first = col.string_at(0), last = col.string_at(rows - 1);
            _bytes_per_row[c] = double(last.data() + last.size() - first.data()) / double(rows);
        }
    }
    return b;
}

template <typename Event>
std::size_t row_reader::read(en::batch& b, std::size_t max_rows, std::size_t max_events) {
    Event* scratch = nullptr;
    if constexpr (std::is_same_v<Event, bid>) scratch = &_bid;
    else if constexpr (std::is_same_v<Event, auction>) scratch = &_auction;
    else scratch = &_person;
    std::size_t rows = 0;
    auto left = int64_t(max_events);
    while (rows < max_rows && left > 0 && _gen->has_next()) {
        // Events of the other kinds are stepped over without being generated.
        const int64_t skip = _gen->events_before(_kind, left);
        _gen->skip(skip);
        left -= skip;
        if (left == 0 || !_gen->has_next()) break;
        if (_instances > 1 && _gen->events_so_far() % _instances != _instance) { // another instance's
            _gen->skip(1);
            --left;
            continue;
        }
        _gen->next_into(*scratch, _want);
        --left;
        append(*scratch, b, rows);
        ++rows;
    }
    return rows;
}

namespace {

/// Field `f` (its index in the kind's field table) of an event: `on_int` gets integers and
/// times, `on_text` strings.
template <typename I, typename T>
void visit_field(const bid& x, int f, I&& on_int, T&& on_text) {
    switch (f) {
    case 0: on_int(x.auction); break;
    case 1: on_int(x.bidder); break;
    case 2: on_int(x.price); break;
    case 3: on_text(x.channel); break;
    case 4: on_text(x.url); break;
    case 5: on_int(x.date_time); break;
    default: on_text(x.extra); break;
    }
}

template <typename I, typename T>
void visit_field(const auction& x, int f, I&& on_int, T&& on_text) {
    switch (f) {
    case 0: on_int(x.id); break;
    case 1: on_text(x.item_name); break;
    case 2: on_text(x.description); break;
    case 3: on_int(x.initial_bid); break;
    case 4: on_int(x.reserve); break;
    case 5: on_int(x.date_time); break;
    case 6: on_int(x.expires); break;
    case 7: on_int(x.seller); break;
    case 8: on_int(x.category); break;
    default: on_text(x.extra); break;
    }
}

template <typename I, typename T>
void visit_field(const person& x, int f, I&& on_int, T&& on_text) {
    switch (f) {
    case 0: on_int(x.id); break;
    case 1: on_text(x.name); break;
    case 2: on_text(x.email_address); break;
    case 3: on_text(x.credit_card); break;
    case 4: on_text(x.city); break;
    case 5: on_text(x.state); break;
    case 6: on_int(x.date_time); break;
    default: on_text(x.extra); break;
    }
}

} // namespace

template <typename Event>
void row_reader::append_event(const Event& x, en::batch& b, std::size_t row) {
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        auto& col = b.mutable_col(c);
        auto& ints = _ints[c];
        visit_field(x, _fields[c], [&](int64_t v) { ints[row] = v; }, [&](const std::string& v) { col.push_string(v); });
    }
}

void row_reader::append(const person& x, en::batch& b, std::size_t row) { append_event(x, b, row); }
void row_reader::append(const auction& x, en::batch& b, std::size_t row) { append_event(x, b, row); }
void row_reader::append(const bid& x, en::batch& b, std::size_t row) { append_event(x, b, row); }

template <typename Event>
void row_reader::append_nested(const Event& x, event_kind k, en::batch& b) {
    for (std::size_t c = 0; c < _nested_cols.size(); ++c) {
        auto& col = b.mutable_col(c);
        const nested_column& n = _nested_cols[c];
        if (n.event_type) {
            // Flink's numbering: 0 person, 1 auction, 2 bid.
            col.push_int64(k == event_kind::person ? 0 : k == event_kind::auction ? 1 : 2);
        } else if (n.kind != k) {
            col.push_null();
        } else if (n.field < 0) {
            col.push_bool(true);
        } else {
            visit_field(x, n.field, [&](int64_t v) { col.push_int64(v); }, [&](const std::string& v) { col.push_string(v); });
        }
    }
}

std::size_t row_reader::read_nested(en::batch& b, std::size_t max_rows, std::size_t max_events) {
    std::size_t rows = 0;
    while (rows < max_rows && rows < max_events && _gen->has_next()) {
        if (_instances > 1 && _gen->events_so_far() % _instances != _instance) { // another instance's
            _gen->skip(1);
            continue;
        }
        const event_kind k = _gen->peek_kind();
        switch (k) {
        case event_kind::person:
            _gen->next_into(_person, _nested_want[0]);
            append_nested(_person, k, b);
            break;
        case event_kind::auction:
            _gen->next_into(_auction, _nested_want[1]);
            append_nested(_auction, k, b);
            break;
        case event_kind::bid:
            _gen->next_into(_bid, _nested_want[2]);
            append_nested(_bid, k, b);
            break;
        }
        ++rows;
    }
    return rows;
}

} // namespace runnel::connect::nexmark
