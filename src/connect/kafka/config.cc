// A table's `properties.*` options as a librdkafka configuration: Flink's (the Java client's)
// names translated, certificate files checked to be PEM, and everything checked by librdkafka
// itself when the pipeline is planned.

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include "base/secret.h"
#include "base/text.h"
#include "connect/kafka/kafka.h"

namespace runnel::connect {
namespace {

constexpr std::string_view prefix = "properties.";
/// Enough of a file to tell PEM from JKS or PKCS12 (a CA bundle is a few hundred KiB).
constexpr std::size_t max_sniff_bytes = 1u << 20;

std::error_code invalid() { return std::error_code(EINVAL, std::generic_category()); }

bool ends_with_ci(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && text::to_lower(s.substr(s.size() - tail.size())) == text::to_lower(tail);
}

/// The key=value options of one JAAS login module entry.
struct jaas_entry {
    std::string module;
    std::vector<std::pair<std::string, std::string>> options;
};

/// Parses `<class> <flag> key=value … ;` (values quoted with "…", `\` escaping the next
/// character, or bare words). Errors never repeat a value.
result<jaas_entry> parse_jaas(std::string_view t, std::string& why) {
    std::size_t i = 0;
    auto skip = [&] {
        while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
    };
    auto word = [&] {
        const std::size_t b = i;
        while (i < t.size() && !std::isspace(static_cast<unsigned char>(t[i])) && t[i] != '=' && t[i] != ';' &&
               t[i] != '"')
            ++i;
        return std::string(t.substr(b, i - b));
    };
    jaas_entry e;
    skip();
    e.module = word();
    if (e.module.empty()) {
        why = "it must start with a login module class, such as "
              "org.apache.kafka.common.security.scram.ScramLoginModule";
        return invalid();
    }
    skip();
    const auto flag = text::to_lower(word());
    if (flag != "required" && flag != "requisite" && flag != "sufficient" && flag != "optional") {
        why = fmt::format("the login module {} must be followed by a control flag (required)", e.module);
        return invalid();
    }
    for (;;) {
        skip();
        if (i >= t.size()) {
            why = "it must end with ';'";
            return invalid();
        }
        if (t[i] == ';') {
            ++i;
            skip();
            if (i != t.size()) {
                why = "it holds more than one login module entry; give one";
                return invalid();
            }
            return e;
        }
        auto key = word();
        skip();
        if (key.empty() || i >= t.size() || t[i] != '=') {
            why = fmt::format("expected key=value at character {}", i + 1);
            return invalid();
        }
        ++i;
        skip();
        std::string value;
        if (i < t.size() && t[i] == '"') {
            ++i;
            bool closed = false;
            while (i < t.size()) {
                char c = t[i++];
                if (c == '\\' && i < t.size()) {
                    value += t[i++];
                } else if (c == '"') {
                    closed = true;
                    break;
                } else {
                    value += c;
                }
            }
            if (!closed) {
                why = fmt::format("the value of {} has no closing '\"'", key);
                return invalid();
            }
        } else {
            value = word();
            if (value.empty()) {
                why = fmt::format("{} has no value", key);
                return invalid();
            }
        }
        for (const auto& [k, v] : e.options) {
            if (k == key) {
                why = fmt::format("{} is given twice", key);
                return invalid();
            }
        }
        e.options.emplace_back(std::move(key), std::move(value));
    }
}

/// Why the file at `path` (option `option`) is not a PEM file with what it must hold, or "".
std::string not_pem(const std::string& option, const std::string& path, bool need_key) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fmt::format("option '{}': cannot read '{}': {}", option, path, std::generic_category().message(errno));
    std::string head(max_sniff_bytes, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    head.resize(std::size_t(in.gcount()));
    const bool jks = head.size() >= 4 && static_cast<unsigned char>(head[0]) == 0xFE &&
                     static_cast<unsigned char>(head[1]) == 0xED && static_cast<unsigned char>(head[2]) == 0xFE &&
                     static_cast<unsigned char>(head[3]) == 0xED;
    const bool pem = head.find("-----BEGIN ") != std::string::npos;
    if (jks || ends_with_ci(path, ".jks")) {
        return fmt::format("option '{}': '{}' is a Java keystore (JKS), which Runnel's Kafka client cannot read; "
                           "give a PEM file instead (keytool -exportcert -rfc, or keytool -importkeystore to "
                           "PKCS12 and then openssl pkcs12 -nodes)",
                           option, path);
    }
    if (!pem) {
        const bool p12 = ends_with_ci(path, ".p12") || ends_with_ci(path, ".pfx") ||
                         (!head.empty() && static_cast<unsigned char>(head[0]) == 0x30);
        return fmt::format("option '{}': '{}' is {}, which Runnel's Kafka client does not read here; give a PEM "
                           "file instead{}",
                           option, path, p12 ? "a PKCS12 (or DER) file" : "not a PEM file",
                           p12 ? " (openssl pkcs12 -in FILE -nodes -out FILE.pem)" : "");
    }
    if (need_key && head.find("PRIVATE KEY-----") == std::string::npos) {
        return fmt::format("option '{}': '{}' holds no private key; a PEM keystore holds the client's certificate "
                           "and its private key",
                           option, path);
    }
    return {};
}

/// librdkafka's log lines of the probe client are not the operator's business.
void quiet_log(const rd_kafka_t*, int, const char*, const char*) {}

} // namespace

std::string kafka_client_config::get(std::string_view name) const {
    for (const auto& p : properties) {
        if (p.name == name) return p.value;
    }
    return {};
}

std::string kafka_client_config::mask(std::string message) const {
    for (const auto& s : secrets) {
        if (s.empty()) continue;
        for (auto at = message.find(s); at != std::string::npos; at = message.find(s, at + text::masked.size())) {
            message.replace(at, s.size(), text::masked);
        }
    }
    return message;
}

result<std::vector<std::pair<std::string, std::string>>> translate_jaas_config(std::string_view text,
                                                                               std::string_view mechanism,
                                                                               std::string& why) {
    auto e = parse_jaas(text, why);
    if (!e) return e.error();
    std::vector<std::pair<std::string, std::string>> out;
    auto take = [&](std::string_view key) -> const std::string* {
        for (const auto& [k, v] : e.value().options) {
            if (k == key) return &v;
        }
        return nullptr;
    };
    auto unknown = [&](std::initializer_list<std::string_view> known) -> bool {
        for (const auto& [k, v] : e.value().options) {
            if (std::find(known.begin(), known.end(), k) == known.end()) {
                why = fmt::format("the login module {} has no option '{}'", e.value().module, k);
                return true;
            }
        }
        return false;
    };
    const auto& module = e.value().module;
    const bool plain = module.ends_with(".PlainLoginModule") || module == "PlainLoginModule";
    const bool scram = module.ends_with(".ScramLoginModule") || module == "ScramLoginModule";
    const bool oauth = module.ends_with(".OAuthBearerLoginModule") || module == "OAuthBearerLoginModule";
    if (plain || scram) {
        if (unknown({"username", "password"})) return invalid();
        const auto* u = take("username");
        const auto* p = take("password");
        if (!u || !p) {
            why = fmt::format("the login module {} needs username=\"…\" and password=\"…\"", module);
            return invalid();
        }
        if (plain && !mechanism.empty() && mechanism != "PLAIN") {
            why = fmt::format("PlainLoginModule is for sasl.mechanism PLAIN, not {}", mechanism);
            return invalid();
        }
        if (scram && mechanism != "SCRAM-SHA-256" && mechanism != "SCRAM-SHA-512") {
            why = mechanism.empty() ? "ScramLoginModule needs 'properties.sasl.mechanism' SCRAM-SHA-256 or SCRAM-SHA-512"
                                    : fmt::format("ScramLoginModule is for sasl.mechanism SCRAM-SHA-256 or "
                                                  "SCRAM-SHA-512, not {}",
                                                  mechanism);
            return invalid();
        }
        if (plain && mechanism.empty()) out.emplace_back("sasl.mechanism", "PLAIN");
        out.emplace_back("sasl.username", *u);
        out.emplace_back("sasl.password", *p);
        return out;
    }
    if (oauth) {
        if (unknown({"unsecuredLoginStringClaim_sub", "clientId", "clientSecret", "scope"})) return invalid();
        if (!mechanism.empty() && mechanism != "OAUTHBEARER") {
            why = fmt::format("OAuthBearerLoginModule is for sasl.mechanism OAUTHBEARER, not {}", mechanism);
            return invalid();
        }
        if (mechanism.empty()) out.emplace_back("sasl.mechanism", "OAUTHBEARER");
        const auto* sub = take("unsecuredLoginStringClaim_sub");
        const auto* id = take("clientId");
        const auto* secret = take("clientSecret");
        if (sub && !id && !secret) {
            out.emplace_back("enable.sasl.oauthbearer.unsecure.jwt", "true");
            out.emplace_back("sasl.oauthbearer.config", "principal=" + *sub);
            return out;
        }
        if (id && secret && !sub) {
            out.emplace_back("sasl.oauthbearer.method", "oidc");
            out.emplace_back("sasl.oauthbearer.client.id", *id);
            out.emplace_back("sasl.oauthbearer.client.secret", *secret);
            if (const auto* scope = take("scope")) out.emplace_back("sasl.oauthbearer.scope", *scope);
            return out;
        }
        why = "OAuthBearerLoginModule needs either unsecuredLoginStringClaim_sub=\"…\" (an unsecured token) or "
              "clientId=\"…\" and clientSecret=\"…\" (OIDC, with 'properties.sasl.oauthbearer.token.endpoint.url')";
        return invalid();
    }
    why = fmt::format("the login module {} is not one Runnel's Kafka client understands (PlainLoginModule, "
                      "ScramLoginModule, OAuthBearerLoginModule)",
                      module);
    return invalid();
}

result<kafka_client_config> kafka_client_config_of(std::string_view table,
                                                   std::span<const std::pair<std::string, std::string>> options,
                                                   std::string& why) {
    kafka_client_config c;
    auto fail = [&](std::string message) -> result<kafka_client_config> {
        why = c.mask(fmt::format("table {}: {}", table, message));
        return invalid();
    };
    std::string mechanism;
    for (const auto& [k, v] : options) {
        if (k.starts_with(prefix) && text::secret_key(k)) c.secrets.push_back(v);
        if (k == "properties.sasl.mechanism") mechanism = text::to_upper(v);
    }
    auto add = [&](std::string name, std::string value, const std::string& option) {
        if (text::secret_key(name) && std::find(c.secrets.begin(), c.secrets.end(), value) == c.secrets.end()) {
            c.secrets.push_back(value);
        }
        c.properties.push_back({std::move(name), std::move(value), option});
    };
    for (const auto& [option, value] : options) {
        if (!option.starts_with(prefix) || option.size() == prefix.size()) continue;
        const std::string key = option.substr(prefix.size());
        if (key == "group.id" || key == "auto.offset.reset") continue; // the job's own
        if (key == "sasl.jaas.config") {
            std::string jwhy;
            auto t = translate_jaas_config(value, mechanism, jwhy);
            if (!t) return fail(fmt::format("option '{}': {}", option, jwhy));
            for (auto& [n, v] : t.value()) add(n, v, option);
        } else if (key == "ssl.truststore.location" || key == "ssl.ca.location") {
            if (key == "ssl.truststore.location" || value != "probe") {
                std::error_code ec;
                if (!std::filesystem::is_directory(value, ec)) {
                    if (auto bad = not_pem(option, value, false); !bad.empty()) return fail(bad);
                }
            }
            add("ssl.ca.location", value, option);
        } else if (key == "ssl.keystore.location") {
            if (auto bad = not_pem(option, value, true); !bad.empty()) return fail(bad);
            add("ssl.certificate.location", value, option);
            add("ssl.key.location", value, option);
        } else if (key == "ssl.certificate.location" || key == "ssl.key.location") {
            if (auto bad = not_pem(option, value, key == "ssl.key.location"); !bad.empty()) return fail(bad);
            add(key, value, option);
        } else if (key == "ssl.truststore.type" || key == "ssl.keystore.type") {
            if (text::to_upper(value) != "PEM") {
                return fail(fmt::format("option '{}': type '{}' cannot be read by Runnel's Kafka client; give PEM "
                                        "files (and type PEM, or no type)",
                                        option, value));
            }
        } else if (key == "ssl.truststore.password") {
            return fail(fmt::format("option '{}': a PEM truststore has no password; remove the option", option));
        } else if (key == "ssl.keystore.password") {
            return fail(fmt::format("option '{}': a PEM keystore has no store password; give the private key's "
                                    "password as 'properties.ssl.key.password'",
                                    option));
        } else if (key == "ssl.truststore.certificates") {
            add("ssl.ca.pem", value, option);
        } else if (key == "ssl.keystore.certificate.chain") {
            add("ssl.certificate.pem", value, option);
        } else if (key == "ssl.keystore.key") {
            add("ssl.key.pem", value, option);
        } else if (key == "ssl.endpoint.identification.algorithm") {
            add(key, value.empty() ? "none" : text::to_lower(value), option);
        } else if (key == "sasl.mechanism" || key == "sasl.mechanisms") {
            add("sasl.mechanism", text::to_upper(value), option);
        } else if (key == "security.protocol") {
            add(key, text::to_lower(value), option);
        } else {
            add(key, value, option);
        }
    }
    for (std::size_t i = 0; i < c.properties.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
            if (c.properties[i].name == c.properties[j].name) {
                return fail(fmt::format("options '{}' and '{}' both set the Kafka client's {}; give one",
                                        c.properties[j].option, c.properties[i].option, c.properties[i].name));
            }
        }
    }
    // librdkafka's own checks: each property, then a client made of them all (without
    // bootstrap servers, so it connects nowhere), which loads certificates and keys and checks
    // the SASL settings together.
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    char err[512];
    for (const auto& p : c.properties) {
        if (p.name == "bootstrap.servers") continue;
        if (rd_kafka_conf_set(conf, p.name.c_str(), p.value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            const bool renamed = p.option != std::string(prefix) + p.name;
            return fail(fmt::format("option '{}'{}: the Kafka client refuses it: {}", p.option,
                                    renamed ? fmt::format(" (as {})", p.name) : "", err));
        }
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf); // not taken on failure
        return fail(fmt::format("the Kafka client cannot start with these options: {}", err));
    }
    rd_kafka_destroy(rk);
    return c;
}

} // namespace runnel::connect
