#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include "broker/broker.h"
#include "net/net.h"

namespace runnel::broker::testing {

/// Two real shards with their flushers; the test thread is the caller, with its own executor.
class broker_fixture : public ::testing::Test {
protected:
    /// Hooks for fixtures built on this one: after the broker starts (given the shards'
    /// executors), and after the shards stop, before the broker goes.
    virtual void started(const std::vector<executor*>&) {}
    virtual void stopped() {}

    void SetUp() override {
        _dir = std::filesystem::temp_directory_path() / fmt::format("runnel-broker-{}", ::getpid());
        std::filesystem::remove_all(_dir);
        start();
    }
    void TearDown() override {
        shutdown();
        std::filesystem::remove_all(_dir);
    }
    void start() {
        _shards = std::make_unique<net::shard_group>(2);
        _flushers.clear();
        std::vector<executor*> ex;
        std::vector<storage::flusher*> fl;
        for (unsigned s = 0; s < 2; ++s) {
            _flushers.push_back(std::make_unique<storage::flusher>());
            ex.push_back(&_shards->executor_of(s));
            fl.push_back(_flushers.back().get());
        }
        _broker = std::make_unique<broker>(broker_config{_dir}, ex, fl);
        ASSERT_TRUE(_broker->start());
        started(ex);
    }
    void shutdown() {
        if (_broker) {
            EXPECT_TRUE(_broker->stop());
            _shards->stop();
            stopped();
            _broker.reset();
            _flushers.clear();
            _shards.reset();
        }
    }

    template <typename T, typename F>
    T wait(F start_call) {
        std::optional<T> out;
        start_call([&](T v) { out = std::move(v); });
        EXPECT_TRUE(_caller.run_until([&] { return out.has_value(); }, std::chrono::seconds(30)));
        return std::move(*out);
    }
    std::pair<result<void>, std::string> create(std::string name, int32_t partitions) {
        topic_config cfg;
        cfg.partitions = partitions;
        std::optional<std::pair<result<void>, std::string>> out;
        _broker->create_topic(name, cfg, _caller, [&](result<void> r, std::string why) { out.emplace(r, why); });
        EXPECT_TRUE(_caller.run_until([&] { return out.has_value(); }));
        return *out;
    }
    result<produce_result> produce(const model::topic_partition& tp, const model::record_batch& b, int16_t acks) {
        return wait<result<produce_result>>([&](auto done) { _broker->produce(tp, b.bytes(), acks, _caller, done); });
    }

    std::filesystem::path _dir;
    manual_executor _caller;
    std::unique_ptr<net::shard_group> _shards;
    std::vector<std::unique_ptr<storage::flusher>> _flushers;
    std::unique_ptr<broker> _broker;
};

} // namespace runnel::broker::testing
