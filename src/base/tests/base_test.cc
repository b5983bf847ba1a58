#include "base/base.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace runnel {
namespace {

using offset_like = named_type<int64_t, struct offset_like_tag>;

TEST(named_type, arithmetic_and_ordering) {
    offset_like a(5);
    offset_like b = a + 3;
    EXPECT_EQ(b(), 8);
    EXPECT_EQ(b - a, 3);
    EXPECT_LT(a, b);
    ++a;
    EXPECT_EQ(a, offset_like(6));
    EXPECT_EQ(fmt::format("{}", b), "8");
    static_assert(!std::is_convertible_v<int64_t, offset_like>);
}

enum class sample_errc { ok = 0, broken = 1 };
const char* errc_message(sample_errc e) { return e == sample_errc::broken ? "it broke" : "ok"; }
RUNNEL_ERRC_ENUM(sample_errc);

} // namespace
} // namespace runnel

RUNNEL_ERRC_REGISTER(runnel::sample_errc, "sample");

namespace runnel {
namespace {

result<int> parse_positive(int v) {
    if (v <= 0) {
        return sample_errc::broken;
    }
    return v;
}

result<int> twice(int v) {
    RUNNEL_TRY(auto x, parse_positive(v));
    return 2 * x;
}

TEST(result, carries_values_and_module_errors) {
    EXPECT_EQ(twice(4).value(), 8);
    auto r = twice(-1);
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error(), sample_errc::broken);
    EXPECT_EQ(r.error().message(), "it broke");
    EXPECT_STREQ(r.error().category().name(), "sample");
    EXPECT_THROW((void)r.value(), std::system_error);
}

TEST(file_handle, atomic_write_pread_and_lock) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("runnel-base-{}", ::getpid());
    std::filesystem::create_directories(dir);
    auto path = dir / "state";
    auto payload = byte_buffer::copy_of(std::string_view("hello, runnel"));
    ASSERT_TRUE(write_file_atomic(path, payload.span()));
    EXPECT_FALSE(std::filesystem::exists(dir / "state.tmp"));

    auto f = file_handle::open(path, O_RDWR);
    ASSERT_TRUE(f);
    EXPECT_EQ(f.value().size().value(), payload.size());
    byte_buffer back(64);
    auto n = f.value().pread(back.span(), 7);
    ASSERT_TRUE(n);
    EXPECT_EQ(n.value(), 6u);
    EXPECT_EQ(std::memcmp(back.data(), "runnel", 6), 0);

    ASSERT_TRUE(f.value().try_lock());
    auto other = file_handle::open(path, O_RDWR);
    ASSERT_TRUE(other);
    EXPECT_FALSE(other.value().try_lock()); // flock locks are per open file description

    auto missing = file_handle::open(dir / "absent", O_RDONLY);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
    std::filesystem::remove_all(dir);
}

TEST(manual_executor, runs_tasks_posted_from_other_threads) {
    manual_executor ex;
    int ran = 0;
    std::thread t([&] {
        for (int i = 0; i < 100; ++i) {
            ex.post([&] { ++ran; });
        }
    });
    EXPECT_TRUE(ex.run_until([&] { return ran == 100; }));
    t.join();
    EXPECT_FALSE(ex.run_until([] { return false; }, std::chrono::milliseconds(10)));
}

TEST(backoff, doubles_from_first_to_most_and_resets) {
    backoff b(std::chrono::milliseconds(10), std::chrono::seconds(1));
    std::vector<int64_t> got;
    for (int i = 0; i < 9; ++i) {
        got.push_back(b.next().count());
    }
    EXPECT_EQ(got, (std::vector<int64_t>{10, 20, 40, 80, 160, 320, 640, 1000, 1000}));
    b.reset();
    EXPECT_EQ(b.next().count(), 10);
}

TEST(rate_limit, lets_a_burst_through_per_interval_and_counts_the_rest) {
    // An interval no test run outlasts: everything after the burst is held back.
    logging::rate_limit limit(std::chrono::hours(1), 2);
    uint64_t held = 99;
    EXPECT_TRUE(limit.allow(held));
    EXPECT_EQ(held, 0u);
    EXPECT_TRUE(limit.allow(held));
    for (int i = 0; i < 100000; ++i) {
        uint64_t h = 0;
        ASSERT_FALSE(limit.allow(h));
    }
    // A zero interval starts a new window at every call: the held-back count comes with it.
    logging::rate_limit every(std::chrono::milliseconds(0), 1);
    EXPECT_TRUE(every.allow(held));
    EXPECT_TRUE(every.allow(held));
    EXPECT_EQ(held, 0u);
}

TEST(rate_limit, a_line_after_held_back_ones_says_how_many) {
    logging::rate_limit limit(std::chrono::milliseconds(200), 1);
    uint64_t held = 0;
    ASSERT_TRUE(limit.allow(held));
    uint64_t h = 0;
    for (int i = 0; i < 5; ++i) {
        ASSERT_FALSE(limit.allow(h));
    }
    // Polls until the window has passed (no sleep: a deadline of 10 s).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!limit.allow(held)) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
        std::this_thread::yield();
    }
    EXPECT_GE(held, 5u); // the five above plus the polls that came too early
}

} // namespace
} // namespace runnel
