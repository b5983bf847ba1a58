// Card swipes per card per minute, with Runnel's C++ API.
//
// This program embeds Runnel: it opens a data directory with the log (broker) and the job
// manager, defines a pipeline in C++ as a job template, and submits it as a durable job:
//
//     ctx.from_topic("swipes")
//        .decode(json, {card, amount, ts})
//        .watermark("ts", 5s)
//        .key_by({"card"})
//        .window(tumble(1min))
//        .aggregate({count(), sum("amount")})
//     → ctx.to_topic(…, "swipes-per-card", {"card"})
//
// It then appends some swipes, waits for the windows to close, prints the counts and stops.
// Run it again on the same directory and the job resumes from its last checkpoint.
//
// usage: card_swipes [DATA_DIR]

#include <chrono>
#include <cstdio>

#include "broker/broker.h"
#include "jobs/jobs.h"
#include "net/net.h"

using namespace runnel;
using namespace std::chrono_literals;

namespace {

result<void> swipes_per_card(jobs::job_context& ctx, const jobs::job_definition&, std::string&) {
    auto swipe = engine::make_schema({{"card", engine::data_type::string()},
                                      {"amount", engine::data_type::float64()},
                                      {"ts", engine::data_type::timestamp()}});
    auto per_card = ctx.from_topic("swipes")
                      .decode(engine::decode_format::json, swipe)
                      .watermark("ts", 5s)
                      .key_by({"card"})
                      .window(engine::tumble(1min))
                      .aggregate({engine::count(), engine::sum("amount")});
    ctx.to_topic(per_card, "swipes-per-card", {"card"});
    return ok();
}

/// Runs a broker call from this thread and waits for its answer.
template <typename T, typename F>
T call(manual_executor& here, F f) {
    std::optional<T> out;
    f([&](T v) { out = std::move(v); });
    here.run_until([&] { return out.has_value(); });
    return std::move(*out);
}

/// Stops the program with a message when a step fails.
template <typename R>
void must(const R& r, const char* what) {
    if (!r) {
        std::fprintf(stderr, "%s: %s\n", what, r.error().message().c_str());
        std::exit(1);
    }
}

} // namespace

int main(int argc, char** argv) {
    std::filesystem::path dir = argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "runnel-card-swipes";
    net::shard_group shards(2);
    std::vector<std::unique_ptr<storage::flusher>> flushers;
    std::vector<executor*> executors;
    std::vector<storage::flusher*> flusher_ptrs;
    for (unsigned s = 0; s < shards.size(); ++s) {
        flushers.push_back(std::make_unique<storage::flusher>());
        executors.push_back(&shards.executor_of(s));
        flusher_ptrs.push_back(flushers.back().get());
    }
    broker::broker brk(broker::broker_config{dir}, executors, flusher_ptrs);
    if (auto r = brk.start(); !r) {
        std::fprintf(stderr, "cannot open %s: %s\n", dir.c_str(), r.error().message().c_str());
        return 1;
    }
    manual_executor here;
    if (!brk.topic("swipes")) {
        broker::topic_config cfg;
        cfg.partitions = 2;
        must(call<result<void>>(here, [&](auto done) {
                 brk.create_topic("swipes", cfg, here, [done](result<void> r, std::string) { done(r); });
             }),
             "cannot create the topic swipes");
    }

    jobs::register_template("swipes_per_card", swipes_per_card);
    jobs::manager manager(brk, shards, dir / "jobs");
    if (auto r = manager.start(); !r) return 1;
    jobs::job_definition def;
    def.id = "swipes";
    def.template_name = "swipes_per_card";
    std::string why;
    if (manager.status().empty() && !manager.submit(def, why)) {
        std::fprintf(stderr, "cannot submit the job: %s\n", why.c_str());
        return 1;
    }

    // Three cards swiping over three minutes of event time, then a swipe an hour later that
    // moves the watermark past every window.
    const int64_t t0 = 28'333'333LL * 60'000; // on a minute
    const char* cards[] = {"4000-1", "4000-2", "4000-3"};
    for (int i = 0; i < 30; ++i) {
        const char* card = cards[i % 3];
        auto value = fmt::format(R"({{"card":"{}","amount":{}.50,"ts":{}}})", card, 10 + i, t0 + i * 6'000);
        model::record_batch_builder b;
        b.add(std::string_view(card), std::string_view(value), model::event_time(t0 + i * 6'000));
        must(call<result<broker::produce_result>>(here, [&](auto done) {
                 brk.produce({"swipes", model::partition_id(model::partition_for_key(card, 2))}, b.build().bytes(), -1,
                             here, done);
             }),
             "cannot append a swipe");
    }
    for (int32_t p = 0; p < 2; ++p) {
        auto value = fmt::format(R"({{"card":"closing","amount":0,"ts":{}}})", t0 + 3'600'000);
        model::record_batch_builder b;
        b.add(std::nullopt, std::string_view(value), model::event_time(t0 + 3'600'000));
        must(call<result<broker::produce_result>>(here, [&](auto done) {
                 brk.produce({"swipes", model::partition_id(p)}, b.build().bytes(), -1, here, done);
             }),
             "cannot append a swipe");
    }

    // Read the results as they are released (one checkpoint interval after they are computed).
    std::vector<std::string> rows;
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (rows.size() < 9 && std::chrono::steady_clock::now() < deadline) {
        rows.clear();
        auto t = brk.topic("swipes-per-card");
        for (int32_t p = 0; t && p < t->config.partitions; ++p) {
            auto r = call<result<broker::fetch_result>>(here, [&](auto done) {
                brk.fetch({"swipes-per-card", model::partition_id(p)}, model::offset(0), 1 << 20, here, done);
            });
            if (!r) continue;
            auto bytes = r.value().data.bytes.span();
            for (std::size_t pos = 0; pos < bytes.size();) {
                auto h = model::parse_batch_header(bytes.subspan(pos));
                if (!h) break;
                auto records = model::decode_records(bytes.subspan(pos, h.value().size_bytes()));
                if (!records) break;
                for (const auto& rec : records.value()) {
                    if (rec.value) rows.emplace_back(reinterpret_cast<const char*>(rec.value->data()), rec.value->size());
                }
                pos += h.value().size_bytes();
            }
        }
        if (rows.size() < 9) here.run_until([] { return false; }, 50ms); // poll again shortly
    }
    std::sort(rows.begin(), rows.end());
    for (const auto& r : rows) std::printf("%s\n", r.c_str());
    manager.stop();
    (void)brk.stop();
    shards.stop();
    return rows.size() == 9 ? 0 : 1;
}
