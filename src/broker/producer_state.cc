#include "broker/producer_state.h"

namespace runnel::broker {
namespace {

int32_t last_sequence(const model::batch_header& h) {
    // Sequences wrap from INT32_MAX to 0, as Kafka's do.
    int64_t last = static_cast<int64_t>(h.base_sequence) + h.last_offset_delta;
    return static_cast<int32_t>(last > INT32_MAX ? last - INT32_MAX - 1 : last);
}

int32_t next_sequence(int32_t seq) { return seq == INT32_MAX ? 0 : seq + 1; }

} // namespace

producer_state::verdict producer_state::check(const model::batch_header& h) const {
    auto it = _producers.find(h.producer_id);
    if (it == _producers.end()) {
        return {h.base_sequence == 0 ? sequence_check::append : sequence_check::unknown_producer, {}};
    }
    const entry& e = it->second;
    if (h.producer_epoch < e.epoch) {
        return {sequence_check::fenced_epoch, {}};
    }
    if (h.producer_epoch > e.epoch) {
        // A new epoch starts its sequence again.
        return {h.base_sequence == 0 ? sequence_check::append : sequence_check::out_of_order, {}};
    }
    const int32_t last = last_sequence(h);
    for (const auto& b : e.batches) {
        if (b.first_seq == h.base_sequence && b.last_seq == last) {
            return {sequence_check::duplicate, b.base};
        }
    }
    if (e.batches.empty() || h.base_sequence == next_sequence(e.batches.back().last_seq)) {
        return {sequence_check::append, {}};
    }
    if (h.base_sequence < e.batches.front().first_seq) {
        return {sequence_check::old_duplicate, {}};
    }
    return {sequence_check::out_of_order, {}};
}

void producer_state::observe(const model::batch_header& h) {
    if (h.producer_id < 0) {
        return;
    }
    if (h.is_control()) {
        auto c = _producers.find(h.producer_id);
        if (c != _producers.end() && h.producer_epoch > c->second.epoch) {
            c->second.epoch = h.producer_epoch;
            c->second.batches.clear();
        }
        return;
    }
    auto [it, inserted] = _producers.try_emplace(h.producer_id);
    entry& e = it->second;
    if (inserted) {
        _lru.push_front(h.producer_id);
        e.lru = _lru.begin();
        e.epoch = h.producer_epoch;
        if (_producers.size() > max_producers) {
            _producers.erase(_lru.back());
            _lru.pop_back();
        }
    } else {
        _lru.splice(_lru.begin(), _lru, e.lru);
    }
    if (h.producer_epoch != e.epoch) {
        e.epoch = h.producer_epoch;
        e.batches.clear();
    }
    e.batches.push_back({h.base_sequence, last_sequence(h), h.base_offset});
    if (e.batches.size() > batches_kept) {
        e.batches.pop_front();
    }
}

std::vector<producer_state::producer_info> producer_state::list() const {
    std::vector<producer_info> out;
    out.reserve(_lru.size());
    for (auto id : _lru) {
        const auto& e = _producers.at(id);
        out.push_back({id, e.epoch, e.batches.empty() ? -1 : e.batches.back().last_seq});
    }
    return out;
}

} // namespace runnel::broker
