#include "security/credentials.h"

#include <charconv>

#include "base/logging.h"
#include "base/text.h"

namespace runnel::security {
namespace {

spdlog::logger& lg() { return logging::get("security"); }

constexpr std::size_t max_file_bytes = 64 * 1024 * 1024;

} // namespace

credential_store::credential_store(std::filesystem::path file) : _file(std::move(file)) {}

std::filesystem::path credential_store::file_in(const std::filesystem::path& data_dir) {
    return data_dir / "security" / "scram-credentials";
}

bool credential_store::valid_user_name(std::string_view user, std::string& why) {
    if (user.empty() || user.size() > 255) {
        why = "a user name has 1 to 255 bytes";
        return false;
    }
    for (unsigned char c : user) {
        if (c < 0x20 || c == 0x7f) {
            why = "a user name has no control characters";
            return false;
        }
    }
    if (!text::valid_utf8(user)) {
        why = "a user name is UTF-8";
        return false;
    }
    return true;
}

result<void> credential_store::load(std::string& why) {
    std::lock_guard lock(_mu);
    return load_locked(why);
}

result<void> credential_store::load_locked(std::string& why) {
    auto got = _file.read(max_file_bytes, why);
    if (!got) {
        return got.error();
    }
    std::map<key, scram_credential> next;
    if (got.value().text) {
        auto parsed = for_each_record(*got.value().text, _file.path(), why,
                                      [&](const std::vector<std::string_view>& fields) -> std::optional<std::string> {
            if (fields.size() != 6) {
                return "expected 6 tab-separated fields";
            }
            std::string user_why;
            if (!valid_user_name(fields[0], user_why)) {
                return user_why;
            }
            auto m = parse_mechanism(fields[1]);
            if (!m || !is_scram(*m)) {
                return "unknown SCRAM mechanism";
            }
            scram_credential c;
            c.mech = *m;
            auto [p, e] = std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), c.iterations);
            if (e != std::errc() || p != fields[2].data() + fields[2].size() || c.iterations < min_scram_iterations
                || c.iterations > max_scram_iterations) {
                return "iterations not a number within bounds";
            }
            auto salt = text::base64_decode(fields[3]);
            auto stored = text::base64_decode(fields[4]);
            auto server = text::base64_decode(fields[5]);
            if (!salt || !stored || !server || salt->empty()) {
                return "salt or key not base64";
            }
            c.salt = std::move(*salt);
            c.stored_key = std::move(*stored);
            c.server_key = std::move(*server);
            next[{std::string(fields[0]), *m}] = std::move(c);
            return std::nullopt;
        });
        if (!parsed) {
            return parsed.error();
        }
    }
    _creds = std::move(next);
    _file.seen(got.value().at);
    return outcome::success();
}

void credential_store::refresh_locked() {
    if (!_file.changed()) {
        return;
    }
    std::string why;
    if (!load_locked(why)) {
        // Keep what was read before: a half-edited file must not lock every user out.
        static logging::rate_limit limit(std::chrono::seconds(10));
        log_limited(limit, lg(), spdlog::level::err, "keeping the previous SCRAM credentials: {}", why);
    }
}

std::optional<scram_credential> credential_store::find(std::string_view user, mechanism m) {
    std::lock_guard lock(_mu);
    refresh_locked();
    auto it = _creds.find({std::string(user), m});
    if (it == _creds.end()) {
        return std::nullopt;
    }
    return it->second;
}

result<void> credential_store::save_locked(const std::map<key, scram_credential>& next, std::string& why) {
    std::string text = "# SCRAM credentials: user, mechanism, iterations, salt, StoredKey, ServerKey (base64)\n";
    for (const auto& [k, c] : next) {
        text += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\n", k.first, mechanism_name(k.second), c.iterations,
                            text::base64_encode(c.salt), text::base64_encode(c.stored_key), text::base64_encode(c.server_key));
    }
    if (auto r = _file.write(text, why); !r) {
        return r.error();
    }
    _creds = next;
    return outcome::success();
}

result<void> credential_store::set(const std::string& user, const scram_credential& c, std::string& why) {
    if (!valid_user_name(user, why)) {
        return std::make_error_code(std::errc::invalid_argument);
    }
    std::lock_guard lock(_mu);
    refresh_locked();
    auto next = _creds;
    next[{user, c.mech}] = c;
    return save_locked(next, why);
}

result<bool> credential_store::remove(const std::string& user, std::optional<mechanism> m, std::string& why) {
    std::lock_guard lock(_mu);
    refresh_locked();
    auto next = _creds;
    bool removed = false;
    for (auto it = next.begin(); it != next.end();) {
        if (it->first.first == user && (!m || it->first.second == *m)) {
            it = next.erase(it);
            removed = true;
        } else {
            ++it;
        }
    }
    if (!removed) {
        return false;
    }
    if (auto r = save_locked(next, why); !r) {
        return r.error();
    }
    return true;
}

std::map<std::string, std::vector<std::pair<mechanism, int32_t>>> credential_store::list() {
    std::lock_guard lock(_mu);
    refresh_locked();
    std::map<std::string, std::vector<std::pair<mechanism, int32_t>>> out;
    for (const auto& [k, c] : _creds) {
        out[k.first].emplace_back(k.second, c.iterations);
    }
    return out;
}

result<std::vector<credential_store::change_outcome>> credential_store::alter(const std::vector<change>& changes,
                                                                               std::string& why) {
    std::lock_guard lock(_mu);
    refresh_locked();
    auto next = _creds;
    std::vector<change_outcome> out;
    out.reserve(changes.size());
    for (const auto& c : changes) {
        if (c.credential) {
            if (!valid_user_name(c.user, why)) {
                return std::make_error_code(std::errc::invalid_argument);
            }
            next[{c.user, c.mech}] = *c.credential;
            out.push_back(change_outcome::applied);
        } else {
            out.push_back(next.erase(key{c.user, c.mech}) > 0 ? change_outcome::applied : change_outcome::not_found);
        }
    }
    if (next != _creds) {
        if (auto r = save_locked(next, why); !r) {
            return r.error();
        }
    }
    return out;
}

void credential_store::alter_async(std::vector<change> changes, executor& reply_to,
                                   std::function<void(result<std::vector<change_outcome>>, std::string)> done) {
    _writer.run([this, changes = std::move(changes), &reply_to, done = std::move(done)]() mutable {
        std::string why;
        auto r = alter(changes, why);
        reply_to.post([r = std::move(r), why = std::move(why), done = std::move(done)]() mutable {
            done(std::move(r), std::move(why));
        });
    });
}

} // namespace runnel::security
