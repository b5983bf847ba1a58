// Runs the real `runnel serve` binary: start-up with recovery, clean shutdown on SIGTERM and
// SIGINT that flushes every partition, the data-directory lock, and usage errors.

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "storage/tests/log_fixture.h"
#include "support/process.h"

namespace runnel {
namespace {

using namespace std::chrono_literals;
using storage::testing::make_batch;

class serve_test : public storage::testing::log_fixture {
protected:
    std::vector<std::string> serve_args(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{RUNNEL_BINARY, "serve", "--data-dir", _dir.string(), "--shards", "2",
                                      "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"};
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }
    std::filesystem::path partition_dir() const { return _dir / "topics" / "orders" / "3"; }
};

TEST_F(serve_test, recovers_partitions_and_flushes_them_on_sigterm) {
    model::offset end;
    std::filesystem::create_directories(partition_dir());
    std::ofstream(partition_dir().parent_path() / "topic.conf") << "partitions=4\n";
    {
        auto log = partition_log_open(partition_dir());
        for (uint64_t i = 0; i < 50; ++i) {
            auto b = make_batch(i, 100);
            ASSERT_TRUE(log->append(b));
        }
        ASSERT_TRUE(flush(*log));
        for (uint64_t i = 50; i < 60; ++i) {
            auto b = make_batch(i, 100);
            ASSERT_TRUE(log->append(b));
        }
        end = log->next_offset();
        ASSERT_LT(log->flushed_offset(), end); // a crash-like state: the tail is not synced
    }

    testing::process server(serve_args());
    ASSERT_TRUE(server.wait_for_output("ready in", 20s)) << server.output();
    EXPECT_NE(server.output().find("2 shards, 1 topic (4 partitions)"), std::string::npos) << server.output();

    // A second server on the same data directory is refused while the first runs.
    testing::process second(serve_args());
    EXPECT_EQ(second.wait(20s), 1);
    EXPECT_NE(second.output().find("in use by another runnel serve"), std::string::npos) << second.output();

    server.signal(SIGTERM);
    ASSERT_EQ(server.wait(20s), 0) << server.output();
    EXPECT_NE(server.output().find("stopped cleanly"), std::string::npos) << server.output();

    // The shutdown flushed the partition and recorded its durable point.
    auto log = partition_log_open(partition_dir());
    EXPECT_EQ(log->next_offset(), end);
    EXPECT_EQ(log->flushed_offset(), end);
    EXPECT_EQ(read_all(*log, model::offset(0)).size(), 60u);
}

TEST_F(serve_test, sigint_stops_cleanly_and_config_file_sets_options) {
    auto cfg = _dir / "runnel.toml";
    std::ofstream(cfg) << "[serve]\nshards = 3\n";
    testing::process server({RUNNEL_BINARY, "serve", "--data-dir", _dir.string(), "--config", cfg.string(),
                             "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"});
    ASSERT_TRUE(server.wait_for_output("ready in", 20s)) << server.output();
    EXPECT_NE(server.output().find("3 shards"), std::string::npos) << server.output();
    server.signal(SIGINT);
    EXPECT_EQ(server.wait(20s), 0) << server.output();
}

TEST_F(serve_test, usage_errors_exit_2_with_a_message) {
    testing::process bad_addr({RUNNEL_BINARY, "serve", "--data-dir", _dir.string(), "--kafka-addr", "localhost"});
    EXPECT_EQ(bad_addr.wait(20s), 2);
    EXPECT_NE(bad_addr.output().find("invalid --kafka-addr 'localhost': expected HOST:PORT"), std::string::npos)
      << bad_addr.output();

    testing::process bad_flag({RUNNEL_BINARY, "serve", "--no-such-flag"});
    EXPECT_EQ(bad_flag.wait(20s), 2);

    testing::process help({RUNNEL_BINARY, "--help"});
    EXPECT_EQ(help.wait(20s), 0);
    EXPECT_NE(help.output().find("serve"), std::string::npos);
}

} // namespace
} // namespace runnel
