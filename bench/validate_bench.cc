// validate_bench: what checking a produced batch costs, beside the floors it cannot go under.
// For batches of N records (uncompressed, gzip, zstd), each measured in the same run:
//   - copy:     memcpy of the batch (the machine's limit for touching its bytes once);
//   - crc:      model::validate_batch, the header and CRC-32C check every produce always had;
//   - inflate:  model::decompress_records alone (compressed batches: the codec's own cost,
//               which any check of the records must pay);
//   - validate: model::validate_batch + model::validate_produced_batch, what a produce does now.
// Ratios printed: validate / crc (what the record checks add to the old path) and, for
// compressed batches, validate / (crc + inflate) (how close the check is to the codec's floor).
// CPU only: no disk, no network. Prints a table, then one JSON document.
//
//   validate_bench [--records 1000] [--value-bytes 100] [--seconds 0.5] [--runs 3] [--json out.json]

#include "model/model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace runnel::bench {
namespace {

using clock = std::chrono::steady_clock;
using bytes = std::vector<std::byte>;
namespace L = model::batch_layout;

/// Values shaped like JSON events, so the codecs see realistic redundancy.
std::string value_of(int i, std::size_t size) {
    std::string v = fmt::format(R"({{"user":"u{}","page":"/p/{}","bytes":{},"ts":"2026-12-07 04:{:02}:{:02}.{:03}"}})",
                                i % 977, i % 31, (i * 7919) % 100000, (i / 60) % 60, i % 60, i % 1000);
    v.resize(size, ' ');
    return v;
}

bytes uncompressed_batch(int records, std::size_t value_bytes) {
    model::record_batch_builder b;
    std::vector<std::string> keys;
    std::vector<std::string> values;
    for (int i = 0; i < records; ++i) {
        keys.push_back(fmt::format("user-{:06}", i % 977));
        values.push_back(value_of(i, value_bytes));
    }
    for (int i = 0; i < records; ++i) {
        b.add(keys[std::size_t(i)], values[std::size_t(i)], model::event_time(1'796'600'000'000 + i));
    }
    auto batch = b.build();
    auto s = batch.bytes();
    return bytes(s.begin(), s.end());
}

bytes gzip(std::span<const std::byte> in) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("deflateInit2");
    }
    bytes out(deflateBound(&z, uLong(in.size())) + 32);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = uInt(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = uInt(out.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate");
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

bytes zstd(std::span<const std::byte> in) {
    bytes out(ZSTD_compressBound(in.size()));
    auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
    if (ZSTD_isError(n)) throw std::runtime_error("ZSTD_compress");
    out.resize(n);
    return out;
}

/// `plain` with its records section replaced by `section` compressed with codec `codec`,
/// header fields kept, CRC recomputed.
bytes with_section(const bytes& plain, const bytes& section, int16_t codec) {
    bytes b(L::header_size + section.size());
    std::copy(plain.begin(), plain.begin() + L::header_size, b.begin());
    std::copy(section.begin(), section.end(), b.begin() + L::header_size);
    std::byte* p = b.data();
    write_be<int32_t>(p + L::length, static_cast<int32_t>(b.size() - L::length_field_end));
    write_be<int16_t>(p + L::attributes, codec);
    write_be<uint32_t>(p + L::crc, model::compute_batch_crc(b));
    return b;
}

/// Nanoseconds per call of `fn`: the best of `runs` runs of at least `seconds` each.
double ns_per_call(const std::function<void()>& fn, double seconds, int runs) {
    double best = 1e300;
    for (int r = 0; r < runs; ++r) {
        std::size_t calls = 0;
        const auto start = clock::now();
        const auto until = start + std::chrono::duration<double>(seconds);
        auto now = start;
        while (now < until) {
            for (int i = 0; i < 16; ++i) fn();
            calls += 16;
            now = clock::now();
        }
        best = std::min(best, std::chrono::duration<double, std::nano>(now - start).count() / double(calls));
    }
    return best;
}

volatile std::size_t sink_value = 0;

struct row {
    std::string codec;
    std::size_t batch_bytes = 0;
    std::size_t records_bytes = 0;
    double copy_ns = 0;
    double crc_ns = 0;
    double inflate_ns = 0; ///< 0 for uncompressed batches
    double validate_ns = 0;
};

} // namespace
} // namespace runnel::bench

int main(int argc, char** argv) {
    using namespace runnel;
    using namespace runnel::bench;
    int records = 1000;
    std::size_t value_bytes = 100;
    double seconds = 0.5;
    int runs = 3;
    std::string json_path;
    CLI::App app{"validate_bench: the cost of checking produced batches beside its floors"};
    app.add_option("--records", records, "records per batch")->check(CLI::Range(1, 100000));
    app.add_option("--value-bytes", value_bytes, "bytes per value")->check(CLI::Range(16, 1 << 20));
    app.add_option("--seconds", seconds, "seconds per run")->check(CLI::Range(0.01, 60.0));
    app.add_option("--runs", runs, "runs per measurement (the best is kept)")->check(CLI::Range(1, 100));
    app.add_option("--json", json_path, "also write the JSON document here");
    CLI11_PARSE(app, argc, argv);

    const bytes plain = uncompressed_batch(records, value_bytes);
    const std::span<const std::byte> plain_section(plain.data() + L::header_size, plain.size() - L::header_size);
    struct input {
        std::string codec;
        bytes batch;
        model::compression c;
    };
    std::vector<input> inputs;
    inputs.push_back({"none", plain, model::compression::none});
    inputs.push_back({"gzip", with_section(plain, gzip(plain_section), 1), model::compression::gzip});
    inputs.push_back({"zstd", with_section(plain, zstd(plain_section), 4), model::compression::zstd});

    std::vector<row> rows;
    for (const auto& in : inputs) {
        row r;
        r.codec = in.codec;
        r.batch_bytes = in.batch.size();
        r.records_bytes = plain_section.size();
        bytes copy(in.batch.size());
        r.copy_ns = ns_per_call([&] {
            std::memcpy(copy.data(), in.batch.data(), in.batch.size());
            sink_value = sink_value + std::size_t(copy[copy.size() / 2]);
        }, seconds, runs);
        r.crc_ns = ns_per_call([&] {
            auto h = model::validate_batch(in.batch);
            if (!h) throw std::runtime_error("the benchmark's batch is not valid");
            sink_value = sink_value + std::size_t(h.value().record_count);
        }, seconds, runs);
        if (in.c != model::compression::none) {
            const std::span<const std::byte> section(in.batch.data() + L::header_size, in.batch.size() - L::header_size);
            r.inflate_ns = ns_per_call([&] {
                std::string why;
                auto out = model::decompress_records(in.c, section, model::max_inflated_bytes, why);
                if (!out) throw std::runtime_error(why);
                sink_value = sink_value + out->size();
            }, seconds, runs);
        }
        r.validate_ns = ns_per_call([&] {
            auto h = model::validate_batch(in.batch);
            if (!h) throw std::runtime_error("the benchmark's batch is not valid");
            std::string why;
            auto ok = model::validate_produced_batch(in.batch, h.value(), {}, why);
            if (!ok) throw std::runtime_error("validate_produced_batch refused the batch: " + why);
        }, seconds, runs);
        rows.push_back(r);
    }

    auto mbps = [](std::size_t b, double ns) { return double(b) / ns * 1e9 / (1 << 20); };
    fmt::print("validate_bench: {} records of {}-byte values per batch ({} bytes of records), best of {} runs\n\n",
               records, value_bytes, plain_section.size(), runs);
    fmt::print("{:<6} {:>9} {:>11} {:>11} {:>11} {:>12} {:>15} {:>10} {:>22}\n", "codec", "batch B", "copy µs",
               "crc µs", "inflate µs", "validate µs", "validate MB/s*", "/ crc", "/ (crc + inflate)");
    for (const auto& r : rows) {
        fmt::print("{:<6} {:>9} {:>11.2f} {:>11.2f} {:>11} {:>12.2f} {:>15.0f} {:>10.2f} {:>22}\n", r.codec,
                   r.batch_bytes, r.copy_ns / 1e3, r.crc_ns / 1e3,
                   r.inflate_ns > 0 ? fmt::format("{:.2f}", r.inflate_ns / 1e3) : std::string("-"),
                   r.validate_ns / 1e3, mbps(r.records_bytes, r.validate_ns), r.validate_ns / r.crc_ns,
                   r.inflate_ns > 0 ? fmt::format("{:.2f}", r.validate_ns / (r.crc_ns + r.inflate_ns))
                                    : std::string("-"));
    }
    fmt::print("\n* MB/s of uncompressed records a core validates.\n\n");

    std::string json = fmt::format(R"({{"benchmark":"validate","records":{},"value_bytes":{},"records_bytes":{},"rows":[)",
                                   records, value_bytes, plain_section.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        json += fmt::format(
          R"({}{{"codec":"{}","batch_bytes":{},"copy_ns":{:.1f},"crc_ns":{:.1f},"inflate_ns":{:.1f},"validate_ns":{:.1f},)"
          R"("validate_over_crc":{:.3f},"validate_over_crc_plus_inflate":{:.3f}}})",
          i ? "," : "", r.codec, r.batch_bytes, r.copy_ns, r.crc_ns, r.inflate_ns, r.validate_ns,
          r.validate_ns / r.crc_ns, r.inflate_ns > 0 ? r.validate_ns / (r.crc_ns + r.inflate_ns) : 0.0);
    }
    json += "]}";
    fmt::print("{}\n", json);
    if (!json_path.empty()) {
        if (FILE* f = std::fopen(json_path.c_str(), "w")) {
            std::fputs(json.c_str(), f);
            std::fclose(f);
        }
    }
    return 0;
}
