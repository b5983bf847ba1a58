// The group coordinator's log: recovery of `__consumer_offsets` at start, durable writes of
// commits and group metadata, and compaction of the topic by its owner (decision 0004).

#include <variant>

#include "broker/broker.h"
#include "broker/group_coordinator.h"
#include "broker/group_records.h"
#include "broker/group_shard.h"

namespace runnel::broker {
namespace {

spdlog::logger& lg() { return logging::get("groups"); }

int64_t wall_ms() { return model::processing_now()(); }

/// Applies one decoded record of partition `p` to the shard's groups.
void apply_record(group_coordinator::shard_state& st, int32_t p, const group_config& config,
                  group_records::record rec) {
    const auto& gid = std::visit([](const auto& r) -> const std::string& { return r.group; }, rec);
    auto& slot = st.groups[gid];
    if (!slot) {
        slot = std::make_unique<group_entry>(gid, p, config.initial_rebalance_delay);
    }
    auto& g = *slot;
    if (auto* o = std::get_if<group_records::offset_record>(&rec)) {
        if (o->value) {
            g.offsets[o->tp] = std::move(*o->value);
        } else {
            g.offsets.erase(o->tp);
        }
        return;
    }
    auto& m = std::get<group_records::group_record>(rec);
    if (!m.value) {
        g.offsets.clear();
        g.classic.forget();
        return;
    }
    g.classic.restore(*m.value);
}

} // namespace

void append_group_records(broker& brk, executor& shard, int32_t p, const group_record_list& records,
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

// ---- recovery ----

void group_coordinator::load_partition(int32_t p, model::offset from) {
    model::topic_partition tp{std::string(offsets_topic), model::partition_id(p)};
    auto s = _broker.shard_of(tp);
    _broker.fetch(tp, from, 4 << 20, *_shards[s], [this, p, s](result<fetch_result> r) {
        if (!r) {
            lg().error("cannot read {} partition {}: {}; its groups start empty", offsets_topic, p, r.error().message());
            return finish_load(p);
        }
        apply_records(s, p, r.value().data.bytes.span());
        if (r.value().data.next_offset < r.value().high_watermark && r.value().data.batches > 0) {
            return load_partition(p, r.value().data.next_offset);
        }
        finish_load(p);
    });
}

void group_coordinator::apply_records(unsigned s, int32_t p, std::span<const std::byte> rest) {
    auto& st = *_state[s];
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
            if (auto decoded = group_records::decode(*rec.key, rec.value)) {
                apply_record(st, p, _config, std::move(*decoded));
            }
        }
    }
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
        if (g.dead() || (g.classic.member_count() == 0 && g.offsets.empty())) {
            it = st.groups.erase(it);
            continue;
        }
        // Restored members keep their place for one session: a member (static ones above all)
        // that comes back in time finds its assignment without a rebalance.
        g.classic.restart_sessions(now);
        ++groups;
        ++it;
    }
    st.loading.erase(p);
    _partition_ready[static_cast<std::size_t>(p)].store(true);
    maybe_rewrite(s, p);
    _loading.fetch_sub(1);
    lg().debug("loaded {} partition {}: {} groups", offsets_topic, p, groups);
}

// ---- writes ----

void group_coordinator::persist(unsigned s, int32_t p, record_list records, std::function<void(result<void>)> done) {
    auto& stats = _state[s]->partitions[p];
    ++stats.in_flight;
    stats.records += records.size();
    append_group_records(_broker, *_shards[s], p, records,
                         [this, s, p, done = std::move(done)](result<model::offset> r) {
                             done(r ? result<void>(ok()) : result<void>(r.error()));
                             if (--_state[s]->partitions[p].in_flight == 0) {
                                 maybe_rewrite(s, p);
                             }
                         });
}

// ---- compaction ----

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
        if (g->partition != p || g->dead()) {
            continue;
        }
        if (g->classic.has_metadata()) {
            live.emplace_back(group_records::group_key(id), group_records::group_value(g->classic.metadata()));
        }
        for (const auto& [tp, v] : g->offsets) {
            live.emplace_back(group_records::offset_key(id, tp), group_records::offset_value(v));
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
    append_group_records(_broker, *_shards[s], p, live, finish);
}

} // namespace runnel::broker
