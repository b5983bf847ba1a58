// `runnel serve --demo`: a live pipeline on generated data, so a newcomer who opens the
// dashboard sees numbers move within seconds.
//
// A thread generates the Nexmark bid stream (src/connect/nexmark) at a steady rate with event
// times from the wall clock, appends each bid as JSON to the topic `demo-bids`, and feeds the
// same bids to an engine pipeline: 1 s bounded out-of-orderness watermarks, the bids of the
// named channels (Google, Facebook, Baidu, Apple), counted per channel in 5 s tumbling windows
// with their average price, each result appended as JSON to `demo-bids-per-channel`. The pipeline lives only in this process (it keeps no checkpoint);
// durable jobs are the job runtime's.

#include "app/demo.h"
#include "app/text.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "broker/broker.h"
#include "connect/nexmark/generator.h"
#include "engine/engine.h"

namespace runnel::app {
namespace {

spdlog::logger& lg() { return logging::get("demo"); }

constexpr std::string_view bids_topic = "demo-bids";
constexpr std::string_view results_topic = "demo-bids-per-channel";

std::string json_escape(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

/// One row of an engine batch as a JSON object, columns by name.
std::string row_json(const engine::batch& b, std::size_t row) {
    std::string out = "{";
    const auto& fields = b.schema_of()->fields();
    for (std::size_t c = 0; c < b.num_columns(); ++c) {
        const auto& col = b.col(c);
        if (c > 0) {
            out += ',';
        }
        out += json_escape(fields[c].name);
        out += ':';
        if (col.is_null(row)) {
            out += "null";
            continue;
        }
        switch (fields[c].type.id) {
        case engine::type_id::boolean:
            out += col.bool_at(row) ? "true" : "false";
            break;
        case engine::type_id::int64:
        case engine::type_id::timestamp:
            out += std::to_string(col.int64_at(row));
            break;
        case engine::type_id::float64:
            out += fmt::format("{:.2f}", col.float64_at(row));
            break;
        case engine::type_id::string:
            out += json_escape(col.string_at(row));
            break;
        }
    }
    out += '}';
    return out;
}

} // namespace

struct demo::state {
    broker::broker& brk;
    int64_t rate;
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
};

demo::demo(broker::broker& brk, int64_t events_per_second)
  : _state(std::make_unique<state>(brk, events_per_second)) {}

demo::~demo() { stop(); }

result<void> demo::start() {
    auto& st = *_state;
    manual_executor here;
    for (auto [name, partitions] : {std::pair{bids_topic, 3}, std::pair{results_topic, 1}}) {
        if (st.brk.topic(name)) {
            continue;
        }
        broker::topic_config cfg;
        cfg.partitions = partitions;
        cfg.retention_ms = 3'600'000; // an hour of demo data is plenty
        std::optional<result<void>> created;
        st.brk.create_topic(std::string(name), cfg, here, [&](result<void> r, std::string) { created = r; });
        here.run_until([&] { return created.has_value(); });
        if (!*created && created->error() != broker::errc::topic_already_exists) {
            return created->error();
        }
    }
    st.thread = std::thread([this] { run(); });
    lg().info("demo: {} Nexmark bids/s into {}, bids per channel every 5 s into {}", st.rate, bids_topic, results_topic);
    return ok();
}

void demo::stop() {
    auto& st = *_state;
    {
        std::lock_guard lock(st.mu);
        st.stopping = true;
    }
    st.cv.notify_all();
    if (st.thread.joinable()) {
        st.thread.join();
    }
}

void demo::run() {
    auto& st = *_state;
    manual_executor here; // answers of the broker to this thread
    std::atomic<int> in_flight{0};
    auto append = [&](std::string_view topic, int32_t partition, model::record_batch_builder& b) {
        if (b.empty()) {
            return;
        }
        auto batch = b.build();
        ++in_flight;
        st.brk.produce({std::string(topic), model::partition_id(partition)}, batch.bytes(), 1, here,
                       [&](result<broker::produce_result> r) {
                           --in_flight;
                           if (!r) {
                               lg().warn("demo: append to {} failed: {}", topic, r.error().message());
                           }
                       });
    };

    // The pipeline: bids in, bids per channel per 5 s window out.
    auto bid_schema = engine::make_schema({{"auction", engine::data_type::int64(), false},
                                           {"price", engine::data_type::int64(), false},
                                           {"channel", engine::data_type::string(), false},
                                           {"ts", engine::data_type::timestamp(), false}});
    std::deque<engine::batch> pending; // bids generated, not yet taken by the pipeline
    engine::pipeline p;
    model::record_batch_builder results;
    p.source(bid_schema,
             [&]() -> engine::source_poll {
                 if (pending.empty()) {
                     return engine::source_poll::idle();
                 }
                 auto b = std::move(pending.front());
                 pending.pop_front();
                 return engine::source_poll::data(std::move(b));
             })
      .watermark("ts", std::chrono::seconds(1))
      // The named channels (Nexmark's other bids come from thousands of "channel-N" ones).
      .filter(!engine::like(engine::col("channel"), engine::lit("channel-%")))
      .key_by({"channel"})
      .window(engine::tumble(std::chrono::seconds(5)))
      .aggregate({engine::count(), engine::avg("price")})
      .sink([&](const engine::batch& b) {
          const model::event_time now(model::processing_now()());
          for (std::size_t r = 0; r < b.num_rows(); ++r) {
              auto json = row_json(b, r);
              results.add(std::nullopt, std::string_view(json), now);
          }
      });
    if (auto r = p.check(); !r) {
        lg().error("demo: the pipeline does not build: {}", r.error().message);
        return;
    }

    connect::nexmark::generator_config cfg;
    cfg.events_per_second = st.rate;
    cfg.base_time_ms = model::processing_now()();
    auto gen = connect::nexmark::generator::create(cfg);
    if (!gen) {
        lg().error("demo: cannot start the Nexmark generator: {}", gen.error().message());
        return;
    }
    const auto started = std::chrono::steady_clock::now();
    int64_t produced = 0;
    for (;;) {
        {
            std::unique_lock lock(st.mu);
            if (st.cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return st.stopping; })) {
                break;
            }
        }
        // Every event whose time has come, as the generator's clock runs with the wall clock.
        const auto elapsed_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
        const int64_t due = elapsed_ms * st.rate / 1000;
        engine::batch bids(bid_schema);
        std::array<model::record_batch_builder, 3> records;
        for (; produced < due && gen.value().has_next(); ++produced) {
            auto e = gen.value().next();
            const auto* b = std::get_if<connect::nexmark::bid>(&e);
            if (!b) {
                continue;
            }
            bids.append_row({engine::value::of(b->auction), engine::value::of(b->price), engine::value::of(b->channel),
                             engine::value::ts(b->date_time)});
            auto json = fmt::format(R"({{"auction":{},"bidder":{},"price":{},"channel":{},"date_time":{}}})", b->auction,
                                    b->bidder, b->price, json_escape(b->channel), b->date_time);
            auto key = std::to_string(b->auction);
            records[static_cast<std::size_t>(b->auction % 3)].add(std::string_view(key), std::string_view(json),
                                                                   model::event_time(b->date_time));
        }
        for (int32_t part = 0; part < 3; ++part) {
            append(bids_topic, part, records[static_cast<std::size_t>(part)]);
        }
        if (bids.num_rows() > 0) {
            pending.push_back(std::move(bids));
        }
        if (auto r = p.run_once(); !r) {
            lg().error("demo: the pipeline stopped: {}", r.error().message);
            break;
        }
        append(results_topic, 0, results);
        here.poll();
    }
    // Let the last appends answer before the broker goes away.
    here.run_until([&] { return in_flight.load() == 0; }, std::chrono::seconds(10));
}

} // namespace runnel::app
