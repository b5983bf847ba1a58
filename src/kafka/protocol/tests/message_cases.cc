#include "kafka/protocol/tests/message_cases.h"

namespace runnel::kafka::protocol::testing {

std::string hex(std::span<const std::byte> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(b.size() * 3);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i > 0) {
            out += ' ';
        }
        auto v = static_cast<uint8_t>(b[i]);
        out += digits[v >> 4];
        out += digits[v & 0xf];
    }
    return out;
}

} // namespace runnel::kafka::protocol::testing
