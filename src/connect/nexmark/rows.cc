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
    r._kind = lower(kind == options.end() ? "bid" : kind->second);
    if (r._kind != "bid" && r._kind != "auction" && r._kind != "person") {
        return en::error(en::errc::invalid_argument,
                         fmt::format("option 'event' is bid, auction or person, not '{}'", r._kind));
    }
    r._schema = std::move(columns);
    const auto fs = fields_of(r._kind);
    for (const auto& f : r._schema->fields()) {
        auto it = std::find_if(fs.begin(), fs.end(), [&](const field& x) { return lower(f.name) == x.name; });
        if (it == fs.end()) {
            return en::error(en::errc::unknown_column, fmt::format("a nexmark {} has no field '{}'", r._kind, f.name));
        }
        if (it->text != (f.type.id == en::type_id::string) || (!it->text && !f.type.is_integral())) {
            return en::error(en::errc::type_mismatch,
                             fmt::format("nexmark field '{}' is {}, not {}", f.name,
                                         it->text ? "a string" : "an integer or a timestamp", f.type.name()));
        }
        r._fields.push_back(int(it - fs.begin()));
    }
    if (auto s = r.seek(0); !s) return s.error();
    return r;
}

en::result<void> row_reader::seek(int64_t position) {
    auto g = generator::create(_cfg);
    if (!g) return en::error(en::errc::invalid_argument, fmt::format("nexmark generator: {}", g.error().message()));
    _gen.emplace(std::move(g).value());
    while (_gen->events_so_far() < position && _gen->has_next()) (void)_gen->next();
    return outcome::success();
}

en::batch row_reader::next(std::size_t max_rows, std::size_t max_events) {
    en::batch b(_schema);
    std::size_t rows = 0;
    for (std::size_t n = 0; _gen->has_next() && rows < max_rows && n < max_events; ++n) rows += append(_gen->next(), b);
    b.seal();
    return b;
}

std::size_t row_reader::append(const event& e, en::batch& b) const {
    auto put = [&](std::size_t c, auto v) {
        if constexpr (std::is_same_v<decltype(v), int64_t>) b.mutable_col(c).push_int64(v);
        else b.mutable_col(c).push_string(v);
    };
    if (const auto* x = std::get_if<bid>(&e); x && _kind == "bid") {
        for (std::size_t c = 0; c < _fields.size(); ++c) {
            switch (_fields[c]) {
            case 0: put(c, x->auction); break;
            case 1: put(c, x->bidder); break;
            case 2: put(c, x->price); break;
            case 3: put(c, std::string_view(x->channel)); break;
            case 4: put(c, std::string_view(x->url)); break;
            case 5: put(c, x->date_time); break;
            default: put(c, std::string_view(x->extra)); break;
            }
        }
        return 1;
    }
    if (const auto* x = std::get_if<auction>(&e); x && _kind == "auction") {
        for (std::size_t c = 0; c < _fields.size(); ++c) {
            switch (_fields[c]) {
            case 0: put(c, x->id); break;
            case 1: put(c, std::string_view(x->item_name)); break;
            case 2: put(c, std::string_view(x->description)); break;
            case 3: put(c, x->initial_bid); break;
            case 4: put(c, x->reserve); break;
            case 5: put(c, x->date_time); break;
            case 6: put(c, x->expires); break;
            case 7: put(c, x->seller); break;
            case 8: put(c, x->category); break;
            default: put(c, std::string_view(x->extra)); break;
            }
        }
        return 1;
    }
    if (const auto* x = std::get_if<person>(&e); x && _kind == "person") {
        for (std::size_t c = 0; c < _fields.size(); ++c) {
            switch (_fields[c]) {
            case 0: put(c, x->id); break;
            case 1: put(c, std::string_view(x->name)); break;
            case 2: put(c, std::string_view(x->email_address)); break;
            case 3: put(c, std::string_view(x->credit_card)); break;
            case 4: put(c, std::string_view(x->city)); break;
            case 5: put(c, std::string_view(x->state)); break;
            case 6: put(c, x->date_time); break;
            default: put(c, std::string_view(x->extra)); break;
            }
        }
        return 1;
    }
    return 0;
}

} // namespace runnel::connect::nexmark
