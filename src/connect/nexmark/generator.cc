#include "connect/nexmark/generator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

#include "connect/errc.h"
#include "connect/nexmark/java_random.h"

namespace runnel::connect {

const char* errc_message(errc e) noexcept {
    switch (e) {
    case errc::success:
        return "success";
    case errc::invalid_config:
        return "invalid connector configuration";
    }
    return "unknown connect error";
}

} // namespace runnel::connect

namespace runnel::connect::nexmark {

namespace {

constexpr int person_id_lead = 10;
constexpr int auction_id_lead = 10;
constexpr int hot_seller_ratio = 100;
constexpr int hot_auction_ratio = 100;
constexpr int hot_bidder_ratio = 100;
constexpr int hot_channels_ratio = 2;
constexpr int min_string_length = 3;

constexpr std::array<std::string_view, 6> us_states = {"AZ", "CA", "ID", "OR", "WA", "WY"};
constexpr std::array<std::string_view, 10> us_cities = {
  "Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
  "Bend",    "Redmond",     "Seattle",       "Kent",  "Cheyenne"};
constexpr std::array<std::string_view, 11> first_names = {
  "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"};
constexpr std::array<std::string_view, 9> last_names = {
  "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"};
constexpr std::array<std::string_view, 4> hot_channel_names = {"Google", "Facebook", "Baidu",
                                                               "Apple"};

/// A random id below `n`, as the reference draws it (an int draw when `n` fits in one).
int64_t next_long(java_random& r, int64_t n) {
    if (n < int64_t{INT32_MAX}) {
        return r.next_int(static_cast<int32_t>(n));
    }
    int64_t v = r.next_long() % n;
    return v < 0 ? -v : v;
}

/// A string of 3 to max_length-1 lower-case letters with `special` sprinkled in, trimmed as
/// Java's String.trim() does (characters at or below ' ' dropped at both ends), appended to
/// `out`.
void append_random_string(java_random& rng, int max_length, char special, std::string& out) {
    java_random r = rng; // a local copy stays in a register; `out` may alias anything
    int len = min_string_length + r.next_int(max_length - min_string_length);
    std::size_t start = out.size();
    out.resize(start + static_cast<std::size_t>(len));
    char* p = out.data() + start;
    for (int i = 0; i < len; ++i) {
        p[i] = r.next_int(13) == 0 ? special : static_cast<char>('a' + r.next_int(26));
    }
    rng = r;
    if (static_cast<unsigned char>(special) > ' ') {
        return;
    }
    auto keep = [](char c) { return static_cast<unsigned char>(c) > ' '; };
    auto from = out.begin() + static_cast<std::ptrdiff_t>(start);
    auto e = std::find_if(out.rbegin(), std::make_reverse_iterator(from), keep).base();
    out.erase(e, out.end());
    out.erase(from, std::find_if(from, out.end(), keep));
}

/// The two characters 'a' + m % 26 and 'a' + m / 26 for each m in -675..675 (index m + 675).
/// A 32-bit draw d gives six characters, the k-th 'a' + (d / 26^k) % 26 with the remainder
/// keeping the draw's sign as in the reference (a negative draw gives characters just below
/// 'a'); characters 2k and 2k+1 depend only on (d / 676^k) % 676, so a draw is three lookups.
constexpr std::array<std::array<char, 2>, 1351> char_pairs = [] {
    std::array<std::array<char, 2>, 1351> t{};
    for (int m = -675; m <= 675; ++m) {
        t[static_cast<std::size_t>(m + 675)] = {static_cast<char>('a' + m % 26),
                                                static_cast<char>('a' + m / 26)};
    }
    return t;
}();

/// Writes the first `n` (at most 6) characters of draw `d`.
inline void six_chars(int32_t d, char* out, int n) {
    const int32_t q1 = d / 676;
    const int32_t q2 = d / 456'976;
    const int32_t q3 = d / 308'915'776;
    char six[6];
    std::memcpy(six, char_pairs[static_cast<std::size_t>(d - q1 * 676 + 675)].data(), 2);
    std::memcpy(six + 2, char_pairs[static_cast<std::size_t>(q1 - q2 * 676 + 675)].data(), 2);
    std::memcpy(six + 4, char_pairs[static_cast<std::size_t>(q2 - q3 * 676 + 675)].data(), 2);
    std::memcpy(out, six, static_cast<std::size_t>(n));
}

/// Exactly `length` characters, six per 32-bit draw, at `out`.
void exact_string(java_random& rng, int length, char* out) {
    java_random r = rng; // a local copy stays in a register; `out` may alias anything
    for (; length >= 6; length -= 6, out += 6) {
        six_chars(r.next_int(), out, 6);
    }
    if (length > 0) {
        six_chars(r.next_int(), out, length);
    }
    rng = r;
}

/// Padding so that current_size plus its length averages `average_size`, into `out`.
void extra_string(java_random& r, int current_size, int average_size, std::string& out) {
    if (current_size > average_size) {
        out.clear();
        return;
    }
    average_size -= current_size;
    int delta = static_cast<int>(std::llround(average_size * 0.2));
    int min_size = average_size - delta;
    int size = min_size + (delta == 0 ? 0 : r.next_int(2 * delta));
    out.resize(static_cast<std::size_t>(size));
    exact_string(r, size, out.data());
}

/// Log-uniform between 100 and 100,000,000 cents.
int64_t next_price(java_random& r) {
    return std::llround(std::pow(10.0, r.next_double() * 6.0) * 100.0);
}

/// Writes `v` (0..9999) as four digits, zero-padded.
char* four_digits(int v, char* out) {
    out[0] = static_cast<char>('0' + v / 1000);
    out[1] = static_cast<char>('0' + v / 100 % 10);
    out[2] = static_cast<char>('0' + v / 10 % 10);
    out[3] = static_cast<char>('0' + v % 10);
    return out + 4;
}

constexpr field_mask bit(int field) {
    return field_mask{1} << field;
}

int64_t mix_seed(int64_t id, int64_t seed) {
    if (seed == 0) {
        return id;
    }
    return id ^ static_cast<int64_t>(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL);
}

int32_t reverse_bits(int32_t v) {
    auto x = static_cast<uint32_t>(v);
    uint32_t out = 0;
    for (int i = 0; i < 32; ++i) {
        out = (out << 1) | (x & 1);
        x >>= 1;
    }
    return static_cast<int32_t>(out);
}

template <typename T>
result<void> read_option(const std::map<std::string, std::string>& options, const char* key,
                         T& out) {
    auto it = options.find(key);
    if (it == options.end()) {
        return ok();
    }
    const std::string& s = it->second;
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
        return errc::invalid_config;
    }
    out = v;
    return ok();
}

} // namespace

int64_t event_time(const event& e) noexcept {
    return std::visit([](const auto& v) { return v.date_time; }, e);
}

result<generator_config>
generator_config::from_options(const std::map<std::string, std::string>& options) {
    generator_config c;
    RUNNEL_TRY(read_option(options, "first-event.rate", c.events_per_second));
    RUNNEL_TRY(read_option(options, "rate", c.events_per_second));
    RUNNEL_TRY(read_option(options, "events.num", c.max_events));
    RUNNEL_TRY(read_option(options, "seed", c.seed));
    RUNNEL_TRY(read_option(options, "base-time", c.base_time_ms));
    RUNNEL_TRY(read_option(options, "person.proportion", c.person_proportion));
    RUNNEL_TRY(read_option(options, "auction.proportion", c.auction_proportion));
    RUNNEL_TRY(read_option(options, "bid.proportion", c.bid_proportion));
    RUNNEL_TRY(read_option(options, "person.avg-size", c.avg_person_byte_size));
    RUNNEL_TRY(read_option(options, "auction.avg-size", c.avg_auction_byte_size));
    RUNNEL_TRY(read_option(options, "bid.avg-size", c.avg_bid_byte_size));
    RUNNEL_TRY(read_option(options, "bid.hot-ratio.auctions", c.hot_auction_ratio));
    RUNNEL_TRY(read_option(options, "auction.hot-ratio.sellers", c.hot_sellers_ratio));
    RUNNEL_TRY(read_option(options, "bid.hot-ratio.bidders", c.hot_bidders_ratio));
    RUNNEL_TRY(read_option(options, "person.active", c.num_active_people));
    RUNNEL_TRY(read_option(options, "auction.in-flight", c.num_in_flight_auctions));
    RUNNEL_TRY(read_option(options, "out-of-order.group-size", c.out_of_order_group_size));
    RUNNEL_TRY(c.validate());
    return c;
}

result<void> generator_config::validate() const {
    bool good = events_per_second > 0 && num_event_generators > 0 && person_proportion > 0 &&
                auction_proportion > 0 && bid_proportion >= 0 && avg_person_byte_size >= 0 &&
                avg_auction_byte_size >= 0 && avg_bid_byte_size >= 0 && hot_auction_ratio > 0 &&
                hot_sellers_ratio > 0 && hot_bidders_ratio > 0 && num_active_people > 0 &&
                num_in_flight_auctions > 0 && out_of_order_group_size > 0 && first_event_id >= 0 &&
                max_events >= 0 && base_time_ms >= 0 &&
                int64_t{person_proportion} + auction_proportion + bid_proportion <= 1'000'000 &&
                avg_person_byte_size <= 1'000'000 && avg_auction_byte_size <= 1'000'000 &&
                avg_bid_byte_size <= 1'000'000;
    if (!good) {
        return errc::invalid_config;
    }
    return ok();
}

result<generator> generator::create(const generator_config& config) {
    RUNNEL_TRY(config.validate());
    return generator(config);
}

generator::generator(const generator_config& config)
  : _config(config)
  , _total_proportion(int64_t{config.person_proportion} + config.auction_proportion +
                      config.bid_proportion)
  , _inter_event_delay_us(1'000'000.0 / static_cast<double>(config.events_per_second) *
                          config.num_event_generators) {
    auto urls = std::make_shared<std::vector<url_parts>>();
    urls->reserve(hot_channels + num_channels);
    for (int i = 0; i < hot_channels; ++i) {
        urls->push_back(parts_of_url(-1 - i, config.seed));
    }
    for (int c = 0; c < num_channels; ++c) {
        urls->push_back(parts_of_url(c, config.seed));
    }
    _urls = std::move(urls);
}

/// The URL of a channel (hot channels are -1..-4). The reference draws these from an
/// unseeded generator once per process; ours are seeded by the channel so runs agree.
generator::url_parts generator::parts_of_url(int channel, int64_t seed) {
    java_random r(mix_seed(int64_t{channel} - 1'000'000'000LL, seed));
    url_parts u{};
    std::string dir;
    for (std::size_t k = 0; k < 3; ++k) {
        dir.clear();
        append_random_string(r, 5, '_', dir);
        RUNNEL_ASSERT(dir.size() <= 4, "a URL path part has 3 or 4 characters");
        std::copy(dir.begin(), dir.end(), u.dirs.begin() + static_cast<std::ptrdiff_t>(4 * k));
        u.lengths[k] = static_cast<uint8_t>(dir.size());
    }
    if (channel >= 0 && r.next_int(10) > 0) {
        // Java's Math.abs leaves Integer.MIN_VALUE negative.
        int32_t rev = reverse_bits(channel);
        u.has_id = true;
        u.id = rev == INT32_MIN ? rev : std::abs(rev);
    }
    return u;
}

void generator::write_url(const url_parts& parts, std::string& out) {
    constexpr std::string_view head = "https://www.nexmark.com/";
    constexpr std::string_view tail = "/item.htm?query=1";
    constexpr std::string_view id = "&channel_id=";
    out.resize(head.size() + 12 + 2 + tail.size() + id.size() + 11);
    char* p = out.data();
    p = std::copy(head.begin(), head.end(), p);
    for (std::size_t k = 0; k < 3; ++k) {
        if (k > 0) {
            *p++ = '/';
        }
        std::memcpy(p, parts.dirs.data() + 4 * k, 4);
        p += parts.lengths[k];
    }
    p = std::copy(tail.begin(), tail.end(), p);
    if (parts.has_id) {
        p = std::copy(id.begin(), id.end(), p);
        p = std::to_chars(p, out.data() + out.size(), parts.id).ptr;
    }
    out.resize(static_cast<std::size_t>(p - out.data()));
}

bool generator::has_next() const noexcept {
    return _config.max_events == 0 || _count < _config.max_events;
}

int64_t generator::timestamp_for_event(int64_t n) const noexcept {
    return _config.base_time_ms +
           static_cast<int64_t>(static_cast<double>(n) * _inter_event_delay_us) / 1000;
}

int64_t generator::adjusted_event_number(int64_t count) const noexcept {
    int64_t n = _config.out_of_order_group_size;
    if (n == 1) {
        return count;
    }
    int64_t base = (count / n) * n;
    int64_t offset = (count * 953) % n;
    return base + offset;
}

int64_t generator::watermark() const noexcept {
    int64_t n = _config.out_of_order_group_size;
    return timestamp_for_event((_count / n) * n);
}

int64_t generator::last_base0_person_id(int64_t event_id) const noexcept {
    int64_t epoch = event_id / _total_proportion;
    int64_t offset = event_id % _total_proportion;
    if (offset >= _config.person_proportion) {
        offset = _config.person_proportion - 1;
    }
    return epoch * _config.person_proportion + offset;
}

int64_t generator::last_base0_auction_id(int64_t event_id) const noexcept {
    int64_t epoch = event_id / _total_proportion;
    int64_t offset = event_id % _total_proportion;
    if (offset < _config.person_proportion) {
        --epoch;
        offset = _config.auction_proportion - 1;
    } else if (offset >= _config.person_proportion + _config.auction_proportion) {
        offset = _config.auction_proportion - 1;
    } else {
        offset -= _config.person_proportion;
    }
    return epoch * _config.auction_proportion + offset;
}

int64_t generator::next_base0_person_id(int64_t last_person, java_random& r) const {
    int64_t num_people = last_person + 1;
    int64_t active = std::min<int64_t>(num_people, _config.num_active_people);
    int64_t n = next_long(r, active + person_id_lead);
    return num_people - active + n;
}

int64_t generator::next_base0_auction_id(int64_t last_auction, java_random& r) const {
    int64_t max_auction = last_auction;
    int64_t min_auction = std::max<int64_t>(max_auction - _config.num_in_flight_auctions, 0);
    return min_auction + next_long(r, max_auction - min_auction + 1 + auction_id_lead);
}

event_kind generator::kind_of(int64_t event_id) const noexcept {
    int64_t rem = event_id % _total_proportion;
    if (rem < _config.person_proportion) {
        return event_kind::person;
    }
    if (rem < _config.person_proportion + _config.auction_proportion) {
        return event_kind::auction;
    }
    return event_kind::bid;
}

event_kind generator::peek_kind() const noexcept {
    return kind_of(_config.first_event_id + adjusted_event_number(_count));
}

int64_t generator::events_before(event_kind k, int64_t limit) const noexcept {
    if (_config.max_events != 0) {
        limit = std::min(limit, _config.max_events - _count);
    }
    if (limit <= 0) {
        return 0;
    }
    if (_config.out_of_order_group_size != 1) {
        // Event ids jump about inside a group: look at each in turn.
        int64_t n = 0;
        while (n < limit &&
               kind_of(_config.first_event_id + adjusted_event_number(_count + n)) != k) {
            ++n;
        }
        return n;
    }
    // In order: kinds repeat with the period of the proportions, each kind one run of ids.
    int64_t lo = 0;
    int64_t hi = _config.person_proportion;
    if (k != event_kind::person) {
        lo = hi;
        hi += _config.auction_proportion;
    }
    if (k == event_kind::bid) {
        lo = hi;
        hi = _total_proportion;
    }
    if (lo == hi) {
        return limit;
    }
    int64_t rem = (_config.first_event_id + _count) % _total_proportion;
    int64_t n = rem >= lo && rem < hi ? 0 : (lo - rem + _total_proportion) % _total_proportion;
    return std::min(n, limit);
}

event generator::next() {
    RUNNEL_ASSERT(has_next(), "next() past max_events");
    switch (peek_kind()) {
    case event_kind::person: {
        person p;
        next_into(p);
        return p;
    }
    case event_kind::auction: {
        auction a;
        next_into(a);
        return a;
    }
    case event_kind::bid: break;
    }
    bid b;
    next_into(b);
    return b;
}

void generator::next_into(person& out, field_mask want) {
    RUNNEL_ASSERT(has_next(), "next_into() past max_events");
    int64_t number = adjusted_event_number(_count);
    int64_t event_id = _config.first_event_id + number;
    RUNNEL_ASSERT(kind_of(event_id) == event_kind::person, "next_into(person&) at another kind");
    java_random r(mix_seed(event_id, _config.seed));
    fill(out, event_id, r, timestamp_for_event(number), want);
    ++_count;
}

void generator::next_into(auction& out, field_mask want) {
    RUNNEL_ASSERT(has_next(), "next_into() past max_events");
    int64_t number = adjusted_event_number(_count);
    int64_t event_id = _config.first_event_id + number;
    RUNNEL_ASSERT(kind_of(event_id) == event_kind::auction, "next_into(auction&) at another kind");
    java_random r(mix_seed(event_id, _config.seed));
    fill(out, number, event_id, r, timestamp_for_event(number), want);
    ++_count;
}

void generator::next_into(bid& out, field_mask want) {
    RUNNEL_ASSERT(has_next(), "next_into() past max_events");
    int64_t number = adjusted_event_number(_count);
    int64_t event_id = _config.first_event_id + number;
    RUNNEL_ASSERT(kind_of(event_id) == event_kind::bid, "next_into(bid&) at another kind");
    java_random r(mix_seed(event_id, _config.seed));
    fill(out, event_id, r, timestamp_for_event(number), want);
    ++_count;
}

void generator::fill(person& p, int64_t event_id, java_random& r, int64_t ts,
                     field_mask want) const {
    p.id = last_base0_person_id(event_id) + first_person_id;
    // The last name is drawn before the first: the order the earlier `fmt::format(.., first(),
    // last())` happened to evaluate its arguments in with g++, kept so the stream does not
    // change. (The reference draws the first name first.)
    std::string_view last = last_names[static_cast<std::size_t>(r.next_int(last_names.size()))];
    std::string_view first = first_names[static_cast<std::size_t>(r.next_int(first_names.size()))];
    if (want & bit(1)) {
        p.name.assign(first).append(1, ' ').append(last);
    }
    // The address is needed for its length even when not wanted.
    std::string& email = p.email_address;
    email.clear();
    append_random_string(r, 7, ' ', email);
    email.push_back('@');
    append_random_string(r, 5, ' ', email);
    email.append(".com");
    char cc[19];
    char* c = cc;
    for (int g = 0; g < 4; ++g) {
        c = four_digits(r.next_int(10'000), c);
        if (g < 3) {
            *c++ = ' ';
        }
    }
    if (want & bit(3)) {
        p.credit_card.assign(cc, sizeof cc);
    }
    std::string_view city = us_cities[static_cast<std::size_t>(r.next_int(us_cities.size()))];
    std::string_view state = us_states[static_cast<std::size_t>(r.next_int(us_states.size()))];
    if (want & bit(4)) {
        p.city.assign(city);
    }
    if (want & bit(5)) {
        p.state.assign(state);
    }
    p.date_time = ts;
    if (want & bit(7)) {
        int size = 8 + static_cast<int>(first.size() + 1 + last.size() + email.size() + sizeof cc +
                                        city.size() + state.size());
        extra_string(r, size, _config.avg_person_byte_size, p.extra);
    }
}

void generator::fill(auction& a, int64_t number, int64_t event_id, java_random& r, int64_t ts,
                     field_mask want) const {
    const int64_t last_person = last_base0_person_id(event_id);
    a.id = last_base0_auction_id(event_id) + first_auction_id;
    if (r.next_int(_config.hot_sellers_ratio) > 0) {
        a.seller = (last_person / hot_seller_ratio) * hot_seller_ratio;
    } else {
        a.seller = next_base0_person_id(last_person, r);
    }
    a.seller += first_person_id;
    a.category = first_category_id + r.next_int(num_categories);
    a.initial_bid = next_price(r);
    // Auction length: on average the time until num_in_flight_auctions more auctions exist.
    int64_t events_for_auctions =
      (int64_t{_config.num_in_flight_auctions} * _total_proportion) / _config.auction_proportion;
    int64_t horizon = timestamp_for_event(number + events_for_auctions) - ts;
    a.expires = ts + 1 + next_long(r, std::max<int64_t>(horizon * 2, 1));
    // Both names are needed for their lengths even when not wanted.
    a.item_name.clear();
    append_random_string(r, 20, ' ', a.item_name);
    a.description.clear();
    append_random_string(r, 100, ' ', a.description);
    a.reserve = a.initial_bid + next_price(r);
    a.date_time = ts;
    if (want & bit(9)) {
        int size = 8 + static_cast<int>(a.item_name.size() + a.description.size()) + 8 * 5;
        extra_string(r, size, _config.avg_auction_byte_size, a.extra);
    }
}

void generator::fill(bid& b, int64_t event_id, java_random& r, int64_t ts, field_mask want) const {
    // Both computed before any store into `b`, so they share one division.
    const int64_t last_auction = last_base0_auction_id(event_id);
    const int64_t last_person = last_base0_person_id(event_id);
    if (r.next_int(_config.hot_auction_ratio) > 0) {
        b.auction = (last_auction / hot_auction_ratio) * hot_auction_ratio;
    } else {
        b.auction = next_base0_auction_id(last_auction, r);
    }
    b.auction += first_auction_id;
    if (r.next_int(_config.hot_bidders_ratio) > 0) {
        b.bidder = (last_person / hot_bidder_ratio) * hot_bidder_ratio + 1;
    } else {
        b.bidder = next_base0_person_id(last_person, r);
    }
    b.bidder += first_person_id;
    if (want & bit(2)) {
        b.price = next_price(r);
    } else {
        (void)r.next_double();
    }
    std::size_t url;
    if (r.next_int(hot_channels_ratio) > 0) {
        int i = r.next_int(hot_channels);
        if (want & bit(3)) {
            b.channel.assign(hot_channel_names[static_cast<std::size_t>(i)]);
        }
        url = static_cast<std::size_t>(i);
    } else {
        int c = r.next_int(num_channels);
        if (want & bit(3)) {
            char name[16] = "channel-";
            char* end = std::to_chars(name + 8, name + sizeof name, c).ptr;
            b.channel.assign(name, end);
        }
        url = static_cast<std::size_t>(hot_channels + c);
    }
    // The URL parts of a cold channel are likely out of cache: load them while the extra
    // string is drawn, and write the URL after.
    const url_parts& parts = (*_urls)[url];
    __builtin_prefetch(&parts);
    b.date_time = ts;
    if (want & bit(6)) {
        extra_string(r, 8 * 4, _config.avg_bid_byte_size, b.extra);
    }
    if (want & bit(4)) {
        write_url(parts, b.url);
    }
}

} // namespace runnel::connect::nexmark
