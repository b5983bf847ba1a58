#include "broker/partition_txns.h"

#include <algorithm>

namespace runnel::broker {
namespace {

constexpr std::string_view state_file = "txn_state";
constexpr uint32_t state_magic = 0x52545831; // "RTX1"

metrics::counter& aborted_dropped() {
    static auto& c = metrics::default_registry()
                       .counters("runnel_kafka_txn_aborted_index_dropped_total",
                                 "Aborted transactions forgotten because a partition's index was full "
                                 "(read_committed readers of those ranges may see aborted records)")
                       .with({});
    return c;
}

void put64(std::vector<std::byte>& out, int64_t v) {
    std::byte tmp[8];
    write_be<int64_t>(tmp, v);
    out.insert(out.end(), tmp, tmp + 8);
}

} // namespace

void partition_txns::allow(int64_t producer_id, int16_t epoch) { _allowed[producer_id] = epoch; }

partition_txns::admit partition_txns::check(const model::batch_header& h) const {
    if (!h.is_transactional() || h.is_control()) {
        return admit::ok;
    }
    auto it = _allowed.find(h.producer_id);
    if (it == _allowed.end() || h.producer_epoch > it->second) {
        return admit::not_in_transaction;
    }
    return h.producer_epoch < it->second ? admit::fenced : admit::ok;
}

void partition_txns::observe(const model::batch_header& h, bool abort) {
    if (!h.is_transactional()) {
        return;
    }
    if (!h.is_control()) {
        _open.try_emplace(h.producer_id, h.base_offset);
        return;
    }
    _allowed.erase(h.producer_id);
    auto it = _open.find(h.producer_id);
    if (it == _open.end()) {
        return; // a marker for a transaction that wrote nothing here (or already ended)
    }
    if (abort) {
        if (_aborted.size() >= max_aborted) {
            _aborted.erase(_aborted.begin());
            aborted_dropped().inc();
        }
        _aborted.push_back({h.producer_id, it->second, h.base_offset});
    }
    _open.erase(it);
}

model::offset partition_txns::last_stable(model::offset end) const {
    model::offset lso = end;
    for (const auto& [_, first] : _open) {
        lso = std::min(lso, first);
    }
    return lso;
}

std::vector<partition_txns::aborted_txn> partition_txns::aborted_between(model::offset from, model::offset upto) {
    std::vector<aborted_txn> out;
    // Sorted by marker offset: the first that ends at or after `from` starts the candidates.
    auto it = std::lower_bound(_aborted.begin(), _aborted.end(), from,
                               [](const aborted_txn& a, model::offset o) { return a.last < o; });
    for (; it != _aborted.end(); ++it) {
        if (it->first < upto) {
            out.push_back(*it);
        }
    }
    return out;
}

std::optional<model::offset> partition_txns::open_since(int64_t producer_id) const {
    auto it = _open.find(producer_id);
    return it == _open.end() ? std::nullopt : std::optional(it->second);
}

result<void> partition_txns::save(const std::filesystem::path& dir, model::offset upto) const {
    std::vector<std::byte> out;
    put64(out, state_magic);
    put64(out, upto());
    put64(out, static_cast<int64_t>(_open.size()));
    for (const auto& [pid, first] : _open) {
        put64(out, pid);
        put64(out, first());
    }
    put64(out, static_cast<int64_t>(_aborted.size()));
    for (const auto& a : _aborted) {
        put64(out, a.producer_id);
        put64(out, a.first());
        put64(out, a.last());
    }
    const uint32_t crc = crc32c::value(std::span<const std::byte>(out));
    put64(out, crc);
    return write_file_atomic(dir / state_file, out);
}

model::offset partition_txns::load(const std::filesystem::path& dir, model::offset log_start, model::offset log_end) {
    _open.clear();
    _aborted.clear();
    auto f = file_handle::open(dir / state_file, O_RDONLY);
    if (!f) {
        return log_start;
    }
    auto size = f.value().size();
    if (!size || size.value() < 40 || size.value() > (64u << 20) || size.value() % 8 != 0) {
        return log_start;
    }
    std::vector<std::byte> buf(size.value());
    if (auto n = f.value().pread(buf, 0); !n || n.value() != buf.size()) {
        return log_start;
    }
    auto at = [&](std::size_t i) { return read_be<int64_t>(buf.data() + 8 * i); };
    const std::size_t words = buf.size() / 8;
    if (at(0) != state_magic
        || static_cast<uint32_t>(at(words - 1)) != crc32c::value(std::span<const std::byte>(buf).first(buf.size() - 8))) {
        return log_start;
    }
    const model::offset upto(at(1));
    if (upto > log_end) {
        return log_start; // the log lost data the save knew of: rebuild from the log
    }
    std::size_t i = 2;
    const auto open_n = static_cast<std::size_t>(at(i++));
    if (open_n > words || i + 2 * open_n + 1 >= words) {
        return log_start;
    }
    for (std::size_t k = 0; k < open_n; ++k, i += 2) {
        _open.emplace(at(i), model::offset(at(i + 1)));
    }
    const auto aborted_n = static_cast<std::size_t>(at(i++));
    if (aborted_n > words || i + 3 * aborted_n + 1 != words) {
        _open.clear();
        return log_start;
    }
    for (std::size_t k = 0; k < aborted_n; ++k, i += 3) {
        const model::offset last(at(i + 2));
        if (last >= log_start) {
            _aborted.push_back({at(i), model::offset(at(i + 1)), last});
        }
    }
    return std::max(upto, log_start);
}

std::optional<bool> partition_txns::marker_is_abort(std::span<const std::byte> batch) {
    auto records = model::decode_records(batch);
    if (!records || records.value().empty() || !records.value().front().key) {
        return std::nullopt;
    }
    auto key = *records.value().front().key;
    if (key.size() < 4) {
        return std::nullopt;
    }
    const auto type = read_be<int16_t>(key.data() + 2);
    if (type != 0 && type != 1) {
        return std::nullopt;
    }
    return type == 0;
}

} // namespace runnel::broker
