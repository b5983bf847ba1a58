#pragma once

#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace runnel::security {

/// One rule of Kafka's `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[L|U]` or
/// `DEFAULT` (the distinguished name unchanged).
struct principal_rule {
    bool is_default = true;
    std::regex pattern;
    std::string replacement;
    char case_change = 0; ///< 'L' lower, 'U' upper, 0 unchanged
};

/// Parses a comma-separated list of rules; empty text is `DEFAULT`. `why` says what is wrong.
std::optional<std::vector<principal_rule>> parse_principal_rules(std::string_view text, std::string& why);

/// The user name of a certificate subject (RFC 2253 form, "CN=app,OU=eng,O=corp"): the first
/// rule whose pattern matches the whole name applies. Nullopt when none does, which fails
/// the authentication as in Kafka.
std::optional<std::string> map_principal(const std::vector<principal_rule>& rules, const std::string& dn);

} // namespace runnel::security
