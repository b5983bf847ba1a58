// Feeds arbitrary bytes to Kafka request decoding: the input is a request frame without its
// size prefix. Whatever decodes must encode again and decode to the same message; record
// batches inside Produce requests go through batch validation. Nothing may crash or read out
// of bounds.

#include <cstdint>
#include <variant>

#include "kafka/protocol/protocol.h"
#include "model/model.h"

namespace {

using namespace runnel;
namespace proto = kafka::protocol;

void check(bool cond) {
    if (!cond) {
        __builtin_trap();
    }
}

void validate_records(std::span<const std::byte> records) {
    while (!records.empty()) {
        auto h = model::validate_batch(records);
        if (!h) {
            return;
        }
        (void)model::decode_records(records.first(h.value().size_bytes()));
        records = records.subspan(h.value().size_bytes());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(data), size);
    auto parsed = proto::parse_request_header(frame);
    if (!parsed) {
        return 0;
    }
    const auto& h = parsed.value().header;
    auto req = proto::decode_request(h, parsed.value().body);
    if (!req) {
        return 0;
    }
    std::visit(
      [&](const auto& message) {
          proto::writer w;
          message.encode(w, h.request_api_version);
          auto again = proto::decode_request(h.request_api_key, h.request_api_version, w.span());
          check(again.has_value());
          check(std::get<std::decay_t<decltype(message)>>(again.value()) == message);
          if constexpr (std::is_same_v<std::decay_t<decltype(message)>, proto::produce_request>) {
              for (const auto& t : message.topic_data) {
                  for (const auto& p : t.partition_data) {
                      if (p.records) {
                          validate_records(*p.records);
                      }
                  }
              }
          }
      },
      req.value());
    return 0;
}
