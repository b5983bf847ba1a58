#include "security/acl.h"

#include <algorithm>

#include "base/logging.h"
#include "base/text.h"

namespace runnel::security {
namespace {

spdlog::logger& acl_log() { return logging::get("security"); }

constexpr std::size_t max_acl_file_bytes = 64 * 1024 * 1024;

constexpr std::string_view resource_names[] = {"UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID",
                                               "DELEGATION_TOKEN", "USER"};
constexpr std::string_view pattern_names[] = {"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"};
constexpr std::string_view operation_names[] = {
  "UNKNOWN", "ANY", "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
  "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS"};
constexpr std::string_view permission_names[] = {"UNKNOWN", "ANY", "DENY", "ALLOW"};

template <typename E, std::size_t N>
std::string_view name_in(const std::string_view (&names)[N], E e) noexcept {
    auto i = static_cast<std::size_t>(static_cast<int8_t>(e));
    return i < N ? names[i] : names[0];
}

/// Case-insensitive, `-` equal to `_`.
template <typename E, std::size_t N>
std::optional<E> parse_in(const std::string_view (&names)[N], std::string_view s) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        const auto& n = names[i];
        if (n.size() != s.size()) {
            continue;
        }
        bool same = true;
        for (std::size_t k = 0; k < n.size() && same; ++k) {
            char c = s[k];
            if (c >= 'a' && c <= 'z') {
                c = static_cast<char>(c - 'a' + 'A');
            } else if (c == '-') {
                c = '_';
            }
            same = c == n[k];
        }
        if (same) {
            return static_cast<E>(static_cast<int8_t>(i));
        }
    }
    return std::nullopt;
}

/// Operations whose ALLOW also allows `op` (Kafka's implications).
bool allow_implies(acl_operation granted, acl_operation op) noexcept {
    if (granted == op || granted == acl_operation::all) {
        return true;
    }
    switch (op) {
    case acl_operation::describe:
        return granted == acl_operation::read || granted == acl_operation::write || granted == acl_operation::remove
               || granted == acl_operation::alter;
    case acl_operation::describe_configs:
        return granted == acl_operation::alter_configs;
    default:
        return false;
    }
}

// The file escapes `%`, tabs, line ends and other control bytes as %XX, so any group or
// transactional id fits in one field.
std::string escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c == '%' || c < 0x20 || c == 0x7f) {
            out += fmt::format("%{:02X}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}


std::atomic<uint64_t>& generations() {
    static std::atomic<uint64_t> g{0};
    return g;
}

} // namespace

std::string_view name_of(resource_type t) noexcept { return name_in(resource_names, t); }
std::string_view name_of(pattern_type t) noexcept { return name_in(pattern_names, t); }
std::string_view name_of(acl_operation o) noexcept { return name_in(operation_names, o); }
std::string_view name_of(acl_permission p) noexcept { return name_in(permission_names, p); }
std::optional<resource_type> parse_resource_type(std::string_view s) noexcept {
    return parse_in<resource_type>(resource_names, s);
}
std::optional<pattern_type> parse_pattern_type(std::string_view s) noexcept { return parse_in<pattern_type>(pattern_names, s); }
std::optional<acl_operation> parse_acl_operation(std::string_view s) noexcept {
    return parse_in<acl_operation>(operation_names, s);
}
std::optional<acl_permission> parse_acl_permission(std::string_view s) noexcept {
    return parse_in<acl_permission>(permission_names, s);
}

std::optional<std::string> acl_binding::invalid() const {
    switch (type) {
    case resource_type::topic:
    case resource_type::group:
    case resource_type::cluster:
    case resource_type::transactional_id:
        break;
    case resource_type::delegation_token:
    case resource_type::user:
        return fmt::format("resource type {} is not supported", name_of(type));
    default:
        return "the resource type must be TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID";
    }
    if (pattern != pattern_type::literal && pattern != pattern_type::prefixed) {
        return "the pattern type must be LITERAL or PREFIXED";
    }
    if (name.empty()) {
        return "the resource name is empty";
    }
    if (name.size() > 32767) {
        return "the resource name is too long";
    }
    if (type == resource_type::cluster && name != cluster_resource_name) {
        return fmt::format("the only valid name for the CLUSTER resource is {}", cluster_resource_name);
    }
    if (pattern == pattern_type::prefixed && name == acl_wildcard) {
        return "a PREFIXED pattern cannot be the wildcard *";
    }
    auto colon = principal.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == principal.size()) {
        return fmt::format("the principal '{}' is not TYPE:NAME (User:alice, User:*)", principal.substr(0, 256));
    }
    if (principal.size() > 32767 || !text::valid_utf8(principal)) {
        return "the principal is not short UTF-8";
    }
    if (host.empty() || host.size() > 255) {
        return "the host is empty or too long (an address or *)";
    }
    const auto op = static_cast<int8_t>(operation);
    if (op < static_cast<int8_t>(acl_operation::all) || op >= acl_operation_count) {
        return "the operation must be one of ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, "
               "DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE";
    }
    if (permission != acl_permission::allow && permission != acl_permission::deny) {
        return "the permission type must be ALLOW or DENY";
    }
    return std::nullopt;
}

std::string acl_binding::to_string() const {
    return fmt::format("{} has {} on {} from host {} for {} {} {}", principal, name_of(permission), name_of(operation),
                       host, name_of(type), name_of(pattern), name);
}

bool acl_filter::matches(const acl_binding& b) const {
    if (type != resource_type::any && type != b.type) {
        return false;
    }
    switch (pattern) {
    case pattern_type::any:
        if (name && *name != b.name) {
            return false;
        }
        break;
    case pattern_type::match:
        if (name) {
            const bool hit = b.pattern == pattern_type::literal ? (b.name == *name || b.name == acl_wildcard)
                                                                : std::string_view(*name).starts_with(b.name);
            if (!hit) {
                return false;
            }
        }
        break;
    default:
        if (pattern != b.pattern || (name && *name != b.name)) {
            return false;
        }
    }
    if (principal && *principal != b.principal) {
        return false;
    }
    if (host && *host != b.host) {
        return false;
    }
    if (operation != acl_operation::any && operation != b.operation) {
        return false;
    }
    return permission == acl_permission::any || permission == b.permission;
}

std::optional<std::string> acl_filter::invalid() const {
    const auto t = static_cast<int8_t>(type);
    const auto p = static_cast<int8_t>(pattern);
    const auto o = static_cast<int8_t>(operation);
    const auto q = static_cast<int8_t>(permission);
    if (t < 1 || t >= resource_type_count) {
        return "the filter's resource type is UNKNOWN";
    }
    if (p < 1 || p > static_cast<int8_t>(pattern_type::prefixed)) {
        return "the filter's pattern type is UNKNOWN";
    }
    if (o < 1 || o >= acl_operation_count) {
        return "the filter's operation is UNKNOWN";
    }
    if (q < 1 || q > static_cast<int8_t>(acl_permission::allow)) {
        return "the filter's permission type is UNKNOWN";
    }
    return std::nullopt;
}

// -- acl_set ---------------------------------------------------------------------------------

acl_set::acl_set(std::vector<acl_binding> bindings) : _bindings(std::move(bindings)) {
    std::sort(_bindings.begin(), _bindings.end());
    _bindings.erase(std::unique(_bindings.begin(), _bindings.end()), _bindings.end());
    for (const auto& b : _bindings) {
        auto i = static_cast<std::size_t>(static_cast<int8_t>(b.type));
        if (i >= _types.size()) {
            continue;
        }
        auto& t = _types[i];
        auto& map = b.pattern == pattern_type::prefixed ? t.prefixed : t.literal;
        map[b.name].push_back({b.principal, b.host, b.operation, b.permission});
        if (b.pattern == pattern_type::prefixed) {
            t.prefix_lengths.push_back(b.name.size());
        }
    }
    for (auto& t : _types) {
        std::sort(t.prefix_lengths.begin(), t.prefix_lengths.end());
        t.prefix_lengths.erase(std::unique(t.prefix_lengths.begin(), t.prefix_lengths.end()), t.prefix_lengths.end());
    }
}

bool acl_set::allowed(const acl_options& options, std::string_view principal, std::string_view host, acl_operation op,
                      resource_type type, std::string_view name) const {
    for (const auto& s : options.super_users) {
        if (s == principal) {
            return true;
        }
    }
    auto i = static_cast<std::size_t>(static_cast<int8_t>(type));
    if (i >= _types.size()) {
        return false;
    }
    const auto& t = _types[i];
    // The bindings that apply to the resource: its LITERAL name, the LITERAL wildcard, and the
    // PREFIXED patterns it starts with.
    std::array<const std::vector<entry>*, 2> literal{};
    if (auto it = t.literal.find(name); it != t.literal.end()) {
        literal[0] = &it->second;
    }
    if (auto it = t.literal.find(acl_wildcard); it != t.literal.end() && name != acl_wildcard) {
        literal[1] = &it->second;
    }
    bool any = literal[0] || literal[1];
    bool denied = false;
    bool allow = false;
    auto look = [&](const std::vector<entry>& entries) {
        any = true;
        for (const auto& e : entries) {
            if ((e.principal != principal && e.principal != "User:*") || (e.host != host && e.host != acl_wildcard)) {
                continue;
            }
            if (e.permission == acl_permission::deny) {
                denied |= e.operation == op || e.operation == acl_operation::all;
            } else if (e.permission == acl_permission::allow) {
                allow |= allow_implies(e.operation, op);
            }
        }
    };
    for (const auto* l : literal) {
        if (l) {
            look(*l);
        }
    }
    for (auto len : t.prefix_lengths) {
        if (len > name.size()) {
            break;
        }
        if (auto it = t.prefixed.find(name.substr(0, len)); it != t.prefixed.end()) {
            look(it->second);
        }
    }
    if (!any) {
        return options.allow_everyone_if_no_acl_found;
    }
    return !denied && allow;
}

bool acl_set::allowed_on_some(const acl_options& options, std::string_view principal, std::string_view host,
                              acl_operation op, resource_type type) const {
    if (std::find(options.super_users.begin(), options.super_users.end(), principal) != options.super_users.end()) {
        return true;
    }
    bool any_of_type = false;
    bool allow = false;
    for (const auto& b : _bindings) {
        if (b.type != type) {
            continue;
        }
        any_of_type = true;
        if ((b.principal != principal && b.principal != "User:*") || (b.host != host && b.host != acl_wildcard)) {
            continue;
        }
        if (b.permission == acl_permission::deny && b.pattern == pattern_type::literal && b.name == acl_wildcard
            && (b.operation == op || b.operation == acl_operation::all)) {
            return false;
        }
        allow |= b.permission == acl_permission::allow && allow_implies(b.operation, op);
    }
    return allow || (!any_of_type && options.allow_everyone_if_no_acl_found);
}

// -- acl_store -------------------------------------------------------------------------------

acl_store::acl_store(std::filesystem::path file, acl_options options)
  : _file(std::move(file)), _options(std::move(options)), _set(std::make_shared<const acl_set>()),
    _generation(generations().fetch_add(1) + 1) {}

acl_store::~acl_store() = default;

std::filesystem::path acl_store::file_in(const std::filesystem::path& data_dir) { return data_dir / "security" / "acls"; }

result<void> acl_store::load(std::string& why) {
    std::lock_guard lock(_mu);
    return load_locked(why);
}

result<void> acl_store::load_locked(std::string& why) {
    auto got = _file.read(max_acl_file_bytes, why);
    if (!got) {
        return got.error();
    }
    std::vector<acl_binding> next;
    if (got.value().text) {
        auto parsed = for_each_record(*got.value().text, _file.path(), why,
                                      [&](const std::vector<std::string_view>& f) -> std::optional<std::string> {
            if (f.size() != 7) {
                return "expected 7 tab-separated fields";
            }
            auto type = parse_resource_type(f[0]);
            auto pattern = parse_pattern_type(f[1]);
            auto name = text::percent_decode(f[2]);
            auto principal = text::percent_decode(f[3]);
            auto host = text::percent_decode(f[4]);
            auto op = parse_acl_operation(f[5]);
            auto perm = parse_acl_permission(f[6]);
            if (!type || !pattern || !name || !principal || !host || !op || !perm) {
                return "a field is not a known name or not escaped right";
            }
            acl_binding b{*type, std::move(*name), *pattern, std::move(*principal), std::move(*host), *op, *perm};
            if (auto w = b.invalid()) {
                return w;
            }
            next.push_back(std::move(b));
            return std::nullopt;
        });
        if (!parsed) {
            return parsed.error();
        }
    }
    publish_locked(std::move(next));
    _file.seen(got.value().at);
    return outcome::success();
}

void acl_store::publish_locked(std::vector<acl_binding> bindings) {
    _set = std::make_shared<const acl_set>(std::move(bindings));
    _generation.store(generations().fetch_add(1) + 1, std::memory_order_release);
}

void acl_store::refresh_locked() {
    if (!_file.changed()) {
        return;
    }
    std::string why;
    if (!load_locked(why)) {
        // Keep what was read before: a half-edited file must neither open nor close everything.
        static logging::rate_limit limit(std::chrono::seconds(10));
        log_limited(limit, acl_log(), spdlog::level::err, "keeping the previous ACLs: {}", why);
    }
}

void acl_store::refresh() {
    std::lock_guard lock(_mu);
    refresh_locked();
}

std::shared_ptr<const acl_set> acl_store::snapshot() const {
    std::lock_guard lock(_mu);
    return _set;
}

bool acl_store::is_super_user(std::string_view principal) const {
    return std::find(_options.super_users.begin(), _options.super_users.end(), principal) != _options.super_users.end();
}

bool acl_store::allowed(std::string_view principal, std::string_view host, acl_operation op, resource_type type,
                        std::string_view name) const {
    // Each thread keeps the snapshot it used last; the lock is taken only when it is stale.
    struct cached {
        uint64_t generation = 0;
        std::shared_ptr<const acl_set> set;
    };
    thread_local cached cache;
    const auto g = _generation.load(std::memory_order_acquire);
    if (cache.generation != g || !cache.set) {
        cache.set = snapshot();
        cache.generation = g;
    }
    return cache.set->allowed(_options, principal, host, op, type, name);
}

bool acl_store::allowed_on_some(std::string_view principal, std::string_view host, acl_operation op,
                                resource_type type) const {
    return snapshot()->allowed_on_some(_options, principal, host, op, type);
}

result<void> acl_store::save_locked(std::vector<acl_binding> next, std::string& why) {
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    std::string text = "# ACLs: resource type, pattern type, name, principal, host, operation, permission (runnel acl)\n";
    for (const auto& b : next) {
        text += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", name_of(b.type), name_of(b.pattern), escape(b.name),
                            escape(b.principal), escape(b.host), name_of(b.operation), name_of(b.permission));
    }
    if (auto r = _file.write(text, why); !r) {
        return r.error();
    }
    publish_locked(std::move(next));
    return outcome::success();
}

result<void> acl_store::add(const std::vector<acl_binding>& bindings, std::string& why) {
    std::lock_guard lock(_mu);
    refresh_locked();
    auto next = _set->bindings();
    next.insert(next.end(), bindings.begin(), bindings.end());
    return save_locked(std::move(next), why);
}

result<std::vector<std::vector<acl_binding>>> acl_store::remove(const std::vector<acl_filter>& filters,
                                                                std::string& why) {
    std::lock_guard lock(_mu);
    refresh_locked();
    std::vector<std::vector<acl_binding>> matched(filters.size());
    std::vector<acl_binding> keep;
    bool removed = false;
    for (const auto& b : _set->bindings()) {
        bool hit = false;
        for (std::size_t i = 0; i < filters.size(); ++i) {
            if (filters[i].matches(b)) {
                matched[i].push_back(b);
                hit = true;
            }
        }
        if (hit) {
            removed = true;
        } else {
            keep.push_back(b);
        }
    }
    if (removed) {
        if (auto r = save_locked(std::move(keep), why); !r) {
            return r.error();
        }
    }
    return matched;
}

std::vector<acl_binding> acl_store::list(const acl_filter& filter) const {
    auto set = snapshot();
    std::vector<acl_binding> out;
    for (const auto& b : set->bindings()) {
        if (filter.matches(b)) {
            out.push_back(b);
        }
    }
    return out;
}

void acl_store::add_async(std::vector<acl_binding> bindings, executor& reply_to, std::function<void(change_result)> done) {
    _writer.run([this, bindings = std::move(bindings), &reply_to, done = std::move(done)]() mutable {
        change_result out;
        out.status = add(bindings, out.why);
        reply_to.post([out = std::move(out), done = std::move(done)]() mutable { done(std::move(out)); });
    });
}

void acl_store::remove_async(std::vector<acl_filter> filters, executor& reply_to,
                             std::function<void(change_result)> done) {
    _writer.run([this, filters = std::move(filters), &reply_to, done = std::move(done)]() mutable {
        change_result out;
        auto r = remove(filters, out.why);
        if (r) {
            out.removed = std::move(r.value());
        } else {
            out.status = r.error();
        }
        reply_to.post([out = std::move(out), done = std::move(done)]() mutable { done(std::move(out)); });
    });
}

} // namespace runnel::security
