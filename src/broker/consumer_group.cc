#include "broker/consumer_group.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "base/base.h"
#include "base/text.h"

namespace runnel::broker {
namespace {

using partition_ref = std::pair<std::string, int32_t>;

bool eligible(const assignor_member& m, const consumer_topic_lookup& topics, const std::string& topic, int32_t p) {
    auto t = topics.find(topic);
    return m.topics.contains(topic) && t != topics.end() && p >= 0 && p < t->second.partitions;
}

/// A new member id as Kafka makes them: a random UUID in URL-safe base64 without padding.
std::string new_member_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::array<char, 16> raw{};
    for (std::size_t i = 0; i < raw.size(); i += 8) {
        auto v = rng();
        std::memcpy(raw.data() + i, &v, 8);
    }
    auto id = text::base64_encode(std::string_view(raw.data(), raw.size()));
    std::erase(id, '=');
    std::replace(id.begin(), id.end(), '+', '-');
    std::replace(id.begin(), id.end(), '/', '_');
    return id;
}

bool contains(const topic_assignment& a, const std::string& topic, int32_t p) {
    auto t = a.find(topic);
    return t != a.end() && t->second.contains(p);
}

void add(topic_assignment& a, const std::string& topic, int32_t p) { a[topic].insert(p); }

void erase(topic_assignment& a, const std::string& topic, int32_t p) {
    auto t = a.find(topic);
    if (t != a.end()) {
        t->second.erase(p);
        if (t->second.empty()) {
            a.erase(t);
        }
    }
}

/// `a` without the partitions of `b`.
topic_assignment minus(const topic_assignment& a, const topic_assignment& b) {
    topic_assignment out;
    for (const auto& [t, ps] : a) {
        for (auto p : ps) {
            if (!contains(b, t, p)) {
                add(out, t, p);
            }
        }
    }
    return out;
}

bool subset(const topic_assignment& a, const topic_assignment& b) { return minus(a, b).empty(); }

} // namespace

// ---- assignors ----

std::map<std::string, topic_assignment> assign_uniform(const std::vector<assignor_member>& members,
                                                      const consumer_topic_lookup& topics) {
    std::map<std::string, topic_assignment> out;
    if (members.empty()) {
        return out;
    }
    std::vector<const assignor_member*> order;
    for (const auto& m : members) {
        order.push_back(&m);
        out[m.id];
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->id < b->id; });
    // Every partition some member subscribes to.
    std::vector<partition_ref> all;
    for (const auto& [name, meta] : topics) {
        bool wanted = std::any_of(order.begin(), order.end(), [&name = name](auto* m) { return m->topics.contains(name); });
        for (int32_t p = 0; wanted && p < meta.partitions; ++p) {
            all.emplace_back(name, p);
        }
    }
    const std::size_t n = order.size();
    const std::size_t most = (all.size() + n - 1) / n;
    std::size_t at_most = all.size() % n == 0 ? n : all.size() % n; // members that may hold `most`
    std::map<partition_ref, std::string> owner;
    std::map<std::string, std::size_t> held; ///< partitions each member holds so far
    for (auto* m : order) {
        held[m->id] = 0;
    }
    auto give = [&](const assignor_member* m, const std::string& t, int32_t p) {
        add(out[m->id], t, p);
        ++held[m->id];
    };
    // Keep what each member had, within its share.
    for (auto* m : order) {
        std::size_t kept = 0;
        const std::size_t cap = at_most > 0 ? most : (most > 0 ? most - 1 : 0);
        for (const auto& [t, ps] : m->previous) {
            for (auto p : ps) {
                if (kept < cap && eligible(*m, topics, t, p) && !owner.contains({t, p})) {
                    owner[{t, p}] = m->id;
                    give(m, t, p);
                    ++kept;
                }
            }
        }
        if (kept == most && at_most > 0) {
            --at_most;
        }
    }
    auto size_of = [&](const assignor_member* m) { return held[m->id]; };
    // Give every free partition to the eligible member holding the fewest.
    for (const auto& tp : all) {
        if (owner.contains(tp)) {
            continue;
        }
        const assignor_member* best = nullptr;
        for (auto* m : order) {
            if (eligible(*m, topics, tp.first, tp.second) && (!best || size_of(m) < size_of(best))) {
                best = m;
            }
        }
        if (best) {
            owner[tp] = best->id;
            give(best, tp.first, tp.second);
        }
    }
    // Subscriptions that differ can leave one member two or more ahead of another that could
    // take its partitions: move them one at a time (at most once per partition).
    for (std::size_t moves = 0; moves < all.size(); ++moves) {
        const auto [fewest, most_held] = std::minmax_element(
          held.begin(), held.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
        if (held.empty() || most_held->second <= fewest->second + 1) {
            break; // balanced: nothing can move (always so when subscriptions are the same)
        }
        bool moved = false;
        for (auto* from : order) {
            if (size_of(from) <= fewest->second + 1) {
                continue;
            }
            for (const auto& [t, ps] : out[from->id]) {
                for (auto p : ps) {
                    for (auto* to : order) {
                        if (to != from && size_of(to) + 1 < size_of(from) && eligible(*to, topics, t, p)) {
                            auto topic = t;
                            erase(out[from->id], topic, p);
                            --held[from->id];
                            give(to, topic, p);
                            moved = true;
                            break;
                        }
                    }
                    if (moved) {
                        break;
                    }
                }
                if (moved) {
                    break;
                }
            }
            if (moved) {
                break;
            }
        }
        if (!moved) {
            break;
        }
    }
    return out;
}

std::map<std::string, topic_assignment> assign_range(const std::vector<assignor_member>& members,
                                                    const consumer_topic_lookup& topics) {
    std::map<std::string, topic_assignment> out;
    std::vector<const assignor_member*> order;
    for (const auto& m : members) {
        order.push_back(&m);
        out[m.id];
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (const auto& [name, meta] : topics) {
        std::vector<const assignor_member*> subscribers;
        for (auto* m : order) {
            if (m->topics.contains(name)) {
                subscribers.push_back(m);
            }
        }
        if (subscribers.empty()) {
            continue;
        }
        const auto n = static_cast<int32_t>(subscribers.size());
        const int32_t per = meta.partitions / n;
        const int32_t extra = meta.partitions % n;
        for (int32_t i = 0; i < n; ++i) {
            const int32_t start = i * per + std::min(i, extra);
            const int32_t len = per + (i < extra ? 1 : 0);
            for (int32_t p = start; p < start + len; ++p) {
                add(out[subscribers[static_cast<std::size_t>(i)]->id], name, p);
            }
        }
    }
    return out;
}

// ---- the group ----

consumer_heartbeat_result consumer_group::fail(errc e, std::string message) const {
    consumer_heartbeat_result r;
    r.error = e;
    r.error_message = std::move(message);
    r.member_epoch = -1;
    return r;
}

std::string_view consumer_group::state() const noexcept {
    if (_members.empty()) {
        return "Empty";
    }
    if (_group_epoch > _assignment_epoch) {
        return "Assigning";
    }
    for (const auto& [id, m] : _members) {
        if (m.epoch != _assignment_epoch || m.state != member_state::stable) {
            return "Reconciling";
        }
    }
    return "Stable";
}

std::set<std::string, std::less<>> consumer_group::subscribed_topics() const {
    std::set<std::string, std::less<>> out;
    for (const auto& [id, m] : _members) {
        out.insert(m.topics.begin(), m.topics.end());
    }
    return out;
}

consumer_group_view consumer_group::view() const {
    consumer_group_view v;
    v.state = std::string(state());
    v.group_epoch = _group_epoch;
    v.assignment_epoch = _assignment_epoch;
    v.assignor = _assignor;
    for (const auto& [id, m] : _members) {
        consumer_member_view mv;
        mv.member_id = id;
        mv.instance_id = m.instance_id;
        mv.rack_id = m.rack_id;
        mv.member_epoch = m.epoch;
        mv.client_id = m.client_id;
        mv.client_host = m.client_host;
        mv.subscribed_topic_names.assign(m.topics.begin(), m.topics.end());
        mv.assignment = m.assigned;
        if (auto t = _target.find(id); t != _target.end()) {
            mv.target_assignment = t->second;
        }
        v.members.push_back(std::move(mv));
    }
    return v;
}

errc consumer_group::validate_commit(std::string_view member_id, int32_t member_epoch) const {
    auto it = _members.find(member_id);
    if (it == _members.end() || it->second.left_static) {
        return errc::unknown_member_id;
    }
    return member_epoch == it->second.epoch ? errc::success : errc::stale_member_epoch;
}

void consumer_group::remove(const std::string& id) {
    auto it = _members.find(id);
    if (it == _members.end()) {
        return;
    }
    for (auto o = _owners.begin(); o != _owners.end();) {
        o = o->second == id ? _owners.erase(o) : std::next(o);
    }
    if (it->second.instance_id) {
        if (auto s = _static_members.find(*it->second.instance_id); s != _static_members.end() && s->second == id) {
            _static_members.erase(s);
        }
    }
    _target.erase(id);
    _members.erase(it);
}

bool consumer_group::owned_by_other(const std::string& member_id, const std::string& topic, int32_t partition) const {
    auto o = _owners.find({topic, partition});
    return o != _owners.end() && o->second != member_id;
}

std::string consumer_group::chosen_assignor() const {
    std::map<std::string, int> votes;
    for (const auto& [id, m] : _members) {
        if (m.assignor) {
            ++votes[*m.assignor];
        }
    }
    std::string best(consumer_assignors[0]);
    int best_votes = 0;
    for (const auto& [name, n] : votes) {
        if (n > best_votes) {
            best = name;
            best_votes = n;
        }
    }
    return best;
}

bool consumer_group::refresh_metadata(const consumer_topic_lookup& topics) {
    consumer_topic_lookup now;
    for (const auto& [id, m] : _members) {
        for (const auto& t : m.topics) {
            if (auto it = topics.find(t); it != topics.end()) {
                now.emplace(t, it->second);
            }
        }
    }
    if (now == _metadata) {
        return false;
    }
    _metadata = std::move(now);
    return true;
}

void consumer_group::compute_target() {
    std::vector<assignor_member> in;
    for (const auto& [id, m] : _members) {
        assignor_member a{id, m.topics, {}};
        if (auto t = _target.find(id); t != _target.end()) {
            a.previous = t->second;
        }
        in.push_back(std::move(a));
    }
    _assignor = chosen_assignor();
    auto target = _assignor == "range" ? assign_range(in, _metadata) : assign_uniform(in, _metadata);
    _target.clear();
    for (auto& [id, a] : target) {
        _target.emplace(id, std::move(a));
    }
    _assignment_epoch = _group_epoch;
}

bool consumer_group::reconcile(member& m, const std::optional<topic_assignment>& owned, clock::time_point now) {
    if (m.state == member_state::unrevoked) {
        // The member gives partitions up by heartbeating without them.
        bool released = owned && std::none_of(m.pending_revocation.begin(), m.pending_revocation.end(), [&](const auto& t) {
            return std::any_of(t.second.begin(), t.second.end(), [&](int32_t p) { return contains(*owned, t.first, p); });
        });
        if (!released) {
            return false;
        }
        for (const auto& [t, ps] : m.pending_revocation) {
            for (auto p : ps) {
                _owners.erase({t, p});
            }
        }
        m.pending_revocation.clear();
        m.state = member_state::stable;
    }
    if (m.epoch == _assignment_epoch && m.state == member_state::stable) {
        return false;
    }
    static const topic_assignment none;
    auto t = _target.find(m.id);
    const auto& target = t == _target.end() ? none : t->second;
    auto revoke = minus(m.assigned, target);
    if (!revoke.empty()) {
        for (const auto& [topic, ps] : revoke) {
            for (auto p : ps) {
                erase(m.assigned, topic, p);
            }
        }
        m.pending_revocation = std::move(revoke);
        m.state = member_state::unrevoked;
        m.revocation_deadline = now + std::chrono::milliseconds(m.rebalance_timeout_ms);
        return true;
    }
    bool changed = false;
    for (const auto& [topic, ps] : minus(target, m.assigned)) {
        for (auto p : ps) {
            if (!owned_by_other(m.id, topic, p)) {
                add(m.assigned, topic, p);
                _owners[{topic, p}] = m.id;
                changed = true;
            }
        }
    }
    if (m.epoch != _assignment_epoch) {
        m.previous_epoch = m.epoch;
        m.epoch = _assignment_epoch;
        changed = true;
    }
    m.state = subset(target, m.assigned) ? member_state::stable : member_state::unreleased;
    return changed;
}

consumer_heartbeat_result consumer_group::leave(const consumer_heartbeat_request& req, clock::time_point now) {
    auto it = _members.find(req.member_id);
    if (it == _members.end()) {
        return fail(errc::unknown_member_id, fmt::format("member {} is not in the group", req.member_id));
    }
    consumer_heartbeat_result r;
    r.member_id = req.member_id;
    r.member_epoch = req.member_epoch;
    r.heartbeat_interval_ms = static_cast<int32_t>(_config->heartbeat_interval.count());
    if (req.member_epoch == -2 && it->second.instance_id) {
        // A static member that will come back keeps its partitions for one session.
        it->second.left_static = true;
        it->second.session_deadline = now + _config->session_timeout;
        return r;
    }
    r.member_epoch = -1;
    remove(req.member_id);
    bump();
    return r;
}

consumer_heartbeat_result consumer_group::heartbeat(consumer_heartbeat_request req, const consumer_topic_lookup& topics,
                                                    clock::time_point now) {
    if (req.member_epoch == -1 || req.member_epoch == -2) {
        return leave(req, now);
    }
    if (req.member_epoch < -2) {
        return fail(errc::invalid_request, fmt::format("member epoch {} is not valid", req.member_epoch));
    }
    if (req.subscribed_topic_regex) {
        return fail(errc::invalid_request,
                    "subscriptions by regular expression are not supported by this broker; subscribe by topic names");
    }
    if (req.server_assignor
        && std::find(consumer_assignors.begin(), consumer_assignors.end(), *req.server_assignor) == consumer_assignors.end()) {
        return fail(errc::unsupported_assignor,
                    fmt::format("assignor {} is not supported; this broker has uniform and range", *req.server_assignor));
    }
    if (req.subscribed_topic_names && req.subscribed_topic_names->size() > _config->max_subscribed_topics) {
        return fail(errc::invalid_request, fmt::format("more than {} subscribed topics", _config->max_subscribed_topics));
    }
    member* m = nullptr;
    bool full = false;    // the answer carries the whole assignment
    bool changed = false; // the group epoch moves on (once per heartbeat, whatever changed)
    if (req.member_epoch == 0) {
        if (req.member_id.empty()) {
            if (req.client_generates_member_id) {
                return fail(errc::invalid_request, "MemberId can't be empty.");
            }
            req.member_id = new_member_id();
        }
        if (!req.subscribed_topic_names) {
            return fail(errc::invalid_request, "SubscribedTopicNames must be set in first request.");
        }
        if (req.owned && !req.owned->empty()) {
            return fail(errc::invalid_request, "TopicPartitions must be empty when (re-)joining.");
        }
        full = true;
        if (req.instance_id) {
            if (auto s = _static_members.find(*req.instance_id); s != _static_members.end()) {
                auto& old = _members.at(s->second);
                if (old.id != req.member_id && !old.left_static) {
                    return fail(errc::unreleased_instance_id,
                                fmt::format("instance {} is still in use by member {}", *req.instance_id, old.id));
                }
                // The static member is back (maybe under a new member id): it keeps its
                // epoch and its partitions, and the group epoch does not move.
                member back = old;
                back.id = req.member_id;
                back.left_static = false;
                const std::string old_id = old.id;
                if (old_id != req.member_id) {
                    for (auto& [tp, owner] : _owners) {
                        if (owner == old_id) {
                            owner = back.id;
                        }
                    }
                    if (auto t = _target.find(old_id); t != _target.end()) {
                        auto a = std::move(t->second);
                        _target.erase(t);
                        _target[back.id] = std::move(a);
                    }
                    _members.erase(old_id);
                }
                s->second = back.id;
                m = &(_members[back.id] = std::move(back));
            }
        }
        if (!m) {
            if (_members.contains(req.member_id)) {
                // Joining again under the same id: the old incarnation is gone.
                remove(req.member_id);
            } else if (_members.size() >= _config->max_size) {
                return fail(errc::group_max_size_reached,
                            fmt::format("the group has reached its maximum size of {} members", _config->max_size));
            }
            member fresh;
            fresh.id = req.member_id;
            fresh.instance_id = req.instance_id;
            if (req.instance_id) {
                _static_members[*req.instance_id] = req.member_id;
            }
            m = &(_members[req.member_id] = std::move(fresh));
            changed = true;
        }
    } else {
        auto it = _members.find(req.member_id);
        if (it == _members.end() || it->second.left_static) {
            return fail(errc::unknown_member_id, fmt::format("member {} is not in the group", req.member_id));
        }
        m = &it->second;
        if (req.member_epoch > m->epoch) {
            return fail(errc::fenced_member_epoch,
                        fmt::format("member epoch {} is newer than the group's {}", req.member_epoch, m->epoch));
        }
        if (req.member_epoch < m->epoch) {
            // The answer carrying the new epoch may have been lost: the previous epoch is
            // accepted while the member owns nothing beyond its assignment.
            if (req.member_epoch != m->previous_epoch || !req.owned || !subset(*req.owned, m->assigned)) {
                return fail(errc::fenced_member_epoch,
                            fmt::format("member epoch {} is older than the group's {}", req.member_epoch, m->epoch));
            }
            full = true;
        }
    }
    m->client_id = req.client_id;
    m->client_host = req.client_host;
    if (req.rack_id) {
        m->rack_id = req.rack_id;
    }
    if (req.rebalance_timeout_ms >= 0) {
        m->rebalance_timeout_ms = req.rebalance_timeout_ms;
    } else if (m->rebalance_timeout_ms == 0) {
        m->rebalance_timeout_ms = static_cast<int32_t>(_config->session_timeout.count());
    }
    if (req.subscribed_topic_names) {
        std::set<std::string, std::less<>> wanted(req.subscribed_topic_names->begin(), req.subscribed_topic_names->end());
        if (wanted != m->topics) {
            m->topics = std::move(wanted);
            changed = true;
        }
    }
    if (req.server_assignor && req.server_assignor != m->assignor) {
        m->assignor = req.server_assignor;
        changed = true;
    }
    m->session_deadline = now + _config->session_timeout;
    if (refresh_metadata(topics) || changed) {
        bump();
    }
    if (_group_epoch > _assignment_epoch) {
        compute_target();
    }
    const bool moved = reconcile(*m, req.owned, now);
    consumer_heartbeat_result r;
    r.member_id = m->id;
    r.member_epoch = m->epoch;
    r.heartbeat_interval_ms = static_cast<int32_t>(_config->heartbeat_interval.count());
    if (full || moved || (req.owned && *req.owned != m->assigned)) {
        r.assignment = m->assigned;
    }
    return r;
}

std::vector<std::pair<std::string, std::string_view>> consumer_group::expire(clock::time_point now) {
    std::vector<std::pair<std::string, std::string_view>> gone;
    for (const auto& [id, m] : _members) {
        if (m.session_deadline <= now) {
            gone.emplace_back(id, "session");
        } else if (m.state == member_state::unrevoked && m.revocation_deadline <= now) {
            gone.emplace_back(id, "revocation");
        }
    }
    for (const auto& [id, why] : gone) {
        remove(id);
    }
    if (!gone.empty()) {
        bump();
    }
    return gone;
}

} // namespace runnel::broker
