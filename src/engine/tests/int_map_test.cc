#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "engine/int_map.h"

namespace runnel::engine {
namespace {

// Random finds, adds and erases against std::unordered_map, with keys that collide in the low
// bits, in the high bits, and at the ends of the range.
TEST(int_map, agrees_with_a_reference_map_under_random_adds_and_erases) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        std::vector<int64_t> pool;
        size_t distinct = 10 + rng() % 3000;
        for (size_t k = 0; k < distinct; ++k) {
            switch (rng() % 4) {
            case 0: pool.push_back(int64_t(k)); break;
            case 1: pool.push_back(int64_t(uint64_t(k) << 40)); break;
            case 2: pool.push_back(int64_t(rng())); break;
            default: pool.push_back(k % 2 ? INT64_MIN + int64_t(k) : INT64_MAX - int64_t(k)); break;
            }
        }
        int_map m;
        std::unordered_map<int64_t, uint32_t> ref;
        uint32_t next = 0;
        if (seed % 3 == 0) m.reserve(rng() % 5000);
        for (size_t op = 0; op < 20000; ++op) {
            int64_t k = pool[rng() % pool.size()];
            switch (rng() % 5) {
            case 0:
            case 1: {
                bool had = ref.count(k) != 0;
                uint32_t v = m.find_or_add(k, [&](int64_t key) {
                    EXPECT_EQ(key, k);
                    EXPECT_FALSE(had);
                    return next++;
                });
                if (!had) ref[k] = v;
                ASSERT_EQ(v, ref[k]) << "seed " << seed;
                break;
            }
            case 2: {
                std::vector<int64_t> ks(1 + rng() % 40);
                for (auto& x : ks) x = pool[rng() % pool.size()];
                std::vector<uint32_t> out(ks.size());
                m.find_or_add_all(ks.data(), ks.size(), out.data(), [&](int64_t) { return next++; });
                for (size_t i = 0; i < ks.size(); ++i) {
                    auto [it, added] = ref.try_emplace(ks[i], out[i]);
                    ASSERT_EQ(it->second, out[i]) << "seed " << seed;
                }
                break;
            }
            case 3:
                m.erase(k);
                ref.erase(k);
                break;
            default: {
                const uint32_t* v = m.find(k);
                auto it = ref.find(k);
                ASSERT_EQ(v != nullptr, it != ref.end()) << "seed " << seed;
                if (v) {
                    ASSERT_EQ(*v, it->second);
                }
            }
            }
            ASSERT_EQ(m.size(), ref.size()) << "seed " << seed;
        }
        size_t seen = 0;
        m.for_each([&](int64_t k, uint32_t v) {
            ++seen;
            ASSERT_EQ(ref.at(k), v);
        });
        EXPECT_EQ(seen, ref.size());
        m.clear();
        EXPECT_TRUE(m.empty());
        for (const auto& [k, v] : ref) EXPECT_EQ(m.find(k), nullptr);
    }
}

} // namespace
} // namespace runnel::engine
