// A child process appends and flushes in a loop, reporting each flushed offset on a pipe;
// the parent kills it with SIGKILL at random moments, reopens the log and checks that every
// offset reported as flushed is there with identical bytes, and that the log reads cleanly
// to its end.

#include <gtest/gtest.h>

#include <csignal>
#include <poll.h>
#include <random>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/tests/log_fixture.h"

namespace runnel::storage {
namespace {

using model::offset;

log_config crash_config() {
    log_config cfg;
    cfg.segment_bytes = 256 << 10; // roll often, so kills also land around rolls
    cfg.index_interval_bytes = 1024;
    return cfg;
}

/// The batch the child appends at `base`: content is a function of its offset alone.
model::record_batch batch_at(offset base) {
    auto seed = static_cast<uint64_t>(base());
    auto size = 50 + (seed * 2654435761u) % 3000;
    return testing::make_batch(seed, size, 1 + static_cast<int>(seed % 3));
}

[[noreturn]] void child_main(const std::filesystem::path& dir, int report_fd) {
    manual_executor exec;
    flusher fl("crash-child");
    auto opened = partition_log::open(dir, crash_config(), exec, fl);
    if (!opened) {
        _exit(3);
    }
    auto log = opened.value();
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    for (;;) {
        // A few appends per flush, as concurrent producers would make.
        for (unsigned k = 1 + rng() % 6; k > 0; --k) {
            auto b = batch_at(log->next_offset());
            if (!log->append(b)) {
                _exit(4);
            }
        }
        bool flushed = false;
        log->flush([&](result<void> r) {
            if (!r) {
                _exit(5);
            }
            int64_t v = log->flushed_offset()();
            if (::write(report_fd, &v, sizeof(v)) != sizeof(v)) {
                _exit(6);
            }
            flushed = true;
        });
        exec.run_until([&] { return flushed; });
    }
}

/// Reads whatever reports are in the pipe, waiting at most `timeout_ms` for the first.
std::vector<int64_t> read_reports(int fd, int timeout_ms, std::size_t at_most) {
    std::vector<int64_t> out;
    while (out.size() < at_most) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) <= 0) {
            break;
        }
        int64_t v = 0;
        auto n = ::read(fd, &v, sizeof(v));
        if (n != sizeof(v)) {
            break; // end of file: the child is gone
        }
        out.push_back(v);
    }
    return out;
}

class storage_crash_test : public testing::log_fixture {};

TEST_F(storage_crash_test, flushed_offsets_survive_sigkill) {
    constexpr int rounds = 24;
    std::mt19937 rng(2024);
    int64_t max_flushed = 0;
    for (int round = 0; round < rounds; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            child_main(dir(), fds[1]);
        }
        ::close(fds[1]);
        // Kill after a random number of flush reports: anywhere between the first appends
        // and a few hundred flushes in.
        const auto wait_for = static_cast<std::size_t>(rng() % 120);
        auto reports = read_reports(fds[0], 10'000, wait_for);
        ASSERT_EQ(reports.size(), wait_for) << "child stopped reporting in round " << round;
        ASSERT_EQ(::kill(pid, SIGKILL), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status)) << "child exited by itself with " << WEXITSTATUS(status);
        // Reports written before it died count too.
        for (auto v : read_reports(fds[0], 0, SIZE_MAX)) {
            reports.push_back(v);
        }
        ::close(fds[0]);
        for (auto v : reports) {
            max_flushed = std::max(max_flushed, v);
        }

        auto log = open(crash_config());
        ASSERT_TRUE(log);
        ASSERT_FALSE(log->recovery().corrupt) << "round " << round;
        ASSERT_GE(log->next_offset(), offset(max_flushed)) << "flushed data lost in round " << round;
        // Every batch, flushed or not, that survived must be exactly what was appended.
        offset at = log->start_offset();
        while (at < log->next_offset()) {
            auto r = log->read(at, 1 << 20);
            ASSERT_TRUE(r) << "round " << round << " offset " << at << ": " << r.error().message();
            auto bytes = r.value().bytes.span();
            while (!bytes.empty()) {
                auto h = model::validate_batch(bytes);
                ASSERT_TRUE(h);
                ASSERT_EQ(h.value().base_offset, at);
                auto want = batch_at(at);
                want.set_base_offset(at);
                ASSERT_TRUE(std::equal(want.bytes().begin(), want.bytes().end(), bytes.begin(),
                                       bytes.begin() + static_cast<long>(h.value().size_bytes())))
                  << "bytes differ at offset " << at << " in round " << round;
                at = h.value().next_offset();
                bytes = bytes.subspan(h.value().size_bytes());
            }
        }
        EXPECT_EQ(at, log->next_offset());
        // Dropped without close, so the next child recovers from a crash-like state as well.
    }
    RecordProperty("max_flushed_offset", std::to_string(max_flushed));
    auto log = open(crash_config());
    EXPECT_GT(log->segment_count(), 2u) << "the test should cover segment rolls";
}

} // namespace
} // namespace runnel::storage
