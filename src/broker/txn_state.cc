#include "broker/txn_state.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace runnel::broker {
namespace {

constexpr std::array<std::pair<txn_status, std::string_view>, 7> status_names{{
  {txn_status::empty, "Empty"},
  {txn_status::ongoing, "Ongoing"},
  {txn_status::prepare_commit, "PrepareCommit"},
  {txn_status::prepare_abort, "PrepareAbort"},
  {txn_status::complete_commit, "CompleteCommit"},
  {txn_status::complete_abort, "CompleteAbort"},
  {txn_status::dead, "Dead"},
}};

/// Big-endian writer and reader of the record payload.
struct out_bytes {
    std::vector<std::byte> b;
    template <typename T>
    void num(T v) {
        std::byte tmp[sizeof(T)];
        write_be<T>(tmp, v);
        b.insert(b.end(), tmp, tmp + sizeof(T));
    }
    void str(std::string_view s) {
        num<uint32_t>(static_cast<uint32_t>(s.size()));
        auto bytes = std::as_bytes(std::span(s));
        b.insert(b.end(), bytes.begin(), bytes.end());
    }
};

struct in_bytes {
    std::span<const std::byte> b;
    bool ok = true;
    template <typename T>
    T num() {
        if (b.size() < sizeof(T)) {
            ok = false;
            return T{};
        }
        T v = read_be<T>(b.data());
        b = b.subspan(sizeof(T));
        return v;
    }
    std::string str() {
        auto n = num<uint32_t>();
        if (!ok || b.size() < n) {
            ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(b.data()), n);
        b = b.subspan(n);
        return s;
    }
    /// A count of items each at least `min_bytes` long: never more than the bytes left allow.
    uint32_t count(std::size_t min_bytes) {
        auto n = num<uint32_t>();
        if (!ok || n > b.size() / min_bytes) {
            ok = false;
            return 0;
        }
        return n;
    }
};

constexpr uint8_t record_version = 1;

} // namespace

std::string_view txn_status_name(txn_status s) noexcept {
    for (const auto& [st, name] : status_names) {
        if (st == s) {
            return name;
        }
    }
    return "Unknown";
}

std::optional<txn_status> parse_txn_status(std::string_view name) noexcept {
    for (const auto& [st, n] : status_names) {
        if (n == name) {
            return st;
        }
    }
    return std::nullopt;
}

namespace txn {

errc check_producer(const txn_metadata& m, int64_t producer_id, int16_t producer_epoch) noexcept {
    if (producer_id != m.producer_id) {
        return errc::invalid_producer_id_mapping;
    }
    if (producer_epoch != m.producer_epoch) {
        return errc::producer_fenced;
    }
    return errc::success;
}

init_step plan_init(const txn_metadata& m, int64_t producer_id, int16_t producer_epoch) noexcept {
    if (producer_id >= 0 && (producer_id != m.producer_id || producer_epoch != m.producer_epoch)) {
        return init_step::refuse;
    }
    if (m.preparing()) {
        return init_step::retry;
    }
    return m.status == txn_status::ongoing ? init_step::abort_then_bump : init_step::bump;
}

bool bump_epoch(txn_metadata& m, int64_t fresh_id) noexcept {
    bool fresh = m.producer_epoch >= max_epoch || m.producer_id < 0;
    if (fresh) {
        m.producer_id = fresh_id;
        m.producer_epoch = 0;
    } else {
        ++m.producer_epoch;
    }
    return fresh;
}

errc begin(txn_metadata& m, int64_t now_ms) noexcept {
    switch (m.status) {
    case txn_status::prepare_commit:
    case txn_status::prepare_abort:
        return errc::concurrent_transactions;
    case txn_status::dead:
        return errc::invalid_txn_state;
    case txn_status::ongoing:
        break;
    case txn_status::empty:
    case txn_status::complete_commit:
    case txn_status::complete_abort:
        m.status = txn_status::ongoing;
        m.start_ms = now_ms;
        m.partitions.clear();
        m.groups.clear();
        m.offsets.clear();
        break;
    }
    m.update_ms = now_ms;
    return errc::success;
}

result<end_step> end(txn_metadata& m, bool commit, int64_t now_ms) noexcept {
    switch (m.status) {
    case txn_status::ongoing:
        m.status = commit ? txn_status::prepare_commit : txn_status::prepare_abort;
        m.update_ms = now_ms;
        return end_step::prepare;
    case txn_status::complete_commit:
        if (commit) {
            return end_step::done;
        }
        return errc::invalid_txn_state;
    case txn_status::complete_abort:
        if (!commit) {
            return end_step::done;
        }
        return errc::invalid_txn_state;
    case txn_status::prepare_commit:
    case txn_status::prepare_abort:
        return errc::concurrent_transactions;
    case txn_status::empty:
    case txn_status::dead:
        break;
    }
    return errc::invalid_txn_state;
}

void complete(txn_metadata& m, int64_t now_ms) noexcept {
    if (m.status == txn_status::prepare_commit) {
        m.status = txn_status::complete_commit;
    } else if (m.status == txn_status::prepare_abort) {
        m.status = txn_status::complete_abort;
    }
    m.partitions.clear();
    m.groups.clear();
    m.offsets.clear();
    m.start_ms = -1;
    m.update_ms = now_ms;
}

bool expired(const txn_metadata& m, int64_t now_ms) noexcept {
    return m.status == txn_status::ongoing && m.start_ms >= 0 && now_ms - m.start_ms > m.timeout_ms;
}

void add_offset(txn_metadata& m, txn_pending_offset o) {
    auto it = std::find_if(m.offsets.begin(), m.offsets.end(),
                           [&](const txn_pending_offset& x) { return x.group == o.group && x.tp == o.tp; });
    if (it != m.offsets.end()) {
        *it = std::move(o);
    } else {
        m.offsets.push_back(std::move(o));
    }
}

std::vector<std::byte> encode(const txn_metadata& m) {
    out_bytes o;
    o.num<uint8_t>(record_version);
    o.str(m.id);
    o.num<int64_t>(m.producer_id);
    o.num<int16_t>(m.producer_epoch);
    o.num<int32_t>(m.timeout_ms);
    o.num<uint8_t>(static_cast<uint8_t>(m.status));
    o.num<int64_t>(m.start_ms);
    o.num<int64_t>(m.update_ms);
    o.num<uint32_t>(static_cast<uint32_t>(m.partitions.size()));
    for (const auto& tp : m.partitions) {
        o.str(tp.topic);
        o.num<int32_t>(tp.partition());
    }
    o.num<uint32_t>(static_cast<uint32_t>(m.groups.size()));
    for (const auto& g : m.groups) {
        o.str(g);
    }
    o.num<uint32_t>(static_cast<uint32_t>(m.offsets.size()));
    for (const auto& p : m.offsets) {
        o.str(p.group);
        o.str(p.tp.topic);
        o.num<int32_t>(p.tp.partition());
        o.num<int64_t>(p.offset);
        o.num<int32_t>(p.leader_epoch);
        o.num<uint8_t>(p.metadata ? 1 : 0);
        o.str(p.metadata.value_or(""));
    }
    return std::move(o.b);
}

std::optional<txn_metadata> decode(std::span<const std::byte> bytes) {
    in_bytes in{bytes};
    if (in.num<uint8_t>() != record_version) {
        return std::nullopt;
    }
    txn_metadata m;
    m.id = in.str();
    m.producer_id = in.num<int64_t>();
    m.producer_epoch = in.num<int16_t>();
    m.timeout_ms = in.num<int32_t>();
    auto status = in.num<uint8_t>();
    if (status > static_cast<uint8_t>(txn_status::dead)) {
        return std::nullopt;
    }
    m.status = static_cast<txn_status>(status);
    m.start_ms = in.num<int64_t>();
    m.update_ms = in.num<int64_t>();
    for (uint32_t n = in.count(8); in.ok && n > 0; --n) {
        auto topic = in.str();
        auto p = in.num<int32_t>();
        m.partitions.insert({std::move(topic), model::partition_id(p)});
    }
    for (uint32_t n = in.count(4); in.ok && n > 0; --n) {
        m.groups.insert(in.str());
    }
    for (uint32_t n = in.count(29); in.ok && n > 0; --n) {
        txn_pending_offset p;
        p.group = in.str();
        auto topic = in.str();
        p.tp = {std::move(topic), model::partition_id(in.num<int32_t>())};
        p.offset = in.num<int64_t>();
        p.leader_epoch = in.num<int32_t>();
        const bool has_metadata = in.num<uint8_t>() != 0;
        auto meta = in.str();
        if (has_metadata) {
            p.metadata = std::move(meta);
        }
        m.offsets.push_back(std::move(p));
    }
    if (!in.ok || !in.b.empty()) {
        return std::nullopt;
    }
    return m;
}

} // namespace txn
} // namespace runnel::broker
