#include "connect/nexmark/rows.h"

#include <algorithm>
#include <cctype>
#include <span>

#include <fmt/format.h>

namespace runnel::connect::nexmark {
namespace {

namespace en = runnel::engine;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return out;
}

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
    auto kind = options.find("event");
    const auto kind_name = lower(kind == options.end() ? "bid" : kind->second);
    if (kind_name != "bid" && kind_name != "auction" && kind_name != "person") {
        return en::error(en::errc::invalid_argument,
                         fmt::format("option 'event' is bid, auction or person, not '{}'", kind_name));
    }
    r._kind = kind_name == "bid" ? event_kind::bid : kind_name == "auction" ? event_kind::auction : event_kind::person;
    r._schema = std::move(columns);
    const auto fs = fields_of(kind_name);
    for (const auto& f : r._schema->fields()) {
        auto it = std::find_if(fs.begin(), fs.end(), [&](const field& x) { return lower(f.name) == x.name; });
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
        _gen->next_into(*scratch, _want);
        --left;
        append(*scratch, b, rows);
        ++rows;
    }
    return rows;
}

void row_reader::append(const bid& x, en::batch& b, std::size_t row) {
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        auto& col = b.mutable_col(c);
        auto& ints = _ints[c];
        switch (_fields[c]) {
        case 0: ints[row] = x.auction; break;
        case 1: ints[row] = x.bidder; break;
        case 2: ints[row] = x.price; break;
        case 3: col.push_string(x.channel); break;
        case 4: col.push_string(x.url); break;
        case 5: ints[row] = x.date_time; break;
        default: col.push_string(x.extra); break;
        }
    }
}

void row_reader::append(const auction& x, en::batch& b, std::size_t row) {
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        auto& col = b.mutable_col(c);
        auto& ints = _ints[c];
        switch (_fields[c]) {
        case 0: ints[row] = x.id; break;
        case 1: col.push_string(x.item_name); break;
        case 2: col.push_string(x.description); break;
        case 3: ints[row] = x.initial_bid; break;
        case 4: ints[row] = x.reserve; break;
        case 5: ints[row] = x.date_time; break;
        case 6: ints[row] = x.expires; break;
        case 7: ints[row] = x.seller; break;
        case 8: ints[row] = x.category; break;
        default: col.push_string(x.extra); break;
        }
    }
}

void row_reader::append(const person& x, en::batch& b, std::size_t row) {
    for (std::size_t c = 0; c < _fields.size(); ++c) {
        auto& col = b.mutable_col(c);
        auto& ints = _ints[c];
        switch (_fields[c]) {
        case 0: ints[row] = x.id; break;
        case 1: col.push_string(x.name); break;
        case 2: col.push_string(x.email_address); break;
        case 3: col.push_string(x.credit_card); break;
        case 4: col.push_string(x.city); break;
        case 5: col.push_string(x.state); break;
        case 6: ints[row] = x.date_time; break;
        default: col.push_string(x.extra); break;
        }
    }
}

} // namespace runnel::connect::nexmark
