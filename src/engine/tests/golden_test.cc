// Data-driven window tests: each tests/engine/windows/*.test file gives a window, its options
// and input events (with the partition they arrive on and pauses in processing time), and the
// rows expected on the window's output and on its late side output.
//
// File format (one directive per line, '#' starts a comment):
//   window tumble SIZE | hop SIZE SLIDE | session GAP | cumulate STEP MAX   (milliseconds)
//   bound MS        watermark out-of-orderness (default 0)
//   lateness MS     allowed lateness (default 0)
//   idle MS         idle timeout of a partition (default 0: never idle)
//   partitions N    source partitions the watermark waits for (default 1)
//   aggregates ...  e.g. `count sum(v) max(v) count_distinct(v)`; keyed by `key` unless
//   global          is given
//   noend           do not end the input (only what the watermarks fired is output)
//   input           then lines `PARTITION KEY TS V`, or `pause MS` (processing time passes)
//   output          then the expected window rows (in any order)
//   late            then the expected late rows (in any order)

#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/engine.h"

#ifndef RUNNEL_WINDOW_GOLDEN_DIR
#error "RUNNEL_WINDOW_GOLDEN_DIR must name the directory of the golden files"
#endif

namespace runnel::engine {
namespace {

struct golden {
    std::string name;
    window_spec w = tumble(std::chrono::milliseconds(10));
    int64_t bound = 0, lateness = 0, idle = 0;
    int32_t partitions = 1;
    std::vector<aggregate_spec> aggs;
    bool keyed = true, end = true;
    struct step {
        int32_t partition;
        std::string key;
        int64_t ts, v;
        int64_t pause = -1; ///< >= 0: a pause in processing time instead of an event
    };
    std::vector<step> steps;
    std::vector<std::string> output, late;
};

std::string trim(std::string s) {
    if (auto h = s.find('#'); h != std::string::npos && s.rfind("(", h) == std::string::npos) s.resize(h);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

golden parse(const std::filesystem::path& file) {
    golden g;
    g.name = file.filename().string();
    std::ifstream in(file);
    std::string line, section;
    while (std::getline(in, line)) {
        line = trim(line);
        if (line.empty()) continue;
        std::istringstream ls(line);
        std::string word;
        ls >> word;
        if (word == "input" || word == "output" || word == "late") {
            section = word;
            continue;
        }
        if (section == "output") {
            g.output.push_back(line);
            continue;
        }
        if (section == "late") {
            g.late.push_back(line);
            continue;
        }
        if (section == "input") {
            golden::step s{};
            if (word == "pause") {
                ls >> s.pause;
            } else {
                s.partition = std::stoi(word);
                ls >> s.key >> s.ts >> s.v;
            }
            g.steps.push_back(s);
            continue;
        }
        using ms = std::chrono::milliseconds;
        if (word == "window") {
            std::string kind;
            int64_t a = 0, b = 0;
            ls >> kind >> a >> b;
            if (kind == "tumble") g.w = tumble(ms(a));
            else if (kind == "hop") g.w = hop(ms(a), ms(b));
            else if (kind == "session") g.w = session(ms(a));
            else if (kind == "cumulate") g.w = cumulate(ms(a), ms(b));
            else ADD_FAILURE() << g.name << ": unknown window " << kind;
        } else if (word == "bound") {
            ls >> g.bound;
        } else if (word == "lateness") {
            ls >> g.lateness;
        } else if (word == "idle") {
            ls >> g.idle;
        } else if (word == "partitions") {
            ls >> g.partitions;
        } else if (word == "global") {
            g.keyed = false;
        } else if (word == "noend") {
            g.end = false;
        } else if (word == "aggregates") {
            std::string a;
            while (ls >> a) {
                auto open = a.find('(');
                std::string fn = a.substr(0, open);
                std::string arg = open == std::string::npos ? "" : a.substr(open + 1, a.size() - open - 2);
                if (fn == "count" && arg.empty()) g.aggs.push_back(count());
                else if (fn == "count") g.aggs.push_back(count(arg));
                else if (fn == "sum") g.aggs.push_back(sum(arg));
                else if (fn == "min") g.aggs.push_back(min(arg));
                else if (fn == "max") g.aggs.push_back(max(arg));
                else if (fn == "avg") g.aggs.push_back(avg(arg));
                else if (fn == "count_distinct") g.aggs.push_back(count_distinct(arg));
                else ADD_FAILURE() << g.name << ": unknown aggregate " << a;
            }
        } else {
            ADD_FAILURE() << g.name << ": unknown directive '" << word << "'";
        }
    }
    return g;
}

schema_ptr event_schema() {
    return make_schema({{"key", data_type::string()}, {"ts", data_type::int64()}, {"v", data_type::int64()}});
}

void run(const golden& g) {
    int64_t clock = 1'000'000;
    pipeline_options po;
    po.clock = [&] { return model::processing_time(clock); };
    pipeline p(po);
    std::deque<batch> queue;
    bool ended = false;
    auto src = p.source(event_schema(), [&]() {
        if (!queue.empty()) {
            auto b = std::move(queue.front());
            queue.pop_front();
            return source_poll::data(std::move(b));
        }
        return ended ? source_poll::end() : source_poll::idle();
    });
    watermark_options wo;
    wo.partitions = g.partitions;
    wo.idle_timeout = std::chrono::milliseconds(g.idle);
    wo.clock = po.clock;
    auto timed = src.watermark("ts", std::chrono::milliseconds(g.bound), wo);
    window_options opts;
    opts.allowed_lateness = std::chrono::milliseconds(g.lateness);
    auto win = g.keyed ? timed.key_by({"key"}).window(g.w, opts).aggregate(g.aggs) : timed.window(g.w, opts).aggregate(g.aggs);
    std::vector<std::string> out, late;
    win.sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) out.push_back(b.row_to_string(i));
    });
    win.late_rows().sink([&](const batch& b) {
        for (size_t i = 0; i < b.num_rows(); ++i) late.push_back(b.row_to_string(i));
    });
    ASSERT_TRUE(p.check()) << p.check().error().message;
    auto settle = [&] {
        for (int i = 0; i < 50; ++i) ASSERT_TRUE(p.run_once());
    };
    for (const auto& s : g.steps) {
        if (s.pause >= 0) {
            clock += s.pause;
        } else {
            batch b(event_schema());
            b.append_row({value::of(s.key), value::of(s.ts), value::of(s.v)});
            b.set_source_partition(s.partition);
            queue.push_back(std::move(b));
        }
        settle();
    }
    if (g.end) {
        ended = true;
        ASSERT_TRUE(p.run());
    }
    auto sorted = [](std::vector<std::string> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    EXPECT_EQ(sorted(out), sorted(g.output)) << g.name << ": window output differs";
    EXPECT_EQ(sorted(late), sorted(g.late)) << g.name << ": late output differs";
}

TEST(window_golden, every_file) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(RUNNEL_WINDOW_GOLDEN_DIR)) {
        if (e.path().extension() == ".test") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 8u);
    for (const auto& f : files) {
        SCOPED_TRACE(f.filename().string());
        run(parse(f));
    }
}

} // namespace
} // namespace runnel::engine
