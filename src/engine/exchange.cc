#include "engine/exchange.h"

#include <fmt/format.h>

namespace runnel::engine {

exchange::exchange(uint32_t parallelism, size_t capacity)
    : _n(std::max<uint32_t>(parallelism, 1))
    , _capacity(std::max<size_t>(capacity, 1))
    , _wakers(_n)
    , _counts(new counts[_n]) {
    _ch.reserve(size_t(_n) * _n);
    for (size_t i = 0; i < size_t(_n) * _n; ++i)
        _ch.push_back(std::make_unique<channel>());
}

void exchange::set_waker(uint32_t instance, std::function<void()> wake) {
    if (instance < _n)
        _wakers[instance] = std::move(wake);
}

size_t exchange::in_flight() const {
    size_t n = 0;
    for (const auto& c : _ch) {
        std::lock_guard g(c->mu);
        n += c->q.size();
    }
    return n;
}

void exchange::wake(uint32_t instance) {
    if (_wakers[instance])
        _wakers[instance]();
}

bool exchange::can_send(uint32_t from) const {
    for (uint32_t to = 0; to < _n; ++to) {
        const channel& c = *_ch[size_t(from) * _n + to];
        std::lock_guard g(c.mu);
        if (c.q.size() >= _capacity)
            return false;
    }
    return true;
}

void exchange::send(uint32_t from, uint32_t to, message m) {
    channel& c = chan(from, to);
    _counts[from].sent.fetch_add(1, std::memory_order_relaxed);
    bool was_empty;
    {
        std::lock_guard g(c.mu);
        was_empty = c.q.empty();
        c.q.push_back(std::move(m));
    }
    if (was_empty && to != from)
        wake(to);
}

void exchange::broadcast(uint32_t from, model::event_time wm) {
    for (uint32_t to = 0; to < _n; ++to)
        send(from, to, message(wm));
}

source_fn exchange::receiver(uint32_t to) {
    struct state {
        std::vector<int64_t> wm;
        int64_t emitted = INT64_MIN;
        uint32_t next = 0;
    };
    auto st = std::make_shared<state>();
    st->wm.assign(_n, INT64_MIN);
    return [this, to, st]() -> source_poll {
        // Round-robin over the channels, one batch per poll, so no sender starves another. A
        // watermark that does not raise the minimum is absorbed and the scan goes on.
        for (uint32_t scanned = 0; scanned < _n;) {
            uint32_t from = st->next;
            channel& c = chan(from, to);
            std::optional<message> m;
            bool was_full = false;
            {
                std::lock_guard g(c.mu);
                if (!c.q.empty()) {
                    was_full = c.q.size() >= _capacity;
                    m.emplace(std::move(c.q.front()));
                    c.q.pop_front();
                }
            }
            if (!m) {
                st->next = (from + 1) % _n;
                ++scanned;
                continue;
            }
            _counts[to].taken.fetch_add(1, std::memory_order_relaxed);
            if (was_full && from != to)
                wake(from);
            if (auto* b = std::get_if<batch>(&*m)) {
                st->next = (from + 1) % _n;
                return source_poll::data(std::move(*b));
            }
            st->wm[from] = std::max(st->wm[from], std::get<model::event_time>(*m).value());
            int64_t low = INT64_MAX;
            for (int64_t w : st->wm)
                low = std::min(low, w);
            if (low == end_of_time.value())
                return source_poll::end();
            if (low > st->emitted) {
                st->emitted = low;
                return source_poll::watermark(model::event_time(low));
            }
            scanned = 0;
        }
        return source_poll::idle();
    };
}

stream stream::exchange(engine::exchange& x, uint32_t instance, std::vector<std::string> keys) {
    if (!_p || !_p->ok_to_build(*this))
        return {};
    if (instance >= x.parallelism()) {
        _p->fail_build(error(errc::invalid_pipeline, fmt::format("exchange: instance {} of {}",
                                                                 instance, x.parallelism())));
        return {};
    }
    auto in = schema_of();
    std::vector<size_t> key_cols;
    for (const auto& k : keys) {
        auto i = in->index_of(k);
        if (!i) {
            _p->fail_build(error(errc::unknown_column, fmt::format("exchange: no column '{}' in {}",
                                                                   k, in->to_string())));
            return {};
        }
        key_cols.push_back(*i);
    }
    auto* xp = &x;
    uint32_t n = x.parallelism();
    sink(
        [xp, instance, key_cols, n](const batch& b) {
            if (n == 1) {
                xp->send(instance, 0, message(b));
                return;
            }
            auto dest = hash_partition(b, key_cols, n);
            std::vector<uint8_t> keep(b.num_rows());
            for (uint32_t to = 0; to < n; ++to) {
                size_t count = 0;
                for (size_t r = 0; r < dest.size(); ++r)
                    count += (keep[r] = dest[r] == to);
                if (count == 0)
                    continue;
                batch part = count == dest.size() ? b : b.select(keep);
                part.set_source_partition(b.source_partition());
                xp->send(instance, to, message(std::move(part)));
            }
        },
        [xp, instance](model::event_time wm) { xp->broadcast(instance, wm); },
        [xp, instance] { return xp->can_send(instance); });
    stream out = _p->source(in, x.receiver(instance));
    out._time = _time;
    return out;
}

} // namespace runnel::engine
