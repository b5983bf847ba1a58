// storage_bench: append + group-commit flush of storage::partition_log, measured in the same
// run and on the same disk as fio's sequential writes with fdatasync (every write, and every
// N writes: the batched-sync ceiling) and a plain pwrite+fdatasync loop. The systems take
// turns in short interleaved rounds. Prints a table, then one JSON document; ratios are
// computed here. Needs `fio` on PATH; never touches the network.
//
//   storage_bench --dir build/bench-data [--seconds 5] [--rounds 5] [--producers 32]
//                 [--sizes 1024,16384] [--json out.json]

#include <boost/json.hpp>
#include <boost/json/src.hpp> // Boost.JSON header-only, in this one file
#include "storage/storage.h"

#include <CLI/CLI.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace runnel::bench {
namespace {

using clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr double target_ratio = 0.8; // the acceptance: >= 80% of fio's fdatasync bandwidth

/// Latency percentiles of one run, in microseconds.
struct latency_summary {
    double p50_us = 0;
    double p99_us = 0;
    double p999_us = 0;
};

/// Nearest-rank percentiles of `ns` (sorted in place).
latency_summary summarize(std::vector<int64_t>& ns) {
    latency_summary s;
    if (ns.empty()) {
        return s;
    }
    std::sort(ns.begin(), ns.end());
    auto at = [&](double p) {
        auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ns.size())));
        return static_cast<double>(ns[std::clamp<std::size_t>(rank, 1, ns.size()) - 1]) / 1000.0;
    };
    s.p50_us = at(0.50);
    s.p99_us = at(0.99);
    s.p999_us = at(0.999);
    return s;
}

/// What one system did at one block size: bytes made durable, operations, syncs, latency.
/// One run fills it; `absorb` sums the rounds of the same system into one.
struct measurement {
    std::string system; ///< key in the JSON: runnel, fio_fdatasync, raw_loop, fio_fdatasync_batched
    std::string label;  ///< row name in the table
    std::size_t block_bytes = 0;
    double seconds = 0;
    uint64_t bytes = 0; ///< bytes written and made durable
    uint64_t ops = 0;   ///< batches appended (runnel) or writes (peers)
    uint64_t syncs = 0; ///< fdatasync calls (for runnel: flush jobs on the flusher thread)
    std::vector<int64_t> latencies_ns; ///< every sample (fio: expanded from its histogram bins)
    latency_summary latency;           ///< of `latencies_ns`, set by `finish`
    std::string latency_kind;
    std::vector<double> round_mb_per_s;
    /// Runnel only: how the acknowledged batches were grouped into flushes (each group is
    /// released by one completed flush job).
    uint64_t flush_groups = 0;
    uint64_t single_batch_groups = 0;
    std::optional<std::string> error;

    double mb_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }
    double ops_per_s() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
    double syncs_per_s() const { return seconds > 0 ? static_cast<double>(syncs) / seconds : 0; }
    double ops_per_sync() const {
        return syncs > 0 ? static_cast<double>(ops) / static_cast<double>(syncs) : 0;
    }

    /// Adds one round of the same system and size.
    void absorb(measurement&& round) {
        if (round.error) {
            error = error ? error : round.error;
            return;
        }
        round_mb_per_s.push_back(round.mb_per_s());
        seconds += round.seconds;
        bytes += round.bytes;
        ops += round.ops;
        syncs += round.syncs;
        flush_groups += round.flush_groups;
        single_batch_groups += round.single_batch_groups;
        latencies_ns.insert(latencies_ns.end(), round.latencies_ns.begin(),
                            round.latencies_ns.end());
        latency_kind = round.latency_kind;
    }

    void finish() {
        latency = summarize(latencies_ns);
        latencies_ns = {};
    }
};

/// The benchmark's settings, from the command line.
struct options {
    fs::path dir = "build/bench-data";
    double seconds = 5;
    std::size_t rounds = 5;
    std::size_t producers = 32;
    std::vector<std::size_t> sizes{1024, 16384};
    uint64_t segment_mib = 256;
    std::string json_file;
};

std::chrono::nanoseconds duration_of(double seconds) {
    return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

std::string size_name(std::size_t bytes) {
    return bytes % 1024 == 0 ? fmt::format("{} KiB", bytes / 1024) : fmt::format("{} B", bytes);
}

// ---------------------------------------------------------------------------------------------
// Runnel: N acks=all producers on one shard

/// An uncompressed batch of one record whose value is sized so the whole stored batch is
/// `target` bytes (or as close as the varint lengths allow).
model::record_batch make_sized_batch(std::size_t target, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto key = fmt::format("producer-{}", seed);
    const auto ts = model::event_time(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
    auto value_bytes = static_cast<int64_t>(target) - 96;
    std::optional<model::record_batch> best;
    for (int attempt = 0; attempt < 8; ++attempt) {
        std::string value(static_cast<std::size_t>(std::max<int64_t>(value_bytes, 1)), '\0');
        for (auto& c : value) {
            c = static_cast<char>('a' + rng() % 26);
        }
        model::record_batch_builder b;
        b.add(key, value, ts);
        auto batch = b.build();
        const auto diff = static_cast<int64_t>(target) - static_cast<int64_t>(batch.size_bytes());
        const bool closer =
            !best || std::abs(diff) < std::abs(static_cast<int64_t>(target) -
                                               static_cast<int64_t>(best->size_bytes()));
        if (closer) {
            best = std::move(batch);
        }
        if (diff == 0) {
            break;
        }
        value_bytes += diff;
    }
    return std::move(*best);
}

/// Simulates `batches.size()` concurrent acks=all producers against one partition log.
///
/// Runs on the thread that calls `run`, which plays the log's owning shard (it runs the
/// manual executor that flush callbacks are posted to). Each producer appends its batch, calls
/// `flush`, and when the callback arrives records the latency (flush call to callback) and
/// appends again, until the deadline; then `run` waits for the flushes still in flight.
/// Concurrent flushes share one fdatasync on the flusher thread (group commit).
class producer_load {
public:
    producer_load(storage::partition_log& log, manual_executor& exec,
                  std::vector<model::record_batch> batches)
        : _log(log)
        , _exec(exec)
        , _batches(std::move(batches))
        , _flush_started(_batches.size()) {}

    /// Drives the load for `duration` and returns the measurement (without syncs, which the
    /// caller reads from the flusher).
    measurement run(std::chrono::nanoseconds duration) {
        _latencies_ns.reserve(1 << 16);
        const auto start = clock::now();
        _deadline = start + duration;
        _last_ack = start;
        _outstanding = _batches.size();
        for (std::size_t p = 0; p < _batches.size(); ++p) {
            send(p);
        }
        const bool drained =
            _exec.run_until([this] { return _outstanding == 0; },
                            std::chrono::duration_cast<std::chrono::milliseconds>(duration) +
                                std::chrono::seconds(60));
        measurement m;
        m.seconds = std::chrono::duration<double>(_last_ack - start).count();
        m.bytes = _acked_bytes;
        m.ops = _acked;
        m.latencies_ns = std::move(_latencies_ns);
        m.latency_kind = "flush() call to its callback";
        m.flush_groups = _groups;
        m.single_batch_groups = _single_groups + (_group_size == 1 ? 1 : 0);
        if (!drained && !_error) {
            _error = "flushes still pending 60 s after the deadline";
        }
        m.error = _error;
        return m;
    }

private:
    void send(std::size_t p) {
        if (auto a = _log.append(_batches[p]); !a) {
            fail(fmt::format("append: {}", a.error().message()));
            return;
        }
        _flush_started[p] = clock::now();
        _log.flush([this, p](result<void> r) { on_ack(p, r); });
    }

    void on_ack(std::size_t p, result<void> r) {
        const auto now = clock::now();
        if (!r) {
            fail(fmt::format("flush: {}", r.error().message()));
            return;
        }
        _latencies_ns.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - _flush_started[p]).count());
        ++_acked;
        _acked_bytes += _batches[p].size_bytes();
        // Callbacks released by one flush arrive together, after the durable point moved.
        if (const auto durable = _log.flushed_offset(); _groups == 0 || durable != _group_durable) {
            _single_groups += _groups > 0 && _group_size == 1 ? 1 : 0;
            ++_groups;
            _group_size = 0;
            _group_durable = durable;
        }
        ++_group_size;
        _last_ack = now;
        if (now < _deadline && !_error) {
            send(p);
        } else {
            --_outstanding;
        }
    }

    void fail(std::string why) {
        if (!_error) {
            _error = std::move(why);
        }
        --_outstanding;
    }

    storage::partition_log& _log;
    manual_executor& _exec;
    std::vector<model::record_batch> _batches;
    std::vector<clock::time_point> _flush_started;
    std::vector<int64_t> _latencies_ns;
    clock::time_point _deadline;
    clock::time_point _last_ack;
    std::size_t _outstanding = 0;
    uint64_t _acked = 0;
    uint64_t _acked_bytes = 0;
    uint64_t _groups = 0;
    uint64_t _single_groups = 0;
    uint64_t _group_size = 0;
    model::offset _group_durable;
    std::optional<std::string> _error;
};

measurement run_runnel(const options& opt, double seconds, std::size_t block, const fs::path& dir) {
    measurement m;
    manual_executor exec;
    storage::flusher flusher("bench-flusher");
    storage::log_config cfg;
    cfg.segment_bytes = opt.segment_mib << 20;
    cfg.max_batch_bytes =
        static_cast<uint32_t>(std::max<std::size_t>(block + 4096, cfg.max_batch_bytes));
    auto opened = storage::partition_log::open(dir, cfg, exec, flusher);
    if (!opened) {
        m.error = fmt::format("open {}: {}", dir.string(), opened.error().message());
    } else {
        auto log = opened.value();
        std::vector<model::record_batch> batches;
        for (std::size_t p = 0; p < opt.producers; ++p) {
            batches.push_back(make_sized_batch(block, p + 1));
        }
        const uint64_t syncs_before = flusher.completed();
        producer_load load(*log, exec, std::move(batches));
        m = load.run(duration_of(seconds));
        m.syncs = flusher.completed() - syncs_before;

        std::optional<result<void>> closed;
        log->close([&closed](result<void> r) { closed = r; });
        exec.run_until([&closed] { return closed.has_value(); }, std::chrono::seconds(60));
        if (!m.error && (!closed || !*closed)) {
            m.error = fmt::format("close: {}", closed ? closed->error().message() : "timed out");
        }
    }
    m.system = "runnel";
    m.label = fmt::format("runnel ({} producers)", opt.producers);
    m.block_bytes = block;
    return m;
}

// ---------------------------------------------------------------------------------------------
// The machine's limit: one thread, pwrite then fdatasync, appending to a new file

measurement run_raw_loop(double seconds, std::size_t block, const fs::path& file) {
    measurement m;
    m.system = "raw_loop";
    m.label = "pwrite+fdatasync loop";
    m.block_bytes = block;
    m.latency_kind = "fdatasync call";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        m.error = fmt::format("open {}: {}", file.string(), std::strerror(errno));
        return m;
    }
    std::vector<char> buf(block);
    std::mt19937_64 rng(block);
    for (auto& c : buf) {
        c = static_cast<char>('a' + rng() % 26);
    }
    std::vector<int64_t> lat;
    lat.reserve(1 << 16);
    off_t pos = 0;
    const auto start = clock::now();
    const auto deadline = start + duration_of(seconds);
    auto now = start;
    while (now < deadline && !m.error) {
        for (std::size_t done = 0; done < block;) {
            const auto n =
                ::pwrite(fd, buf.data() + done, block - done, pos + static_cast<off_t>(done));
            if (n < 0 && errno != EINTR) {
                m.error = fmt::format("pwrite: {}", std::strerror(errno));
                break;
            }
            done += n > 0 ? static_cast<std::size_t>(n) : 0;
        }
        const auto t0 = clock::now();
        int r = 0;
        while ((r = ::fdatasync(fd)) != 0 && errno == EINTR) {
        }
        if (r != 0) {
            m.error = fmt::format("fdatasync: {}", std::strerror(errno));
        }
        now = clock::now();
        lat.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count());
        pos += static_cast<off_t>(block);
        ++m.ops;
    }
    ::close(fd);
    m.seconds = std::chrono::duration<double>(now - start).count();
    m.bytes = m.ops * block;
    m.syncs = m.ops;
    m.latencies_ns = std::move(lat);
    return m;
}

// ---------------------------------------------------------------------------------------------
// fio, run through popen; its JSON report is read with Boost.JSON

/// fio treats ':' in a file name as a separator; a backslash escapes it.
std::string fio_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == ':') {
            out += '\\';
        }
        out += c;
    }
    return out;
}

std::string shell_quote(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

/// Runs `command` through the shell, returning its stdout and exit status (-1 if not run).
std::pair<std::string, int> run_command(const std::string& command) {
    std::FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) {
        return {{}, -1};
    }
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) {
        out.append(buf, n);
    }
    const int status = ::pclose(pipe);
    return {out, status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

/// fio's version string ("fio-3.33"), or nullopt when fio cannot be run.
std::optional<std::string> fio_version() {
    auto [out, status] = run_command("fio --version 2>/dev/null");
    if (status != 0 || !out.starts_with("fio-")) {
        return std::nullopt;
    }
    return out.substr(0, out.find_first_of("\r\n"));
}

/// fio, one job, sequential `block`-byte writes appending to a new file, fdatasync after every
/// `sync_every` writes. `--fallocate=none` makes the file grow with each write as a log
/// segment does (no preallocated extents), so both pay the same metadata cost per sync.
measurement run_fio(double seconds, std::size_t block, std::size_t sync_every,
                    const fs::path& file) {
    measurement m;
    m.system = sync_every == 1 ? "fio_fdatasync" : "fio_fdatasync_batched";
    m.label = fmt::format("fio fdatasync={}", sync_every);
    m.block_bytes = block;
    m.latency_kind = "fdatasync call";
    const auto command = fmt::format(
        "fio --name=storage-bench --filename={} --rw=write --bs={} --ioengine=sync --fdatasync={} "
        "--fallocate=none --size=8g --time_based --runtime={}ms --output-format=json+",
        shell_quote(fio_escape(file.string())), block, sync_every,
        std::max<int64_t>(1, static_cast<int64_t>(seconds * 1000)));
    auto [out, status] = run_command(command);
    if (status != 0) {
        m.error = fmt::format("fio exited with status {}: {}", status, command);
        return m;
    }
    const auto brace = out.find('{');
    boost::system::error_code ec;
    auto doc = brace == std::string::npos ? boost::json::value() : boost::json::parse(std::string_view(out).substr(brace), ec);
    // The number at a path of object keys and array indexes; nullopt if missing.
    const auto num = [&](std::initializer_list<std::string_view> path) -> std::optional<double> {
        boost::system::error_code path_ec;
        std::string pointer;
        for (auto k : path) {
            pointer += "/";
            pointer += k;
        }
        const auto* v = doc.find_pointer(pointer, path_ec);
        if (!v || !v->is_number()) {
            return std::nullopt;
        }
        return v->to_number<double>();
    };
    auto error = num({"jobs", "0", "error"});
    auto bw = num({"jobs", "0", "write", "bw_bytes"});
    auto ios = num({"jobs", "0", "write", "total_ios"});
    auto runtime_ms = num({"jobs", "0", "write", "runtime"});
    auto syncs = num({"jobs", "0", "sync", "lat_ns", "N"});
    boost::system::error_code bins_ec;
    const auto* bins = ec ? nullptr : doc.find_pointer("/jobs/0/sync/lat_ns/bins", bins_ec);
    if (!error || *error != 0 || !bw || !ios || !runtime_ms || *runtime_ms <= 0 || !syncs ||
        !bins || !bins->is_object()) {
        m.error =
            "fio's report lacks write bandwidth or the sync latency histogram (or the job failed)";
        return m;
    }
    // json+ reports every latency as a histogram: bin value (ns) -> count.
    for (const auto& [key, count] : bins->as_object()) {
        int64_t ns = 0;
        std::from_chars(key.data(), key.data() + key.size(), ns);
        m.latencies_ns.insert(m.latencies_ns.end(), static_cast<std::size_t>(count.to_number<double>()), ns);
    }
    m.seconds = *runtime_ms / 1000.0;
    m.bytes = static_cast<uint64_t>(*bw * m.seconds); // so mb_per_s() is fio's own bw_bytes
    m.ops = static_cast<uint64_t>(*ios);
    m.syncs = static_cast<uint64_t>(*syncs);
    return m;
}

// ---------------------------------------------------------------------------------------------
// Output

/// The run's scratch directory under --dir; removed, with everything in it, on destruction.
class scratch_dir {
public:
    explicit scratch_dir(fs::path path)
        : _path(std::move(path)) {
        fs::remove_all(_path);
        fs::create_directories(_path);
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(_path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    const fs::path& path() const noexcept { return _path; }

private:
    fs::path _path;
};

std::string filesystem_type(const fs::path& p) {
    struct statfs st {};
    if (::statfs(p.c_str(), &st) != 0) {
        return "unknown";
    }
    switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
        return "ext4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x01021994:
        return "tmpfs";
    case 0x794C7630:
        return "overlayfs";
    case 0x2FC12FC1:
        return "zfs";
    case 0x6969:
        return "nfs";
    default:
        return fmt::format("0x{:x}", static_cast<unsigned long>(st.f_type));
    }
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
            out += c;
        }
    }
    return out;
}

/// A finite number for JSON (which has no NaN or infinity).
double finite(double v) {
    return std::isfinite(v) ? v : 0;
}

const measurement* find(const std::vector<measurement>& all, std::size_t block,
                        std::string_view system) {
    for (const auto& m : all) {
        if (m.block_bytes == block && m.system == system && !m.error) {
            return &m;
        }
    }
    return nullptr;
}

std::optional<double> ratio(const measurement* a, const measurement* b) {
    if (!a || !b || b->mb_per_s() <= 0) {
        return std::nullopt;
    }
    return a->mb_per_s() / b->mb_per_s();
}

std::string json_ratio(std::optional<double> r) {
    return r ? fmt::format("{:.3f}", finite(*r)) : "null";
}

/// The spread of a ratio over the rounds (each round ran both systems back to back).
struct ratio_spread {
    double min = 0;
    double median = 0;
    double max = 0;
};

std::optional<ratio_spread> round_ratios(const measurement* a, const measurement* b) {
    if (!a || !b) {
        return std::nullopt;
    }
    std::vector<double> r;
    for (std::size_t i = 0; i < std::min(a->round_mb_per_s.size(), b->round_mb_per_s.size()); ++i) {
        if (b->round_mb_per_s[i] > 0) {
            r.push_back(a->round_mb_per_s[i] / b->round_mb_per_s[i]);
        }
    }
    if (r.empty()) {
        return std::nullopt;
    }
    std::sort(r.begin(), r.end());
    return ratio_spread{r.front(), r[r.size() / 2], r.back()};
}

void print_table(const options& opt, const std::vector<measurement>& all,
                 const std::string& fs_type, const std::string& fio) {
    fmt::print("storage_bench: partition_log append + flush (acks=all, group commit) vs fio and a "
               "pwrite+fdatasync loop\n");
    fmt::print(
        "dir {} ({}), nproc {}, {:.1f} s per system and size in {} interleaved rounds, {}\n\n",
        opt.dir.string(), fs_type, std::thread::hardware_concurrency(), opt.seconds, opt.rounds,
        fio);
    fmt::print("{:<7} {:<24} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}\n", "size", "system",
               "MB/s", "ops/s", "syncs/s", "ops/sync", "p50 us", "p99 us", "p99.9 us", "vs fio");
    for (const auto& m : all) {
        if (m.error) {
            fmt::print("{:<7} {:<24} failed: {}\n", size_name(m.block_bytes), m.label, *m.error);
            continue;
        }
        auto r = ratio(&m, find(all, m.block_bytes, "fio_fdatasync"));
        fmt::print(
            "{:<7} {:<24} {:>8.1f} {:>9.0f} {:>8.0f} {:>8.1f} {:>8.0f} {:>8.0f} {:>9.0f} {:>7}\n",
            size_name(m.block_bytes), m.label, m.mb_per_s(), m.ops_per_s(), m.syncs_per_s(),
            m.ops_per_sync(), m.latency.p50_us, m.latency.p99_us, m.latency.p999_us,
            r ? fmt::format("{:.2f}", *r) : "-");
    }
    fmt::print(
        "\nMB/s = 10^6 bytes made durable per second. runnel latency: flush() call to its callback "
        "(includes waiting for the fdatasync in flight); fio and loop latency: the fdatasync "
        "call.\n");
    for (const auto& m : all) {
        if (m.system == "runnel" && !m.error && m.flush_groups > 0) {
            fmt::print("{}: runnel acknowledged {} batches in {} flush groups ({:.1f} per group); "
                       "{} groups "
                       "({:.0f}%) held a single batch\n",
                       size_name(m.block_bytes), m.ops, m.flush_groups,
                       static_cast<double>(m.ops) / static_cast<double>(m.flush_groups),
                       m.single_batch_groups,
                       100.0 * static_cast<double>(m.single_batch_groups) /
                           static_cast<double>(m.flush_groups));
        }
    }
    for (auto block : opt.sizes) {
        const auto* runnel = find(all, block, "runnel");
        const auto* fio_sync = find(all, block, "fio_fdatasync");
        auto r = ratio(runnel, fio_sync);
        if (r) {
            const auto spread = round_ratios(runnel, fio_sync);
            fmt::print("{}: runnel / fio fdatasync = {:.2f} (per round {:.2f}..{:.2f}); target >= "
                       "{:.2f}: {}\n",
                       size_name(block), *r, spread->min, spread->max, target_ratio,
                       *r >= target_ratio ? "met" : "NOT met");
        }
        if (auto b = ratio(runnel, find(all, block, "fio_fdatasync_batched"))) {
            fmt::print("{}: runnel / fio fdatasync={} (the batched-sync ceiling) = {:.2f}\n",
                       size_name(block), opt.producers, *b);
        }
    }
    fmt::print("\n");
}

std::string to_json(const options& opt, const std::vector<measurement>& all,
                    const std::string& fs_type, const std::string& fio) {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::string out = "{\n";
    out +=
        fmt::format("  \"benchmark\": \"storage_bench\",\n  \"date\": \"{:%Y-%m-%dT%H:%M:%SZ}\",\n",
                    fmt::gmtime(now));
    out += fmt::format("  \"machine\": {{\"nproc\": {}, \"dir\": \"{}\", \"filesystem\": \"{}\", "
                       "\"fio\": \"{}\"}},\n",
                       std::thread::hardware_concurrency(), json_escape(opt.dir.string()),
                       json_escape(fs_type), json_escape(fio));
    out +=
        fmt::format("  \"config\": {{\"seconds\": {}, \"rounds\": {}, \"producers\": {}, "
                    "\"segment_bytes\": {}, \"fio_batched_sync_every\": {}}},\n",
                    opt.seconds, opt.rounds, opt.producers, opt.segment_mib << 20, opt.producers);
    out += "  \"results\": [\n";
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& m = all[i];
        out +=
            fmt::format("    {{\"block_bytes\": {}, \"system\": \"{}\", ", m.block_bytes, m.system);
        if (m.error) {
            out += fmt::format("\"error\": \"{}\"}}", json_escape(*m.error));
        } else {
            out += fmt::format(
                "\"seconds\": {:.3f}, \"bytes\": {}, \"ops\": {}, \"syncs\": {}, \"mb_per_s\": "
                "{:.2f}, "
                "\"ops_per_s\": {:.1f}, \"syncs_per_s\": {:.1f}, \"ops_per_sync\": {:.2f}, "
                "\"latency_us\": {{\"p50\": {:.1f}, \"p99\": {:.1f}, \"p999\": {:.1f}, \"of\": "
                "\"{}\"}}, "
                "\"round_mb_per_s\": [{:.2f}]}}",
                m.seconds, m.bytes, m.ops, m.syncs, finite(m.mb_per_s()), finite(m.ops_per_s()),
                finite(m.syncs_per_s()), finite(m.ops_per_sync()), m.latency.p50_us,
                m.latency.p99_us, m.latency.p999_us, json_escape(m.latency_kind),
                fmt::join(m.round_mb_per_s, ", "));
            if (m.system == "runnel") {
                out.insert(out.size() - 1,
                           fmt::format(", \"flush_groups\": {}, \"single_batch_groups\": {}",
                                       m.flush_groups, m.single_batch_groups));
            }
        }
        out += i + 1 < all.size() ? ",\n" : "\n";
    }
    out += "  ],\n  \"ratios\": [\n";
    for (std::size_t i = 0; i < opt.sizes.size(); ++i) {
        const auto block = opt.sizes[i];
        const auto* runnel = find(all, block, "runnel");
        const auto vs_fio = ratio(runnel, find(all, block, "fio_fdatasync"));
        const auto spread = round_ratios(runnel, find(all, block, "fio_fdatasync"));
        out += fmt::format(
            "    {{\"block_bytes\": {}, \"runnel_vs_fio_fdatasync\": {}, "
            "\"runnel_vs_fio_fdatasync_per_round\": {}, "
            "\"runnel_vs_raw_loop\": {}, "
            "\"runnel_vs_fio_fdatasync_batched\": {}, \"target\": {}, \"target_met\": {}}}{}\n",
            block, json_ratio(vs_fio),
            spread ? fmt::format("{{\"min\": {:.3f}, \"median\": {:.3f}, \"max\": {:.3f}}}",
                                 spread->min, spread->median, spread->max)
                   : "null",
            json_ratio(ratio(runnel, find(all, block, "raw_loop"))),
            json_ratio(ratio(runnel, find(all, block, "fio_fdatasync_batched"))), target_ratio,
            vs_fio ? (*vs_fio >= target_ratio ? "true" : "false") : "null",
            i + 1 < opt.sizes.size() ? "," : "");
    }
    out += "  ]\n}\n";
    return out;
}

int run(const options& opt) {
    const auto fio = fio_version();
    if (!fio) {
        fmt::print(stderr,
                   "storage_bench: fio not found on PATH (Debian: apt-get install fio); it is the "
                   "peer this benchmark measures against\n");
        return 2;
    }
    std::error_code ec;
    fs::create_directories(opt.dir, ec);
    if (ec) {
        fmt::print(stderr, "storage_bench: cannot create {}: {}\n", opt.dir.string(), ec.message());
        return 2;
    }
    const auto fs_type = filesystem_type(opt.dir);
    if (fs_type == "tmpfs") {
        fmt::print(stderr, "storage_bench: warning: {} is on tmpfs, where fdatasync does nothing\n",
                   opt.dir.string());
    }
    // Files stay until the end, so unlinking (and online discard) never overlaps a measurement.
    scratch_dir scratch(opt.dir / fmt::format("storage-bench-{}", ::getpid()));

    // Each system runs for seconds/rounds per round, in an order rotated every round, so a disk
    // whose speed drifts (a shared or throttled virtual disk) is seen alike by all of them.
    const double round_seconds = opt.seconds / static_cast<double>(opt.rounds);
    std::vector<measurement> all;
    for (auto block : opt.sizes) {
        constexpr std::size_t systems = 4;
        std::array<measurement, systems> total;
        for (std::size_t round = 0; round < opt.rounds; ++round) {
            fmt::print(stderr, "storage_bench: {}: round {}/{}\n", size_name(block), round + 1,
                       opt.rounds);
            const auto file = [&](std::string_view what) {
                return scratch.path() / fmt::format("{}-{}-r{}", what, block, round);
            };
            for (std::size_t k = 0; k < systems; ++k) {
                const std::size_t i = (k + round) % systems;
                measurement m;
                switch (i) {
                case 0:
                    m = run_fio(round_seconds, block, 1, file("fio-sync1"));
                    break;
                case 1:
                    m = run_raw_loop(round_seconds, block, file("raw"));
                    break;
                case 2:
                    m = run_runnel(opt, round_seconds, block, file("runnel"));
                    break;
                default:
                    m = run_fio(round_seconds, block, opt.producers, file("fio-batched"));
                    break;
                }
                if (round == 0) {
                    total[i].system = m.system;
                    total[i].label = m.label;
                    total[i].block_bytes = block;
                }
                total[i].absorb(std::move(m));
            }
        }
        for (auto& m : total) {
            m.finish();
            all.push_back(std::move(m));
        }
    }

    print_table(opt, all, fs_type, *fio);
    const auto json = to_json(opt, all, fs_type, *fio);
    fmt::print("{}", json);
    if (!opt.json_file.empty()) {
        std::ofstream f(opt.json_file, std::ios::trunc);
        f << json;
        if (!f.flush()) {
            fmt::print(stderr, "storage_bench: cannot write {}\n", opt.json_file);
            return 1;
        }
    }
    const bool failed =
        std::any_of(all.begin(), all.end(), [](const auto& m) { return m.error.has_value(); });
    return failed ? 1 : 0;
}

} // namespace
} // namespace runnel::bench

int main(int argc, char** argv) {
    runnel::bench::options opt;
    CLI::App app{
        "storage_bench: partition_log append + group-commit flush vs fio and a pwrite+fdatasync "
        "loop on the same disk"};
    app.add_option("--dir", opt.dir,
                   "directory on the disk to measure (a scratch subdirectory is made and removed)")
        ->capture_default_str();
    app.add_option("--seconds", opt.seconds, "time each system runs at each size, over all rounds")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 600.0));
    app.add_option("--rounds", opt.rounds, "interleaved rounds the time is split into")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
    app.add_option("--producers", opt.producers, "concurrent acks=all producers on the shard")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    app.add_option("--sizes", opt.sizes, "batch (and fio block) sizes in bytes")
        ->delimiter(',')
        ->capture_default_str()
        ->check(CLI::Range(128, 1 << 20));
    app.add_option("--segment-mib", opt.segment_mib, "segment.bytes of the log, in MiB")
        ->capture_default_str()
        ->check(CLI::Range(1, 2047));
    app.add_option("--json", opt.json_file, "also write the JSON document to this file");
    CLI11_PARSE(app, argc, argv);
    return runnel::bench::run(opt);
}
