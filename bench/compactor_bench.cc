// The log cleaner's speed against the disk's: one compacted partition log of --mb MiB
// (records of --value-bytes over --keys keys, in 64 MiB segments) is cleaned once by
// `storage::compact_segments` with no rate limit, and fio reads then writes the same number of
// bytes sequentially on the same filesystem. The cleaner reads every sealed segment twice
// (offset map, rewrite) and writes what it keeps; the table gives its MB/s (bytes read plus
// written per second) and fio's, and the ratio of the time fio needs for the same reads and
// writes to the time the cleaner took. Needs `fio` on PATH; never touches the network.

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <regex>

#include <fmt/format.h>

#include "storage/storage.h"

using namespace runnel;

namespace {

/// Runs `cmd` and returns its standard output.
std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
        return out;
    }
    char buf[4096];
    while (auto n = std::fread(buf, 1, sizeof buf, p)) {
        out.append(buf, n);
    }
    ::pclose(p);
    return out;
}

/// fio's bandwidth (bytes/s) for one sequential job of `rw` ("read" or "write") over `bytes`
/// of `file`, bypassing the page cache for reads of a file written just before.
double fio_bw(const std::filesystem::path& file, const std::string& rw, uint64_t bytes) {
    auto out = run(fmt::format("fio --name=compactor-bench --filename={} --rw={} --bs=1m --size={} "
                               "--ioengine=sync --direct=0 --end_fsync=1 --invalidate=1 --output-format=json "
                               "2>/dev/null",
                               file.string(), rw, bytes));
    std::smatch m;
    const std::regex rx("\"" + rw + "\"\\s*:\\s*\\{[^}]*?\"bw_bytes\"\\s*:\\s*([0-9]+)");
    if (std::regex_search(out, m, rx)) {
        return std::stod(m[1].str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app("compactor_bench: the log cleaner's MB/s against fio sequential read and write");
    std::filesystem::path dir = "build/bench-data/compactor";
    uint64_t mb = 256;
    int keys = 10000;
    std::size_t value_bytes = 200;
    app.add_option("--dir", dir, "Directory on the disk to measure (emptied first)")->capture_default_str();
    app.add_option("--mb", mb, "MiB of records in the log")->capture_default_str();
    app.add_option("--keys", keys, "Distinct keys")->capture_default_str();
    app.add_option("--value-bytes", value_bytes, "Bytes of each value")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    manual_executor exec;
    storage::flusher fl("bench-flush");
    storage::log_config cfg;
    cfg.segment_bytes = 64ull << 20;
    cfg.compact = true;
    auto opened = storage::partition_log::open(dir / "log", cfg, exec, fl);
    if (!opened) {
        fmt::print(stderr, "cannot open the log: {}\n", opened.error().message());
        return 1;
    }
    auto log = opened.value();
    const std::string value(value_bytes, 'v');
    uint64_t i = 0;
    while (log->size_bytes() < (mb << 20)) {
        model::record_batch_builder b;
        for (int r = 0; r < 100; ++r, ++i) {
            b.add(fmt::format("key-{}", i % static_cast<uint64_t>(keys)), value, model::event_time(1'700'000'000'000));
        }
        auto batch = b.build();
        if (!log->append(batch)) {
            fmt::print(stderr, "append failed\n");
            return 1;
        }
    }
    bool flushed = false;
    log->flush([&](result<void>) { flushed = true; });
    exec.run_until([&] { return flushed; });
    log->roll_if_due(model::processing_time(INT64_MAX / 2));
    // Drop the page cache's copy where we can, so the cleaner reads from the disk like fio.
    (void)std::system("sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null");

    auto plan = log->plan_compaction(model::processing_now());
    if (!plan) {
        fmt::print(stderr, "no cleaning planned\n");
        return 1;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto out = storage::compact_segments(*plan, storage::cleaner_limits{256ull << 20, 0});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!out) {
        fmt::print(stderr, "cleaning failed: {}\n", out.error().message());
        return 1;
    }
    const double read = static_cast<double>(out.value().bytes_read);
    const double written = static_cast<double>(out.value().bytes_written);
    log->install_compaction(std::move(out));

    const auto file = dir / "fio.dat";
    const double fio_write = fio_bw(file, "write", static_cast<uint64_t>(read));
    (void)std::system("sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null");
    const double fio_read = fio_bw(file, "read", static_cast<uint64_t>(read));
    std::filesystem::remove(file);

    const double cleaner_mb_s = (read + written) / secs / 1e6;
    const double fio_time = (fio_read > 0 ? read / fio_read : 0) + (fio_write > 0 ? written / fio_write : 0);
    const double ratio = fio_time > 0 ? fio_time / secs : 0;
    fmt::print("compactor_bench: {} MiB log, {} keys, {}-byte values; cleaner unthrottled vs fio on {}\n", mb, keys,
               value_bytes, dir.string());
    fmt::print("{:<28} {:>12} {:>12} {:>10}\n", "system", "read MB", "written MB", "MB/s");
    fmt::print("{:<28} {:>12.1f} {:>12.1f} {:>10.1f}\n", "runnel log cleaner", read / 1e6, written / 1e6, cleaner_mb_s);
    fmt::print("{:<28} {:>12.1f} {:>12} {:>10.1f}\n", "fio sequential read", read / 1e6, "-", fio_read / 1e6);
    fmt::print("{:<28} {:>12} {:>12.1f} {:>10.1f}\n", "fio sequential write", "-", read / 1e6, fio_write / 1e6);
    fmt::print("cleaner time {:.2f} s; fio's time for the same reads and writes {:.2f} s; ratio {:.2f}\n", secs,
               fio_time, ratio);
    fmt::print("{{\"cleaner_seconds\": {:.3f}, \"bytes_read\": {:.0f}, \"bytes_written\": {:.0f}, "
               "\"cleaner_mb_s\": {:.1f}, \"fio_read_mb_s\": {:.1f}, \"fio_write_mb_s\": {:.1f}, \"ratio\": {:.3f}}}\n",
               secs, read, written, cleaner_mb_s, fio_read / 1e6, fio_write / 1e6, ratio);
    std::filesystem::remove_all(dir);
    return 0;
}
