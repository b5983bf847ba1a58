#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/base.h"
#include "security/data_file.h"

namespace runnel::security {

// Kafka's ACL vocabulary, with Kafka's wire codes (org.apache.kafka.common.resource and .acl).

enum class resource_type : int8_t {
    unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactional_id = 5, delegation_token = 6, user = 7,
};
enum class pattern_type : int8_t { unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4 };
enum class acl_operation : int8_t {
    unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, remove = 6, alter = 7, describe = 8,
    cluster_action = 9, describe_configs = 10, alter_configs = 11, idempotent_write = 12, create_tokens = 13,
    describe_tokens = 14,
};
enum class acl_permission : int8_t { unknown = 0, any = 1, deny = 2, allow = 3 };

inline constexpr int resource_type_count = 8;
inline constexpr int acl_operation_count = 15;

/// The one name a CLUSTER resource has.
inline constexpr std::string_view cluster_resource_name = "kafka-cluster";
/// A LITERAL resource name, principal or host that matches every one.
inline constexpr std::string_view acl_wildcard = "*";

/// Kafka's upper-case names (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, `ALLOW`); parsing also
/// takes lower case and `-` for `_` (`transactional-id`).
std::string_view name_of(resource_type t) noexcept;
std::string_view name_of(pattern_type t) noexcept;
std::string_view name_of(acl_operation o) noexcept;
std::string_view name_of(acl_permission p) noexcept;
std::optional<resource_type> parse_resource_type(std::string_view s) noexcept;
std::optional<pattern_type> parse_pattern_type(std::string_view s) noexcept;
std::optional<acl_operation> parse_acl_operation(std::string_view s) noexcept;
std::optional<acl_permission> parse_acl_permission(std::string_view s) noexcept;

/// One ACL: who (principal `User:name` or `User:*`, from host or `*`) may or may not do what
/// (an operation) on which resources (a type and a LITERAL or PREFIXED name pattern).
struct acl_binding {
    resource_type type = resource_type::topic;
    std::string name;
    pattern_type pattern = pattern_type::literal;
    std::string principal;
    std::string host = "*";
    acl_operation operation = acl_operation::all;
    acl_permission permission = acl_permission::allow;

    auto operator<=>(const acl_binding&) const = default;
    /// Why Kafka would refuse to store it (INVALID_REQUEST), or nothing when it is valid.
    std::optional<std::string> invalid() const;
    /// `User:alice has ALLOW on READ from host * for TOPIC LITERAL orders`, for logs and the CLI.
    std::string to_string() const;
};

/// Selects bindings as DescribeAcls and DeleteAcls do: ANY, or an unset field, matches every
/// value; pattern MATCH selects the bindings that would apply to the named resource (the
/// LITERAL name, the LITERAL `*`, and PREFIXED patterns the name starts with).
struct acl_filter {
    resource_type type = resource_type::any;
    std::optional<std::string> name;
    pattern_type pattern = pattern_type::any;
    std::optional<std::string> principal;
    std::optional<std::string> host;
    acl_operation operation = acl_operation::any;
    acl_permission permission = acl_permission::any;

    bool matches(const acl_binding& b) const;
    /// Why the filter cannot be used (an UNKNOWN field), or nothing.
    std::optional<std::string> invalid() const;
};

/// What callers of the authorizer need: may `principal`, connected from `host` (an address
/// without decoration, `127.0.0.1`), do `op` on the resource? The Kafka listener asks it for
/// every resource a request touches; the HTTP gateway may ask the same one.
class authorizer {
public:
    virtual ~authorizer() = default;
    virtual bool allowed(std::string_view principal, std::string_view host, acl_operation op, resource_type type,
                         std::string_view name) const = 0;
};

/// `super.users` and `allow.everyone.if.no.acl.found`, as Kafka's authorizer takes them.
struct acl_options {
    std::vector<std::string> super_users;
    bool allow_everyone_if_no_acl_found = false;
};

/// An immutable set of bindings indexed for lookups: by resource type, then LITERAL name in a
/// hash map, and PREFIXED patterns in a hash map probed only at the prefix lengths some
/// pattern has. Pure; safe to share between threads once built.
class acl_set {
public:
    acl_set() = default;
    explicit acl_set(std::vector<acl_binding> bindings);

    /// Kafka's rule: a super user may do everything; otherwise a DENY for the operation (or
    /// ALL) that matches principal and host wins; otherwise an ALLOW for the operation, ALL, or
    /// an operation implying it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
    /// implies DESCRIBE_CONFIGS) allows; a resource that no binding names at all is allowed
    /// only with `allow_everyone_if_no_acl_found`.
    bool allowed(const acl_options& options, std::string_view principal, std::string_view host, acl_operation op,
                 resource_type type, std::string_view name) const;

    /// Whether some resource of `type` allows `op` to the principal (Kafka's authorization
    /// by resource type, as an idempotent producer's WRITE on any topic): an ALLOW binding of
    /// that type applies and no DENY on every resource (the LITERAL `*`) does.
    bool allowed_on_some(const acl_options& options, std::string_view principal, std::string_view host,
                         acl_operation op, resource_type type) const;

    /// Every binding, sorted.
    const std::vector<acl_binding>& bindings() const noexcept { return _bindings; }

private:
    struct entry {
        std::string principal;
        std::string host;
        acl_operation operation;
        acl_permission permission;
    };
    struct hash : std::hash<std::string_view> {
        using is_transparent = void;
    };
    using entry_map = std::unordered_map<std::string, std::vector<entry>, hash, std::equal_to<>>;
    struct by_type {
        entry_map literal;
        entry_map prefixed;
        std::vector<std::size_t> prefix_lengths; ///< distinct, ascending
    };

    std::vector<acl_binding> _bindings;
    std::array<by_type, resource_type_count> _types;
};

/// The ACLs of a server: `DATA_DIR/security/acls`, one binding per line (resource type,
/// pattern type, name, principal, host, operation, permission; tab-separated, names escaped),
/// and the authorizer over them.
///
/// Shared by every shard. `allowed` is lock-free on the hot path: each thread keeps the
/// snapshot it last used and only takes the lock when the store's generation moved. Changes
/// (`add`, `remove`) write the whole file atomically (temporary file, fsync, rename) under a
/// mutex, then publish a new snapshot; `refresh` rereads the file when another process (`runnel
/// acl` on the data directory) changed it. `add_async` and `remove_async` run a change on the
/// store's own writer thread, so a shard's loop never waits for the disk, and post the
/// outcome to the caller's executor.
class acl_store final : public authorizer {
public:
    acl_store(std::filesystem::path file, acl_options options);
    ~acl_store() override;
    acl_store(const acl_store&) = delete;
    acl_store& operator=(const acl_store&) = delete;

    /// The file under a data directory.
    static std::filesystem::path file_in(const std::filesystem::path& data_dir);

    /// Reads the file; a missing file is no ACLs. `why` names the bad line.
    result<void> load(std::string& why);
    /// Rereads the file when its modification time or size changed; a bad file keeps the
    /// bindings read before (and logs why, at a bounded rate).
    void refresh();

    bool allowed(std::string_view principal, std::string_view host, acl_operation op, resource_type type,
                 std::string_view name) const override;
    bool is_super_user(std::string_view principal) const;
    /// `acl_set::allowed_on_some` over the current bindings.
    bool allowed_on_some(std::string_view principal, std::string_view host, acl_operation op, resource_type type) const;

    /// Adds the bindings (already valid) and writes the file; bindings present already are
    /// kept once.
    result<void> add(const std::vector<acl_binding>& bindings, std::string& why);
    /// Removes every binding some filter matches and writes the file; returns, per filter, the
    /// bindings it matched.
    result<std::vector<std::vector<acl_binding>>> remove(const std::vector<acl_filter>& filters, std::string& why);
    /// The bindings `filter` matches, sorted.
    std::vector<acl_binding> list(const acl_filter& filter) const;

    /// Outcome of an asynchronous change: the error and why, or the removed bindings.
    struct change_result {
        result<void> status = outcome::success();
        std::string why;
        std::vector<std::vector<acl_binding>> removed;
    };
    void add_async(std::vector<acl_binding> bindings, executor& reply_to, std::function<void(change_result)> done);
    void remove_async(std::vector<acl_filter> filters, executor& reply_to, std::function<void(change_result)> done);

private:
    std::shared_ptr<const acl_set> snapshot() const;
    result<void> load_locked(std::string& why);
    result<void> save_locked(std::vector<acl_binding> next, std::string& why);
    void refresh_locked();
    void publish_locked(std::vector<acl_binding> bindings);

    data_file _file;
    acl_options _options;
    mutable std::mutex _mu;
    std::shared_ptr<const acl_set> _set; ///< under `_mu`
    std::atomic<uint64_t> _generation;   ///< process-wide unique per published snapshot

    writer_thread _writer; ///< runs the asynchronous changes; last, so it stops first
};

} // namespace runnel::security
