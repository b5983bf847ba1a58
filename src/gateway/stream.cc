// Live topic subscriptions: the WebSocket endpoint /v1/ws and the event stream
// /v1/topics/{name}/events, and the fan-out hubs behind both.
//
// A subscriber first catches up on its own (fetching on its shard at its own pace, never
// more than a quarter of its queue ahead), then attaches to the partition's hub: one reader
// per partition on the shard that owns it, which long-polls the broker, renders each record
// once, and posts the shared frames to every attached subscriber's shard. The hub keeps its
// most recent frames so a subscriber attaching slightly behind it loses nothing. Live frames
// that would overflow a subscriber's byte-bounded queue close it as a slow consumer.

#include <charconv>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include "gateway/internal.h"
#include "jobs/views.h"

namespace runnel::gateway {
namespace json = boost::json;
namespace websocket = beast::websocket;
using namespace asio::experimental::awaitable_operators;

namespace {

spdlog::logger& lg() { return logging::get("gateway"); }

constexpr std::size_t fetch_bytes = 256 * 1024;
constexpr std::size_t frame_bytes = 64 * 1024;
constexpr auto sse_heartbeat = std::chrono::seconds(15);
constexpr auto slow_close_grace = std::chrono::seconds(2);
constexpr auto idle_recheck = std::chrono::seconds(2);

/// Close code sent to a WebSocket client whose send queue overflowed (docs/api.md).
constexpr uint16_t close_slow_consumer = 4008;

std::atomic<uint64_t> next_sub_id{1};

/// `s` as a JSON string; bytes that are not UTF-8 become U+FFFD, so a frame is always JSON.
std::string quote(std::string_view s) { return text::json_string(s); }

} // namespace

/// A run of consecutive records of one partition, or one skipped range, rendered once on the
/// hub's (or a catching-up subscriber's) shard and then shared read-only across shards.
struct frame {
    int32_t partition = 0;
    int64_t first = 0; ///< offsets covered: [first, next)
    int64_t next = 0;
    std::vector<std::pair<int64_t, std::string>> records;
    std::optional<decoded_records::skip> skip;
    std::string ws_text; ///< the whole frame as one WebSocket message
    std::size_t bytes = 0;
};
using frame_ptr = std::shared_ptr<const frame>;

namespace {

std::string records_message(std::string_view topic, int32_t partition,
                            std::span<const std::pair<int64_t, std::string>> records) {
    std::string out = fmt::format(R"({{"type":"records","topic":{},"partition":{},"records":[)", quote(topic), partition);
    for (std::size_t i = 0; i < records.size(); ++i) {
        out += i ? "," : "";
        out += records[i].second;
    }
    out += "]}";
    return out;
}

std::string gap_json(std::string_view topic, int32_t partition, int64_t from, int64_t to, std::string_view reason) {
    return fmt::format(R"({{"type":"gap","topic":{},"partition":{},"from":{},"to":{},"reason":{}}})", quote(topic),
                       partition, from, to, quote(reason));
}

/// Cuts decoded records into frames of about `frame_bytes`, with skipped ranges as frames of
/// their own, in offset order.
std::vector<frame_ptr> make_frames(std::string_view topic, int32_t partition, decoded_records&& d, int64_t from) {
    std::vector<frame_ptr> out;
    std::shared_ptr<frame> cur;
    int64_t pos = from;
    auto flush = [&](int64_t next) {
        if (cur) {
            cur->next = next;
            cur->ws_text = records_message(topic, partition, cur->records);
            cur->bytes = cur->ws_text.size();
            out.push_back(std::move(cur));
            cur.reset();
        }
    };
    auto skip = d.skipped.begin();
    auto take_skips_before = [&](int64_t upto) {
        while (skip != d.skipped.end() && skip->from < upto) {
            flush(skip->from);
            auto f = std::make_shared<frame>();
            f->partition = partition;
            f->first = skip->from;
            f->next = skip->to;
            f->skip = *skip;
            f->ws_text = gap_json(topic, partition, skip->from, skip->to, skip->reason);
            f->bytes = f->ws_text.size();
            out.push_back(std::move(f));
            pos = skip->to;
            ++skip;
        }
    };
    std::size_t bytes = 0;
    for (auto& r : d.records) {
        take_skips_before(r.first);
        if (cur && bytes + r.second.size() > frame_bytes) {
            flush(r.first);
        }
        if (!cur) {
            cur = std::make_shared<frame>();
            cur->partition = partition;
            cur->first = pos;
            bytes = 0;
        }
        bytes += r.second.size() + 1;
        pos = r.first + 1;
        cur->records.push_back(std::move(r));
    }
    take_skips_before(INT64_MAX);
    flush(std::max(d.next_offset, pos));
    if (!out.empty() && out.back()->next < d.next_offset) {
        // Control batches at the end: let the last frame cover them.
        auto last = std::make_shared<frame>(*out.back());
        last->next = d.next_offset;
        out.back() = std::move(last);
    }
    return out;
}

enum class protocol { ws, sse };

/// Where a subscription starts.
struct start_spec {
    enum class kind { latest, earliest, timestamp, offsets } how = kind::latest;
    int64_t timestamp = 0;
    std::map<int32_t, int64_t> offsets; ///< for `offsets`; unlisted partitions start at the earliest
};

/// One partition of one subscription, owned by its session (on the session's shard).
struct partition_sub {
    uint64_t id;
    std::string topic;
    int32_t partition;
    int64_t expected = 0; ///< next offset the client should get
    bool live = false;
    bool cancelled = false;
};

} // namespace

class session;

/// The shared reader of one partition, on the shard that owns it. Created when the first
/// subscriber attaches and stopped when the last one leaves (or the gateway stops).
class hub : public std::enable_shared_from_this<hub> {
public:
    struct link {
        std::weak_ptr<session> s;
        executor* exec;
    };

    hub(server::state& st, unsigned shard, model::topic_partition tp, int64_t next)
      : _st(st)
      , _shard(shard)
      , _tp(std::move(tp))
      , _next(next)
      , _ring_limit(std::min<std::size_t>(256 * 1024, st.opts.client_queue_bytes / 4))
      , _timer(st.shards.context_of(shard)) {}

    void start();
    void stop() {
        _stopped = true;
        _timer.cancel();
        if (_watch) {
            _watch->cancel();
        }
    }

    /// On the hub's shard: attaches `id` wanting offsets from `want`. Returns nullopt when
    /// attached (recent frames already posted), else the offset the subscriber must first
    /// reach on its own.
    std::optional<int64_t> attach(uint64_t id, link l, int64_t want);
    void detach(uint64_t id) {
        _subs.erase(id);
        if (_subs.empty()) {
            retire();
        }
    }

private:
    asio::awaitable<void> run(std::shared_ptr<hub> self);
    void publish(frame_ptr f);
    void retire();

    server::state& _st;
    unsigned _shard;
    model::topic_partition _tp;
    int64_t _next;
    std::size_t _ring_limit;
    std::deque<frame_ptr> _ring;
    std::size_t _ring_bytes = 0;
    std::map<uint64_t, link> _subs;
    bool _stopped = false;
    asio::steady_timer _timer;
    std::optional<broker::broker::watch> _watch;
};

/// One WebSocket or event-stream client: its subscriptions and its byte-bounded send queue.
///
/// Lives on the connection's shard, owned by the handler coroutine that runs it; hubs hold it
/// weakly. A reader and a writer coroutine run side by side; when the queue would overflow
/// with live data the session is closed as a slow consumer. It keeps who opened it, so each
/// topic or view a WebSocket message names is checked against the ACLs, and ends when the
/// credentials it was opened with expire (`end_at`).
class session : public std::enable_shared_from_this<session> {
public:
    session(server::state& st, unsigned shard, protocol p)
      : st(st)
      , shard(shard)
      , exec(st.shards.executor_of(shard))
      , proto(p)
      , wake(st.shards.context_of(shard))
      , hard_close(st.shards.context_of(shard))
      , expiry(st.shards.context_of(shard)) {}

    server::state& st;
    unsigned shard;
    executor& exec;
    protocol proto;
    std::deque<std::shared_ptr<const std::string>> queue;
    std::size_t queued = 0;
    asio::steady_timer wake; ///< the writer sleeps on it
    asio::steady_timer hard_close;
    asio::steady_timer expiry; ///< fires when the credentials expire
    std::string principal;     ///< who opened the stream
    std::string address;       ///< from where, as ACLs name hosts
    std::vector<asio::steady_timer*> drain_waiters;
    bool closed = false;
    std::optional<std::pair<uint16_t, std::string>> close_with;
    std::map<uint64_t, std::shared_ptr<partition_sub>> subs;
    std::map<int32_t, int64_t> positions; ///< SSE: last offset sent per partition
    std::map<std::string, std::pair<std::shared_ptr<jobs::view>, uint64_t>> views; ///< view → subscription
    std::function<void()> kill;            ///< closes the socket outright

    const char* proto_name() const { return proto == protocol::ws ? "ws" : "sse"; }

    void wake_writer() { wake.cancel(); }

    /// Queues a message. `live` messages overflowing the queue close the session.
    void push(std::shared_ptr<const std::string> msg, bool live) {
        if (closed) {
            return;
        }
        if (live && queued + msg->size() > st.opts.client_queue_bytes) {
            slow_close();
            return;
        }
        queued += msg->size();
        queue.push_back(std::move(msg));
        wake_writer();
    }
    void push(std::string msg, bool live) { push(std::make_shared<const std::string>(std::move(msg)), live); }

    void send_error(std::string_view code, std::string_view message) {
        auto j = fmt::format(R"({{"type":"error","code":{},"message":{}}})", quote(code), quote(message));
        push(proto == protocol::ws ? j : fmt::format("event: error\ndata: {}\n\n", j), false);
    }

    void send_gap(const partition_sub& sub, int64_t from, int64_t to, std::string_view reason) {
        auto j = gap_json(sub.topic, sub.partition, from, to, reason);
        if (proto == protocol::ws) {
            push(std::move(j), false);
        } else {
            positions[sub.partition] = to - 1;
            push(fmt::format("id: {}\nevent: gap\ndata: {}\n\n", event_id(), j), false);
        }
    }

    std::string event_id() const {
        std::string id;
        for (const auto& [p, o] : positions) {
            id += fmt::format("{}{}:{}", id.empty() ? "" : ",", p, o);
        }
        return id;
    }

    /// Delivers the part of `f` at or past the subscriber's position.
    void deliver(partition_sub& sub, const frame_ptr& f, bool live) {
        if (closed || sub.cancelled || f->next <= sub.expected) {
            return;
        }
        if (f->skip) {
            send_gap(sub, std::max(f->first, sub.expected), f->next, f->skip->reason);
            sub.expected = f->next;
            return;
        }
        auto first = std::find_if(f->records.begin(), f->records.end(),
                                  [&](const auto& r) { return r.first >= sub.expected; });
        if (proto == protocol::ws) {
            if (first == f->records.begin()) {
                // The shared text, copied into the queue by reference.
                push(std::shared_ptr<const std::string>(f, &f->ws_text), live);
            } else if (first != f->records.end()) {
                push(records_message(sub.topic, sub.partition,
                                     std::span(f->records).subspan(static_cast<std::size_t>(first - f->records.begin()))),
                     live);
            }
        } else {
            std::string events;
            for (auto it = first; it != f->records.end(); ++it) {
                positions[sub.partition] = it->first;
                events += fmt::format("id: {}\nevent: record\ndata: {}\n\n", event_id(), it->second);
            }
            if (!events.empty()) {
                push(std::move(events), live);
            }
        }
        sub.expected = f->next;
    }

    void on_hub_frame(uint64_t id, const frame_ptr& f) {
        auto it = subs.find(id);
        if (it != subs.end()) {
            auto sub = it->second; // a slow close inside `deliver` empties `subs`
            deliver(*sub, f, true);
        }
    }

    void on_hub_end(uint64_t id, std::string why) {
        auto it = subs.find(id);
        if (it != subs.end()) {
            it->second->cancelled = true;
            subs.erase(it);
            send_error("subscription-ended", why);
        }
    }

    void slow_close();
    void detach_all();
    /// Ends the session at `when` (a JWT's `exp`): a WebSocket is closed with 1008 and the
    /// reason, an event stream gets an `error` event and ends. Nothing: it never expires.
    void end_at(std::optional<std::chrono::system_clock::time_point> when);
    /// Whether the session's principal may READ the topic `name` (a view is read as the topic
    /// named as it); a refusal is audited and answered with an `error` message `forbidden`.
    bool may_read(std::string_view name, std::string_view what);
    void drained() {
        if (queued <= st.opts.client_queue_bytes / 4) {
            for (auto* t : drain_waiters) {
                t->cancel();
            }
            drain_waiters.clear();
        }
    }
};

namespace {

void post_detach(server::state& st, const partition_sub& sub) {
    model::topic_partition tp{sub.topic, model::partition_id(sub.partition)};
    const unsigned owner = st.broker.shard_of(tp);
    st.shards.executor_of(owner).post([&st, owner, key = std::pair{sub.topic, sub.partition}, id = sub.id] {
        auto& hubs = st.local[owner].hubs;
        if (auto it = hubs.find(key); it != hubs.end()) {
            it->second->detach(id);
        }
    });
}

} // namespace

void session::detach_all() {
    for (auto& [id, sub] : subs) {
        sub->cancelled = true;
        post_detach(st, *sub);
    }
    subs.clear();
    for (auto& [name, v] : views) v.first->unsubscribe(v.second);
    views.clear();
}

namespace {

/// A view row or change as a WebSocket message (rows are JSON objects already).
std::string view_message(std::string_view type, std::string_view view, const jobs::view_change& c) {
    std::string op = c.kind == jobs::view_change::op::remove ? "delete" : (c.before.empty() ? "insert" : "update");
    std::string out = fmt::format(R"({{"type":{},"view":{},"op":{},"key":{},"version":{})", quote(type), quote(view),
                                  quote(op), quote(c.key), c.version);
    if (!c.row.empty()) out += fmt::format(R"(,"row":{})", c.row);
    if (!c.before.empty()) out += fmt::format(R"(,"before":{})", c.before);
    out += '}';
    return out;
}

/// A view message in the session's framing: a WebSocket text message, or an SSE event whose
/// id is the view's version.
std::string framed(const session& s, std::string_view type, uint64_t version, std::string json) {
    if (s.proto == protocol::ws) return json;
    return fmt::format("id: {}\nevent: {}\ndata: {}\n\n", version, type, json);
}

/// Subscribes `s` to `v`: `subscribed`, the snapshot rows, `snapshot_end`, then the changes.
void subscribe_view(const std::shared_ptr<session>& s, const std::shared_ptr<jobs::view>& v) {
    const std::string name = v->name();
    uint64_t id = 0;
    auto snap = v->subscribe(id, s->exec, [w = std::weak_ptr<session>(s), name](const jobs::view_change& c) {
        auto self = w.lock();
        if (!self || self->closed || !self->views.count(name)) return;
        self->push(framed(*self, "change", c.version, view_message("change", name, c)), true);
    });
    s->views[name] = {v, id};
    s->push(framed(*s, "subscribed", snap.version,
                   fmt::format(R"({{"type":"subscribed","view":{},"key":{}}})", quote(name),
                               json::serialize(json::value_from(v->key_columns())))),
            false);
    for (const auto& [key, row] : snap.rows) {
        s->push(framed(*s, "view_row", snap.version,
                       view_message("view_row", name, {jobs::view_change::op::upsert, key, row, snap.version, {}})),
                false);
    }
    s->push(framed(*s, "snapshot_end", snap.version,
                   fmt::format(R"({{"type":"snapshot_end","view":{},"rows":{},"version":{}}})", quote(name),
                               snap.rows.size(), snap.version)),
            false);
}

/// `{"type":"subscribe","view":NAME}`: the view's rows as `view_row` messages, then
/// `snapshot_end` with the version they are at, then every change as a `change` message.
std::optional<std::string> on_view_message(const std::shared_ptr<session>& s, const json::object& o, const std::string& type) {
    if (!o.at("view").is_string()) return fmt::format("{} needs a string \"view\"", type);
    const std::string name(o.at("view").as_string());
    for (const auto& [k, v] : o) {
        if (k != "type" && k != "view") return fmt::format("unknown field \"{}\" in a view {}", std::string(k).substr(0, 40), type);
    }
    if (type == "unsubscribe") {
        if (auto it = s->views.find(name); it != s->views.end()) {
            it->second.first->unsubscribe(it->second.second);
            s->views.erase(it);
        }
        s->push(fmt::format(R"({{"type":"unsubscribed","view":{}}})", quote(name)), false);
        return std::nullopt;
    }
    if (!s->may_read(name, "WebSocket subscribe to a view on /v1/ws")) {
        return std::nullopt;
    }
    auto v = jobs::default_views().find(name);
    if (!v) {
        s->send_error("unknown-view", fmt::format("view '{}' does not exist", name));
        return std::nullopt;
    }
    if (s->views.count(name)) {
        s->send_error("already-subscribed", fmt::format("already subscribed to view '{}'; unsubscribe first", name));
        return std::nullopt;
    }
    subscribe_view(s, v);
    return std::nullopt;
}

} // namespace

void session::slow_close() {
    if (closed) {
        return;
    }
    lg().info("closing {} client: slow consumer ({} bytes queued, limit {})", proto_name(), queued,
              st.opts.client_queue_bytes);
    st.m.slow_closes->with({proto_name()}).inc();
    st.m.closes->with({proto_name(), "slow_consumer"}).inc();
    closed = true;
    close_with = {close_slow_consumer, "slow consumer"};
    queue.clear();
    queued = 0;
    detach_all();
    wake_writer();
    // A client that reads nothing never lets the close frame out: cut the socket after a grace.
    hard_close.expires_after(slow_close_grace);
    hard_close.async_wait([w = weak_from_this()](boost::system::error_code ec) {
        if (auto s = w.lock(); s && !ec && s->kill) {
            s->kill();
        }
    });
}

void session::end_at(std::optional<std::chrono::system_clock::time_point> when) {
    if (!when) {
        return;
    }
    const auto left = std::max(std::chrono::system_clock::duration::zero(), *when - std::chrono::system_clock::now());
    expiry.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(left));
    expiry.async_wait([w = weak_from_this()](boost::system::error_code ec) {
        auto s = w.lock();
        if (!s || ec || s->closed) {
            return;
        }
        constexpr std::string_view why = "the token has expired";
        lg().debug("closing {} client of {}: {}", s->proto_name(), s->principal, why);
        s->st.m.closes->with({s->proto_name(), "token_expired"}).inc();
        s->queue.clear();
        s->queued = 0;
        if (s->proto == protocol::ws) {
            s->close_with = {static_cast<uint16_t>(websocket::close_code::policy_error), std::string(why)};
        } else {
            s->send_error("token-expired", why); // the last event; the stream ends after it
        }
        s->closed = true;
        s->detach_all();
        s->wake_writer();
        // A client that reads nothing never lets the last message out: cut the socket after a grace.
        s->hard_close.expires_after(slow_close_grace);
        s->hard_close.async_wait([w](boost::system::error_code e) {
            if (auto p = w.lock(); p && !e && p->kill) {
                p->kill();
            }
        });
    });
}

bool session::may_read(std::string_view name, std::string_view what) {
    const security::access_check check{principal, address, acl_op::read, acl_type::topic, name};
    if (authorized(st, check, true, what)) {
        return true;
    }
    send_error("forbidden", security::denial_text(check));
    return false;
}

void hub::start() {
    _st.running.enter();
    _st.m.hubs->add(1);
    asio::co_spawn(_st.shards.context_of(_shard), run(shared_from_this()), [&st = _st](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                lg().error("partition reader failed: {}", ex.what());
            }
        }
        st.m.hubs->sub(1);
        st.running.leave();
    });
}

void hub::retire() {
    stop();
    auto& hubs = _st.local[_shard].hubs;
    auto key = std::pair{_tp.topic, _tp.partition()};
    if (auto it = hubs.find(key); it != hubs.end() && it->second.get() == this) {
        hubs.erase(it);
    }
}

std::optional<int64_t> hub::attach(uint64_t id, link l, int64_t want) {
    const int64_t ring_start = _ring.empty() ? _next : _ring.front()->first;
    if (want < ring_start) {
        return ring_start;
    }
    for (const auto& f : _ring) {
        if (f->next > want) {
            l.exec->post([w = l.s, id, f] {
                if (auto s = w.lock()) {
                    s->on_hub_frame(id, f);
                }
            });
        }
    }
    _subs[id] = std::move(l);
    return std::nullopt;
}

void hub::publish(frame_ptr f) {
    _ring.push_back(f);
    _ring_bytes += f->bytes;
    while (!_ring.empty() && _ring_bytes > _ring_limit) {
        _ring_bytes -= _ring.front()->bytes;
        _ring.pop_front();
    }
    for (auto it = _subs.begin(); it != _subs.end();) {
        if (it->second.s.expired()) {
            it = _subs.erase(it);
            continue;
        }
        it->second.exec->post([w = it->second.s, id = it->first, f] {
            if (auto s = w.lock()) {
                s->on_hub_frame(id, f);
            }
        });
        ++it;
    }
    if (_subs.empty()) {
        retire();
    }
}

asio::awaitable<void> hub::run(std::shared_ptr<hub> self) {
    auto& exec = _st.shards.executor_of(_shard);
    while (!_stopped) {
        auto f = co_await await_callback<result<broker::fetch_result>>(
          [&](std::function<void(result<broker::fetch_result>)> done) {
              _st.broker.fetch(_tp, model::offset(_next), fetch_bytes, exec, std::move(done));
          });
        if (_stopped) {
            break;
        }
        if (!f) {
            if (f.error() == broker::errc::offset_out_of_range) {
                auto offs = co_await await_callback<result<broker::offsets_result>>(
                  [&](std::function<void(result<broker::offsets_result>)> done) {
                      _st.broker.offsets(_tp, exec, std::move(done));
                  });
                if (offs && offs.value().log_start() > _next) {
                    auto g = std::make_shared<frame>();
                    g->partition = _tp.partition();
                    g->first = _next;
                    g->next = offs.value().log_start();
                    g->skip = decoded_records::skip{_next, g->next, "retention"};
                    g->ws_text = gap_json(_tp.topic, g->partition, g->first, g->next, "retention");
                    g->bytes = g->ws_text.size();
                    _next = g->next;
                    publish(std::move(g));
                    continue;
                }
                if (offs && _next > offs.value().high_watermark()) {
                    _next = offs.value().high_watermark();
                    continue;
                }
            }
            const bool gone = f.error() == broker::errc::unknown_topic_or_partition;
            if (gone || f.error() == broker::errc::shutting_down) {
                auto why = gone ? fmt::format("topic '{}' was deleted", _tp.topic) : f.error().message();
                for (auto& [id, l] : _subs) {
                    l.exec->post([w = l.s, id = id, why] {
                        if (auto s = w.lock()) {
                            s->on_hub_end(id, why);
                        }
                    });
                }
                _subs.clear();
                retire();
                break;
            }
            lg().warn("reading {}/{} at {} for subscribers failed: {}; retrying", _tp.topic, _tp.partition(), _next,
                      f.error().message());
            _timer.expires_after(std::chrono::seconds(1));
            boost::system::error_code ec;
            co_await _timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        auto& data = f.value().data;
        if (data.bytes.size() == 0) {
            // Long poll: the first produce past `_next` wakes us. The timer bounds how long a
            // deleted topic goes unnoticed (deletion does not fire watches).
            std::weak_ptr<hub> weak = self;
            _watch = _st.broker.watch_for_data(exec, [weak] {
                if (auto h = weak.lock()) {
                    h->_timer.cancel();
                }
            });
            _st.broker.add_to_watch(*_watch, _tp, model::offset(_next));
            _timer.expires_after(idle_recheck);
            boost::system::error_code ec;
            co_await _timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            _watch->cancel();
            _watch.reset();
            continue;
        }
        const int64_t from = _next;
        auto d = decode_batches(_tp.topic, _tp.partition(), data.bytes.span(), from);
        _next = std::max(d.next_offset, from);
        if (_next == from) {
            _next = std::max(from, data.next_offset());
        }
        for (auto& fr : make_frames(_tp.topic, _tp.partition(), std::move(d), from)) {
            publish(std::move(fr));
            if (_stopped) {
                break;
            }
        }
    }
}

void stop_hubs(server::state& st, unsigned shard) {
    auto hubs = std::move(st.local[shard].hubs);
    st.local[shard].hubs.clear();
    for (auto& [key, h] : hubs) {
        h->stop();
    }
}

namespace {

/// Waits until the session's queue has drained to a quarter of its bound (or it closed).
asio::awaitable<void> wait_drained(std::shared_ptr<session> s) {
    while (!s->closed && s->queued > s->st.opts.client_queue_bytes / 4) {
        asio::steady_timer t(s->st.shards.context_of(s->shard), asio::steady_timer::time_point::max());
        s->drain_waiters.push_back(&t);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        std::erase(s->drain_waiters, &t);
    }
}

/// Follows one partition for a session: resolves the start, catches up alone, then attaches
/// to the partition's hub.
asio::awaitable<void> follow(std::shared_ptr<session> s, std::shared_ptr<partition_sub> sub, start_spec from) {
    auto& st = s->st;
    model::topic_partition tp{sub->topic, model::partition_id(sub->partition)};
    auto offsets = [&]() {
        return await_callback<result<broker::offsets_result>>([&](std::function<void(result<broker::offsets_result>)> done) {
            st.broker.offsets(tp, s->exec, std::move(done));
        });
    };
    auto offs = co_await offsets();
    if (s->closed || sub->cancelled) {
        co_return;
    }
    if (!offs) {
        s->send_error("unknown-topic", fmt::format("{}/{}: {}", tp.topic, tp.partition(), offs.error().message()));
        co_return;
    }
    const int64_t log_start = offs.value().log_start();
    int64_t target = offs.value().high_watermark(); // fetch alone at least up to here
    int64_t want = target;
    switch (from.how) {
    case start_spec::kind::latest:
        break;
    case start_spec::kind::earliest:
        want = log_start;
        break;
    case start_spec::kind::timestamp: {
        auto found = co_await await_callback<result<std::optional<broker::broker::time_match>>>(
          [&](std::function<void(result<std::optional<broker::broker::time_match>>)> done) {
              st.broker.offset_for_time(tp, model::event_time(from.timestamp), s->exec, std::move(done));
          });
        if (found && found.value()) {
            want = found.value()->offset();
        }
        break;
    }
    case start_spec::kind::offsets: {
        auto it = from.offsets.find(sub->partition);
        want = it == from.offsets.end() ? log_start : std::min(it->second, target);
        break;
    }
    }
    if (s->closed || sub->cancelled) {
        co_return;
    }
    if (want < log_start) {
        s->send_gap(*sub, want, log_start, "retention");
        want = log_start;
    }
    sub->expected = want;
    if (s->proto == protocol::sse && !s->positions.contains(sub->partition)) {
        s->positions[sub->partition] = want - 1;
    }
    for (;;) {
        co_await wait_drained(s);
        if (s->closed || sub->cancelled) {
            co_return;
        }
        if (sub->expected >= target) {
            const unsigned owner = st.broker.shard_of(tp);
            auto behind = co_await await_callback<std::optional<int64_t>>(
              [&](std::function<void(std::optional<int64_t>)> done) {
                  st.shards.executor_of(owner).post([&st, owner, tp, id = sub->id, want = sub->expected,
                                                     l = hub::link{s, &s->exec}, done, exec = &s->exec]() mutable {
                      auto& h = st.local[owner].hubs[{tp.topic, tp.partition()}];
                      if (st.stopping.load()) {
                          st.local[owner].hubs.erase({tp.topic, tp.partition()});
                          exec->post([done] { done(std::nullopt); });
                          return;
                      }
                      if (!h) {
                          h = std::make_shared<hub>(st, owner, tp, want);
                          h->start();
                      }
                      auto r = h->attach(id, std::move(l), want);
                      exec->post([done, r] { done(r); });
                  });
              });
            if (s->closed || sub->cancelled) {
                post_detach(st, *sub);
                co_return;
            }
            if (!behind) {
                sub->live = true;
                co_return;
            }
            target = *behind;
        }
        auto f = co_await await_callback<result<broker::fetch_result>>(
          [&](std::function<void(result<broker::fetch_result>)> done) {
              st.broker.fetch(tp, model::offset(sub->expected), fetch_bytes, s->exec, std::move(done));
          });
        if (s->closed || sub->cancelled) {
            co_return;
        }
        if (!f) {
            if (f.error() == broker::errc::offset_out_of_range) {
                auto o = co_await offsets();
                if (s->closed || sub->cancelled) {
                    co_return;
                }
                if (o && sub->expected < o.value().log_start()) {
                    s->send_gap(*sub, sub->expected, o.value().log_start(), "retention");
                    sub->expected = o.value().log_start();
                    continue;
                }
                if (o && sub->expected > o.value().high_watermark()) {
                    sub->expected = o.value().high_watermark();
                    continue;
                }
            }
            s->send_error("read-failed", fmt::format("{}/{} at {}: {}", tp.topic, tp.partition(), sub->expected,
                                                     f.error().message()));
            s->subs.erase(sub->id);
            co_return;
        }
        target = std::max(target, f.value().high_watermark());
        auto& data = f.value().data;
        const int64_t from_offset = sub->expected;
        auto d = decode_batches(tp.topic, tp.partition(), data.bytes.span(), from_offset);
        const int64_t next = std::max({d.next_offset, from_offset, data.next_offset()});
        for (auto& fr : make_frames(tp.topic, tp.partition(), std::move(d), from_offset)) {
            s->deliver(*sub, fr, false);
        }
        sub->expected = std::max(sub->expected, next);
    }
}

void spawn_follow(const std::shared_ptr<session>& s, std::shared_ptr<partition_sub> sub, start_spec from) {
    auto& st = s->st;
    st.running.enter();
    asio::co_spawn(st.shards.context_of(s->shard), follow(s, std::move(sub), std::move(from)),
                   [&st](std::exception_ptr e) {
                       if (e) {
                           try {
                               std::rethrow_exception(e);
                           } catch (const std::exception& ex) {
                               lg().error("subscription failed: {}", ex.what());
                           }
                       }
                       st.running.leave();
                   });
}

/// Starts following `partitions` of `t` (all when empty).
void subscribe(const std::shared_ptr<session>& s, const broker::topic_info& t, const std::vector<int32_t>& partitions,
               const start_spec& from) {
    std::vector<int32_t> ps = partitions;
    if (ps.empty()) {
        for (int32_t p = 0; p < t.config.partitions; ++p) {
            ps.push_back(p);
        }
    }
    for (auto p : ps) {
        auto sub = std::make_shared<partition_sub>(partition_sub{next_sub_id.fetch_add(1), t.name, p});
        s->subs[sub->id] = sub;
        spawn_follow(s, sub, from);
    }
}

/// A close reason: UTF-8 (RFC 6455) of at most 120 bytes, cut at a character boundary.
std::string truncate_reason(const std::string& why) {
    auto r = text::scrub_utf8(why);
    if (r.size() > 120) {
        std::size_t n = 120;
        while (n > 0 && (static_cast<unsigned char>(r[n]) & 0xc0) == 0x80) {
            --n;
        }
        r.resize(n);
    }
    return r;
}

/// Parses a start: "latest", "earliest", {"timestamp":MS} or {"offsets":{"0":N,…}}.
std::optional<start_spec> parse_from(const json::value* v, std::string& why) {
    start_spec out;
    if (!v || (v->is_string() && v->as_string() == "latest")) {
        return out;
    }
    if (v->is_string() && v->as_string() == "earliest") {
        out.how = start_spec::kind::earliest;
        return out;
    }
    if (v->is_object()) {
        const auto& o = v->as_object();
        if (o.size() == 1 && o.contains("timestamp") && o.at("timestamp").is_int64() && o.at("timestamp").as_int64() >= 0) {
            out.how = start_spec::kind::timestamp;
            out.timestamp = o.at("timestamp").as_int64();
            return out;
        }
        if (o.size() == 1 && o.contains("offsets") && o.at("offsets").is_object()) {
            out.how = start_spec::kind::offsets;
            for (const auto& [k, off] : o.at("offsets").as_object()) {
                int32_t p = -1;
                auto key = std::string_view(k);
                auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), p);
                if (ec != std::errc() || end != key.data() + key.size() || p < 0 || !off.is_int64()
                    || off.as_int64() < 0) {
                    why = "\"offsets\" maps partition numbers to non-negative offsets: {\"0\": 42}";
                    return std::nullopt;
                }
                out.offsets[p] = off.as_int64();
            }
            return out;
        }
    }
    why = "\"from\" is \"latest\", \"earliest\", {\"timestamp\": MS} or {\"offsets\": {\"PARTITION\": OFFSET}}";
    return std::nullopt;
}

/// Handles one client message; returns a close reason (1008) when the message is unacceptable.
std::optional<std::string> on_ws_message(const std::shared_ptr<session>& s, std::string_view text) {
    boost::system::error_code ec;
    auto doc = json::parse(text, ec);
    if (ec) {
        return fmt::format("malformed JSON: {}", ec.message());
    }
    if (!doc.is_object() || !doc.as_object().contains("type") || !doc.as_object().at("type").is_string()) {
        return "a message is a JSON object with a string \"type\"";
    }
    const auto& o = doc.as_object();
    const std::string type(o.at("type").as_string());
    if (type == "ping") {
        s->push(R"({"type":"pong"})", false);
        return std::nullopt;
    }
    if (type != "subscribe" && type != "unsubscribe") {
        return fmt::format("unknown message type \"{}\" (subscribe, unsubscribe, ping)", type.substr(0, 40));
    }
    if (o.contains("view")) {
        return on_view_message(s, o, type);
    }
    if (!o.contains("topic") || !o.at("topic").is_string()) {
        return fmt::format("{} needs a string \"topic\" or \"view\"", type);
    }
    const std::string topic(o.at("topic").as_string());
    if (type == "unsubscribe") {
        for (auto it = s->subs.begin(); it != s->subs.end();) {
            if (it->second->topic == topic) {
                it->second->cancelled = true;
                post_detach(s->st, *it->second);
                it = s->subs.erase(it);
            } else {
                ++it;
            }
        }
        s->push(fmt::format(R"({{"type":"unsubscribed","topic":{}}})", quote(topic)), false);
        return std::nullopt;
    }
    for (const auto& [k, v] : o) {
        if (k != "type" && k != "topic" && k != "partitions" && k != "from") {
            return fmt::format("unknown field \"{}\" in subscribe", std::string(k).substr(0, 40));
        }
    }
    std::string why;
    auto from = parse_from(o.if_contains("from"), why);
    if (!from) {
        return why;
    }
    if (!s->may_read(topic, "WebSocket subscribe to a topic on /v1/ws")) {
        return std::nullopt; // before looking the topic up, so a refusal does not say whether it exists
    }
    auto t = s->st.broker.topic(topic);
    if (!t) {
        s->send_error("unknown-topic", fmt::format("topic '{}' does not exist", topic));
        return std::nullopt;
    }
    std::vector<int32_t> partitions;
    if (auto* ps = o.if_contains("partitions")) {
        if (!ps->is_array()) {
            return "\"partitions\" is an array of partition numbers";
        }
        for (const auto& p : ps->as_array()) {
            if (!p.is_int64() || !t->has_partition(static_cast<int32_t>(p.as_int64())) || p.as_int64() > INT32_MAX) {
                s->send_error("unknown-partition", fmt::format("topic '{}' has {}; {} is not one of them",
                                                               topic, counted(t->config.partitions, "partition"), json::serialize(p)));
                return std::nullopt;
            }
            partitions.push_back(static_cast<int32_t>(p.as_int64()));
        }
    }
    for (const auto& [id, sub] : s->subs) {
        if (sub->topic == topic) {
            s->send_error("already-subscribed", fmt::format("already subscribed to '{}'; unsubscribe first", topic));
            return std::nullopt;
        }
    }
    json::array listed;
    if (partitions.empty()) {
        for (int32_t p = 0; p < t->config.partitions; ++p) {
            listed.push_back(p);
        }
    } else {
        for (auto p : partitions) {
            listed.push_back(p);
        }
    }
    s->push(fmt::format(R"({{"type":"subscribed","topic":{},"partitions":{}}})", quote(topic), json::serialize(listed)),
            false);
    subscribe(s, *t, partitions, *from);
    return std::nullopt;
}

template <typename WsStream>
asio::awaitable<void> ws_reader(std::shared_ptr<session> s, WsStream& ws) {
    beast::flat_buffer buf;
    for (;;) {
        boost::system::error_code ec;
        co_await ws.async_read(buf, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == beast::error::timeout && !s->closed) {
                s->st.m.closes->with({"ws", "idle_timeout"}).inc(); // no answer to our pings
            }
            break;
        }
        if (s->close_with) {
            buf.consume(buf.size());
            continue; // closing: wait for the client's close frame
        }
        if (!ws.got_text()) {
            s->close_with = {static_cast<uint16_t>(websocket::close_code::unknown_data), "binary messages are not supported"};
        } else {
            auto text = beast::buffers_to_string(buf.data());
            if (auto bad = on_ws_message(s, text)) {
                s->close_with = {static_cast<uint16_t>(websocket::close_code::policy_error), truncate_reason(*bad)};
            }
        }
        buf.consume(buf.size());
        if (s->close_with) {
            s->st.m.closes->with({"ws", "bad_message"}).inc();
            s->closed = true;
            s->queue.clear();
            s->queued = 0;
            s->detach_all();
            s->wake_writer();
        }
    }
    s->closed = true;
    s->close_with.reset(); // the connection is gone or closed by the client: nothing more to send
    s->queue.clear();
    s->queued = 0;
    s->wake_writer();
}

template <typename WsStream>
asio::awaitable<void> ws_writer(std::shared_ptr<session> s, WsStream& ws) {
    auto& sent = s->st.m.messages_sent->with({"ws"});
    auto& bytes = s->st.m.bytes_sent->with({"ws"});
    for (;;) {
        if (s->queue.empty()) {
            if (s->closed) {
                break;
            }
            s->wake.expires_at(asio::steady_timer::time_point::max());
            boost::system::error_code ec;
            co_await s->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        auto msg = std::move(s->queue.front());
        s->queue.pop_front();
        s->queued -= msg->size();
        boost::system::error_code ec;
        co_await ws.async_write(asio::buffer(*msg), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (!s->closed) {
                s->st.m.closes->with({"ws", "write_failed"}).inc();
            }
            s->closed = true;
            s->close_with.reset();
            s->queue.clear();
            s->queued = 0;
            break;
        }
        sent.inc();
        bytes.inc(msg->size());
        s->drained();
    }
    s->drained();
    if (s->close_with) {
        boost::system::error_code ec;
        websocket::close_reason why(s->close_with->first);
        why.reason = s->close_with->second;
        co_await ws.async_close(why, asio::redirect_error(asio::use_awaitable, ec));
    }
}

/// Serves a WebSocket over `next` (plain TCP or TLS), which it takes over.
template <typename Next>
asio::awaitable<void> serve_ws(request_ctx& ctx, Next& next) {
    auto& st = ctx.st;
    ctx.taken = true;
    websocket::stream<Next> ws(std::move(next));
    ws.set_option(websocket::stream_base::timeout{std::chrono::seconds(10), st.opts.ws_idle_timeout, true});
    ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) { res.set(http::field::server, "runnel"); }));
    ws.read_message_max(64 * 1024);
    boost::system::error_code ec;
    co_await ws.async_accept(ctx.req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        co_return;
    }
    // Bound what the kernel holds for this client too, so the byte bound is felt early.
    beast::get_lowest_layer(ws).socket().set_option(asio::socket_base::send_buffer_size(256 * 1024), ec);
    auto s = std::make_shared<session>(st, ctx.shard, protocol::ws);
    s->principal = ctx.principal;
    s->address = ctx.address;
    s->kill = [&ws] {
        boost::system::error_code e;
        beast::get_lowest_layer(ws).socket().close(e);
    };
    auto closer = add_closer(st, ctx.shard, [s] {
        if (!s->closed) {
            s->closed = true;
            s->queue.clear();
            s->queued = 0;
            s->close_with = {static_cast<uint16_t>(websocket::close_code::going_away), "server stopping"};
            s->detach_all();
            s->wake_writer();
            s->hard_close.expires_after(std::chrono::seconds(1));
            s->hard_close.async_wait([w = s->weak_from_this()](boost::system::error_code e) {
                if (auto p = w.lock(); p && !e && p->kill) {
                    p->kill();
                }
            });
        }
    });
    st.m.ws_clients->add(1);
    s->end_at(ctx.expires);
    co_await (ws_reader(s, ws) && ws_writer(s, ws));
    st.m.ws_clients->sub(1);
    remove_closer(st, ctx.shard, closer);
    s->closed = true;
    s->detach_all();
    s->hard_close.cancel();
    s->expiry.cancel();
    s->kill = nullptr;
}

asio::awaitable<std::optional<reply>> ws_route(request_ctx& ctx) {
    if (!websocket::is_upgrade(ctx.req)) {
        auto p = ctx.fail("upgrade-required", "/v1/ws speaks WebSocket: send an Upgrade: websocket request");
        p.headers.emplace_back("Upgrade", "websocket");
        co_return to_reply(p);
    }
    co_await serve_ws(ctx, ctx.stream);
    co_return std::nullopt;
}

template <typename Stream>
asio::awaitable<void> sse_reader(std::shared_ptr<session> s, Stream& stream) {
    std::array<char, 512> sink{};
    for (;;) {
        boost::system::error_code ec;
        co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
        if (ec || s->closed) {
            break;
        }
    }
    s->closed = true;
    s->queue.clear();
    s->queued = 0;
    s->wake_writer();
}

template <typename Stream>
asio::awaitable<void> sse_writer(std::shared_ptr<session> s, Stream& stream) {
    auto& sent = s->st.m.messages_sent->with({"sse"});
    auto& bytes = s->st.m.bytes_sent->with({"sse"});
    for (;;) {
        if (s->queue.empty()) {
            if (s->closed) {
                break;
            }
            s->wake.expires_after(sse_heartbeat);
            boost::system::error_code ec;
            co_await s->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (!ec && s->queue.empty() && !s->closed) {
                s->push(": heartbeat\n\n", false);
            }
            continue;
        }
        auto msg = std::move(s->queue.front());
        s->queue.pop_front();
        s->queued -= msg->size();
        boost::system::error_code ec;
        co_await asio::async_write(stream, asio::buffer(*msg), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (!s->closed) {
                s->st.m.closes->with({"sse", "write_failed"}).inc();
            }
            break;
        }
        sent.inc();
        bytes.inc(msg->size());
        s->drained();
    }
    s->closed = true;
    s->drained();
    boost::system::error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(stream).socket().close(ec);
}

/// Answers with an event stream and serves it until either side ends it: the response head,
/// a session (closed with the gateway), `start` to subscribe it, then its reader and writer.
template <typename Stream, typename Start>
asio::awaitable<void> event_stream_over(request_ctx& ctx, Stream& stream, Start& start) {
    auto& st = ctx.st;
    http::response<http::empty_body> res{http::status::ok, ctx.req.version()};
    res.set(http::field::server, "runnel");
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(false);
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    co_await http::async_write_header(stream, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    auto s = std::make_shared<session>(st, ctx.shard, protocol::sse);
    s->principal = ctx.principal;
    s->address = ctx.address;
    s->kill = [&stream] {
        boost::system::error_code e;
        beast::get_lowest_layer(stream).socket().close(e);
    };
    auto closer = add_closer(st, ctx.shard, [s] {
        s->closed = true;
        s->detach_all();
        s->wake_writer();
        if (s->kill) s->kill();
    });
    st.m.sse_clients->add(1);
    start(s);
    s->end_at(ctx.expires);
    co_await (sse_reader(s, stream) && sse_writer(s, stream));
    st.m.sse_clients->sub(1);
    remove_closer(st, ctx.shard, closer);
    s->closed = true;
    s->detach_all();
    s->hard_close.cancel();
    s->expiry.cancel();
    s->kill = nullptr;
}

/// Answers with an event stream over the connection's stream, plain or TLS.
template <typename Start>
asio::awaitable<void> event_stream(request_ctx& ctx, Start start) {
    co_await event_stream_over(ctx, ctx.stream, start);
}

asio::awaitable<std::optional<reply>> sse_route(request_ctx& ctx) {
    auto& st = ctx.st;
    auto t = st.broker.topic(ctx.params.at("name"));
    if (!t) {
        co_return to_reply(ctx.fail("unknown-topic", fmt::format("topic '{}' does not exist", ctx.params.at("name"))));
    }
    start_spec from;
    std::vector<int32_t> partitions;
    for (const auto& [k, v] : ctx.query) {
        if (k == "from") {
            if (v == "earliest") {
                from.how = start_spec::kind::earliest;
            } else if (v != "latest") {
                co_return to_reply(ctx.fail("invalid-parameter", fmt::format("from must be earliest or latest, not '{}'", v)));
            }
        } else if (k == "timestamp") {
            int64_t ts = -1;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ts);
            if (ec != std::errc() || end != v.data() + v.size() || ts < 0) {
                co_return to_reply(ctx.fail("invalid-parameter", fmt::format("timestamp must be milliseconds since the epoch, not '{}'", v)));
            }
            from.how = start_spec::kind::timestamp;
            from.timestamp = ts;
        } else if (k == "partitions") {
            std::string_view rest = v;
            while (!rest.empty()) {
                auto comma = rest.find(',');
                auto part = rest.substr(0, comma);
                int32_t p = -1;
                auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), p);
                if (ec != std::errc() || end != part.data() + part.size() || !t->has_partition(p)) {
                    co_return to_reply(ctx.fail("invalid-parameter",
                                                fmt::format("partitions must list partitions of '{}' (0 to {}), not '{}'",
                                                            t->name, t->config.partitions - 1, v)));
                }
                partitions.push_back(p);
                rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
        } else if (k != "access_token" && k != "last_event_id") {
            co_return to_reply(ctx.fail("invalid-parameter",
                                        fmt::format("unknown query parameter '{}' (from, timestamp, partitions, last_event_id)", k)));
        }
    }
    // Resuming: Last-Event-ID (or last_event_id=) lists "partition:offset" already seen.
    std::string last_id;
    if (auto h = ctx.req.find("Last-Event-ID"); h != ctx.req.end()) {
        last_id = std::string(h->value().data(), h->value().size());
    } else if (auto q = ctx.query.find("last_event_id"); q != ctx.query.end()) {
        last_id = q->second;
    }
    if (!last_id.empty()) {
        start_spec resume;
        resume.how = start_spec::kind::offsets;
        std::string_view rest = last_id;
        while (!rest.empty()) {
            auto comma = rest.find(',');
            auto part = rest.substr(0, comma);
            auto colon = part.find(':');
            int32_t p = -1;
            int64_t o = -2;
            bool ok = colon != std::string_view::npos;
            if (ok) {
                auto a = std::from_chars(part.data(), part.data() + colon, p);
                auto b = std::from_chars(part.data() + colon + 1, part.data() + part.size(), o);
                ok = a.ec == std::errc() && a.ptr == part.data() + colon && b.ec == std::errc()
                     && b.ptr == part.data() + part.size() && p >= 0 && o >= -1;
            }
            if (!ok) {
                co_return to_reply(ctx.fail("invalid-parameter",
                                            fmt::format("Last-Event-ID is a list of PARTITION:OFFSET, not '{}'", last_id)));
            }
            resume.offsets[p] = o + 1;
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
        from = std::move(resume);
    }

    co_await event_stream(ctx, [&](const std::shared_ptr<session>& s) { subscribe(s, *t, partitions, from); });
    co_return std::nullopt;
}

/// GET /v1/views/{name}/events: the view's snapshot then its changes as Server-Sent Events
/// (`subscribed`, `view_row`…, `snapshot_end`, then `change`…; each id is the view's version).
/// A view keeps no history, so a client that reconnects (with any Last-Event-ID) gets a fresh
/// snapshot, which replaces what it had.
asio::awaitable<std::optional<reply>> sse_view_route(request_ctx& ctx) {
    const auto& name = ctx.params.at("name");
    auto v = jobs::default_views().find(name);
    if (!v) co_return to_reply(ctx.fail("unknown-view", fmt::format("view '{}' does not exist", name)));
    for (const auto& [k, val] : ctx.query) {
        if (k != "access_token" && k != "last_event_id") {
            co_return to_reply(ctx.fail("invalid-parameter", fmt::format("unknown query parameter '{}'", k)));
        }
    }
    co_await event_stream(ctx, [&](const std::shared_ptr<session>& s) { subscribe_view(s, v); });
    co_return std::nullopt;
}

} // namespace

void add_stream_routes(router<route>& r) {
    r.add("GET", "/v1/views/{name}/events", {&sse_view_route, access::on_path(acl_op::read, acl_type::topic, "name")});
    // Each subscribe message names its topic or view: READ on each, checked as it arrives.
    r.add("GET", "/v1/ws", {&ws_route, access::in_handler(acl_op::read, acl_type::topic)});
    r.add("GET", "/v1/topics/{name}/events", {&sse_route, access::on_path(acl_op::read, acl_type::topic, "name")});
}

} // namespace runnel::gateway
