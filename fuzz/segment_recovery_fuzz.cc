// Feeds arbitrary bytes to segment recovery: the input becomes the files of one partition
// directory, which is then opened, read to its end, searched by time and appended to.
//
// Input layout: byte 0 chooses the shape —
//   bit 0: a recovery point is present (the next 8 bytes, taken modulo 4096),
//   bit 1: the data is split into a sealed segment and an active one (split at the next
//          2 bytes, modulo the data size; the sealed one has no index, so it is rebuilt).
// The rest is segment bytes.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "storage/storage.h"

namespace {

using namespace runnel;

std::filesystem::path work_dir() {
    static const std::filesystem::path dir = [] {
        std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
        return base / ("runnel-fuzz-" + std::to_string(::getpid()));
    }();
    return dir;
}

void write_file(const std::filesystem::path& p, const uint8_t* data, std::size_t n) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}

void check(bool cond) {
    if (!cond) {
        __builtin_trap();
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    logging::set_level(spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    static manual_executor exec;
    static storage::flusher fl("fuzz-flusher");
    if (size < 1) {
        return 0;
    }
    const uint8_t shape = data[0];
    ++data;
    --size;

    const auto dir = work_dir();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);

    if ((shape & 1) && size >= 8) {
        // A recovery point file of our own format, holding a small offset.
        int64_t rp = 0;
        for (int i = 0; i < 8; ++i) {
            rp = (rp << 8) | data[i];
        }
        rp = static_cast<int64_t>(static_cast<uint64_t>(rp) % 4096);
        byte_buffer b(16);
        write_le<uint32_t>(b.data(), 0x50524e52);
        write_le<int64_t>(b.data() + 8, rp);
        write_le<uint32_t>(b.data() + 4, crc32c::value(b.span().subspan(8)));
        write_file(dir / "recovery_point", reinterpret_cast<const uint8_t*>(b.data()), b.size());
        data += 8;
        size -= 8;
    }
    std::size_t split = 0;
    if ((shape & 2) && size >= 2) {
        split = static_cast<std::size_t>(data[0] << 8 | data[1]);
        data += 2;
        size -= 2;
        split = size ? split % size : 0;
    }
    if (split > 0) {
        write_file(dir / "00000000000000000000.log", data, split);
        // The active segment's base: what the sealed one would end at if it were valid.
        int64_t next = 0;
        std::size_t pos = 0;
        while (pos + model::batch_layout::header_size <= split) {
            auto h = model::parse_batch_header(
              std::span(reinterpret_cast<const std::byte*>(data) + pos, split - pos));
            if (!h || h.value().size_bytes() > split - pos) {
                break;
            }
            next = h.value().next_offset()();
            pos += h.value().size_bytes();
        }
        write_file(dir / fmt::format("{:020d}.log", std::max<int64_t>(next, 1)), data + split, size - split);
    } else {
        write_file(dir / "00000000000000000000.log", data, size);
    }

    storage::log_config cfg;
    cfg.segment_bytes = 64 << 10;
    auto opened = storage::partition_log::open(dir, cfg, exec, fl);
    if (!opened) {
        return 0;
    }
    auto log = opened.value();
    check(log->start_offset() <= log->next_offset());

    // Everything served must be whole, valid batches in offset order.
    model::offset at = log->start_offset();
    while (at < log->next_offset()) {
        auto r = log->read(at, 1 << 16);
        if (!r) {
            break; // corrupt data is refused, never served
        }
        if (r.value().batches == 0) {
            break;
        }
        auto bytes = r.value().bytes.span();
        while (!bytes.empty()) {
            auto h = model::validate_batch(bytes);
            check(h.has_value());
            check(h.value().last_offset() >= at || h.value().base_offset <= at);
            bytes = bytes.subspan(h.value().size_bytes());
        }
        check(r.value().next_offset > at);
        at = r.value().next_offset;
    }
    (void)log->timequery(model::event_time(0));
    (void)log->timequery(model::event_time(1'700'000'000'000));

    model::record_batch_builder b;
    b.add("k", "v", model::event_time(1));
    auto batch = b.build();
    if (log->append(batch)) {
        auto back = log->read(batch.header().base_offset, 1 << 16);
        check(back.has_value() && back.value().batches >= 1);
    }
    bool closed = false;
    log->close([&](result<void>) { closed = true; });
    exec.run_until([&] { return closed; });
    return 0;
}
