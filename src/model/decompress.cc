#include "model/decompress.h"

#include <cstring>

#include <fmt/format.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

namespace runnel::model {
namespace {

constexpr std::size_t chunk = 64 * 1024;

/// Makes room for `need` bytes in `out` without its capacity passing `most` (>= need).
/// libstdc++ rounds a request below twice the capacity up to twice it, so capacity doubles
/// only while that keeps it within half of `most`, then goes straight to `most`.
void reserve_within(std::string& out, std::size_t need, std::size_t most) {
    if (out.capacity() >= need) {
        return;
    }
    auto want = std::max(out.capacity() * 2, need);
    if (want * 2 > most) {
        want = std::max(most, need);
    }
    out.reserve(want);
}

/// Appends room for one more chunk to `out`. The callers stop once the output exceeds
/// `limit`, so its capacity never passes `limit` plus one chunk: a compression bomb costs at
/// most that much memory.
void add_chunk(std::string& out, std::size_t limit) {
    const auto have = out.size();
    reserve_within(out, have + chunk, std::max(limit, have) + chunk);
    out.resize(have + chunk);
}

std::optional<std::string> gunzip(std::span<const std::byte> in, std::size_t limit, std::string& why, bool& over) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 32) != Z_OK) { // 32: accept gzip and zlib headers
        why = "gzip: cannot start inflating";
        return std::nullopt;
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    std::string out;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        const auto have = out.size();
        add_chunk(out, limit);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + have);
        zs.avail_out = static_cast<uInt>(chunk);
        rc = inflate(&zs, Z_NO_FLUSH);
        out.resize(have + (chunk - zs.avail_out));
        if (rc != Z_OK && rc != Z_STREAM_END) {
            why = fmt::format("gzip: {}", zs.msg ? zs.msg : "corrupt or truncated data");
            break;
        }
        if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
            why = "gzip: truncated data";
            break;
        }
        if (out.size() > limit) {
            why = fmt::format("gzip: inflates past {} bytes", limit);
            over = true;
            break;
        }
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::string> unsnappy_block(const char* data, std::size_t size, std::size_t limit, std::string& why,
                                           bool& over) {
    std::size_t n = 0;
    if (snappy_uncompressed_length(data, size, &n) != SNAPPY_OK) {
        why = "snappy: corrupt block header";
        return std::nullopt;
    }
    if (n > limit) {
        why = fmt::format("snappy: inflates past {} bytes", limit);
        over = true;
        return std::nullopt;
    }
    std::string out(n, '\0');
    if (snappy_uncompress(data, size, out.data(), &n) != SNAPPY_OK) {
        why = "snappy: corrupt data";
        return std::nullopt;
    }
    out.resize(n);
    return out;
}

std::optional<std::string> unsnappy(std::span<const std::byte> in, std::size_t limit, std::string& why, bool& over) {
    const auto* p = reinterpret_cast<const char*>(in.data());
    // Java clients frame snappy the way xerial's library does: a 16-byte header, then blocks
    // each prefixed by a big-endian length. Others send one raw snappy block.
    static constexpr char xerial[] = {'\x82', 'S', 'N', 'A', 'P', 'P', 'Y', '\0'};
    if (in.size() < 16 || std::memcmp(p, xerial, sizeof xerial) != 0) {
        return unsnappy_block(p, in.size(), limit, why, over);
    }
    std::string out;
    std::size_t pos = 16;
    while (pos < in.size()) {
        if (in.size() - pos < 4) {
            why = "snappy: truncated block length";
            return std::nullopt;
        }
        const auto len = static_cast<std::size_t>(read_be<uint32_t>(in.data() + pos));
        pos += 4;
        if (len > in.size() - pos) {
            why = "snappy: truncated block";
            return std::nullopt;
        }
        auto block = unsnappy_block(p + pos, len, limit - std::min(limit, out.size()), why, over);
        if (!block) {
            return std::nullopt;
        }
        reserve_within(out, out.size() + block->size(), std::max(limit, out.size() + block->size()));
        out += *block;
        pos += len;
    }
    return out;
}

std::optional<std::string> unlz4(std::span<const std::byte> in, std::size_t limit, std::string& why, bool& over) {
    LZ4F_dctx* ctx = nullptr;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) {
        why = "lz4: cannot start decompressing";
        return std::nullopt;
    }
    std::string out;
    std::size_t pos = 0;
    std::size_t hint = 1;
    bool ok = true;
    while (pos < in.size() && hint != 0) {
        const auto have = out.size();
        add_chunk(out, limit);
        std::size_t out_size = chunk;
        std::size_t in_size = in.size() - pos;
        hint = LZ4F_decompress(ctx, out.data() + have, &out_size, in.data() + pos, &in_size, nullptr);
        out.resize(have + out_size);
        pos += in_size;
        if (LZ4F_isError(hint)) {
            why = fmt::format("lz4: {}", LZ4F_getErrorName(hint));
            ok = false;
            break;
        }
        if (out.size() > limit) {
            why = fmt::format("lz4: inflates past {} bytes", limit);
            over = true;
            ok = false;
            break;
        }
        if (in_size == 0 && out_size == 0) {
            break;
        }
    }
    LZ4F_freeDecompressionContext(ctx);
    if (ok && hint != 0) {
        why = "lz4: truncated frame";
        ok = false;
    }
    return ok ? std::optional<std::string>(std::move(out)) : std::nullopt;
}

std::optional<std::string> unzstd(std::span<const std::byte> in, std::size_t limit, std::string& why, bool& over) {
    ZSTD_DStream* ds = ZSTD_createDStream();
    if (!ds) {
        why = "zstd: cannot start decompressing";
        return std::nullopt;
    }
    // The decoder allocates the window the frame header asks for (up to 2^27, 128 MiB, by default):
    // no larger than the output may be, but never below the 2 MiB window of the compression
    // levels Kafka clients use.
    int window_log = 21;
    while (window_log < 27 && (std::size_t{1} << window_log) < limit) {
        ++window_log;
    }
    ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, window_log);
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::string out;
    std::size_t rc = 1;
    bool ok = true;
    while (src.pos < src.size || rc != 0) {
        const auto have = out.size();
        add_chunk(out, limit);
        ZSTD_outBuffer dst{out.data() + have, chunk, 0};
        const auto before = src.pos;
        rc = ZSTD_decompressStream(ds, &dst, &src);
        out.resize(have + dst.pos);
        if (ZSTD_isError(rc)) {
            why = fmt::format("zstd: {}", ZSTD_getErrorName(rc));
            ok = false;
            break;
        }
        if (out.size() > limit) {
            why = fmt::format("zstd: inflates past {} bytes", limit);
            over = true;
            ok = false;
            break;
        }
        if (rc != 0 && src.pos == src.size && dst.pos == 0 && before == src.pos) {
            why = "zstd: truncated frame";
            ok = false;
            break;
        }
    }
    ZSTD_freeDStream(ds);
    return ok ? std::optional<std::string>(std::move(out)) : std::nullopt;
}

} // namespace

std::optional<std::string> decompress_records(model::compression c, std::span<const std::byte> in, std::size_t limit,
                                              std::string& why, bool* over_limit) {
    bool over = false;
    std::optional<std::string> out;
    switch (c) {
    case model::compression::gzip:
        out = gunzip(in, limit, why, over);
        break;
    case model::compression::snappy:
        out = unsnappy(in, limit, why, over);
        break;
    case model::compression::lz4:
        out = unlz4(in, limit, why, over);
        break;
    case model::compression::zstd:
        out = unzstd(in, limit, why, over);
        break;
    case model::compression::none:
        return std::string(reinterpret_cast<const char*>(in.data()), in.size());
    default:
        why = fmt::format("unknown compression codec {}", static_cast<int>(c));
        return std::nullopt;
    }
    if (over_limit) {
        *over_limit = over;
    }
    return out;
}

std::optional<std::string> compress_records(model::compression c, std::span<const std::byte> in, std::string& why) {
    std::string out;
    switch (c) {
    case model::compression::none:
        return std::string(reinterpret_cast<const char*>(in.data()), in.size());
    case model::compression::gzip: {
        z_stream zs{};
        if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            why = "gzip: cannot start deflating";
            return std::nullopt;
        }
        out.resize(deflateBound(&zs, static_cast<uLong>(in.size())));
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
        zs.avail_in = static_cast<uInt>(in.size());
        zs.next_out = reinterpret_cast<Bytef*>(out.data());
        zs.avail_out = static_cast<uInt>(out.size());
        const int rc = deflate(&zs, Z_FINISH);
        out.resize(zs.total_out);
        deflateEnd(&zs);
        if (rc != Z_STREAM_END) {
            why = "gzip: deflate failed";
            return std::nullopt;
        }
        return out;
    }
    case model::compression::snappy: {
        // xerial's framing: magic, version 1, compatible version 1, then length-prefixed blocks.
        static constexpr char header[16] = {'\x82', 'S', 'N', 'A', 'P', 'P', 'Y', '\0', 0, 0, 0, 1, 0, 0, 0, 1};
        constexpr std::size_t block = 32 * 1024;
        out.assign(header, sizeof header);
        for (std::size_t pos = 0; pos < in.size(); pos += block) {
            const std::size_t n = std::min(block, in.size() - pos);
            std::size_t len = snappy_max_compressed_length(n);
            const auto at = out.size();
            out.resize(at + 4 + len);
            if (snappy_compress(reinterpret_cast<const char*>(in.data()) + pos, n, out.data() + at + 4, &len)
                != SNAPPY_OK) {
                why = "snappy: compression failed";
                return std::nullopt;
            }
            write_be<uint32_t>(reinterpret_cast<std::byte*>(out.data() + at), static_cast<uint32_t>(len));
            out.resize(at + 4 + len);
        }
        return out;
    }
    case model::compression::lz4: {
        out.resize(LZ4F_compressFrameBound(in.size(), nullptr));
        const auto n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), nullptr);
        if (LZ4F_isError(n)) {
            why = fmt::format("lz4: {}", LZ4F_getErrorName(n));
            return std::nullopt;
        }
        out.resize(n);
        return out;
    }
    case model::compression::zstd: {
        out.resize(ZSTD_compressBound(in.size()));
        const auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
        if (ZSTD_isError(n)) {
            why = fmt::format("zstd: {}", ZSTD_getErrorName(n));
            return std::nullopt;
        }
        out.resize(n);
        return out;
    }
    }
    why = fmt::format("unknown compression codec {}", static_cast<int>(c));
    return std::nullopt;
}

std::optional<std::span<const std::byte>> uncompressed_batch(std::span<const std::byte> batch, const batch_header& h,
                                                             std::size_t limit, std::vector<std::byte>& storage,
                                                             std::string& why) {
    if (h.compression() == compression::none) return batch;
    namespace L = batch_layout;
    static constexpr const char* names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    const auto c = static_cast<int>(h.compression());
    auto body = decompress_records(h.compression(), batch.subspan(L::header_size), limit, why);
    if (!body || body->size() > static_cast<std::size_t>(INT32_MAX) - L::header_size) {
        why = fmt::format("undecodable {} batch: {}", c >= 0 && c < 5 ? names[c] : "unknown", body ? "too large" : why);
        return std::nullopt;
    }
    storage.resize(L::header_size + body->size());
    std::memcpy(storage.data(), batch.data(), L::header_size);
    std::memcpy(storage.data() + L::header_size, body->data(), body->size());
    write_be<int16_t>(storage.data() + L::attributes, static_cast<int16_t>(h.attributes & ~0x7));
    write_be<int32_t>(storage.data() + L::length, static_cast<int32_t>(L::header_size - L::length_field_end + body->size()));
    return std::span<const std::byte>(storage);
}

std::optional<std::vector<std::byte>> recompress_batch(std::span<const std::byte> batch, const batch_header& h,
                                                       model::compression target, std::size_t limit,
                                                       std::string& why) {
    namespace L = batch_layout;
    std::vector<std::byte> inflated;
    auto plain = uncompressed_batch(batch, h, limit, inflated, why);
    if (!plain) {
        return std::nullopt;
    }
    auto body = compress_records(target, plain->subspan(L::header_size), why);
    if (!body || body->size() > static_cast<std::size_t>(INT32_MAX) - L::header_size) {
        if (body) {
            why = "the recompressed batch is too large";
        }
        return std::nullopt;
    }
    std::vector<std::byte> out(L::header_size + body->size());
    std::memcpy(out.data(), batch.data(), L::header_size);
    std::memcpy(out.data() + L::header_size, body->data(), body->size());
    const auto codec_bits = static_cast<int16_t>(static_cast<int16_t>(target) & 0x7);
    write_be<int16_t>(out.data() + L::attributes, static_cast<int16_t>((h.attributes & ~0x7) | codec_bits));
    write_be<int32_t>(out.data() + L::length, static_cast<int32_t>(out.size() - L::length_field_end));
    write_be<uint32_t>(out.data() + L::crc, compute_batch_crc(out));
    return out;
}

} // namespace runnel::model
