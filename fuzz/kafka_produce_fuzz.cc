// Builds structurally valid Produce and Fetch requests from the fuzz input, with hostile
// values where a client chooses them: record counts and lengths that disagree with the
// bytes, offset deltas out of order, unknown codecs, compressed sections that are garbage or
// inflate far past the bound, repeated partitions, huge max_bytes, array counts claiming far
// more entries than the frame holds. Each request is encoded, decoded as the server would,
// and every batch of a Produce goes through the checks the broker makes before appending
// (`validate_batch`, then `validate_produced_batch`).
//
// Asserted: nothing crashes; a batch the checks accept decodes record by record; and the
// memory the decoding and checks allocate for one request stays within a bound set by the
// request's own size and the inflation limit, never by what its fields claim (tracked
// with the sanitizer allocator's hooks; scripts/fuzz also runs it with -malloc_limit_mb).

#include <cstdint>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <sanitizer/allocator_interface.h>
#include <zlib.h>
#include <zstd.h>

#include "kafka/protocol/protocol.h"
#include "model/model.h"

namespace {

using namespace runnel;
namespace proto = kafka::protocol;

constexpr std::size_t max_inflated = std::size_t{1} << 20;

void check(bool cond, const char* what) {
    if (!cond) {
        fprintf(stderr, "kafka_produce_fuzz: %s\n", what);
        __builtin_trap();
    }
}

// -- allocation tracking (single-threaded: libFuzzer runs one input at a time) -------------

std::size_t live_bytes = 0;
std::size_t peak_bytes = 0;
bool tracking = false;

void on_malloc(const volatile void*, std::size_t size) {
    if (tracking) {
        live_bytes += size;
        peak_bytes = std::max(peak_bytes, live_bytes);
    }
}

void on_free(const volatile void* p) {
    if (tracking && p) {
        const auto size = __sanitizer_get_allocated_size(const_cast<const void*>(p));
        live_bytes -= std::min(live_bytes, size);
    }
}

/// Measures the most bytes live at once while `f` runs, counting from zero at its start.
template <typename F>
std::size_t peak_allocated(F&& f) {
    live_bytes = peak_bytes = 0;
    tracking = true;
    f();
    tracking = false;
    return peak_bytes;
}

// -- building hostile batches --------------------------------------------------------------

void append_varint(std::vector<std::byte>& out, int64_t v) { model::varint::append(out, v); }

/// A records section: mostly true to itself, with each field sometimes replaced by a
/// hostile value the provider picks.
std::vector<std::byte> records_section(FuzzedDataProvider& in, int32_t n) {
    std::vector<std::byte> out;
    for (int32_t i = 0; i < n && in.remaining_bytes() > 0; ++i) {
        const bool hostile = in.ConsumeIntegralInRange<int>(0, 7) == 0;
        std::vector<std::byte> rec{std::byte{0}};
        append_varint(rec, hostile ? in.ConsumeIntegral<int64_t>() : in.ConsumeIntegralInRange<int64_t>(0, 1000));
        append_varint(rec, hostile ? in.ConsumeIntegral<int32_t>() : i);
        auto key = in.ConsumeRandomLengthString(32);
        append_varint(rec, hostile ? in.ConsumeIntegral<int32_t>() : static_cast<int64_t>(key.size()));
        rec.insert(rec.end(), reinterpret_cast<const std::byte*>(key.data()),
                   reinterpret_cast<const std::byte*>(key.data()) + key.size());
        append_varint(rec, -1); // null value
        const auto headers = in.ConsumeIntegralInRange<int>(0, 3);
        append_varint(rec, hostile ? in.ConsumeIntegral<int32_t>() : headers);
        for (int h = 0; h < headers; ++h) {
            append_varint(rec, 1);
            rec.push_back(std::byte{'h'});
            append_varint(rec, in.ConsumeBool() ? -1 : 0);
        }
        const int64_t len = static_cast<int64_t>(rec.size()) + (hostile ? in.ConsumeIntegralInRange<int64_t>(-3, 3) : 0);
        append_varint(out, len);
        out.insert(out.end(), rec.begin(), rec.end());
    }
    return out;
}

std::vector<std::byte> gzip(std::span<const std::byte> in) {
    uLongf n = compressBound(static_cast<uLong>(in.size()));
    std::vector<std::byte> out(n);
    if (compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()),
                  static_cast<uLong>(in.size()), 1)
        != Z_OK) {
        return {};
    }
    out.resize(n);
    return out;
}

std::vector<std::byte> zstd(std::span<const std::byte> in) {
    std::vector<std::byte> out(ZSTD_compressBound(in.size()));
    auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 1);
    if (ZSTD_isError(n)) {
        return {};
    }
    out.resize(n);
    return out;
}

/// One RecordBatch v2 with a correct CRC around a hostile (or honest) records section.
std::vector<std::byte> hostile_batch(FuzzedDataProvider& in) {
    namespace L = model::batch_layout;
    const auto n = in.ConsumeIntegralInRange<int32_t>(1, 40);
    auto section = records_section(in, n);
    int16_t codec = 0;
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 1:
        codec = 1;
        section = gzip(section);
        break;
    case 2:
        codec = 4;
        section = zstd(section);
        break;
    case 3: { // a bomb: a few MiB of zeros behind one record header, far past the bound
        std::vector<std::byte> zeros(in.ConsumeIntegralInRange<std::size_t>(1, 4) << 20);
        codec = in.ConsumeBool() ? 1 : 4;
        section = codec == 1 ? gzip(zeros) : zstd(zeros);
        break;
    }
    case 4: // garbage under a real or unknown codec
        codec = in.ConsumeIntegralInRange<int16_t>(1, 7);
        break;
    default:
        break;
    }
    const int32_t count = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.ConsumeIntegral<int32_t>() : n;
    const int32_t lod = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.ConsumeIntegral<int32_t>() : static_cast<int32_t>(static_cast<int64_t>(count) - 1);
    std::vector<std::byte> b(L::header_size + section.size());
    std::byte* p = b.data();
    write_be<int64_t>(p + L::base_offset, 0);
    write_be<int32_t>(p + L::length, static_cast<int32_t>(b.size() - L::length_field_end));
    write_be<int32_t>(p + L::leader_epoch, -1);
    write_be<int8_t>(p + L::magic, 2);
    write_be<int16_t>(p + L::attributes, static_cast<int16_t>(codec | (in.ConsumeIntegralInRange<int>(0, 15) == 0 ? 0x28 : 0)));
    write_be<int32_t>(p + L::last_offset_delta, lod);
    const auto first_ts = in.ConsumeIntegralInRange<int64_t>(-2, 1'700'000'000'000);
    write_be<int64_t>(p + L::first_timestamp, first_ts);
    write_be<int64_t>(p + L::max_timestamp, first_ts + in.ConsumeIntegralInRange<int64_t>(-1, 2000));
    write_be<int64_t>(p + L::producer_id, -1);
    write_be<int16_t>(p + L::producer_epoch, -1);
    write_be<int32_t>(p + L::base_sequence, -1);
    write_be<int32_t>(p + L::record_count, count);
    if (!section.empty()) {
        std::memcpy(p + L::header_size, section.data(), section.size());
    }
    write_be<uint32_t>(p + L::crc, model::compute_batch_crc(b));
    return b;
}

// -- the checks the broker runs on a decoded request ---------------------------------------

int last_codec = -1; // of the last batch checked, for the report of a bound broken

void check_produced(std::span<const std::byte> records) {
    auto h = model::validate_batch(records);
    if (!h || h.value().size_bytes() != records.size()) {
        return; // the broker answers CORRUPT_MESSAGE / INVALID_RECORD before reading records
    }
    last_codec = h.value().attributes & 0x7;
    std::string why;
    auto v = model::validate_produced_batch(records, h.value(), {max_inflated}, why);
    if (!v) {
        check(!why.empty(), "a refused batch must say why");
        return;
    }
    // Accepted: every record must decode, as consumers will (inflating within the bound).
    std::vector<std::byte> storage;
    std::string reason;
    auto plain = model::uncompressed_batch(records, h.value(), max_inflated, storage, reason);
    check(plain.has_value(), "an accepted batch must inflate");
    auto recs = model::decode_records(*plain);
    check(recs.has_value(), "an accepted batch must decode");
    check(recs.value().size() == static_cast<std::size_t>(h.value().record_count), "record count");
    for (std::size_t i = 0; i < recs.value().size(); ++i) {
        check(recs.value()[i].offset_value == h.value().base_offset + static_cast<int64_t>(i), "offsets in order");
    }
}

/// Overwrites the int32 at `at` (a classic array count) with a huge claim.
void claim_more(std::vector<std::byte>& body, std::size_t at, int32_t claim) {
    if (at + 4 <= body.size()) {
        write_be<int32_t>(body.data() + at, claim);
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    const bool produce = in.ConsumeBool();
    std::vector<std::byte> body;
    int16_t api = 0;
    int16_t version = 0;
    if (produce) {
        api = 0;
        version = in.ConsumeIntegralInRange<int16_t>(proto::produce_request::min_version,
                                                     proto::produce_request::max_version);
        proto::produce_request req;
        if (in.ConsumeBool()) {
            req.transactional_id = in.ConsumeRandomLengthString(16);
        }
        req.acks = in.ConsumeIntegral<int16_t>();
        req.timeout_ms = in.ConsumeIntegral<int32_t>();
        const auto topics = in.ConsumeIntegralInRange<int>(1, 3);
        for (int t = 0; t < topics; ++t) {
            auto& topic = req.topic_data.emplace_back();
            topic.name = in.ConsumeRandomLengthString(20);
            const auto parts = in.ConsumeIntegralInRange<int>(1, 4);
            for (int p = 0; p < parts; ++p) {
                auto& part = topic.partition_data.emplace_back();
                part.index = in.ConsumeBool() ? 0 : in.ConsumeIntegral<int32_t>(); // repeats partition 0 often
                if (in.ConsumeIntegralInRange<int>(0, 7) != 0) {
                    part.records = hostile_batch(in);
                    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
                        auto second = hostile_batch(in); // two batches in one partition
                        part.records->insert(part.records->end(), second.begin(), second.end());
                    }
                }
            }
        }
        proto::writer w;
        req.encode(w, version);
        body = w.take();
        if (version < proto::produce_request::first_flexible_version && in.ConsumeIntegralInRange<int>(0, 7) == 0) {
            // The topic array count, after transactional_id, acks and timeout_ms.
            const std::size_t tid = req.transactional_id ? req.transactional_id->size() : 0;
            claim_more(body, 2 + tid + 2 + 4, in.ConsumeIntegralInRange<int32_t>(1 << 20, INT32_MAX));
        }
    } else {
        api = 1;
        version = in.ConsumeIntegralInRange<int16_t>(proto::fetch_request::min_version,
                                                     proto::fetch_request::max_version);
        proto::fetch_request req;
        req.max_wait_ms = in.ConsumeIntegral<int32_t>();
        req.min_bytes = in.ConsumeIntegral<int32_t>();
        req.max_bytes = in.ConsumeBool() ? INT32_MAX : in.ConsumeIntegral<int32_t>();
        req.isolation_level = in.ConsumeIntegral<int8_t>();
        req.session_id = in.ConsumeIntegral<int32_t>();
        req.session_epoch = in.ConsumeIntegral<int32_t>();
        const auto topics = in.ConsumeIntegralInRange<int>(0, 4);
        for (int t = 0; t < topics; ++t) {
            auto& topic = req.topics.emplace_back();
            topic.topic = in.ConsumeRandomLengthString(20);
            const auto parts = in.ConsumeIntegralInRange<int>(0, 6);
            for (int p = 0; p < parts; ++p) {
                auto& part = topic.partitions.emplace_back();
                part.partition = in.ConsumeBool() ? 0 : in.ConsumeIntegral<int32_t>();
                part.fetch_offset = in.ConsumeIntegral<int64_t>();
                part.partition_max_bytes = in.ConsumeBool() ? INT32_MAX : in.ConsumeIntegral<int32_t>();
                part.log_start_offset = in.ConsumeIntegral<int64_t>();
            }
        }
        proto::writer w;
        req.encode(w, version);
        body = w.take();
        if (version < proto::fetch_request::first_flexible_version && in.ConsumeIntegralInRange<int>(0, 7) == 0) {
            // The topic array count, after replica_id, max_wait_ms, min_bytes, max_bytes,
            // isolation_level and (v7+) the session id and epoch.
            claim_more(body, 4 + 4 + 4 + 4 + 1 + (version >= 7 ? 8 : 0),
                       in.ConsumeIntegralInRange<int32_t>(1 << 20, INT32_MAX));
        }
    }

    const auto peak = peak_allocated([&] {
        auto decoded = proto::decode_request(api, version, body);
        if (!decoded) {
            return;
        }
        if (auto* req = std::get_if<proto::produce_request>(&decoded.value())) {
            for (const auto& t : req->topic_data) {
                for (const auto& p : t.partition_data) {
                    if (p.records) {
                        check_produced(*p.records);
                    }
                }
            }
        }
    });
    // What one request may cost: a few times its own bytes for the decoded structures, the
    // inflation bound (and its last chunk) twice, once to check a batch and once to decode
    // an accepted one as a consumer would, and one codec's state: lz4's largest block
    // buffer (4 MiB) or zstd's window (at most max(2 MiB, the bound)), plus their tables.
    const std::size_t codec_state = (4u << 20) + (512u << 10);
    const std::size_t bound = 64 * body.size() + 2 * (max_inflated + (64u << 10)) + codec_state;
    if (peak > bound) {
        fprintf(stderr, "request of %zu bytes allocated %zu bytes at once (bound %zu; last codec %d)\n", body.size(),
                peak, bound, last_codec);
        __builtin_trap();
    }
    return 0;
}
