#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/base.h"
#include "security/data_file.h"
#include "security/scram.h"

namespace runnel::security {

/// The SCRAM credentials of every user: `DATA_DIR/security/scram-credentials`, one line per
/// user and mechanism (`user  mechanism  iterations  salt  StoredKey  ServerKey`, tab-separated,
/// binary fields in base64). Passwords are never stored.
///
/// Shared by every shard: methods lock a mutex. `find` rereads the file when its modification
/// time or size changed, so users that `runnel user create` adds or removes in the data
/// directory take effect on the next authentication without a restart. Changes write the whole
/// file atomically (temporary file, fsync, rename); `alter_async` (AlterUserScramCredentials)
/// runs them on the store's writer thread.
class credential_store {
public:
    explicit credential_store(std::filesystem::path file);
    credential_store(const credential_store&) = delete;
    credential_store& operator=(const credential_store&) = delete;

    /// The file under a data directory.
    static std::filesystem::path file_in(const std::filesystem::path& data_dir);

    /// Reads the file; a missing file is no users. `why` names the bad line.
    result<void> load(std::string& why);

    /// The user's credential for `m` (a SCRAM mechanism), rereading a changed file first.
    std::optional<scram_credential> find(std::string_view user, mechanism m);

    /// Adds or replaces a credential and writes the file.
    result<void> set(const std::string& user, const scram_credential& c, std::string& why);
    /// Removes the user's credential for `m`, or all of them when `m` is unset. False when
    /// there was none.
    result<bool> remove(const std::string& user, std::optional<mechanism> m, std::string& why);

    /// One change of `alter`: store `credential` for the user, or remove the user's credential
    /// for `mech` when it is unset.
    struct change {
        std::string user;
        mechanism mech = mechanism::scram_sha_512;
        std::optional<scram_credential> credential;
    };
    /// Applies `changes` together and writes the file once. Per change: nothing when applied,
    /// or `not_found` for the removal of a credential that does not exist (the others still
    /// apply). A failed write applies none (`why`).
    enum class change_outcome : uint8_t { applied, not_found };
    result<std::vector<change_outcome>> alter(const std::vector<change>& changes, std::string& why);
    /// `alter` on the store's writer thread, so a shard's loop never waits for the disk; the
    /// outcome is posted to `reply_to`.
    void alter_async(std::vector<change> changes, executor& reply_to,
                     std::function<void(result<std::vector<change_outcome>>, std::string why)> done);

    /// Every user with the mechanisms and iteration counts of its credentials.
    std::map<std::string, std::vector<std::pair<mechanism, int32_t>>> list();

    /// User names are 1..255 bytes of UTF-8 without control characters.
    static bool valid_user_name(std::string_view user, std::string& why);

private:
    using key = std::pair<std::string, mechanism>;
    result<void> load_locked(std::string& why);
    result<void> save_locked(const std::map<key, scram_credential>& next, std::string& why);
    void refresh_locked();

    data_file _file;
    std::mutex _mu;
    std::map<key, scram_credential> _creds;
    writer_thread _writer; ///< runs `alter_async`; last, so it stops first
};

} // namespace runnel::security
