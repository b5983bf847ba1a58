// The group coordinator's router: which shard owns a group, and each request posted there
// and answered on the caller's executor. The classic protocol's transitions are
// `classic_group.cc`, the consumer protocol's `consumer_group.cc`, the offsets topic's
// recovery, writes and compaction `group_log.cc`.

#include "broker/group_coordinator.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <set>

#include "broker/broker.h"
#include "broker/classic_group.h"
#include "broker/group_records.h"
#include "broker/group_shard.h"

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

int64_t wall_ms() { return model::processing_now()(); }

/// A client-visible id: the client id (as Kafka does) and a random suffix.
std::string new_member_id(std::string_view client_id) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{}-{:016x}{:04x}", client_id.empty() ? "member" : client_id, rng(), rng() & 0xffff);
}

/// The group `id` of partition `p`, made when missing.
group_entry& find_or_add(group_coordinator::shard_state& st, const std::string& id, int32_t p,
                         const group_config& config) {
    auto it = st.groups.find(id);
    if (it == st.groups.end()) {
        it = st.groups.emplace(id, std::make_unique<group_entry>(id, p, config.initial_rebalance_delay)).first;
    }
    return *it->second;
}

group_entry* find(group_coordinator::shard_state& st, std::string_view id) {
    auto it = st.groups.find(id);
    return it == st.groups.end() ? nullptr : it->second.get();
}

/// Why an OffsetCommit to `g` is refused (success: it is not).
errc commit_refusal(const group_entry& g, const commit_request& req, bool simple) {
    if (g.dead()) {
        return errc::coordinator_not_available;
    }
    if (req.from_transaction) {
        return errc::success; // a committed transaction's offsets: no membership checks
    }
    if (g.consumer && !(simple && g.consumer->empty())) {
        return g.consumer->validate_commit(req.member_id, req.generation); // KIP-848: the generation is the member epoch
    }
    if (g.consumer) {
        return errc::success;
    }
    return g.classic.check_commit(req, simple);
}

std::vector<partition_error> each_partition(const commit_request& r, errc e) {
    std::vector<partition_error> out;
    for (const auto& p : r.partitions) {
        out.push_back({p.tp, e});
    }
    return out;
}

} // namespace

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


void group_coordinator::apply(unsigned s, int32_t p, const std::string& group_id, group_effects fx) {
    for (auto deadline : fx.expired) {
        count_expired(deadline);
    }
    for (const auto& m : fx.store) {
        persist(s, p, {{group_records::group_key(group_id), group_records::group_value(m)}}, [group_id](result<void> r) {
            if (!r) {
                lg().warn("group {}: cannot store its metadata: {}", group_id, r.error().message());
            }
        });
    }
    if (!fx.store_sync) {
        return;
    }
    const auto generation = fx.store_sync->first;
    record_list records{{group_records::group_key(group_id), group_records::group_value(fx.store_sync->second)}};
    persist(s, p, std::move(records), [this, s, p, group_id, generation](result<void> r) {
        auto* g = find(*_state[s], group_id);
        if (!g) {
            return;
        }
        if (!r) {
            lg().warn("group {}: cannot store generation {}: {}", group_id, generation, r.error().message());
        }
        apply(s, p, group_id, g->classic.stored_sync(generation, bool(r), coordinator_clock::now()));
    });
}

// ---- the classic protocol: checks that need no group here, then the group's shard ----

void group_coordinator::join(join_request req, executor& caller, std::function<void(join_result)> done) {
    auto fail = [&](errc e) {
        join_result r;
        r.error = e;
        r.member_id = req.member_id;
        reply<join_result>(caller, std::move(done), std::move(r));
    };
    if (req.group_id.empty()) {
        return fail(errc::invalid_group_id);
    }
    const auto session = std::chrono::milliseconds(req.session_timeout_ms);
    if (session < _config.min_session_timeout || session > _config.max_session_timeout) {
        return fail(errc::invalid_session_timeout);
    }
    if (req.rebalance_timeout_ms < 0) {
        req.rebalance_timeout_ms = req.session_timeout_ms;
    }
    const auto s = shard_of_group(req.group_id);
    join_answer answer = [&caller, done = std::move(done)](join_result r) { reply<join_result>(caller, done, std::move(r)); };
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
        if (!find(st, req.group_id) && !req.member_id.empty()) {
            return fail(errc::unknown_member_id);
        }
        auto& g = find_or_add(st, req.group_id, p, _config);
        if (g.dead()) {
            return fail(errc::coordinator_not_available);
        }
        if (g.consumer) {
            if (!g.consumer->empty()) {
                return fail(errc::inconsistent_group_protocol);
            }
            g.consumer.reset(); // an empty consumer-protocol group becomes a classic one
        }
        auto fresh = req.member_id.empty() ? new_member_id(req.client_id) : std::string();
        apply(s, p, g.id(), g.classic.join(req, std::move(fresh), std::move(answer), coordinator_clock::now()));
    });
}

void group_coordinator::sync(sync_request req, executor& caller, std::function<void(sync_result)> done) {
    const auto s = shard_of_group(req.group_id);
    sync_answer answer = [&caller, done = std::move(done)](sync_result r) { reply<sync_result>(caller, done, std::move(r)); };
    _shards[s]->post([this, s, req = std::move(req), answer = std::move(answer)]() mutable {
        auto& st = *_state[s];
        auto fail = [&](errc e) {
            sync_result r;
            r.error = e;
            answer(std::move(r));
        };
        const auto p = partition_of(req.group_id);
        if (st.loading.contains(p)) {
            return fail(errc::coordinator_loading);
        }
        auto* g = find(st, req.group_id);
        if (!g) {
            return fail(errc::unknown_member_id);
        }
        apply(s, p, g->id(), g->classic.sync(req, std::move(answer), coordinator_clock::now()));
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
        auto* g = find(st, group_id);
        if (!g) {
            return answer(errc::unknown_member_id);
        }
        answer(g->classic.heartbeat(generation, who, coordinator_clock::now()));
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
        const auto p = partition_of(group_id);
        if (st.loading.contains(p)) {
            return answer(errc::coordinator_loading, {});
        }
        auto* g = find(st, group_id);
        if (!g) {
            return answer(errc::unknown_member_id, std::vector<errc>(members.size(), errc::unknown_member_id));
        }
        std::vector<errc> each;
        apply(s, p, g->id(), g->classic.leave(members, each, coordinator_clock::now()));
        answer(errc::success, std::move(each));
    });
}

// ---- committed offsets ----

void group_coordinator::commit(commit_request req, executor& caller,
                               std::function<void(errc, std::vector<partition_error>)> done) {
    auto answer = [&caller, done = std::move(done)](errc top, std::vector<partition_error> each) {
        caller.post([done, top, each = std::move(each)] { done(top, each); });
    };
    if (req.group_id.empty()) {
        return answer(errc::invalid_group_id, each_partition(req, errc::invalid_group_id));
    }
    const auto s = shard_of_group(req.group_id);
    _shards[s]->post([this, s, req = std::move(req), answer]() mutable {
        auto& st = *_state[s];
        const auto p = partition_of(req.group_id);
        if (st.loading.contains(p)) {
            return answer(errc::coordinator_loading, each_partition(req, errc::coordinator_loading));
        }
        const bool simple = (req.generation < 0 && req.member_id.empty() && !req.instance_id) || req.from_transaction;
        if (!find(st, req.group_id) && !simple) {
            return answer(errc::illegal_generation, each_partition(req, errc::illegal_generation));
        }
        auto& g = find_or_add(st, req.group_id, p, _config);
        if (auto refusal = commit_refusal(g, req, simple); refusal != errc::success) {
            return answer(refusal, each_partition(req, refusal));
        }
        g.classic.touch(req.member_id, coordinator_clock::now());
        std::vector<partition_error> each;
        record_list records;
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
                records.emplace_back(group_records::offset_key(g.id(), part.tp), group_records::offset_value(part.value));
                accepted->emplace_back(part.tp, part.value);
            }
            each.push_back({part.tp, e});
        }
        if (records.empty()) {
            return answer(errc::success, std::move(each));
        }
        persist(s, p, std::move(records), [this, s, gid = g.id(), accepted, each = std::move(each), answer](result<void> r) mutable {
            if (!r) {
                lg().warn("group {}: cannot store committed offsets: {}", gid, r.error().message());
                for (auto& e : each) {
                    if (e.error == errc::success) {
                        e.error = errc::coordinator_not_available;
                    }
                }
                return answer(errc::success, std::move(each));
            }
            if (auto* g = find(*_state[s], gid)) {
                for (auto& [tp, v] : *accepted) {
                    g->offsets[tp] = std::move(v);
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
        const group_entry* g = find(st, group_id);
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
            const auto now = coordinator_clock::now();
            for (const auto& [id, grp] : _state[s]->groups) {
                expire_due(s, *grp, now);
                if (grp->dead()) {
                    continue;
                }
                if (grp->consumer) {
                    mine.push_back({id, "consumer", std::string(grp->consumer->state()), "consumer"});
                } else {
                    mine.push_back({id, grp->classic.protocol_type(), std::string(group_state_name(grp->classic.state())), "classic"});
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
        if (it != st.groups.end()) {
            expire_due(s, *it->second, coordinator_clock::now());
        }
        if (it == st.groups.end() || it->second->consumer) {
            // Kafka describes a group of the consumer protocol here as it does a missing one.
            d.state = "Dead";
            return answer(std::move(d));
        }
        it->second->classic.describe(d);
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
        if (it != st.groups.end()) {
            expire_due(s, *it->second, coordinator_clock::now());
        }
        if (it == st.groups.end() || it->second->dead()) {
            return answer(errc::group_id_not_found);
        }
        auto& g = *it->second;
        if (!g.classic.idle() || (g.consumer && !g.consumer->empty())) {
            return answer(errc::non_empty_group);
        }
        record_list tombstones;
        for (const auto& [tp, v] : g.offsets) {
            tombstones.emplace_back(group_records::offset_key(g.id(), tp), std::nullopt);
        }
        tombstones.emplace_back(group_records::group_key(g.id()), std::nullopt);
        g.classic.mark_dead();
        persist(s, g.partition, std::move(tombstones), [this, s, group_id, answer](result<void> r) {
            auto& st = *_state[s];
            if (auto it = st.groups.find(group_id); it != st.groups.end() && it->second->dead()) {
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
        if (it == st.groups.end() || it->second->dead()) {
            return answer(errc::group_id_not_found, {});
        }
        auto& g = *it->second;
        std::set<std::string> subscribed;
        if (g.consumer) {
            for (const auto& t : g.consumer->subscribed_topics()) {
                subscribed.insert(t);
            }
        } else if (auto e = g.classic.topics_in_use(subscribed); e != errc::success) {
            return answer(e, {});
        }
        std::vector<partition_error> each;
        record_list tombstones;
        for (const auto& tp : partitions) {
            if (subscribed.contains(tp.topic)) {
                each.push_back({tp, errc::group_subscribed_to_topic});
                continue;
            }
            if (g.offsets.erase(tp) > 0) {
                tombstones.emplace_back(group_records::offset_key(g.id(), tp), std::nullopt);
            }
            each.push_back({tp, errc::success});
        }
        if (tombstones.empty()) {
            return answer(errc::success, std::move(each));
        }
        persist(s, g.partition, std::move(tombstones), [each = std::move(each), answer](result<void> r) mutable {
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
            for (auto& [id, g] : _state[s]->groups) {
                record_list tombstones;
                for (auto it = g->offsets.begin(); it != g->offsets.end();) {
                    if (it->first.topic == topic) {
                        tombstones.emplace_back(group_records::offset_key(id, it->first), std::nullopt);
                        it = g->offsets.erase(it);
                    } else {
                        ++it;
                    }
                }
                if (!tombstones.empty()) {
                    lg().info("group {}: forgot {} committed offsets of deleted topic {}", id, tombstones.size(), topic);
                    persist(s, g->partition, std::move(tombstones), [](result<void>) {});
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
        if (!find(st, group_id) && req.member_epoch != 0) {
            return answer(unknown_epoch());
        }
        auto& g = find_or_add(st, group_id, p, _config);
        if (g.dead()) {
            return answer(failed(errc::coordinator_not_available, {}));
        }
        if (!g.consumer) {
            if (!g.classic.idle()) {
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
        if (it != st.groups.end()) {
            expire_due(s, *it->second, coordinator_clock::now());
        }
        if (it == st.groups.end() || it->second->dead()) {
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

void group_coordinator::expire_due(unsigned s, group_entry& g, coordinator_clock::time_point now) {
    apply(s, g.partition, g.id(), g.classic.tick(now));
    if (g.consumer) {
        for (const auto& [mid, deadline] : g.consumer->expire(now)) {
            lg().info("group {}: member {} removed: missed its {} deadline", g.id(), mid, deadline);
            count_expired(deadline);
        }
    }
}

void group_coordinator::tick(unsigned s, coordinator_clock::time_point now) {
    for (auto& [id, gp] : _state[s]->groups) {
        expire_due(s, *gp, now);
    }
}

} // namespace runnel::broker
