#include "base/base.h"

#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <random>
#include <vector>

namespace runnel {
namespace {

using extend_fn = uint32_t (*)(uint32_t, std::span<const std::byte>) noexcept;

class crc32c_test : public ::testing::TestWithParam<extend_fn> {
protected:
    uint32_t crc(std::span<const std::byte> b) const { return GetParam()(0, b); }
};

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int x : v) {
        out.push_back(static_cast<std::byte>(x));
    }
    return out;
}

// Check values published for CRC-32C: the "123456789" check value of the CRC catalogue and
// the test vectors of RFC 3720 (iSCSI), appendix B.4.
TEST_P(crc32c_test, published_check_values) {
    std::string_view check = "123456789";
    EXPECT_EQ(crc(std::as_bytes(std::span(check))), 0xe3069283u);

    std::vector<std::byte> zeros(32, std::byte{0});
    EXPECT_EQ(crc(zeros), 0x8a9136aau);
    std::vector<std::byte> ones(32, std::byte{0xff});
    EXPECT_EQ(crc(ones), 0x62a8ab43u);
    std::vector<std::byte> inc(32);
    std::vector<std::byte> dec(32);
    for (int i = 0; i < 32; ++i) {
        inc[i] = static_cast<std::byte>(i);
        dec[i] = static_cast<std::byte>(31 - i);
    }
    EXPECT_EQ(crc(inc), 0x46dd794eu);
    EXPECT_EQ(crc(dec), 0x113fdb5cu);

    auto iscsi_read = bytes_of({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
    EXPECT_EQ(crc(iscsi_read), 0xd9963a56u);
    EXPECT_EQ(crc({}), 0u);
}

TEST_P(crc32c_test, extend_equals_whole_at_every_split_and_alignment) {
    std::vector<std::byte> data(300);
    std::mt19937 rng(7);
    for (auto& b : data) {
        b = static_cast<std::byte>(rng());
    }
    const uint32_t whole = crc32c::extend_portable(0, data);
    for (std::size_t split = 0; split <= data.size(); ++split) {
        std::span<const std::byte> all(data);
        uint32_t c = GetParam()(0, all.first(split));
        c = GetParam()(c, all.subspan(split));
        ASSERT_EQ(c, whole) << "split at " << split;
    }
    for (std::size_t start = 0; start < 16; ++start) {
        std::span<const std::byte> part = std::span<const std::byte>(data).subspan(start);
        ASSERT_EQ(GetParam()(0, part), crc32c::extend_portable(0, part));
    }
}

std::string implementation_name(const ::testing::TestParamInfo<extend_fn>& info) {
    const char* names[] = {"portable", "hardware", "dispatch"};
    return names[info.index];
}

INSTANTIATE_TEST_SUITE_P(
  implementations,
  crc32c_test,
  ::testing::Values(&crc32c::extend_portable, &crc32c::extend_hardware, &crc32c::extend),
  implementation_name);

} // namespace
} // namespace runnel
