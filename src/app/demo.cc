// `runnel serve --demo`: a live pipeline on generated data, so a newcomer who opens the
// dashboard sees numbers move within seconds.
//
// A thread generates the Nexmark bid stream (src/connect/nexmark) at a steady rate with event
// times from the wall clock and appends each bid as JSON to the topic `demo-bids`. A durable job
// reads that topic: 1 s bounded out-of-orderness watermarks, the bids of the named channels
// (Google, Facebook, Baidu, Apple), counted per channel in 5 s tumbling windows with their
// average price, each result appended as JSON to `demo-bids-per-channel`. The job is an
// ordinary one (DATA_DIR/jobs/demo-bids-per-channel) and shows in the dashboard's pipelines.

#include "app/demo.h"
#include "base/text.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "broker/broker.h"
#include "connect/nexmark/generator.h"
#include "engine/engine.h"
#include "jobs/jobs.h"

namespace runnel::app {
namespace {

spdlog::logger& lg() { return logging::get("demo"); }

constexpr std::string_view bids_topic = "demo-bids";
constexpr std::string_view results_topic = "demo-bids-per-channel";

constexpr std::string_view job_id = "demo-bids-per-channel";

result<void> bids_per_channel(jobs::job_context& ctx, const jobs::job_definition&, std::string&) {
    auto bid = engine::make_schema({{"auction", engine::data_type::int64()},
                                    {"price", engine::data_type::int64()},
                                    {"channel", engine::data_type::string()},
                                    {"date_time", engine::data_type::timestamp()}});
    engine::watermark_options wo;
    wo.partitions = std::max(1, ctx.partitions_of(std::string(bids_topic)));
    wo.idle_timeout = std::chrono::seconds(5);
    wo.input = std::string(bids_topic);
    auto per_channel = ctx.from_topic(std::string(bids_topic))
                         .decode(engine::decode_format::json, bid)
                         .watermark("date_time", std::chrono::seconds(1), wo)
                         // The named channels (Nexmark's other bids come from thousands of "channel-N" ones).
                         .filter(!engine::like(engine::col("channel"), engine::lit("channel-%")))
                         .key_by({"channel"})
                         .window(engine::tumble(std::chrono::seconds(5)))
                         .aggregate({engine::count(), engine::avg("price")});
    ctx.to_topic(per_channel, std::string(results_topic), {"channel"}, connect::delivery::at_least_once);
    // The latest window of each channel, as a live table for the dashboard and the API.
    ctx.sink(per_channel, std::make_unique<jobs::view_sink>(jobs::default_views().open(std::string(results_topic), {"channel"})), 1);
    return ok();
}

} // namespace

void register_demo_template() {
    static const bool registered = [] {
        jobs::register_template(std::string(demo_template), bids_per_channel);
        return true;
    }();
    (void)registered;
}

struct demo::state {
    broker::broker& brk;
    jobs::manager& jobs;
    int64_t rate;
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
};

demo::demo(broker::broker& brk, jobs::manager& jobs, int64_t events_per_second)
  : _state(std::make_unique<state>(brk, jobs, events_per_second)) {}

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
    // The counting job, stored like any other so it resumes after a restart (its template is
    // registered by `register_demo_template` before the manager starts).
    bool present = false;
    for (const auto& j : st.jobs.status()) present = present || j.id == job_id;
    if (!present) {
        jobs::job_definition def;
        def.id = std::string(job_id);
        def.template_name = std::string(demo_template);
        std::string why;
        if (auto r = st.jobs.submit(def, why); !r) {
            lg().error("demo: cannot start the counting job: {}", why);
            return r.error();
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
        std::array<model::record_batch_builder, 3> records;
        for (; produced < due && gen.value().has_next(); ++produced) {
            auto e = gen.value().next();
            const auto* b = std::get_if<connect::nexmark::bid>(&e);
            if (!b) {
                continue;
            }
            auto json = fmt::format(R"({{"auction":{},"bidder":{},"price":{},"channel":{},"date_time":{}}})", b->auction,
                                    b->bidder, b->price, text::json_string(b->channel), b->date_time);
            auto key = std::to_string(b->auction);
            records[static_cast<std::size_t>(b->auction % 3)].add(std::string_view(key), std::string_view(json),
                                                                   model::event_time(b->date_time));
        }
        for (int32_t part = 0; part < 3; ++part) {
            append(bids_topic, part, records[static_cast<std::size_t>(part)]);
        }
        here.poll();
    }
    // Let the last appends answer before the broker goes away.
    here.run_until([&] { return in_flight.load() == 0; }, std::chrono::seconds(10));
}

} // namespace runnel::app
