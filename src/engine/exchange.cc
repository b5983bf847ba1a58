#include "engine/exchange.h"

#include <fmt/format.h>

#include <bit>
#include <deque>
#include <optional>
#include <utility>

namespace runnel::engine {

exchange::exchange(uint32_t parallelism, size_t capacity, key_routing routing)
    : _n(std::max<uint32_t>(parallelism, 1))
    , _capacity(std::max<size_t>(capacity, 1))
    , _routing(routing)
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
    // The receiver sets `waiting` before its last look at the channels (under their locks), so
    // either it sees this message or this sees the flag: no wake-up is lost.
    if (was_empty && to != from && _counts[to].waiting.load(std::memory_order_relaxed) &&
        _counts[to].waiting.exchange(false))
        wake(to);
}

void exchange::broadcast(uint32_t from, const message& m) {
    for (uint32_t to = 0; to < _n; ++to)
        send(from, to, m);
}

source_fn exchange::receiver(uint32_t to) {
    struct state {
        std::vector<int64_t> wm;
        std::vector<bool> idle; ///< the sender's status is idle
        int64_t emitted = INT64_MIN;
        bool said_idle = false;        ///< what this receiver last said of its own status
        std::deque<source_poll> owed;  ///< what to give at the next polls, in order
        uint32_t next = 0;
    };
    auto st = std::make_shared<state>();
    st->wm.assign(_n, INT64_MIN);
    st->idle.assign(_n, false);
    return [this, to, st]() -> source_poll {
        // Round-robin over the channels, one batch per poll, so no sender starves another. A
        // watermark or status that changes nothing is absorbed and the scan goes on. When every
        // channel is empty the receiver says it is waiting, then looks once more (see `send`).
        if (!st->owed.empty()) {
            auto next = std::move(st->owed.front());
            st->owed.pop_front();
            return next;
        }
        bool announced = false;
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
                if (++scanned == _n && !announced) {
                    announced = true;
                    _counts[to].waiting.store(true);
                    scanned = 0;
                }
                continue;
            }
            if (announced)
                _counts[to].waiting.store(false, std::memory_order_relaxed);
            announced = false;
            _counts[to].taken.fetch_add(1, std::memory_order_relaxed);
            if (was_full && from != to)
                wake(from);
            if (auto* b = std::get_if<batch>(&*m)) {
                st->next = (from + 1) % _n;
                return source_poll::data(std::move(*b));
            }
            if (auto* w = std::get_if<model::event_time>(&*m))
                st->wm[from] = std::max(st->wm[from], w->value());
            else
                st->idle[from] = std::get<watermark_status>(*m) == watermark_status::idle;
            watermark_meet meet;
            for (uint32_t k = 0; k < _n; ++k) {
                if (st->wm[k] != end_of_time.value())
                    meet.input(st->wm[k], st->idle[k]);
            }
            if (!meet.open())
                return source_poll::end();
            if (!meet.idle() && st->said_idle) {
                st->said_idle = false; // the status goes first, then the watermark it lets through
                st->owed.push_back(source_poll::marked(watermark_status::active));
            }
            if (meet.watermark() > st->emitted) {
                st->emitted = meet.watermark();
                st->owed.push_back(source_poll::watermark(model::event_time(st->emitted)));
            }
            if (meet.idle() && !st->said_idle) {
                st->said_idle = true;
                st->owed.push_back(source_poll::marked(watermark_status::idle));
            }
            if (!st->owed.empty()) {
                auto first = std::move(st->owed.front());
                st->owed.pop_front();
                return first;
            }
            scanned = 0;
        }
        return source_poll::idle();
    };
}

/// The sending half of `stream::exchange` in one instance: a terminal stage that owns each
/// batch it is given and splits it among the receivers column-wise (`exchange`). Its scratch
/// buffers (hashes, selection vectors) live as long as the stage, so a batch costs
/// no allocation beyond the receivers' batches. Not ready while a channel from this instance
/// is full. Run by the instance's thread.
class exchange_sender final : public stage {
public:
    exchange_sender(engine::exchange& x, uint32_t instance, schema_ptr s, std::vector<size_t> keys)
      : _x(x)
      , _instance(instance)
      , _schema(std::move(s))
      , _keys(std::move(keys)) {}

    const char* name() const override { return "exchange"; }
    size_t num_outputs() const override { return 0; }
    schema_ptr output_schema(size_t) const override { return _schema; }
    bool ready() const override { return _x.can_send(_instance); }

    void on_batch(size_t, batch b, stage_output&) override {
        metrics().rows_in += b.num_rows();
        metrics().rows_out += b.num_rows();
        const uint32_t n = _x.parallelism();
        if (n == 1) {
            _x.send(_instance, 0, message(std::move(b)));
            return;
        }
        // One pass maps each row's hash to its receiver and appends the row number to that
        // receiver's selection vector (receiver `to` fills `_rows[to * rows …]`, in row order).
        const size_t rows = b.num_rows();
        if (rows == 0)
            return;
        _rows.resize(size_t(n) * rows);
        _ends.resize(n);
        for (uint32_t to = 0; to < n; ++to)
            _ends[to] = _rows.data() + size_t(to) * rows;
        scatter(b, n);
        for (uint32_t to = 0; to < n; ++to) {
            if (size_t(_ends[to] - (_rows.data() + size_t(to) * rows)) == rows) {
                _x.send(_instance, to, message(std::move(b))); // every row goes to `to`: hand it over
                return;
            }
        }
        // Other receivers get gathered copies; this instance's own rows stay in `b`, kept in place.
        for (uint32_t to = 0; to < n; ++to) {
            const uint32_t* first = _rows.data() + size_t(to) * rows;
            if (_ends[to] != first && to != _instance)
                _x.send(_instance, to, message(b.select(first, size_t(_ends[to] - first))));
        }
        const uint32_t* own = _rows.data() + size_t(_instance) * rows;
        if (_ends[_instance] != own) {
            b.retain(own, size_t(_ends[_instance] - own));
            _x.send(_instance, _instance, message(std::move(b)));
        }
    }

    void on_watermark(model::event_time wm, stage_output&) override {
        metrics().watermark = wm.value();
        _x.broadcast(_instance, message(wm));
    }
    void on_watermark_status(watermark_status s, stage_output&) override { _x.broadcast(_instance, message(s)); }

private:
    engine::exchange& _x;
    uint32_t _instance;
    schema_ptr _schema;
    std::vector<size_t> _keys;
    /// Appends each row number of `b` to the selection vector of its receiver (`_ends`).
    void scatter(const batch& b, uint32_t n) {
        const size_t rows = b.num_rows();
        uint32_t** ends = _ends.data();
        // The common key, one integer column without NULLs, is hashed in the same pass.
        if (_x.routing() == key_routing::columnar && _keys.size() == 1 && b.col(_keys[0]).null_count() == 0 &&
            (b.col(_keys[0]).type().id == type_id::int64 || b.col(_keys[0]).type().id == type_id::timestamp)) {
            const int64_t* v = b.col(_keys[0]).int64_data();
            if ((n & (n - 1)) == 0) { // the high bits of h are its shard: `shard_of` without a multiply
                const int shift = 64 - std::countr_zero(n);
                size_t r = 0;
                for (; r + 2 <= rows; r += 2) {
                    const uint64_t h0 = columnar_fold(columnar_seed, uint64_t(v[r]));
                    const uint64_t h1 = columnar_fold(columnar_seed, uint64_t(v[r + 1]));
                    *ends[h0 >> shift]++ = uint32_t(r);
                    *ends[h1 >> shift]++ = uint32_t(r + 1);
                }
                for (; r < rows; ++r)
                    *ends[columnar_fold(columnar_seed, uint64_t(v[r])) >> shift]++ = uint32_t(r);
                return;
            }
            for (size_t r = 0; r < rows; ++r) {
                const uint64_t h = columnar_fold(columnar_seed, uint64_t(v[r]));
                *ends[shard_of(h, n, key_routing::columnar)]++ = uint32_t(r);
            }
            return;
        }
        hash_keys(b, _keys, _x.routing(), _hashes);
        const uint64_t* h = _hashes.data();
        if (_x.routing() == key_routing::columnar) {
            for (size_t r = 0; r < rows; ++r)
                *ends[shard_of(h[r], n, key_routing::columnar)]++ = uint32_t(r);
        } else {
            for (size_t r = 0; r < rows; ++r)
                *ends[shard_of(h[r], n, key_routing::fnv1a)]++ = uint32_t(r);
        }
    }

    std::vector<uint64_t> _hashes; ///< each row's key hash (`hash_keys`)
    std::vector<uint32_t> _rows;   ///< the receivers' selection vectors, `rows` apart
    std::vector<uint32_t*> _ends;  ///< receiver → end of its selection vector so far
};

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
    _p->add(std::make_unique<exchange_sender>(x, instance, in, std::move(key_cols)), {this}, "");
    stream out = _p->source(in, x.receiver(instance));
    out._time = _time;
    return out;
}

} // namespace runnel::engine
