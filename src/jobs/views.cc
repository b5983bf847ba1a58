#include "jobs/views.h"

#include <utility>

#include "connect/log/log_sink.h"
#include "engine/state_io.h"

namespace runnel::jobs {

view::view(std::string name, std::vector<std::string> key_columns)
  : _name(std::move(name))
  , _keys(std::move(key_columns)) {}

void view::publish(view_change c) {
    // Under _mu: the order of changes is the order subscribers see.
    for (auto& [id, s] : _subs) {
        s.where->post([fn = s.fn, c] { (*fn)(c); });
    }
}

void view::upsert(std::string key, std::string row) {
    std::lock_guard lock(_mu);
    auto& slot = _rows[key];
    if (slot == row) return; // no change, nothing to tell
    std::string before = std::exchange(slot, row);
    publish({view_change::op::upsert, std::move(key), std::move(row), ++_version, std::move(before)});
}

void view::remove(const std::string& key) {
    std::lock_guard lock(_mu);
    auto it = _rows.find(key);
    if (it == _rows.end()) return;
    std::string before = std::move(it->second);
    _rows.erase(it);
    publish({view_change::op::remove, key, {}, ++_version, std::move(before)});
}

void view::reset(std::map<std::string, std::string> rows) {
    std::lock_guard lock(_mu);
    for (auto it = _rows.begin(); it != _rows.end();) {
        if (!rows.count(it->first)) {
            publish({view_change::op::remove, it->first, {}, ++_version, it->second});
            it = _rows.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& [k, r] : rows) {
        auto& slot = _rows[k];
        if (slot == r) continue;
        std::string before = std::exchange(slot, r);
        publish({view_change::op::upsert, k, r, ++_version, std::move(before)});
    }
}

view::snapshot view::rows() const {
    std::lock_guard lock(_mu);
    return {{_rows.begin(), _rows.end()}, _version};
}

std::optional<std::string> view::row(const std::string& key) const {
    std::lock_guard lock(_mu);
    auto it = _rows.find(key);
    if (it == _rows.end()) return std::nullopt;
    return it->second;
}

std::size_t view::size() const {
    std::lock_guard lock(_mu);
    return _rows.size();
}

uint64_t view::version() const {
    std::lock_guard lock(_mu);
    return _version;
}

view::snapshot view::subscribe(uint64_t& id, executor& where, subscriber_fn fn) {
    std::lock_guard lock(_mu);
    id = _next_sub++;
    _subs.emplace(id, sub{&where, std::make_shared<subscriber_fn>(std::move(fn))});
    return {{_rows.begin(), _rows.end()}, _version};
}

void view::unsubscribe(uint64_t id) {
    std::lock_guard lock(_mu);
    _subs.erase(id);
    _last_read = std::chrono::steady_clock::now();
}

void view::set_temporary(bool t) {
    std::lock_guard lock(_mu);
    _temporary = t;
}

bool view::temporary() const {
    std::lock_guard lock(_mu);
    return _temporary;
}

void view::touch() {
    std::lock_guard lock(_mu);
    _last_read = std::chrono::steady_clock::now();
}

std::chrono::steady_clock::duration view::unread_for() const {
    std::lock_guard lock(_mu);
    if (!_subs.empty()) return {};
    return std::chrono::steady_clock::now() - _last_read;
}

std::size_t view::subscribers() const {
    std::lock_guard lock(_mu);
    return _subs.size();
}

std::shared_ptr<view> view_registry::open(const std::string& name, std::vector<std::string> key_columns) {
    std::lock_guard lock(_mu);
    auto& v = _views[name];
    if (!v) v = std::make_shared<view>(name, std::move(key_columns));
    return v;
}

std::shared_ptr<view> view_registry::find(const std::string& name) const {
    std::lock_guard lock(_mu);
    auto it = _views.find(name);
    return it == _views.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<view>> view_registry::all() const {
    std::lock_guard lock(_mu);
    std::vector<std::shared_ptr<view>> out;
    for (const auto& [n, v] : _views) out.push_back(v);
    return out;
}

void view_registry::drop(const std::string& name) {
    std::lock_guard lock(_mu);
    _views.erase(name);
}

view_registry& default_views() {
    static view_registry r;
    return r;
}

view_sink::view_sink(std::shared_ptr<view> v)
  : _view(std::move(v)) {}

void view_sink::write(const engine::batch& b) {
    if (_schema != b.schema_of().get()) {
        _key_cols.clear();
        for (const auto& k : _view->key_columns()) {
            if (auto i = b.schema_of()->index_of(k)) _key_cols.push_back(*i);
        }
        _schema = b.schema_of().get();
    }
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        std::string key = connect::row_key(b, r, _key_cols);
        auto kind = b.kind(r);
        if (kind == engine::row_kind::delete_row || kind == engine::row_kind::update_before) {
            _view->remove(key);
        } else {
            _view->upsert(std::move(key), connect::row_to_json(b, r));
        }
    }
}

std::string view_sink::seal() {
    auto snap = _view->rows();
    engine::state_writer w;
    w.u32(uint32_t(snap.rows.size()));
    for (const auto& [k, row] : snap.rows) {
        w.str(k);
        w.str(row);
    }
    return std::move(w.bytes());
}

void view_sink::recover(std::string_view sealed, done_fn done) {
    if (sealed.empty()) return done(ok());
    engine::state_reader r(sealed);
    uint32_t n = r.count(8);
    std::map<std::string, std::string> rows;
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string k(r.str());
        rows[k] = std::string(r.str());
    }
    if (!r.ok() || !r.at_end()) return done(std::error_code(EINVAL, std::generic_category()));
    _view->reset(std::move(rows));
    done(ok());
}

} // namespace runnel::jobs
