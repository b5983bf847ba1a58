#pragma once

// Which settings hold secrets, decided once for every place that shows settings: SQL text,
// connector errors, logs, answers and /metrics show a secret's value as `masked`.

#include <string_view>

namespace runnel::text {

/// What a secret's value is shown as (as Flink shows it).
inline constexpr std::string_view masked = "******";

/// True for a setting whose value is a secret and must never be shown: any key that names a
/// password, a secret, a JAAS configuration, an inline private key (`ssl.key.pem`), an OAUTHBEARER
/// configuration or an API key — the keys Flink masks, so that a secret of a client library
/// that Runnel does not know by name (`properties.<key>`) is masked too. Ignores case.
bool secret_key(std::string_view key);

} // namespace runnel::text
