#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/base.h"

namespace runnel::connect::nexmark {

class java_random;

/// A new user of the auction site. Times are milliseconds since the Unix epoch.
struct person {
    int64_t id = 0;
    std::string name;
    std::string email_address;
    std::string credit_card;
    std::string city;
    std::string state;
    int64_t date_time = 0;
    std::string extra;
    bool operator==(const person&) const = default;
};

/// An item put up for sale by `seller`, open from `date_time` until `expires`.
struct auction {
    int64_t id = 0;
    std::string item_name;
    std::string description;
    int64_t initial_bid = 0;
    int64_t reserve = 0;
    int64_t date_time = 0;
    int64_t expires = 0;
    int64_t seller = 0;
    int64_t category = 0;
    std::string extra;
    bool operator==(const auction&) const = default;
};

/// An offer of `price` (in cents) by `bidder` for `auction`, placed through `channel`.
struct bid {
    int64_t auction = 0;
    int64_t bidder = 0;
    int64_t price = 0;
    std::string channel;
    std::string url;
    int64_t date_time = 0;
    std::string extra;
    bool operator==(const bid&) const = default;
};

using event = std::variant<person, auction, bid>;

/// The kind of an event, known from its position alone (no random draws).
enum class event_kind : uint8_t { person, auction, bid };

/// The fields a `next_into` call writes: bit i stands for the i-th member of the event struct
/// in declaration order (for a bid: auction, bidder, price, channel, url, date_time, extra).
/// Fields left out may be skipped (their strings not built, a bid's price not computed) or
/// written anyway; every random draw a later field depends on is still made, so the fields in
/// `want` are those `next()` would give.
using field_mask = uint32_t;
inline constexpr field_mask all_fields = ~field_mask{0};

/// The event time of an event, whichever kind it is.
int64_t event_time(const event& e) noexcept;

/// The knobs of the Nexmark generator; the defaults are the benchmark's defaults.
struct generator_config {
    /// Events per second of event time; sets the spacing of event timestamps.
    int64_t events_per_second = 10'000;
    /// Generators sharing the stream (each spaces its own events that many times wider).
    int32_t num_event_generators = 1;
    int32_t person_proportion = 1;
    int32_t auction_proportion = 3;
    int32_t bid_proportion = 46;
    int32_t avg_person_byte_size = 200;
    int32_t avg_auction_byte_size = 500;
    int32_t avg_bid_byte_size = 100;
    /// One in this many bids picks a random auction; the rest go to the newest "hot" one.
    int32_t hot_auction_ratio = 2;
    int32_t hot_sellers_ratio = 4;
    int32_t hot_bidders_ratio = 4;
    /// Bids and auctions choose people among the most recent this many.
    int32_t num_active_people = 1000;
    /// Bids choose auctions among the most recent this many.
    int32_t num_in_flight_auctions = 100;
    /// Events are shuffled in groups of this size (1: in order).
    int32_t out_of_order_group_size = 1;
    /// Event time of the first event, ms since the epoch.
    int64_t base_time_ms = 0;
    /// Id of the first event; ids seed each event's random fields.
    int64_t first_event_id = 0;
    /// Number of events to produce; 0 means unbounded.
    int64_t max_events = 0;
    /// 0 reproduces the reference stream; any other value gives a different, equally
    /// deterministic stream.
    int64_t seed = 0;

    /// Reads the connector options (`events.num`, `first-event.rate`, `rate`, `seed`,
    /// `base-time`, `person.proportion`, `auction.proportion`, `bid.proportion`, ...) over the
    /// defaults. Unknown keys are ignored so the table's other options can share the map.
    static result<generator_config> from_options(const std::map<std::string, std::string>& options);

    /// Checks ranges; the generator refuses a config that fails this.
    result<void> validate() const;
};

/// Produces the Person/Auction/Bid stream of the Nexmark benchmark as its reference generator
/// specifies it: event kinds in proportion (1:3:46 by default) by event id, person and auction
/// ids from 1000 assigned in order, bids and auctions referring to recently created people and
/// auctions with "hot" ones favoured, prices log-uniform between $1 and $10,000, and event
/// timestamps spaced by the configured rate from `base_time_ms`.
///
/// Every event is a pure function of the config and its position, so two generators with the
/// same config yield the same stream. A plain value, not thread-safe; one source task owns it.
class generator {
public:
    /// Fails with `errc::invalid_config` when `config.validate()` does.
    static result<generator> create(const generator_config& config);

    /// False once `max_events` events were produced (never for an unbounded config).
    bool has_next() const noexcept;

    /// The next event. Precondition: has_next().
    event next();

    /// The kind of the event `next()` returns next. Precondition: has_next().
    event_kind peek_kind() const noexcept;

    /// How many events, at most `limit`, come before the next one of kind `k` (`limit` when
    /// none does within it, or the stream ends first). Cheap: no event is generated.
    int64_t events_before(event_kind k, int64_t limit) const noexcept;

    /// Steps over `n` events without generating them. Precondition: that many remain.
    void skip(int64_t n) noexcept { _count += n; }

    /// The next event written into `out`, reusing the storage of its strings, so a caller
    /// that keeps `out` allocates nothing per event. Only the fields in `want` are written.
    /// Precondition: has_next() and peek_kind() is the kind of `out`.
    void next_into(person& out, field_mask want = all_fields);
    void next_into(auction& out, field_mask want = all_fields);
    void next_into(bid& out, field_mask want = all_fields);

    /// Events produced so far.
    int64_t events_so_far() const noexcept { return _count; }

    /// The event time of the event `next()` returns after this one has been produced,
    /// minus out-of-order jitter: no later event carries an earlier time.
    int64_t watermark() const noexcept;

    /// Event time of the event with event number `n` (ms since the epoch).
    int64_t timestamp_for_event(int64_t n) const noexcept;

    const generator_config& config() const noexcept { return _config; }

    // The id spaces, exposed for tests and for consumers that reason about them.
    /// Last person id (base 0) that exists when event `event_id` is produced.
    int64_t last_base0_person_id(int64_t event_id) const noexcept;
    /// Last auction id (base 0) that exists when event `event_id` is produced.
    int64_t last_base0_auction_id(int64_t event_id) const noexcept;

    static constexpr int64_t first_person_id = 1000;
    static constexpr int64_t first_auction_id = 1000;
    static constexpr int64_t first_category_id = 10;
    static constexpr int num_categories = 5;
    static constexpr int hot_channels = 4;
    static constexpr int num_channels = 10'000;

private:
    explicit generator(const generator_config& config);

    int64_t adjusted_event_number(int64_t count) const noexcept;
    event_kind kind_of(int64_t event_id) const noexcept;
    void fill(person& p, int64_t event_id, java_random& r, int64_t ts, field_mask want) const;
    void fill(auction& a, int64_t number, int64_t event_id, java_random& r, int64_t ts,
              field_mask want) const;
    void fill(bid& b, int64_t event_id, java_random& r, int64_t ts, field_mask want) const;
    /// A person (auction) id for a new reference, given the last one that exists.
    int64_t next_base0_person_id(int64_t last_person, java_random& r) const;
    int64_t next_base0_auction_id(int64_t last_auction, java_random& r) const;

    generator_config _config;
    int64_t _total_proportion;
    double _inter_event_delay_us;
    int64_t _count = 0;
    /// What varies between the URLs of channels: the three path parts (3 or 4 characters
    /// each) and the channel id, if one follows. 20 bytes a channel, so the table stays in
    /// cache where 10,004 whole strings would not.
    struct url_parts {
        std::array<char, 12> dirs;
        std::array<uint8_t, 3> lengths;
        bool has_id;
        int32_t id;
    };
    static url_parts parts_of_url(int channel, int64_t seed);
    /// Writes the URL of `parts` to `out`.
    static void write_url(const url_parts& parts, std::string& out);

    /// The URL parts of each channel: the hot ones first, then channel-0 .. channel-9999.
    /// Built once, shared by copies.
    std::shared_ptr<const std::vector<url_parts>> _urls;
};

} // namespace runnel::connect::nexmark
