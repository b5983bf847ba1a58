#pragma once

// Materialized views: tables that jobs keep up to date and the gateway serves (current rows,
// a row by key, and a live changelog for subscribers).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/base.h"
#include "engine/engine.h"

namespace runnel::jobs {

/// One change of a view, in the order the view applied it.
struct view_change {
    enum class op : uint8_t { upsert, remove };
    op kind = op::upsert;
    std::string key;  ///< the key columns' values as the row shows them, joined with '|'
    std::string row;  ///< the row as a JSON object (empty for `remove`)
    uint64_t version; ///< the view's version after this change
    std::string before; ///< the row it replaced or removed (empty for a new key)
};

/// A keyed table of JSON rows, written by one job and read by any thread.
///
/// Every change bumps `version` and goes, in order, to each subscriber's callback, posted to
/// the subscriber's executor. `subscribe` returns the rows and the version at the instant the
/// subscription starts, under the same lock as the changes, so a subscriber that applies its
/// snapshot and then every change it receives always has the view's current rows. A
/// subscriber's changes are posted as they happen; the gateway bounds what a client may have
/// queued (and closes a slow one). Thread-safe.
class view {
public:
    view(std::string name, std::vector<std::string> key_columns);

    const std::string& name() const { return _name; }
    const std::vector<std::string>& key_columns() const { return _keys; }

    /// A temporary view (`CREATE TEMPORARY MATERIALIZED VIEW`: a push query of the shell or the
    /// dashboard) lives while it is read; the gateway drops one unread for too long.
    void set_temporary(bool t);
    bool temporary() const;
    /// Notes that a client read the view (a REST read; a subscription counts while it lasts).
    void touch();
    /// How long nobody has read the view: zero while it has subscribers, else the time since
    /// the last read, the last subscription's end, or the view's making.
    std::chrono::steady_clock::duration unread_for() const;

    void upsert(std::string key, std::string row);
    void remove(const std::string& key);
    /// Replaces every row (a job restored from a checkpoint); subscribers get the differences.
    void reset(std::map<std::string, std::string> rows);

    struct snapshot {
        std::vector<std::pair<std::string, std::string>> rows; ///< (key, row), ordered by key
        uint64_t version = 0;
    };
    snapshot rows() const;
    std::optional<std::string> row(const std::string& key) const;
    std::size_t size() const;
    uint64_t version() const;

    using subscriber_fn = std::function<void(const view_change&)>;
    /// Registers `fn` (run on `where`) and returns the rows it starts from.
    snapshot subscribe(uint64_t& id, executor& where, subscriber_fn fn);
    void unsubscribe(uint64_t id);
    std::size_t subscribers() const;

private:
    void publish(view_change c);

    std::string _name;
    std::vector<std::string> _keys;
    mutable std::mutex _mu;
    std::map<std::string, std::string> _rows;
    uint64_t _version = 0;
    struct sub {
        executor* where;
        std::shared_ptr<subscriber_fn> fn;
    };
    std::map<uint64_t, sub> _subs;
    uint64_t _next_sub = 1;
    bool _temporary = false;
    std::chrono::steady_clock::time_point _last_read = std::chrono::steady_clock::now();
};

/// The views of a server, by name. Thread-safe.
class view_registry {
public:
    /// The view `name`, made with `key_columns` if it is new.
    std::shared_ptr<view> open(const std::string& name, std::vector<std::string> key_columns);
    std::shared_ptr<view> find(const std::string& name) const;
    std::vector<std::shared_ptr<view>> all() const;
    void drop(const std::string& name);

private:
    mutable std::mutex _mu;
    std::map<std::string, std::shared_ptr<view>> _views;
};

/// The view registry of the process (jobs write views, the gateway reads them).
view_registry& default_views();

/// A sink that keeps a view: insert and update-after rows replace the row of their key,
/// delete and update-before rows remove it. Upserts by key are idempotent, so replaying the
/// input after a crash converges to the same rows; the checkpoint also carries the whole table
/// (`seal`), which `recover` puts back, so a restarted server serves the view at once. Lives on
/// the job's thread; the view itself is shared.
class view_sink final : public engine::checkpointed_sink {
public:
    /// Rows and keys show timestamps as SQL does (`connect::row_to_json`, `connect::row_key`).
    explicit view_sink(std::shared_ptr<view> v);
    void start(int32_t, done_fn done) override { done(ok()); }
    void write(const engine::batch& b) override;
    bool ready() const override { return true; }
    void set_draining(bool) override {}
    bool wants_checkpoint() const override { return false; }
    bool exactly_once() const override { return false; }
    std::string seal() override;
    void release(done_fn done) override { done(ok()); }
    void recover(std::string_view sealed, done_fn done) override;
    std::size_t pending_bytes() const override { return 0; }
    const std::string& name() const override { return _view->name(); }
    void stop() override {}

private:
    std::shared_ptr<view> _view;
    std::vector<std::size_t> _key_cols;
    const engine::schema* _schema = nullptr;
};

} // namespace runnel::jobs
