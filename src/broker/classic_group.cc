#include "broker/classic_group.h"

#include <algorithm>

namespace runnel::broker {
namespace {

spdlog::logger& lg() { return logging::get("groups"); }

std::chrono::milliseconds ms(int32_t v) { return std::chrono::milliseconds(v); }

} // namespace

std::string_view group_state_name(group_state s) noexcept {
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

// ---- members ----

const std::string* classic_group::member::metadata_for(std::string_view protocol) const {
    for (const auto& [name, md] : protocols) {
        if (name == protocol) {
            return &md;
        }
    }
    return nullptr;
}

void classic_group::member::fill(const join_request& req, time_point now) {
    client_id = req.client_id;
    client_host = req.client_host;
    session_timeout_ms = req.session_timeout_ms;
    rebalance_timeout_ms = req.rebalance_timeout_ms;
    protocol_type = req.protocol_type;
    protocols = req.protocols;
    instance_id = req.instance_id;
    deadline = now + ms(session_timeout_ms);
}

void classic_group::fail_join(member& m, errc e) {
    if (m.join_cb) {
        join_result r;
        r.error = e;
        r.member_id = m.id;
        std::exchange(m.join_cb, nullptr)(std::move(r));
    }
}

void classic_group::fail_sync(member& m, errc e) {
    if (m.sync_cb) {
        sync_result r;
        r.error = e;
        std::exchange(m.sync_cb, nullptr)(std::move(r));
    }
}

// ---- queries ----

classic_group::classic_group(std::string id, std::chrono::milliseconds initial_rebalance_delay)
  : _id(std::move(id)), _initial_rebalance_delay(initial_rebalance_delay) {}

bool classic_group::fenced(const std::optional<std::string>& instance, std::string_view member_id) const {
    if (!instance) {
        return false;
    }
    auto it = _static_members.find(*instance);
    return it != _static_members.end() && it->second != member_id;
}

/// Protocols every member supports (all of `candidates` for an empty group).
bool classic_group::supports(std::string_view type,
                             const std::vector<std::pair<std::string, std::string>>& candidates) const {
    if (type.empty() || candidates.empty()) {
        return false;
    }
    if (_members.empty()) {
        return true;
    }
    if (type != _members.begin()->second.protocol_type) {
        return false;
    }
    return std::any_of(candidates.begin(), candidates.end(), [&](const auto& c) {
        return std::all_of(_members.begin(), _members.end(),
                           [&](const auto& m) { return m.second.metadata_for(c.first) != nullptr; });
    });
}

/// Kafka's vote: each member names its first protocol that every member supports.
std::optional<std::string> classic_group::choose_protocol() const {
    std::map<std::string, int> votes;
    std::vector<std::string> order;
    for (const auto& [id, m] : _members) {
        for (const auto& [name, md] : m.protocols) {
            (void)md;
            bool all = std::all_of(_members.begin(), _members.end(),
                                   [&name = name](const auto& o) { return o.second.metadata_for(name) != nullptr; });
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

/// The group's rebalance timeout: the largest its members asked for.
int32_t classic_group::rebalance_timeout() const {
    int32_t timeout = 0;
    for (const auto& [id, m] : _members) {
        timeout = std::max(timeout, m.rebalance_timeout_ms);
    }
    return timeout;
}

bool classic_group::all_joined() const {
    return _pending.empty()
           && std::all_of(_members.begin(), _members.end(), [](const auto& m) { return bool(m.second.join_cb); });
}

join_result classic_group::current_join(const member& m) const {
    join_result r;
    r.generation = _generation;
    r.protocol_type = _protocol_type;
    r.protocol_name = _protocol;
    r.leader = _leader;
    r.member_id = m.id;
    if (m.id == _leader && _protocol) {
        for (const auto& [id, o] : _members) {
            const auto* md = o.metadata_for(*_protocol);
            r.members.push_back({id, o.instance_id, md ? *md : std::string()});
        }
    }
    return r;
}

// ---- rebalances ----

void classic_group::prepare_rebalance(std::string_view why, time_point now, group_effects& fx) {
    if (_state == group_state::completing_rebalance) {
        for (auto& [id, m] : _members) {
            m.assignment.clear();
            fail_sync(m, errc::rebalance_in_progress);
        }
    }
    const int32_t timeout = rebalance_timeout();
    if (_state == group_state::empty) {
        _initial_delay_end = now + _initial_rebalance_delay;
        _initial_delay_cap = now + ms(timeout);
    } else if (_state != group_state::preparing_rebalance) {
        _initial_delay_end = {};
    }
    if (_state != group_state::preparing_rebalance) {
        _rebalance_deadline = now + ms(timeout);
        lg().info("group {}: rebalancing at generation {} ({})", _id, _generation, why);
    }
    _state = group_state::preparing_rebalance;
    _pending_sync.clear();
    try_complete_join(now, fx);
}

void classic_group::try_complete_join(time_point now, group_effects& fx) {
    if (_state != group_state::preparing_rebalance) {
        return;
    }
    const bool delaying = _initial_delay_end != time_point{} && now < _initial_delay_end;
    if (delaying || (!all_joined() && now < _rebalance_deadline)) {
        return;
    }
    // Members that did not rejoin in time leave the group.
    for (auto it = _members.begin(); it != _members.end();) {
        if (!it->second.join_cb) {
            lg().info("group {}: member {} did not rejoin in time", _id, it->first);
            fx.expired.push_back("join");
            if (it->second.instance_id) {
                _static_members.erase(*it->second.instance_id);
            }
            it = _members.erase(it);
        } else {
            ++it;
        }
    }
    _pending.clear();
    _initial_delay_end = {};
    ++_generation;
    if (_members.empty()) {
        _state = group_state::empty;
        _protocol.reset();
        _leader.clear();
        fx.store.push_back(metadata());
        return;
    }
    _protocol = choose_protocol();
    _protocol_type = _members.begin()->second.protocol_type;
    if (!_members.contains(_leader)) {
        _leader = _members.begin()->first;
    }
    _state = group_state::completing_rebalance;
    lg().info("group {}: generation {} with {} members, protocol {}", _id, _generation, _members.size(),
              _protocol.value_or("?"));
    // Heartbeats succeed while the group waits for SyncGroup, so the session timeout never
    // removes a member that does not sync: the rebalance timeout does.
    _pending_sync.clear();
    _sync_deadline = now + ms(rebalance_timeout());
    for (auto& [id, m] : _members) {
        _pending_sync.insert(id);
        m.deadline = now + ms(m.session_timeout_ms);
        auto r = current_join(m);
        std::exchange(m.join_cb, nullptr)(std::move(r));
    }
}

void classic_group::remove_member(const std::string& member_id, std::string_view why, time_point now,
                                  group_effects& fx) {
    auto it = _members.find(member_id);
    if (it == _members.end()) {
        return;
    }
    fail_join(it->second, errc::unknown_member_id);
    fail_sync(it->second, errc::unknown_member_id);
    if (it->second.instance_id) {
        _static_members.erase(*it->second.instance_id);
    }
    _pending_sync.erase(it->first);
    _members.erase(it);
    switch (_state) {
    case group_state::stable:
    case group_state::completing_rebalance:
        prepare_rebalance(why, now, fx);
        break;
    case group_state::preparing_rebalance:
        try_complete_join(now, fx);
        break;
    default:
        break;
    }
}

void classic_group::complete_sync() {
    _state = group_state::stable;
    for (auto& [id, m] : _members) {
        if (m.sync_cb) {
            sync_result r;
            r.protocol_type = _protocol_type;
            r.protocol_name = _protocol;
            r.assignment = m.assignment;
            std::exchange(m.sync_cb, nullptr)(std::move(r));
        }
    }
}

// ---- JoinGroup ----

group_effects classic_group::join(const join_request& req, std::string fresh_id, join_answer answer, time_point now) {
    auto fail = [&](errc e) {
        join_result r;
        r.error = e;
        r.member_id = req.member_id;
        answer(std::move(r));
        return group_effects{};
    };
    if (_state == group_state::dead) {
        return fail(errc::coordinator_not_available);
    }
    if (!supports(req.protocol_type, req.protocols)) {
        return fail(errc::inconsistent_group_protocol);
    }
    if (req.member_id.empty()) {
        return join_new(req, std::move(fresh_id), std::move(answer), now);
    }
    if (fenced(req.instance_id, req.member_id)) {
        return fail(errc::fenced_instance_id);
    }
    if (_pending.contains(req.member_id)) {
        group_effects fx;
        add_and_rebalance(req, req.member_id, std::move(answer), now, fx);
        return fx;
    }
    auto mit = _members.find(req.member_id);
    if (mit == _members.end()) {
        return fail(errc::unknown_member_id);
    }
    return join_known(mit->second, req, std::move(answer), now);
}

/// A join without a member id: a new member, or a static member back with a new id.
group_effects classic_group::join_new(const join_request& req, std::string id, join_answer answer, time_point now) {
    group_effects fx;
    if (req.instance_id) {
        auto known = _static_members.find(*req.instance_id);
        if (known != _static_members.end() && _members.contains(known->second)) {
            return rejoin_static(req, known->second, std::move(id), std::move(answer), now);
        }
        add_and_rebalance(req, std::move(id), std::move(answer), now, fx);
        return fx;
    }
    if (req.require_known_member) {
        _pending[id] = now + ms(req.session_timeout_ms);
        join_result r;
        r.error = errc::member_id_required;
        r.member_id = id;
        answer(std::move(r));
        return fx;
    }
    add_and_rebalance(req, std::move(id), std::move(answer), now, fx);
    return fx;
}

/// A static member back with a new id takes over the old one's place; with the same
/// protocols in a stable group it keeps its assignment without a rebalance.
group_effects classic_group::rejoin_static(const join_request& req, const std::string& old_id_ref, std::string id,
                                           join_answer answer, time_point now) {
    group_effects fx;
    const std::string old_id = old_id_ref;
    auto node = _members.extract(old_id);
    auto& old = node.mapped();
    fail_join(old, errc::fenced_instance_id);
    fail_sync(old, errc::fenced_instance_id);
    const bool same_protocols = old.protocols == req.protocols || (_protocol && [&] {
        const auto* a = old.metadata_for(*_protocol);
        for (const auto& [n, md] : req.protocols) {
            if (n == *_protocol) {
                return a && *a == md;
            }
        }
        return false;
    }());
    node.key() = id;
    old.id = id;
    old.fill(req, now);
    _members.insert(std::move(node));
    _static_members[*req.instance_id] = id;
    if (_leader == old_id) {
        _leader = id;
    }
    if (_pending_sync.erase(old_id) > 0) {
        _pending_sync.insert(id);
    }
    auto& m = _members.find(id)->second;
    if (_state == group_state::stable && same_protocols) {
        lg().info("group {}: static member {} rejoined as {}; no rebalance", _id, *req.instance_id, id);
        auto r = current_join(m);
        r.skip_assignment = (id == _leader);
        fx.store.push_back(metadata());
        answer(std::move(r));
        return fx;
    }
    m.join_cb = std::move(answer);
    if (_state == group_state::preparing_rebalance) {
        try_complete_join(now, fx);
    } else {
        prepare_rebalance(fmt::format("static member {} rejoined", *req.instance_id), now, fx);
    }
    return fx;
}

void classic_group::add_and_rebalance(const join_request& req, std::string id, join_answer answer, time_point now,
                                      group_effects& fx) {
    member m;
    m.id = id;
    m.fill(req, now);
    m.join_cb = std::move(answer);
    if (m.instance_id) {
        _static_members[*m.instance_id] = id;
    }
    _members.emplace(id, std::move(m));
    _pending.erase(id);
    if (_state == group_state::preparing_rebalance) {
        // A member joining during the initial delay extends it, up to the rebalance timeout.
        if (_initial_delay_end != time_point{}) {
            _initial_delay_end = std::min(now + _initial_rebalance_delay, std::max(_initial_delay_cap, _initial_delay_end));
        }
        try_complete_join(now, fx);
    } else {
        prepare_rebalance(fmt::format("member {} joined", id), now, fx);
    }
}

/// A join from a known member: answered with the current generation when nothing changed,
/// otherwise it (re)starts a rebalance.
group_effects classic_group::join_known(member& m, const join_request& req, join_answer answer, time_point now) {
    group_effects fx;
    const bool changed = m.protocols != req.protocols;
    switch (_state) {
    case group_state::preparing_rebalance:
        fail_join(m, errc::rebalance_in_progress); // a duplicate join replaces the older one
        m.fill(req, now);
        m.join_cb = std::move(answer);
        try_complete_join(now, fx);
        return fx;
    case group_state::completing_rebalance:
        if (!changed) {
            answer(current_join(m));
            return fx;
        }
        m.fill(req, now);
        m.join_cb = std::move(answer);
        prepare_rebalance(fmt::format("member {} changed its protocols", m.id), now, fx);
        return fx;
    case group_state::stable:
        if (!changed && m.id != _leader) {
            answer(current_join(m));
            return fx;
        }
        m.fill(req, now);
        m.join_cb = std::move(answer);
        prepare_rebalance(fmt::format("member {} rejoined", m.id), now, fx);
        return fx;
    case group_state::empty:
    case group_state::dead:
        break;
    }
    join_result r;
    r.error = errc::unknown_member_id;
    r.member_id = req.member_id;
    answer(std::move(r));
    return fx;
}

// ---- SyncGroup, Heartbeat, LeaveGroup ----

group_effects classic_group::sync(const sync_request& req, sync_answer answer, time_point now) {
    auto fail = [&](errc e) {
        sync_result r;
        r.error = e;
        answer(std::move(r));
        return group_effects{};
    };
    if (_state == group_state::dead) {
        return fail(errc::coordinator_not_available);
    }
    if (fenced(req.instance_id, req.member_id)) {
        return fail(errc::fenced_instance_id);
    }
    auto mit = _members.find(req.member_id);
    if (mit == _members.end()) {
        return fail(errc::unknown_member_id);
    }
    if (req.generation != _generation) {
        return fail(errc::illegal_generation);
    }
    if ((req.protocol_type && *req.protocol_type != _protocol_type)
        || (req.protocol_name && *req.protocol_name != _protocol.value_or(""))) {
        return fail(errc::inconsistent_group_protocol);
    }
    auto& m = mit->second;
    switch (_state) {
    case group_state::empty:
    case group_state::dead:
        return fail(errc::unknown_member_id);
    case group_state::preparing_rebalance:
        return fail(errc::rebalance_in_progress);
    case group_state::stable: {
        _pending_sync.erase(m.id);
        sync_result r;
        r.protocol_type = _protocol_type;
        r.protocol_name = _protocol;
        r.assignment = m.assignment;
        answer(std::move(r));
        return {};
    }
    case group_state::completing_rebalance:
        break;
    }
    fail_sync(m, errc::rebalance_in_progress);
    _pending_sync.erase(m.id);
    m.sync_cb = std::move(answer);
    m.deadline = now + ms(m.session_timeout_ms);
    group_effects fx;
    if (m.id != _leader) {
        return fx;
    }
    for (auto& [id, o] : _members) {
        o.assignment.clear();
    }
    for (const auto& [id, a] : req.assignments) {
        if (auto o = _members.find(id); o != _members.end()) {
            o->second.assignment = a;
        }
    }
    fx.store_sync.emplace(_generation, metadata());
    return fx;
}

group_effects classic_group::stored_sync(int32_t generation, bool stored, time_point now) {
    group_effects fx;
    if (_generation != generation || _state != group_state::completing_rebalance) {
        return fx; // a newer rebalance took over; its members were told
    }
    if (!stored) {
        for (auto& [id, m] : _members) {
            m.assignment.clear();
            fail_sync(m, errc::coordinator_not_available);
        }
        prepare_rebalance("its metadata could not be stored", now, fx);
        return fx;
    }
    complete_sync();
    return fx;
}

errc classic_group::heartbeat(int32_t generation, const member_identity& who, time_point now) {
    if (_state == group_state::dead) {
        return errc::coordinator_not_available;
    }
    if (fenced(who.instance_id, who.member_id)) {
        return errc::fenced_instance_id;
    }
    auto mit = _members.find(who.member_id);
    if (mit == _members.end()) {
        return errc::unknown_member_id;
    }
    if (generation != _generation) {
        return errc::illegal_generation;
    }
    auto& m = mit->second;
    m.deadline = now + ms(m.session_timeout_ms);
    switch (_state) {
    case group_state::preparing_rebalance:
        return errc::rebalance_in_progress;
    case group_state::completing_rebalance:
    case group_state::stable:
        return errc::success;
    default:
        return errc::unknown_member_id;
    }
}

group_effects classic_group::leave(const std::vector<member_identity>& who, std::vector<errc>& each, time_point now) {
    group_effects fx;
    for (const auto& w : who) {
        std::string id = w.member_id;
        if (w.instance_id) {
            auto known = _static_members.find(*w.instance_id);
            if (known == _static_members.end()) {
                each.push_back(errc::unknown_member_id);
                continue;
            }
            if (!id.empty() && known->second != id) {
                each.push_back(errc::fenced_instance_id);
                continue;
            }
            id = known->second;
        }
        if (_pending.erase(id) > 0) {
            each.push_back(errc::success);
            try_complete_join(now, fx);
            continue;
        }
        if (!_members.contains(id)) {
            each.push_back(errc::unknown_member_id);
            continue;
        }
        remove_member(id, fmt::format("member {} left", id), now, fx);
        each.push_back(errc::success);
    }
    return fx;
}

group_effects classic_group::tick(time_point now) {
    group_effects fx;
    for (auto it = _pending.begin(); it != _pending.end();) {
        it = it->second <= now ? _pending.erase(it) : std::next(it);
    }
    std::vector<std::string> expired;
    for (const auto& [mid, m] : _members) {
        if (!m.join_cb && !m.sync_cb && m.deadline <= now) {
            expired.push_back(mid);
        }
    }
    for (const auto& mid : expired) {
        lg().info("group {}: member {} session expired", _id, mid);
        fx.expired.push_back("session");
        remove_member(mid, fmt::format("member {} session expired", mid), now, fx);
    }
    if ((_state == group_state::completing_rebalance || _state == group_state::stable) && !_pending_sync.empty()
        && _sync_deadline <= now) {
        const std::vector<std::string> late(_pending_sync.begin(), _pending_sync.end());
        for (const auto& mid : late) {
            lg().warn("group {}: member {} did not sync generation {} within the rebalance timeout", _id, mid,
                      _generation);
            fx.expired.push_back("sync");
            remove_member(mid, fmt::format("member {} did not sync in time", mid), now, fx);
        }
    }
    if (_state == group_state::preparing_rebalance) {
        try_complete_join(now, fx);
    }
    return fx;
}

// ---- offsets, descriptions, records ----

errc classic_group::check_commit(const commit_request& req, bool simple) const {
    if (fenced(req.instance_id, req.member_id)) {
        return errc::fenced_instance_id;
    }
    if (simple && _state == group_state::empty) {
        return errc::success;
    }
    if (!_members.contains(req.member_id)) {
        return errc::unknown_member_id;
    }
    if (req.generation != _generation) {
        return errc::illegal_generation; // before the state: an older generation is told so, as Kafka does
    }
    if (_state == group_state::completing_rebalance) {
        return errc::rebalance_in_progress;
    }
    return errc::success;
}

void classic_group::touch(std::string_view member_id, time_point now) {
    if (auto m = _members.find(member_id); m != _members.end()) {
        m->second.deadline = now + ms(m->second.session_timeout_ms);
    }
}

void classic_group::describe(group_description& d) const {
    d.state = group_state_name(_state);
    d.protocol_type = _protocol_type;
    d.generation = _generation;
    if (_state == group_state::stable || _state == group_state::completing_rebalance) {
        d.protocol = _protocol.value_or("");
    }
    for (const auto& [id, m] : _members) {
        const auto* md = _protocol ? m.metadata_for(*_protocol) : nullptr;
        d.members.push_back({id, m.instance_id, m.client_id, m.client_host, md ? *md : std::string(),
                             _state == group_state::stable ? m.assignment : std::string()});
    }
}

errc classic_group::topics_in_use(std::set<std::string>& out) const {
    if (_state == group_state::empty) {
        return errc::success;
    }
    if (_protocol_type != "consumer") {
        return errc::non_empty_group;
    }
    for (const auto& [id, m] : _members) {
        if (const auto* md = _protocol ? m.metadata_for(*_protocol) : nullptr) {
            out.merge(group_records::subscribed_topics(*md));
        }
    }
    return errc::success;
}

group_records::group_metadata classic_group::metadata() const {
    group_records::group_metadata out;
    out.protocol_type = _protocol_type;
    out.generation = _generation;
    out.protocol = _protocol;
    out.leader = _leader;
    for (const auto& [id, m] : _members) {
        const auto* md = _protocol ? m.metadata_for(*_protocol) : nullptr;
        out.members.push_back({id, m.instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                               m.session_timeout_ms, md ? *md : std::string(), m.assignment});
    }
    return out;
}

void classic_group::restore(const group_records::group_metadata& stored) {
    _protocol_type = stored.protocol_type;
    _generation = stored.generation;
    _protocol = stored.protocol;
    _leader = stored.leader;
    _members.clear();
    _static_members.clear();
    for (const auto& s : stored.members) {
        member m;
        m.id = s.id;
        m.instance_id = s.instance_id;
        m.client_id = s.client_id;
        m.client_host = s.client_host;
        m.rebalance_timeout_ms = s.rebalance_timeout_ms;
        m.session_timeout_ms = s.session_timeout_ms;
        m.assignment = s.assignment;
        m.protocol_type = _protocol_type;
        if (_protocol) {
            m.protocols.emplace_back(*_protocol, s.metadata);
        }
        if (m.instance_id) {
            _static_members[*m.instance_id] = m.id;
        }
        _members.emplace(m.id, std::move(m));
    }
    _state = _members.empty() ? group_state::empty : group_state::stable;
}

void classic_group::forget() {
    _members.clear();
    _static_members.clear();
    _generation = 0;
    _protocol.reset();
    _protocol_type.clear();
    _leader.clear();
    _state = group_state::dead;
}

void classic_group::restart_sessions(time_point now) {
    for (auto& [id, m] : _members) {
        m.deadline = now + ms(m.session_timeout_ms);
    }
}

} // namespace runnel::broker
