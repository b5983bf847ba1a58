#include "security/principal.h"

#include <algorithm>
#include <cctype>

namespace runnel::security {

std::optional<std::vector<principal_rule>> parse_principal_rules(std::string_view text, std::string& why) {
    std::vector<principal_rule> rules;
    std::size_t i = 0;
    auto skip_separators = [&] {
        while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '\n' || text[i] == '\t')) {
            ++i;
        }
    };
    skip_separators();
    while (i < text.size()) {
        auto rest = text.substr(i);
        if (rest.starts_with("DEFAULT")) {
            rules.push_back(principal_rule{});
            i += 7;
        } else if (rest.starts_with("RULE:")) {
            // RULE:pattern/replacement/ then an optional L or U.
            auto p_end = rest.find('/', 5);
            auto r_end = p_end == std::string_view::npos ? p_end : rest.find('/', p_end + 1);
            if (r_end == std::string_view::npos) {
                why = "a rule is RULE:pattern/replacement/ with an optional L or U after it";
                return std::nullopt;
            }
            principal_rule r;
            r.is_default = false;
            try {
                r.pattern = std::regex(std::string(rest.substr(5, p_end - 5)), std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                why = "invalid pattern '" + std::string(rest.substr(5, p_end - 5)) + "': " + e.what();
                return std::nullopt;
            }
            r.replacement = std::string(rest.substr(p_end + 1, r_end - p_end - 1));
            i += r_end + 1;
            if (i < text.size() && (text[i] == 'L' || text[i] == 'U')) {
                r.case_change = text[i];
                ++i;
            }
            rules.push_back(std::move(r));
        } else {
            why = "expected DEFAULT or RULE:pattern/replacement/[LU] at '" + std::string(rest.substr(0, 20)) + "'";
            return std::nullopt;
        }
        if (i < text.size() && text[i] != ',' && text[i] != ' ' && text[i] != '\n' && text[i] != '\t') {
            why = "rules are separated by commas";
            return std::nullopt;
        }
        skip_separators();
    }
    if (rules.empty()) {
        rules.push_back(principal_rule{});
    }
    return rules;
}

std::optional<std::string> map_principal(const std::vector<principal_rule>& rules, const std::string& dn) {
    for (const auto& r : rules) {
        if (r.is_default) {
            return dn;
        }
        std::smatch m;
        if (!std::regex_match(dn, m, r.pattern)) {
            continue;
        }
        std::string out = m.format(r.replacement);
        if (r.case_change == 'L') {
            std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
        } else if (r.case_change == 'U') {
            std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
        }
        return out;
    }
    return std::nullopt;
}

} // namespace runnel::security
