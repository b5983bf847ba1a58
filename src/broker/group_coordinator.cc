#include "broker/group_coordinator.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "broker/broker.h"

namespace runnel::broker {
namespace {

spdlog::logger& lg() { return logging::get("groups"); }

/// The count of members the coordinator removed because they missed a deadline, by the
/// deadline: "session" (no heartbeat), "join" (did not rejoin a rebalance in time) or "sync"
/// (did not send SyncGroup within the rebalance timeout). Any thread.
metrics::counter& expired_members(std::string_view deadline) {
    static auto& family = metrics::default_registry().counters(
      "runnel_group_members_expired_total",
      "Consumer group members removed for missing a deadline: session, join (rebalance), sync, or revocation "
      "(a consumer-protocol member keeping partitions past its rebalance timeout)",
      {"deadline"});
    return family.with({deadline});
}

void count_expired(std::string_view deadline) { expired_members(deadline).inc(); }

template <typename T>
void reply(executor& caller, std::function<void(T)> done, T value) {
    auto boxed = std::make_shared<T>(std::move(value));
    caller.post([done = std::move(done), boxed] { done(std::move(*boxed)); });
}

// ---- records of __consumer_offsets (our own binary layout, big-endian) ----

constexpr int16_t offset_key_type = 1;
constexpr int16_t group_key_type = 2;
constexpr int16_t value_version = 1;

class encoder {
public:
    encoder& i16(int16_t v) { return put(v); }
    encoder& i32(int32_t v) { return put(v); }
    encoder& i64(int64_t v) { return put(v); }
    encoder& str(std::string_view s) {
        i16(static_cast<int16_t>(s.size()));
        _out.append(s);
        return *this;
    }
    encoder& nstr(const std::optional<std::string>& s) {
        if (!s) {
            return i16(-1);
        }
        return str(*s);
    }
    encoder& bytes(std::string_view s) {
        i32(static_cast<int32_t>(s.size()));
        _out.append(s);
        return *this;
    }
    std::string take() { return std::move(_out); }

private:
    template <typename T>
    encoder& put(T v) {
        std::array<std::byte, sizeof(T)> b{};
        write_be<T>(b.data(), v);
        _out.append(reinterpret_cast<const char*>(b.data()), b.size());
        return *this;
    }
    std::string _out;
};

/// Reads what `encoder` wrote; any shortfall sets `ok` to false and yields zeros.
class decoder {
public:
    explicit decoder(std::span<const std::byte> in) : _in(in) {}
    bool ok() const noexcept { return _ok; }
    int16_t i16() { return get<int16_t>(); }
    int32_t i32() { return get<int32_t>(); }
    int64_t i64() { return get<int64_t>(); }
    std::string str() { return take(static_cast<std::size_t>(std::max<int16_t>(i16(), 0))); }
    std::optional<std::string> nstr() {
        auto n = i16();
        if (n < 0) {
            return std::nullopt;
        }
        return take(static_cast<std::size_t>(n));
    }
    std::string bytes() { return take(static_cast<std::size_t>(std::max<int32_t>(i32(), 0))); }

private:
    template <typename T>
    T get() {
        if (_in.size() - _pos < sizeof(T)) {
            _ok = false;
            return 0;
        }
        auto v = read_be<T>(_in.data() + _pos);
        _pos += sizeof(T);
        return v;
    }
    std::string take(std::size_t n) {
        if (_in.size() - _pos < n) {
            _ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(_in.data() + _pos), n);
        _pos += n;
        return s;
    }
    std::span<const std::byte> _in;
    std::size_t _pos = 0;
    bool _ok = true;
};

std::string offset_key(std::string_view group, const model::topic_partition& tp) {
    return encoder().i16(offset_key_type).str(group).str(tp.topic).i32(tp.partition()).take();
}

std::string group_key(std::string_view group) { return encoder().i16(group_key_type).str(group).take(); }

std::string offset_value(const committed_offset& c) {
    return encoder().i16(value_version).i64(c.offset).i32(c.leader_epoch).nstr(c.metadata).i64(c.commit_time_ms).take();
}

int64_t wall_ms() { return model::processing_now()(); }

/// A client-visible id: the client id (as Kafka does) and a random suffix.
std::string new_member_id(std::string_view client_id) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{}-{:016x}{:04x}", client_id.empty() ? "member" : client_id, rng(), rng() & 0xffff);
}

/// The topics a "consumer" member subscribes to, from its ConsumerProtocolSubscription.
std::set<std::string> subscribed_topics(std::string_view metadata) {
    std::set<std::string> out;
    decoder d(std::as_bytes(std::span(metadata.data(), metadata.size())));
    d.i16(); // version
    auto n = d.i32();
    for (int32_t i = 0; i < n && d.ok(); ++i) {
        auto t = d.str();
        if (d.ok()) {
            out.insert(std::move(t));
        }
    }
    return out;
}

enum class group_state { empty, preparing_rebalance, completing_rebalance, stable, dead };

const char* state_name(group_state s) {
    switch (s) {
    case group_state::empty:
        return "Empty";
    case group_state::preparing_rebalance:
        return "PreparingRebalance";
    case group_state::completing_rebalance:
        return "CompletingRebalance";
    case group_state::stable:
        return "Stable";
    case group_state::dead:
        return "Dead";
    }
    return "Dead";
}

struct member {
    std::string id;
    std::optional<std::string> instance_id;
    std::string client_id;
    std::string client_host;
    int32_t session_timeout_ms = 0;
    int32_t rebalance_timeout_ms = 0;
    std::string protocol_type;
    std::vector<std::pair<std::string, std::string>> protocols;
    std::string assignment;
    std::function<void(join_result)> join_cb;
    std::function<void(sync_result)> sync_cb;
    coordinator_clock::time_point deadline{};

    const std::string* metadata_for(std::string_view protocol) const {
        for (const auto& [name, md] : protocols) {
            if (name == protocol) {
                return &md;
            }
        }
        return nullptr;
    }
};

struct group {
    std::string id;
    int32_t partition = 0;
    group_state state = group_state::empty;
    int32_t generation = 0;
    std::string protocol_type;
    std::optional<std::string> protocol;
    std::string leader;
    std::map<std::string, member> members;
    std::map<std::string, std::string> static_members;                 ///< instance id -> member id
    std::map<std::string, coordinator_clock::time_point> pending;       ///< ids handed out, not joined yet
    /// Members of this generation that have not sent SyncGroup yet; they must by `sync_deadline`
    /// (the rebalance timeout after the join completed) or leave the group, as in Kafka.
    std::set<std::string> pending_sync;
    coordinator_clock::time_point rebalance_deadline{};
    coordinator_clock::time_point sync_deadline{};
    coordinator_clock::time_point initial_delay_end{};
    coordinator_clock::time_point initial_delay_cap{};
    std::map<model::topic_partition, committed_offset> offsets;
    /// Set while the group is of the consumer protocol (KIP-848); offsets stay shared.
    std::unique_ptr<consumer_group> consumer;

    bool fenced(const std::optional<std::string>& instance, std::string_view member_id) const {
        if (!instance) {
            return false;
        }
        auto it = static_members.find(*instance);
        return it != static_members.end() && it->second != member_id;
    }

    /// Protocols every member supports (all of `candidates` for an empty group).
    bool supports(std::string_view type, const std::vector<std::pair<std::string, std::string>>& candidates) const {
        if (type.empty() || candidates.empty()) {
            return false;
        }
        if (members.empty()) {
            return true;
        }
        if (type != members.begin()->second.protocol_type) {
            return false;
        }
        for (const auto& [name, md] : candidates) {
            (void)md;
            bool all = std::all_of(members.begin(), members.end(),
                                   [&](const auto& m) { return m.second.metadata_for(name) != nullptr; });
            if (all) {
                return true;
            }
        }
        return false;
    }

    /// Kafka's vote: each member names its first protocol that every member supports.
    std::optional<std::string> choose_protocol() const {
        std::map<std::string, int> votes;
        std::vector<std::string> order;
        for (const auto& [id, m] : members) {
            for (const auto& [name, md] : m.protocols) {
                (void)md;
                bool all = std::all_of(members.begin(), members.end(),
                                       [&](const auto& o) { return o.second.metadata_for(name) != nullptr; });
                if (all) {
                    if (votes[name]++ == 0) {
                        order.push_back(name);
                    }
                    break;
                }
            }
        }
        std::optional<std::string> best;
        int best_votes = 0;
        for (const auto& name : order) {
            if (votes[name] > best_votes) {
                best = name;
                best_votes = votes[name];
            }
        }
        return best;
    }

    std::string metadata_value() const {
        encoder e;
        e.i16(value_version).str(protocol_type).i32(generation).nstr(protocol).nstr(leader.empty() ? std::nullopt : std::optional(leader));
        e.i32(static_cast<int32_t>(members.size()));
        for (const auto& [id, m] : members) {
            const auto* md = protocol ? m.metadata_for(*protocol) : nullptr;
            e.str(id).nstr(m.instance_id).str(m.client_id).str(m.client_host).i32(m.rebalance_timeout_ms)
              .i32(m.session_timeout_ms).bytes(md ? *md : std::string()).bytes(m.assignment);
        }
        return e.take();
    }
};

} // namespace

/// What the coordinator knows of one partition of the offsets topic it owns.
struct offsets_partition_stats {
    uint64_t records = 0;   ///< records in the log since its start (estimated after a rewrite)
    int in_flight = 0;      ///< writes appended but not yet synced
    bool rewriting = false;
};

struct group_coordinator::shard_state {
    std::map<std::string, std::unique_ptr<group>, std::less<>> groups;
    std::set<int32_t> loading; ///< offsets partitions of this shard still being read
    std::map<int32_t, offsets_partition_stats> partitions;
};

group_coordinator::group_coordinator(broker& b, group_config config, std::vector<executor*> shards)
  : _broker(b), _config(config), _shards(std::move(shards)) {
    for (std::size_t i = 0; i < _shards.size(); ++i) {
        _state.push_back(std::make_unique<shard_state>());
    }
    for (std::string_view deadline : {"session", "join", "sync", "revocation"}) {
        expired_members(deadline); // exported at 0 before the first expiry
    }
}

group_coordinator::~group_coordinator() = default;

int32_t group_coordinator::partition_of(std::string_view group_id) const noexcept {
    // A stable hash (not std::hash): the mapping must survive restarts and builds.
    uint32_t h = 2166136261u;
    for (char c : group_id) {
        h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    }
    return static_cast<int32_t>(h % static_cast<uint32_t>(std::max(_partitions, 1)));
}

unsigned group_coordinator::shard_of_group(std::string_view group_id) const noexcept {
    return _broker.shard_of({std::string(offsets_topic), model::partition_id(partition_of(group_id))});
}

bool group_coordinator::loaded() const noexcept { return _started && _loading.load() == 0; }

bool group_coordinator::ready(std::string_view group_id) const noexcept {
    return _started && _partition_ready[static_cast<std::size_t>(partition_of(group_id))].load();
}

result<void> group_coordinator::start() {
    auto t = _broker.topic(offsets_topic);
    if (!t) {
        topic_config cfg;
        cfg.partitions = _config.offsets_partitions;
        cfg.cleanup_policy = "compact";
        cfg.segment_bytes = _config.offsets_segment_bytes;
        cfg.max_message_bytes = 16 << 20;
        std::optional<result<void>> created;
        manual_executor here;
        _broker.create_topic(std::string(offsets_topic), cfg, here,
                             [&](result<void> r, std::string) { created = r; });
        here.run_until([&] { return created.has_value(); });
        if (!*created && created->error() != errc::topic_already_exists) {
            return created->error();
        }
        t = _broker.topic(offsets_topic);
        if (!t) {
            return errc::unknown_topic_or_partition;
        }
    }
    _partitions = t->config.partitions;
    _loading.store(_partitions);
    _partition_ready = std::vector<std::atomic<bool>>(static_cast<std::size_t>(_partitions));
    for (int32_t p = 0; p < _partitions; ++p) {
        auto s = _broker.shard_of({std::string(offsets_topic), model::partition_id(p)});
        _state[s]->loading.insert(p);
    }
    _started = true;
    for (int32_t p = 0; p < _partitions; ++p) {
        auto s = _broker.shard_of({std::string(offsets_topic), model::partition_id(p)});
        _broker.offsets({std::string(offsets_topic), model::partition_id(p)}, *_shards[s],
                        [this, p](result<offsets_result> r) {
                            // Compaction removes whole segments from the front: read from the start.
                            load_partition(p, r ? r.value().log_start : model::offset(0));
                        });
    }
    return ok();
}

void group_coordinator::load_partition(int32_t p, model::offset from) {
    model::topic_partition tp{std::string(offsets_topic), model::partition_id(p)};
    auto s = _broker.shard_of(tp);
    _broker.fetch(tp, from, 4 << 20, *_shards[s], [this, p, s](result<fetch_result> r) {
        if (!r) {
            lg().error("cannot read {} partition {}: {}; its groups start empty", offsets_topic, p, r.error().message());
            return finish_load(p);
        }
        auto& st = *_state[s];
        const auto& data = r.value().data;
        std::span<const std::byte> rest = data.bytes.span();
        while (rest.size() >= model::batch_layout::header_size) {
            auto h = model::parse_batch_header(rest);
            if (!h || h.value().size_bytes() > rest.size()) {
                break;
            }
            auto batch = rest.first(h.value().size_bytes());
            rest = rest.subspan(batch.size());
            auto records = model::decode_records(batch);
            if (!records) {
                continue;
            }
            st.partitions[p].records += records.value().size();
            for (const auto& rec : records.value()) {
                if (!rec.key) {
                    continue;
                }
                decoder k(*rec.key);
                auto type = k.i16();
                auto gid = k.str();
                if (!k.ok()) {
                    continue;
                }
                auto& slot = st.groups[gid];
                if (!slot) {
                    slot = std::make_unique<group>();
                    slot->id = gid;
                    slot->partition = p;
                }
                auto& g = *slot;
                if (type == offset_key_type) {
                    model::topic_partition otp;
                    otp.topic = k.str();
                    otp.partition = model::partition_id(k.i32());
                    if (!k.ok()) {
                        continue;
                    }
                    if (!rec.value) {
                        g.offsets.erase(otp);
                        continue;
                    }
                    decoder v(*rec.value);
                    v.i16();
                    committed_offset c;
                    c.offset = v.i64();
                    c.leader_epoch = v.i32();
                    c.metadata = v.nstr();
                    c.commit_time_ms = v.i64();
                    if (v.ok()) {
                        g.offsets[otp] = std::move(c);
                    }
                } else if (type == group_key_type) {
                    if (!rec.value) {
                        g.members.clear();
                        g.static_members.clear();
                        g.offsets.clear();
                        g.generation = 0;
                        g.protocol.reset();
                        g.protocol_type.clear();
                        g.leader.clear();
                        g.state = group_state::dead;
                        continue;
                    }
                    decoder v(*rec.value);
                    v.i16();
                    g.protocol_type = v.str();
                    g.generation = v.i32();
                    g.protocol = v.nstr();
                    g.leader = v.nstr().value_or("");
                    g.members.clear();
                    g.static_members.clear();
                    auto n = v.i32();
                    for (int32_t i = 0; i < n && v.ok(); ++i) {
                        member m;
                        m.id = v.str();
                        m.instance_id = v.nstr();
                        m.client_id = v.str();
                        m.client_host = v.str();
                        m.rebalance_timeout_ms = v.i32();
                        m.session_timeout_ms = v.i32();
                        auto md = v.bytes();
                        m.assignment = v.bytes();
                        m.protocol_type = g.protocol_type;
                        if (g.protocol) {
                            m.protocols.emplace_back(*g.protocol, std::move(md));
                        }
                        if (m.instance_id) {
                            g.static_members[*m.instance_id] = m.id;
                        }
                        g.members.emplace(m.id, std::move(m));
                    }
                    g.state = g.members.empty() ? group_state::empty : group_state::stable;
                }
            }
        }
        if (r.value().data.next_offset < r.value().high_watermark && r.value().data.batches > 0) {
            return load_partition(p, r.value().data.next_offset);
        }
        finish_load(p);
    });
}

void group_coordinator::finish_load(int32_t p) {
    auto s = _broker.shard_of({std::string(offsets_topic), model::partition_id(p)});
    auto& st = *_state[s];
    const auto now = coordinator_clock::now();
    std::size_t groups = 0;
    for (auto it = st.groups.begin(); it != st.groups.end();) {
        auto& g = *it->second;
        if (g.partition != p) {
            ++it;
            continue;
        }
        if (g.state == group_state::dead || (g.members.empty() && g.offsets.empty())) {
            it = st.groups.erase(it);
            continue;
        }
        // Restored members keep their place for one session: a member (static ones above all)
        // that comes back in time finds its assignment without a rebalance.
        for (auto& [id, m] : g.members) {
            m.deadline = now + std::chrono::milliseconds(m.session_timeout_ms);
        }
        ++groups;
        ++it;
    }
    st.loading.erase(p);
    _partition_ready[static_cast<std::size_t>(p)].store(true);
    maybe_rewrite(s, p);
    _loading.fetch_sub(1);
    lg().debug("loaded {} partition {}: {} groups", offsets_topic, p, groups);
}

// ---- the state machine, on the group's shard ----

namespace {

using record_list = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// Appends `records` to partition `p` of the offsets topic as batches of at most `chunk`
/// bytes; `done` gets the first batch's offset once all are synced, or the first error.
void append_records(broker& brk, executor& shard, int32_t p, const record_list& records,
                    std::function<void(result<model::offset>)> done) {
    constexpr std::size_t chunk = 4u << 20;
    struct gather {
        std::size_t left = 0;
        std::optional<model::offset> first;
        std::optional<std::error_code> error;
        std::function<void(result<model::offset>)> done;
    };
    auto g = std::make_shared<gather>();
    g->done = std::move(done);
    std::vector<model::record_batch> batches;
    model::record_batch_builder b;
    std::size_t bytes = 0;
    const model::event_time ts(wall_ms());
    for (const auto& [k, v] : records) {
        b.add(std::string_view(k), v ? std::optional<std::string_view>(*v) : std::nullopt, ts);
        bytes += k.size() + (v ? v->size() : 0) + 16;
        if (bytes >= chunk) {
            batches.push_back(b.build());
            bytes = 0;
        }
    }
    if (!b.empty()) {
        batches.push_back(b.build());
    }
    g->left = batches.size();
    for (std::size_t i = 0; i < batches.size(); ++i) {
        brk.produce({std::string(offsets_topic), model::partition_id(p)}, batches[i].bytes(), -1, shard,
                    [g, i](result<produce_result> r) {
                        if (!r && !g->error) {
                            g->error = r.error();
                        }
                        if (r && i == 0) {
                            g->first = r.value().base;
                        }
                        if (--g->left == 0) {
                            g->done(g->error ? result<model::offset>(*g->error) : result<model::offset>(*g->first));
                        }
                    });
    }
}

struct machine {
    broker& brk;
    const group_config& config;
    executor& shard;
    std::map<int32_t, offsets_partition_stats>& stats;
    std::function<void(int32_t)> idle; ///< called when a partition has no write in flight

    /// Appends records to the group's offsets partition and calls `done` once they are synced.
    void persist(const group& g, record_list records, std::function<void(result<void>)> done) {
        auto& st = stats[g.partition];
        ++st.in_flight;
        st.records += records.size();
        append_records(brk, shard, g.partition, records,
                       [p = g.partition, &stats = stats, idle = idle, done = std::move(done)](result<model::offset> r) {
                           done(r ? result<void>(ok()) : result<void>(r.error()));
                           if (--stats[p].in_flight == 0 && idle) {
                               idle(p);
                           }
                       });
    }

    void persist_group(const group& g) {
        persist(g, {{group_key(g.id), g.metadata_value()}}, [id = g.id](result<void> r) {
            if (!r) {
                lg().warn("group {}: cannot store its metadata: {}", id, r.error().message());
            }
        });
    }

    static void fail_join(member& m, errc e) {
        if (m.join_cb) {
            join_result r;
            r.error = e;
            r.member_id = m.id;
            std::exchange(m.join_cb, nullptr)(std::move(r));
        }
    }
    static void fail_sync(member& m, errc e) {
        if (m.sync_cb) {
            sync_result r;
            r.error = e;
            std::exchange(m.sync_cb, nullptr)(std::move(r));
        }
    }

    join_result current_join(const group& g, const member& m) const {
        join_result r;
        r.generation = g.generation;
        r.protocol_type = g.protocol_type;
        r.protocol_name = g.protocol;
        r.leader = g.leader;
        r.member_id = m.id;
        if (m.id == g.leader && g.protocol) {
            for (const auto& [id, o] : g.members) {
                const auto* md = o.metadata_for(*g.protocol);
                r.members.push_back({id, o.instance_id, md ? *md : std::string()});
            }
        }
        return r;
    }

    /// The group's rebalance timeout: the largest its members asked for.
    static int32_t rebalance_timeout(const group& g) {
        int32_t timeout = 0;
        for (const auto& [id, m] : g.members) {
            timeout = std::max(timeout, m.rebalance_timeout_ms);
        }
        return timeout;
    }

    /// `now`: the clock of the caller (`tick` passes its own).
    void prepare_rebalance(group& g, std::string_view why, coordinator_clock::time_point now = coordinator_clock::now()) {
        if (g.state == group_state::completing_rebalance) {
            for (auto& [id, m] : g.members) {
                m.assignment.clear();
                fail_sync(m, errc::rebalance_in_progress);
            }
        }
        const int32_t timeout = rebalance_timeout(g);
        if (g.state == group_state::empty) {
            g.initial_delay_end = now + config.initial_rebalance_delay;
            g.initial_delay_cap = now + std::chrono::milliseconds(timeout);
        } else if (g.state != group_state::preparing_rebalance) {
            g.initial_delay_end = {};
        }
        if (g.state != group_state::preparing_rebalance) {
            g.rebalance_deadline = now + std::chrono::milliseconds(timeout);
            lg().info("group {}: rebalancing at generation {} ({})", g.id, g.generation, why);
        }
        g.state = group_state::preparing_rebalance;
        g.pending_sync.clear();
        try_complete_join(g, now);
    }

    bool all_joined(const group& g) const {
        return g.pending.empty()
               && std::all_of(g.members.begin(), g.members.end(), [](const auto& m) { return bool(m.second.join_cb); });
    }

    void try_complete_join(group& g, coordinator_clock::time_point now) {
        if (g.state != group_state::preparing_rebalance) {
            return;
        }
        const bool delaying = g.initial_delay_end != coordinator_clock::time_point{} && now < g.initial_delay_end;
        if (delaying || (!all_joined(g) && now < g.rebalance_deadline)) {
            return;
        }
        // Members that did not rejoin in time leave the group.
        for (auto it = g.members.begin(); it != g.members.end();) {
            if (!it->second.join_cb) {
                lg().info("group {}: member {} did not rejoin in time", g.id, it->first);
                count_expired("join");
                if (it->second.instance_id) {
                    g.static_members.erase(*it->second.instance_id);
                }
                it = g.members.erase(it);
            } else {
                ++it;
            }
        }
        g.pending.clear();
        g.initial_delay_end = {};
        ++g.generation;
        if (g.members.empty()) {
            g.state = group_state::empty;
            g.protocol.reset();
            g.leader.clear();
            persist_group(g);
            return;
        }
        g.protocol = g.choose_protocol();
        g.protocol_type = g.members.begin()->second.protocol_type;
        if (!g.members.contains(g.leader)) {
            g.leader = g.members.begin()->first;
        }
        g.state = group_state::completing_rebalance;
        lg().info("group {}: generation {} with {} members, protocol {}", g.id, g.generation, g.members.size(),
                  g.protocol.value_or("?"));
        // Heartbeats succeed while the group waits for SyncGroup, so the session timeout never
        // removes a member that does not sync: the rebalance timeout does.
        g.pending_sync.clear();
        g.sync_deadline = now + std::chrono::milliseconds(rebalance_timeout(g));
        for (auto& [id, m] : g.members) {
            g.pending_sync.insert(id);
            m.deadline = now + std::chrono::milliseconds(m.session_timeout_ms);
            auto r = current_join(g, m);
            std::exchange(m.join_cb, nullptr)(std::move(r));
        }
    }

    void remove_member(group& g, const std::string& id, std::string_view why,
                       coordinator_clock::time_point now = coordinator_clock::now()) {
        auto it = g.members.find(id);
        if (it == g.members.end()) {
            return;
        }
        fail_join(it->second, errc::unknown_member_id);
        fail_sync(it->second, errc::unknown_member_id);
        if (it->second.instance_id) {
            g.static_members.erase(*it->second.instance_id);
        }
        g.pending_sync.erase(it->first);
        g.members.erase(it);
        switch (g.state) {
        case group_state::stable:
        case group_state::completing_rebalance:
            prepare_rebalance(g, why, now);
            break;
        case group_state::preparing_rebalance:
            try_complete_join(g, now);
            break;
        default:
            break;
        }
    }

    void complete_sync(group& g) {
        g.state = group_state::stable;
        for (auto& [id, m] : g.members) {
            if (m.sync_cb) {
                sync_result r;
                r.protocol_type = g.protocol_type;
                r.protocol_name = g.protocol;
                r.assignment = m.assignment;
                std::exchange(m.sync_cb, nullptr)(std::move(r));
            }
        }
    }
};

} // namespace

// ---- the public calls: post to the group's shard, answer on the caller's ----

void group_coordinator::join(join_request req, executor& caller, std::function<void(join_result)> done) {
    auto fail = [&](errc e, std::string member_id = {}) {
        join_result r;
        r.error = e;
        r.member_id = std::move(member_id);
        reply<join_result>(caller, std::move(done), std::move(r));
    };
    if (req.group_id.empty()) {
        return fail(errc::invalid_group_id, req.member_id);
    }
    const auto session = std::chrono::milliseconds(req.session_timeout_ms);
    if (session < _config.min_session_timeout || session > _config.max_session_timeout) {
        return fail(errc::invalid_session_timeout, req.member_id);
    }
    if (req.rebalance_timeout_ms < 0) {
        req.rebalance_timeout_ms = req.session_timeout_ms;
    }
    const auto s = shard_of_group(req.group_id);
    auto answer = [&caller, done = std::move(done)](join_result r) { reply<join_result>(caller, done, std::move(r)); };
    _shards[s]->post([this, s, req = std::move(req), answer = std::move(answer)]() mutable {
        auto& st = *_state[s];
        auto fail = [&](errc e) {
            join_result r;
            r.error = e;
            r.member_id = req.member_id;
            answer(std::move(r));
        };
        const auto p = partition_of(req.group_id);
        if (st.loading.contains(p)) {
            return fail(errc::coordinator_loading);
        }
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        auto it = st.groups.find(req.group_id);
        if (it == st.groups.end()) {
            if (!req.member_id.empty()) {
                return fail(errc::unknown_member_id);
            }
            auto g = std::make_unique<group>();
            g->id = req.group_id;
            g->partition = p;
            it = st.groups.emplace(req.group_id, std::move(g)).first;
        }
        auto& g = *it->second;
        if (g.state == group_state::dead) {
            return fail(errc::coordinator_not_available);
        }
        if (g.consumer) {
            if (!g.consumer->empty()) {
                return fail(errc::inconsistent_group_protocol);
            }
            g.consumer.reset(); // an empty consumer-protocol group becomes a classic one
        }
        if (!g.supports(req.protocol_type, req.protocols)) {
            return fail(errc::inconsistent_group_protocol);
        }
        const auto now = coordinator_clock::now();
        auto fill = [&](member& m) {
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.protocol_type = req.protocol_type;
            m.protocols = req.protocols;
            m.instance_id = req.instance_id;
            m.deadline = now + std::chrono::milliseconds(m.session_timeout_ms);
        };
        auto add_and_rebalance = [&](std::string id) {
            member m;
            m.id = id;
            fill(m);
            m.join_cb = answer;
            if (m.instance_id) {
                g.static_members[*m.instance_id] = id;
            }
            g.members.emplace(id, std::move(m));
            g.pending.erase(id);
            if (g.state == group_state::preparing_rebalance) {
                // A member joining during the initial delay extends it, up to the rebalance timeout.
                if (g.initial_delay_end != coordinator_clock::time_point{}) {
                    g.initial_delay_end = std::min(now + _config.initial_rebalance_delay,
                                                   std::max(g.initial_delay_cap, g.initial_delay_end));
                }
                mc.try_complete_join(g, now);
            } else {
                mc.prepare_rebalance(g, fmt::format("member {} joined", id));
            }
        };
        if (req.member_id.empty()) {
            auto id = new_member_id(req.client_id);
            if (req.instance_id) {
                auto known = g.static_members.find(*req.instance_id);
                if (known != g.static_members.end() && g.members.contains(known->second)) {
                    // A static member back with a new id: it takes over the old one's place.
                    auto old_id = known->second;
                    auto node = g.members.extract(old_id);
                    auto& old = node.mapped();
                    machine::fail_join(old, errc::fenced_instance_id);
                    machine::fail_sync(old, errc::fenced_instance_id);
                    const bool same_protocols = old.protocols == req.protocols || (g.protocol && [&] {
                        const auto* a = old.metadata_for(*g.protocol);
                        for (const auto& [n, md] : req.protocols) {
                            if (n == *g.protocol) {
                                return a && *a == md;
                            }
                        }
                        return false;
                    }());
                    node.key() = id;
                    old.id = id;
                    fill(old);
                    g.members.insert(std::move(node));
                    known->second = id;
                    if (g.leader == old_id) {
                        g.leader = id;
                    }
                    if (g.pending_sync.erase(old_id) > 0) {
                        g.pending_sync.insert(id);
                    }
                    auto& m = g.members.at(id);
                    if (g.state == group_state::stable && same_protocols) {
                        lg().info("group {}: static member {} rejoined as {}; no rebalance", g.id, *req.instance_id, id);
                        auto r = mc.current_join(g, m);
                        r.skip_assignment = (id == g.leader);
                        mc.persist_group(g);
                        return answer(std::move(r));
                    }
                    m.join_cb = answer;
                    if (g.state == group_state::preparing_rebalance) {
                        return mc.try_complete_join(g, now);
                    }
                    return mc.prepare_rebalance(g, fmt::format("static member {} rejoined", *req.instance_id));
                }
                return add_and_rebalance(id);
            }
            if (req.require_known_member) {
                g.pending[id] = now + std::chrono::milliseconds(req.session_timeout_ms);
                join_result r;
                r.error = errc::member_id_required;
                r.member_id = id;
                return answer(std::move(r));
            }
            return add_and_rebalance(id);
        }
        if (g.fenced(req.instance_id, req.member_id)) {
            return fail(errc::fenced_instance_id);
        }
        if (g.pending.contains(req.member_id)) {
            return add_and_rebalance(req.member_id);
        }
        auto mit = g.members.find(req.member_id);
        if (mit == g.members.end()) {
            return fail(errc::unknown_member_id);
        }
        auto& m = mit->second;
        const bool changed = m.protocols != req.protocols;
        switch (g.state) {
        case group_state::preparing_rebalance:
            machine::fail_join(m, errc::rebalance_in_progress); // a duplicate join replaces the older one
            fill(m);
            m.join_cb = answer;
            return mc.try_complete_join(g, now);
        case group_state::completing_rebalance:
            if (!changed) {
                return answer(mc.current_join(g, m));
            }
            fill(m);
            m.join_cb = answer;
            return mc.prepare_rebalance(g, fmt::format("member {} changed its protocols", m.id));
        case group_state::stable:
            if (!changed && m.id != g.leader) {
                return answer(mc.current_join(g, m));
            }
            fill(m);
            m.join_cb = answer;
            return mc.prepare_rebalance(g, fmt::format("member {} rejoined", m.id));
        case group_state::empty:
        case group_state::dead:
            return fail(errc::unknown_member_id);
        }
    });
}

void group_coordinator::sync(sync_request req, executor& caller, std::function<void(sync_result)> done) {
    const auto s = shard_of_group(req.group_id);
    auto answer = [&caller, done = std::move(done)](sync_result r) { reply<sync_result>(caller, done, std::move(r)); };
    _shards[s]->post([this, s, req = std::move(req), answer = std::move(answer)]() mutable {
        auto& st = *_state[s];
        auto fail = [&](errc e) {
            sync_result r;
            r.error = e;
            answer(std::move(r));
        };
        if (st.loading.contains(partition_of(req.group_id))) {
            return fail(errc::coordinator_loading);
        }
        auto it = st.groups.find(req.group_id);
        if (it == st.groups.end()) {
            return fail(errc::unknown_member_id);
        }
        auto& g = *it->second;
        if (g.state == group_state::dead) {
            return fail(errc::coordinator_not_available);
        }
        if (g.fenced(req.instance_id, req.member_id)) {
            return fail(errc::fenced_instance_id);
        }
        auto mit = g.members.find(req.member_id);
        if (mit == g.members.end()) {
            return fail(errc::unknown_member_id);
        }
        if (req.generation != g.generation) {
            return fail(errc::illegal_generation);
        }
        if ((req.protocol_type && *req.protocol_type != g.protocol_type)
            || (req.protocol_name && *req.protocol_name != g.protocol.value_or(""))) {
            return fail(errc::inconsistent_group_protocol);
        }
        auto& m = mit->second;
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        switch (g.state) {
        case group_state::empty:
        case group_state::dead:
            return fail(errc::unknown_member_id);
        case group_state::preparing_rebalance:
            return fail(errc::rebalance_in_progress);
        case group_state::stable: {
            g.pending_sync.erase(m.id);
            sync_result r;
            r.protocol_type = g.protocol_type;
            r.protocol_name = g.protocol;
            r.assignment = m.assignment;
            return answer(std::move(r));
        }
        case group_state::completing_rebalance:
            break;
        }
        machine::fail_sync(m, errc::rebalance_in_progress);
        g.pending_sync.erase(m.id);
        m.sync_cb = answer;
        m.deadline = coordinator_clock::now() + std::chrono::milliseconds(m.session_timeout_ms);
        if (m.id != g.leader) {
            return;
        }
        for (auto& [id, o] : g.members) {
            o.assignment.clear();
        }
        for (auto& [id, a] : req.assignments) {
            if (auto o = g.members.find(id); o != g.members.end()) {
                o->second.assignment = std::move(a);
            }
        }
        const auto generation = g.generation;
        const auto gid = g.id;
        mc.persist(g, {{group_key(g.id), g.metadata_value()}}, [this, s, gid, generation](result<void> r) {
            auto& st = *_state[s];
            auto it = st.groups.find(gid);
            if (it == st.groups.end()) {
                return;
            }
            auto& g = *it->second;
            if (g.generation != generation || g.state != group_state::completing_rebalance) {
                return; // a newer rebalance took over; its members were told
            }
            machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
            if (!r) {
                lg().warn("group {}: cannot store generation {}: {}", g.id, generation, r.error().message());
                for (auto& [id, m] : g.members) {
                    m.assignment.clear();
                    machine::fail_sync(m, errc::coordinator_not_available);
                }
                return mc.prepare_rebalance(g, "its metadata could not be stored");
            }
            mc.complete_sync(g);
        });
    });
}

void group_coordinator::heartbeat(std::string group_id, int32_t generation, member_identity who, executor& caller,
                                  std::function<void(errc)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](errc e) { reply<errc>(caller, done, e); };
    _shards[s]->post([this, s, group_id = std::move(group_id), generation, who = std::move(who), answer]() {
        auto& st = *_state[s];
        if (st.loading.contains(partition_of(group_id))) {
            return answer(errc::coordinator_loading);
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end()) {
            return answer(errc::unknown_member_id);
        }
        auto& g = *it->second;
        if (g.state == group_state::dead) {
            return answer(errc::coordinator_not_available);
        }
        if (g.fenced(who.instance_id, who.member_id)) {
            return answer(errc::fenced_instance_id);
        }
        auto mit = g.members.find(who.member_id);
        if (mit == g.members.end()) {
            return answer(errc::unknown_member_id);
        }
        if (generation != g.generation) {
            return answer(errc::illegal_generation);
        }
        auto& m = mit->second;
        m.deadline = coordinator_clock::now() + std::chrono::milliseconds(m.session_timeout_ms);
        switch (g.state) {
        case group_state::preparing_rebalance:
            return answer(errc::rebalance_in_progress);
        case group_state::completing_rebalance:
        case group_state::stable:
            return answer(errc::success);
        default:
            return answer(errc::unknown_member_id);
        }
    });
}

void group_coordinator::leave(std::string group_id, std::vector<member_identity> members, executor& caller,
                              std::function<void(errc, std::vector<errc>)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](errc top, std::vector<errc> each) {
        caller.post([done, top, each = std::move(each)] { done(top, each); });
    };
    _shards[s]->post([this, s, group_id = std::move(group_id), members = std::move(members), answer]() {
        auto& st = *_state[s];
        if (st.loading.contains(partition_of(group_id))) {
            return answer(errc::coordinator_loading, {});
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end()) {
            return answer(errc::unknown_member_id, std::vector<errc>(members.size(), errc::unknown_member_id));
        }
        auto& g = *it->second;
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        std::vector<errc> each;
        for (const auto& who : members) {
            std::string id = who.member_id;
            if (who.instance_id) {
                auto known = g.static_members.find(*who.instance_id);
                if (known == g.static_members.end()) {
                    each.push_back(errc::unknown_member_id);
                    continue;
                }
                if (!id.empty() && known->second != id) {
                    each.push_back(errc::fenced_instance_id);
                    continue;
                }
                id = known->second;
            }
            if (g.pending.erase(id) > 0) {
                each.push_back(errc::success);
                mc.try_complete_join(g, coordinator_clock::now());
                continue;
            }
            if (!g.members.contains(id)) {
                each.push_back(errc::unknown_member_id);
                continue;
            }
            mc.remove_member(g, id, fmt::format("member {} left", id));
            each.push_back(errc::success);
        }
        answer(errc::success, std::move(each));
    });
}

void group_coordinator::commit(commit_request req, executor& caller,
                               std::function<void(errc, std::vector<partition_error>)> done) {
    auto answer = [&caller, done = std::move(done)](errc top, std::vector<partition_error> each) {
        caller.post([done, top, each = std::move(each)] { done(top, each); });
    };
    auto all = [](const commit_request& r, errc e) {
        std::vector<partition_error> out;
        for (const auto& p : r.partitions) {
            out.push_back({p.tp, e});
        }
        return out;
    };
    if (req.group_id.empty()) {
        return answer(errc::invalid_group_id, all(req, errc::invalid_group_id));
    }
    const auto s = shard_of_group(req.group_id);
    _shards[s]->post([this, s, req = std::move(req), answer, all]() mutable {
        auto& st = *_state[s];
        const auto p = partition_of(req.group_id);
        if (st.loading.contains(p)) {
            return answer(errc::coordinator_loading, all(req, errc::coordinator_loading));
        }
        auto it = st.groups.find(req.group_id);
        const bool simple = (req.generation < 0 && req.member_id.empty() && !req.instance_id) || req.from_transaction;
        if (it == st.groups.end()) {
            if (!simple) {
                return answer(errc::illegal_generation, all(req, errc::illegal_generation));
            }
            auto g = std::make_unique<group>();
            g->id = req.group_id;
            g->partition = p;
            it = st.groups.emplace(req.group_id, std::move(g)).first;
        }
        auto& g = *it->second;
        errc refusal = errc::success;
        if (g.state == group_state::dead) {
            refusal = errc::coordinator_not_available;
        } else if (req.from_transaction) {
            refusal = errc::success; // a committed transaction's offsets: no membership checks
        } else if (g.consumer && !(simple && g.consumer->empty())) {
            // KIP-848: the generation is the member epoch.
            refusal = g.consumer->validate_commit(req.member_id, req.generation);
        } else if (g.consumer) {
            refusal = errc::success;
        } else if (g.fenced(req.instance_id, req.member_id)) {
            refusal = errc::fenced_instance_id;
        } else if (simple && g.state == group_state::empty) {
            refusal = errc::success;
        } else if (!g.members.contains(req.member_id)) {
            refusal = errc::unknown_member_id;
        } else if (req.generation != g.generation) {
            refusal = errc::illegal_generation; // before the state: an older generation is told so, as Kafka does
        } else if (g.state == group_state::completing_rebalance) {
            refusal = errc::rebalance_in_progress;
        }
        if (refusal != errc::success) {
            return answer(refusal, all(req, refusal));
        }
        if (auto m = g.members.find(req.member_id); m != g.members.end()) {
            m->second.deadline = coordinator_clock::now() + std::chrono::milliseconds(m->second.session_timeout_ms);
        }
        std::vector<partition_error> each;
        std::vector<std::pair<std::string, std::optional<std::string>>> records;
        auto accepted = std::make_shared<std::vector<std::pair<model::topic_partition, committed_offset>>>();
        const auto topics = _broker.topics();
        for (auto& part : req.partitions) {
            errc e = errc::success;
            auto t = topics->find(part.tp.topic);
            if (t == topics->end() || !t->second->has_partition(part.tp.partition())) {
                e = errc::unknown_topic_or_partition;
            } else if (part.value.metadata && part.value.metadata->size() > _config.max_metadata_bytes) {
                e = errc::offset_metadata_too_large;
            } else {
                if (part.value.commit_time_ms < 0) {
                    part.value.commit_time_ms = wall_ms();
                }
                records.emplace_back(offset_key(g.id, part.tp), offset_value(part.value));
                accepted->emplace_back(part.tp, part.value);
            }
            each.push_back({part.tp, e});
        }
        if (records.empty()) {
            return answer(errc::success, std::move(each));
        }
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        mc.persist(g, std::move(records), [this, s, gid = g.id, accepted, each = std::move(each), answer](result<void> r) mutable {
            if (!r) {
                lg().warn("group {}: cannot store committed offsets: {}", gid, r.error().message());
                for (auto& e : each) {
                    if (e.error == errc::success) {
                        e.error = errc::coordinator_not_available;
                    }
                }
                return answer(errc::success, std::move(each));
            }
            auto& st = *_state[s];
            if (auto it = st.groups.find(gid); it != st.groups.end()) {
                for (auto& [tp, v] : *accepted) {
                    it->second->offsets[tp] = std::move(v);
                }
            }
            answer(errc::success, std::move(each));
        });
    });
}

void group_coordinator::fetch_offsets(std::string group_id, std::optional<std::vector<model::topic_partition>> partitions,
                                      executor& caller, std::function<void(offsets_fetch_result)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](offsets_fetch_result r) {
        reply<offsets_fetch_result>(caller, done, std::move(r));
    };
    _shards[s]->post([this, s, group_id = std::move(group_id), partitions = std::move(partitions), answer]() {
        auto& st = *_state[s];
        offsets_fetch_result out;
        if (st.loading.contains(partition_of(group_id))) {
            out.error = errc::coordinator_loading;
            return answer(std::move(out));
        }
        auto it = st.groups.find(group_id);
        const group* g = it == st.groups.end() ? nullptr : it->second.get();
        if (!partitions) {
            if (g) {
                for (const auto& [tp, v] : g->offsets) {
                    out.partitions.push_back({tp, v, errc::success});
                }
            }
            return answer(std::move(out));
        }
        for (const auto& tp : *partitions) {
            fetched_offset f{tp, {}, errc::success};
            if (g) {
                if (auto o = g->offsets.find(tp); o != g->offsets.end()) {
                    f.value = o->second;
                }
            }
            out.partitions.push_back(std::move(f));
        }
        answer(std::move(out));
    });
}

void group_coordinator::list(executor& caller, std::function<void(std::vector<group_listing>)> done) {
    struct gather {
        std::mutex mu;
        std::size_t left;
        std::vector<group_listing> out;
    };
    auto g = std::make_shared<gather>();
    g->left = _shards.size();
    auto answer = [&caller, done = std::move(done)](std::vector<group_listing> r) {
        reply<std::vector<group_listing>>(caller, done, std::move(r));
    };
    for (std::size_t s = 0; s < _shards.size(); ++s) {
        _shards[s]->post([this, s, g, answer] {
            std::vector<group_listing> mine;
            for (const auto& [id, grp] : _state[s]->groups) {
                if (grp->state == group_state::dead) {
                    continue;
                }
                if (grp->consumer) {
                    mine.push_back({id, "consumer", std::string(grp->consumer->state()), "consumer"});
                } else {
                    mine.push_back({id, grp->protocol_type, state_name(grp->state), "classic"});
                }
            }
            std::lock_guard lock(g->mu);
            g->out.insert(g->out.end(), mine.begin(), mine.end());
            if (--g->left == 0) {
                std::sort(g->out.begin(), g->out.end(), [](auto& a, auto& b) { return a.group_id < b.group_id; });
                answer(std::move(g->out));
            }
        });
    }
}

void group_coordinator::describe(std::string group_id, executor& caller, std::function<void(group_description)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](group_description r) {
        reply<group_description>(caller, done, std::move(r));
    };
    _shards[s]->post([this, s, group_id = std::move(group_id), answer]() {
        auto& st = *_state[s];
        group_description d;
        d.group_id = group_id;
        if (st.loading.contains(partition_of(group_id))) {
            d.error = errc::coordinator_loading;
            return answer(std::move(d));
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end() || it->second->consumer) {
            // Kafka describes a group of the consumer protocol here as it does a missing one.
            d.state = "Dead";
            return answer(std::move(d));
        }
        const auto& g = *it->second;
        d.state = state_name(g.state);
        d.protocol_type = g.protocol_type;
        d.generation = g.generation;
        if (g.state == group_state::stable || g.state == group_state::completing_rebalance) {
            d.protocol = g.protocol.value_or("");
        }
        for (const auto& [id, m] : g.members) {
            const auto* md = g.protocol ? m.metadata_for(*g.protocol) : nullptr;
            d.members.push_back({id, m.instance_id, m.client_id, m.client_host, md ? *md : std::string(),
                                 g.state == group_state::stable ? m.assignment : std::string()});
        }
        answer(std::move(d));
    });
}

void group_coordinator::delete_group(std::string group_id, executor& caller, std::function<void(errc)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](errc e) { reply<errc>(caller, done, e); };
    _shards[s]->post([this, s, group_id = std::move(group_id), answer]() {
        auto& st = *_state[s];
        if (st.loading.contains(partition_of(group_id))) {
            return answer(errc::coordinator_loading);
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end() || it->second->state == group_state::dead) {
            return answer(errc::group_id_not_found);
        }
        auto& g = *it->second;
        if (!g.members.empty() || g.state != group_state::empty || (g.consumer && !g.consumer->empty())) {
            return answer(errc::non_empty_group);
        }
        std::vector<std::pair<std::string, std::optional<std::string>>> tombstones;
        for (const auto& [tp, v] : g.offsets) {
            tombstones.emplace_back(offset_key(g.id, tp), std::nullopt);
        }
        tombstones.emplace_back(group_key(g.id), std::nullopt);
        g.state = group_state::dead;
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        mc.persist(g, std::move(tombstones), [this, s, group_id, answer](result<void> r) {
            auto& st = *_state[s];
            if (auto it = st.groups.find(group_id); it != st.groups.end() && it->second->state == group_state::dead) {
                st.groups.erase(it);
            }
            answer(r ? errc::success : errc::coordinator_not_available);
        });
    });
}

void group_coordinator::delete_offsets(std::string group_id, std::vector<model::topic_partition> partitions,
                                       executor& caller, std::function<void(errc, std::vector<partition_error>)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](errc top, std::vector<partition_error> each) {
        caller.post([done, top, each = std::move(each)] { done(top, each); });
    };
    _shards[s]->post([this, s, group_id = std::move(group_id), partitions = std::move(partitions), answer]() {
        auto& st = *_state[s];
        if (st.loading.contains(partition_of(group_id))) {
            return answer(errc::coordinator_loading, {});
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end() || it->second->state == group_state::dead) {
            return answer(errc::group_id_not_found, {});
        }
        auto& g = *it->second;
        std::set<std::string> subscribed;
        if (g.consumer) {
            for (const auto& t : g.consumer->subscribed_topics()) {
                subscribed.insert(t);
            }
        } else if (g.state != group_state::empty) {
            if (g.protocol_type != "consumer") {
                return answer(errc::non_empty_group, {});
            }
            for (const auto& [id, m] : g.members) {
                if (const auto* md = g.protocol ? m.metadata_for(*g.protocol) : nullptr) {
                    subscribed.merge(subscribed_topics(*md));
                }
            }
        }
        std::vector<partition_error> each;
        std::vector<std::pair<std::string, std::optional<std::string>>> tombstones;
        for (const auto& tp : partitions) {
            if (subscribed.contains(tp.topic)) {
                each.push_back({tp, errc::group_subscribed_to_topic});
                continue;
            }
            if (g.offsets.erase(tp) > 0) {
                tombstones.emplace_back(offset_key(g.id, tp), std::nullopt);
            }
            each.push_back({tp, errc::success});
        }
        if (tombstones.empty()) {
            return answer(errc::success, std::move(each));
        }
        machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
        mc.persist(g, std::move(tombstones), [each = std::move(each), answer](result<void> r) mutable {
            if (!r) {
                for (auto& e : each) {
                    e.error = errc::coordinator_not_available;
                }
            }
            answer(errc::success, std::move(each));
        });
    });
}

void group_coordinator::all_offsets(executor& caller, std::function<void(std::vector<group_offsets>)> done) {
    struct gather {
        std::mutex mu;
        std::size_t left;
        std::vector<group_offsets> out;
    };
    auto g = std::make_shared<gather>();
    g->left = _shards.size();
    auto answer = [&caller, done = std::move(done)](std::vector<group_offsets> r) {
        reply<std::vector<group_offsets>>(caller, done, std::move(r));
    };
    for (std::size_t s = 0; s < _shards.size(); ++s) {
        _shards[s]->post([this, s, g, answer] {
            std::vector<group_offsets> mine;
            for (const auto& [id, grp] : _state[s]->groups) {
                group_offsets o{id, {}};
                for (const auto& [tp, v] : grp->offsets) {
                    o.offsets.emplace_back(tp, v.offset);
                }
                mine.push_back(std::move(o));
            }
            std::lock_guard lock(g->mu);
            for (auto& m : mine) {
                g->out.push_back(std::move(m));
            }
            if (--g->left == 0) {
                answer(std::move(g->out));
            }
        });
    }
}

void group_coordinator::on_topic_deleted(const std::string& topic) {
    for (std::size_t s = 0; s < _shards.size(); ++s) {
        _shards[s]->post([this, s, topic] {
            machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
            for (auto& [id, g] : _state[s]->groups) {
                std::vector<std::pair<std::string, std::optional<std::string>>> tombstones;
                for (auto it = g->offsets.begin(); it != g->offsets.end();) {
                    if (it->first.topic == topic) {
                        tombstones.emplace_back(offset_key(id, it->first), std::nullopt);
                        it = g->offsets.erase(it);
                    } else {
                        ++it;
                    }
                }
                if (!tombstones.empty()) {
                    lg().info("group {}: forgot {} committed offsets of deleted topic {}", id, tombstones.size(), topic);
                    mc.persist(*g, std::move(tombstones), [](result<void>) {});
                }
            }
        });
    }
}

// ---- groups of the consumer protocol (KIP-848): the state machine is consumer_group.cc ----

void group_coordinator::consumer_heartbeat(std::string group_id, consumer_heartbeat_request req, executor& caller,
                                           std::function<void(consumer_heartbeat_result)> done) {
    auto answer = [&caller, done = std::move(done)](consumer_heartbeat_result r) {
        reply<consumer_heartbeat_result>(caller, done, std::move(r));
    };
    auto failed = [](errc e, std::string message) {
        consumer_heartbeat_result r;
        r.error = e;
        r.error_message = std::move(message);
        r.member_epoch = -1;
        return r;
    };
    if (group_id.empty()) {
        return answer(failed(errc::invalid_group_id, "GroupId can't be empty."));
    }
    const auto s = shard_of_group(group_id);
    _shards[s]->post([this, s, group_id = std::move(group_id), req = std::move(req), answer, failed]() mutable {
        auto& st = *_state[s];
        const auto p = partition_of(group_id);
        if (st.loading.contains(p)) {
            return answer(failed(errc::coordinator_loading, {}));
        }
        // Members are not persisted (decision 0014): after a restart a member heartbeating in
        // its old epoch finds no state and is fenced, which every client answers by joining
        // again with epoch 0.
        auto unknown_epoch = [&] {
            if (req.member_epoch < 0) {
                return failed(errc::unknown_member_id, fmt::format("member {} is not in group {}", req.member_id, group_id));
            }
            return failed(errc::fenced_member_epoch,
                          fmt::format("group {} does not know member {} at epoch {}; join again", group_id, req.member_id,
                                      req.member_epoch));
        };
        auto it = st.groups.find(group_id);
        if (it == st.groups.end()) {
            if (req.member_epoch != 0) {
                return answer(unknown_epoch());
            }
            auto g = std::make_unique<group>();
            g->id = group_id;
            g->partition = p;
            it = st.groups.emplace(group_id, std::move(g)).first;
        }
        auto& g = *it->second;
        if (g.state == group_state::dead) {
            return answer(failed(errc::coordinator_not_available, {}));
        }
        if (!g.consumer) {
            if (!g.members.empty() || g.state != group_state::empty) {
                return answer(failed(errc::group_id_not_found, fmt::format("Group {} is not a consumer group.", group_id)));
            }
            if (req.member_epoch != 0) {
                return answer(unknown_epoch());
            }
            g.consumer = std::make_unique<consumer_group>(_config.consumer);
        }
        // The broker's view of every topic the group or this member subscribes to.
        consumer_topic_lookup topics;
        const auto all = _broker.topics();
        auto look = [&](const std::string& name) {
            if (auto t = all->find(name); t != all->end()) {
                topics[name] = consumer_topic_meta{t->second->id, t->second->config.partitions};
            }
        };
        for (const auto& t : g.consumer->subscribed_topics()) {
            look(t);
        }
        if (req.subscribed_topic_names) {
            for (const auto& t : *req.subscribed_topic_names) {
                if (topics.size() > _config.consumer.max_subscribed_topics) {
                    break;
                }
                look(t);
            }
        }
        answer(g.consumer->heartbeat(std::move(req), topics, coordinator_clock::now()));
    });
}

void group_coordinator::consumer_describe(std::string group_id, executor& caller,
                                          std::function<void(consumer_group_description)> done) {
    const auto s = shard_of_group(group_id);
    auto answer = [&caller, done = std::move(done)](consumer_group_description r) {
        reply<consumer_group_description>(caller, done, std::move(r));
    };
    _shards[s]->post([this, s, group_id = std::move(group_id), answer]() {
        auto& st = *_state[s];
        consumer_group_description d;
        d.group_id = group_id;
        if (st.loading.contains(partition_of(group_id))) {
            d.error = errc::coordinator_loading;
            return answer(std::move(d));
        }
        auto it = st.groups.find(group_id);
        if (it == st.groups.end() || it->second->state == group_state::dead) {
            d.error = errc::group_id_not_found;
            d.error_message = fmt::format("Group {} not found.", group_id);
        } else if (!it->second->consumer) {
            d.error = errc::group_id_not_found;
            d.error_message = fmt::format("Group {} is not a consumer group.", group_id);
        } else {
            d.group = it->second->consumer->view();
        }
        answer(std::move(d));
    });
}

std::function<void(int32_t)> group_coordinator::idle_hook(unsigned s) {
    return [this, s](int32_t p) { maybe_rewrite(s, p); };
}

// The offsets topic is compacted by its owner: when most of a partition's records are
// superseded, the coordinator writes every live key of the partition again (the groups'
// metadata and committed offsets, which it holds in memory) and deletes the whole segments
// before that copy. It runs only while no write of the partition is in flight, so memory and
// log agree at the point of the copy.
void group_coordinator::maybe_rewrite(unsigned s, int32_t p) {
    auto& st = *_state[s];
    auto& stats = st.partitions[p];
    if (stats.rewriting || stats.in_flight > 0 || st.loading.contains(p)) {
        return;
    }
    record_list live;
    for (const auto& [id, g] : st.groups) {
        if (g->partition != p || g->state == group_state::dead) {
            continue;
        }
        if (g->generation > 0 || !g->members.empty()) {
            live.emplace_back(group_key(id), g->metadata_value());
        }
        for (const auto& [tp, v] : g->offsets) {
            live.emplace_back(offset_key(id, tp), offset_value(v));
        }
    }
    if (stats.records < 2 * live.size() + _config.compaction_slack_records) {
        return;
    }
    stats.rewriting = true;
    const auto superseded = stats.records - live.size();
    model::topic_partition tp{std::string(offsets_topic), model::partition_id(p)};
    auto finish = [this, s, p, n = live.size(), superseded, tp](result<model::offset> from) {
        if (!from) {
            lg().warn("{} partition {}: cannot compact: {}", offsets_topic, p, from.error().message());
            _state[s]->partitions[p].rewriting = false;
            return;
        }
        _broker.remove_segments_before(tp, from.value(), *_shards[s],
                                       [this, s, p, n, superseded](result<model::offset> start) {
                                           auto& stats = _state[s]->partitions[p];
                                           stats.rewriting = false;
                                           stats.records = n;
                                           if (start) {
                                               lg().info("{} partition {}: compacted {} live records ({} superseded); log starts at {}",
                                                         offsets_topic, p, n, superseded, start.value());
                                           }
                                       });
    };
    if (live.empty()) {
        _broker.offsets(tp, *_shards[s], [finish](result<offsets_result> r) {
            finish(r ? result<model::offset>(r.value().high_watermark) : result<model::offset>(r.error()));
        });
        return;
    }
    append_records(_broker, *_shards[s], p, live, finish);
}

void group_coordinator::tick(unsigned s, coordinator_clock::time_point now) {
    auto& st = *_state[s];
    machine mc{_broker, _config, *_shards[s], _state[s]->partitions, idle_hook(s)};
    for (auto& [id, gp] : st.groups) {
        auto& g = *gp;
        for (auto it = g.pending.begin(); it != g.pending.end();) {
            it = it->second <= now ? g.pending.erase(it) : std::next(it);
        }
        std::vector<std::string> expired;
        for (const auto& [mid, m] : g.members) {
            if (!m.join_cb && !m.sync_cb && m.deadline <= now) {
                expired.push_back(mid);
            }
        }
        for (const auto& mid : expired) {
            lg().info("group {}: member {} session expired", g.id, mid);
            count_expired("session");
            mc.remove_member(g, mid, fmt::format("member {} session expired", mid), now);
        }
        if ((g.state == group_state::completing_rebalance || g.state == group_state::stable) && !g.pending_sync.empty()
            && g.sync_deadline <= now) {
            const std::vector<std::string> late(g.pending_sync.begin(), g.pending_sync.end());
            for (const auto& mid : late) {
                lg().warn("group {}: member {} did not sync generation {} within the rebalance timeout", g.id, mid,
                          g.generation);
                count_expired("sync");
                mc.remove_member(g, mid, fmt::format("member {} did not sync in time", mid), now);
            }
        }
        if (g.state == group_state::preparing_rebalance) {
            mc.try_complete_join(g, now);
        }
        if (g.consumer) {
            for (const auto& [mid, deadline] : g.consumer->expire(now)) {
                lg().info("group {}: member {} removed: missed its {} deadline", g.id, mid, deadline);
                count_expired(deadline);
            }
        }
    }
}

} // namespace runnel::broker
