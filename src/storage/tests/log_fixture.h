#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "storage/storage.h"

namespace runnel::storage::testing {

/// A deterministic batch: its records' values are derived from `seed`, so a test can
/// regenerate the bytes it expects. Timestamps are `ts` for every record unless given.
inline model::record_batch make_batch(uint64_t seed, std::size_t value_bytes, int records = 1,
                                      std::vector<int64_t> timestamps = {}) {
    std::mt19937_64 rng(seed);
    model::record_batch_builder b;
    for (int r = 0; r < records; ++r) {
        std::string value(value_bytes, '\0');
        for (auto& c : value) {
            c = static_cast<char>('a' + rng() % 26);
        }
        auto ts = timestamps.empty() ? int64_t(1'700'000'000'000) + static_cast<int64_t>(seed)
                                     : timestamps[static_cast<std::size_t>(r)];
        b.add(fmt::format("key-{}-{}", seed, r), value, model::event_time(ts));
    }
    return b.build();
}

/// A temporary directory, a manual executor standing in for a shard, and a flusher thread.
class log_fixture : public ::testing::Test {
protected:
    void SetUp() override {
        auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        _dir = std::filesystem::temp_directory_path()
               / fmt::format("runnel-{}-{}-{}", info->test_suite_name(), info->name(), ::getpid());
        std::filesystem::remove_all(_dir);
        std::filesystem::create_directories(_dir);
    }
    void TearDown() override {
        drain();
        std::filesystem::remove_all(_dir);
    }

    /// Waits until every job queued on the flusher so far has run (they run in order).
    void drain() {
        bool drained = false;
        _flusher.submit([] { return result<void>(ok()); },
                        [this, &drained](result<void>) { _exec.post([&drained] { drained = true; }); });
        EXPECT_TRUE(_exec.run_until([&] { return drained; }));
    }

    std::filesystem::path dir(const std::string& sub = "p0") const { return _dir / sub; }

    std::shared_ptr<partition_log> open(log_config cfg = {}, const std::string& sub = "p0") {
        auto r = partition_log::open(dir(sub), cfg, _exec, _flusher);
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        return r ? r.value() : nullptr;
    }

    /// Opens a log in any directory (default settings).
    std::shared_ptr<partition_log> partition_log_open(const std::filesystem::path& path, log_config cfg = {}) {
        auto r = partition_log::open(path, cfg, _exec, _flusher);
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        return r ? r.value() : nullptr;
    }

    /// Waits for a flush of `log` and returns its outcome.
    result<void> flush(partition_log& log) {
        std::optional<result<void>> out;
        log.flush([&](result<void> r) { out = r; });
        EXPECT_TRUE(_exec.run_until([&] { return out.has_value(); }));
        return out.value_or(result<void>(errc::closed));
    }

    result<void> close(partition_log& log) {
        std::optional<result<void>> out;
        log.close([&](result<void> r) { out = r; });
        EXPECT_TRUE(_exec.run_until([&] { return out.has_value(); }));
        return out.value_or(result<void>(errc::closed));
    }

    /// Reads every batch from `start` to the end. An error fails the test unless `error` is
    /// given to receive it.
    std::vector<std::vector<std::byte>> read_all(partition_log& log, model::offset start,
                                                 std::size_t max_bytes = 1 << 20,
                                                 std::optional<std::error_code>* error = nullptr) {
        std::vector<std::vector<std::byte>> batches;
        while (start < log.next_offset()) {
            auto r = log.read(start, max_bytes);
            if (!r && error) {
                *error = r.error();
                break;
            }
            EXPECT_TRUE(r) << r.error().message();
            if (!r || r.value().batches == 0) {
                break;
            }
            auto bytes = r.value().bytes.span();
            while (!bytes.empty()) {
                auto h = model::validate_batch(bytes);
                EXPECT_TRUE(h);
                if (!h) {
                    return batches;
                }
                batches.emplace_back(bytes.begin(), bytes.begin() + static_cast<long>(h.value().size_bytes()));
                bytes = bytes.subspan(h.value().size_bytes());
            }
            start = r.value().next_offset;
        }
        return batches;
    }

    std::filesystem::path _dir;
    manual_executor _exec;
    flusher _flusher{"test-flusher"};
};

inline std::vector<std::byte> bytes_of(const model::record_batch& b) {
    return {b.bytes().begin(), b.bytes().end()};
}

/// The .log files of a partition directory, oldest first.
inline std::vector<std::filesystem::path> segment_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().extension() == ".log") {
            out.push_back(e.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// The value of a fault counter of the process registry (`/metrics`), by name and labels.
inline uint64_t fault_count(const std::string& name, std::vector<std::string> label_names = {},
                            std::vector<std::string> label_values = {}) {
    return metrics::default_registry().counters(name, "", std::move(label_names)).with(label_values).value();
}

} // namespace runnel::storage::testing
