// ws_lat: produce-to-WebSocket latency at a fixed rate, for ws_bench.py.
//
// One process, two threads, one clock. The producer thread (librdkafka) sends record k when it
// is due, at start + k / rate on CLOCK_MONOTONIC (an absolute clock_nanosleep, so records that
// fell due during an overshoot go out back to back), with the due time in the value. The
// receiver thread holds one WebSocket subscription to the topic (Boost.Beast, synchronous) and,
// for each record that arrives, takes now - due. Latency is counted from the due time, so a
// producer that fell behind schedule cannot hide a slow server (no coordinated omission).
// The topic must be new and empty: the subscription starts at the earliest offset.
//
// Prints one JSON object on stdout; exit status 0 when every record arrived.
//
//   ws_lat --brokers 127.0.0.1:9092 --http 127.0.0.1:8080 --topic t --rate 10000 --seconds 5

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <librdkafka/rdkafka.h>

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_until_ns(int64_t t) {
    timespec ts{static_cast<time_t>(t / 1000000000), static_cast<long>(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
    }
}

struct options {
    std::string brokers;
    std::string http;
    std::string topic;
    double rate = 10000;
    double seconds = 5;
    int size = 100;
    double drain = 15;
    double warmup = 1; ///< records due in the first seconds are sent but not counted
};

double pct(const std::vector<double>& s, double q) {
    if (s.empty()) {
        return 0;
    }
    auto i = static_cast<std::size_t>(q * static_cast<double>(s.size() - 1) + 0.5);
    return s[std::min(i, s.size() - 1)];
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        std::string v = argv[i + 1];
        if (k == "--brokers") {
            o.brokers = v;
        } else if (k == "--http") {
            o.http = v;
        } else if (k == "--topic") {
            o.topic = v;
        } else if (k == "--rate") {
            o.rate = std::stod(v);
        } else if (k == "--seconds") {
            o.seconds = std::stod(v);
        } else if (k == "--size") {
            o.size = std::stoi(v);
        } else if (k == "--warmup") {
            o.warmup = std::stod(v);
        } else if (k == "--drain") {
            o.drain = std::stod(v);
        } else {
            std::fprintf(stderr, "ws_lat: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (o.brokers.empty() || o.http.empty() || o.topic.empty() || o.rate <= 0 || o.size < 24) {
        std::fprintf(stderr, "usage: ws_lat --brokers HOST:PORT --http HOST:PORT --topic T --rate N --seconds S [--size B]\n");
        return 2;
    }
    const auto total = static_cast<int64_t>(o.rate * (o.seconds + o.warmup));
    std::atomic<int64_t> count_from{INT64_MAX}; // due times before this are warm-up

    // Subscribe first, from the earliest offset of the empty topic.
    boost::asio::io_context ioc;
    websocket::stream<tcp::socket> ws(ioc);
    auto colon = o.http.rfind(':');
    tcp::resolver resolver(ioc);
    boost::asio::connect(ws.next_layer(), resolver.resolve(o.http.substr(0, colon), o.http.substr(colon + 1)));
    ws.next_layer().set_option(tcp::no_delay(true));
    ws.handshake(o.http, "/v1/ws");
    ws.write(boost::asio::buffer(R"({"type":"subscribe","topic":")" + o.topic + R"(","from":"earliest"})"));
    beast::flat_buffer buf;
    ws.read(buf);
    buf.consume(buf.size());

    std::vector<double> lat; // written by the receiver only; `got` tells the others its size
    lat.reserve(static_cast<std::size_t>(total));
    std::atomic<int64_t> got{0};
    std::string close_reason;
    std::thread receiver([&] {
        static constexpr std::string_view needle = R"("value":")";
        beast::error_code ec;
        int64_t arrived = 0;
        while (arrived < total) {
            ws.read(buf, ec);
            if (ec) {
                close_reason = ec == websocket::error::closed
                                 ? "closed " + std::to_string(ws.reason().code) + " " + std::string(ws.reason().reason.data(), ws.reason().reason.size())
                                 : ec.message();
                return;
            }
            const int64_t now = now_ns();
            auto data = beast::buffers_to_string(buf.data());
            buf.consume(buf.size());
            for (std::size_t pos = data.find(needle); pos != std::string::npos; pos = data.find(needle, pos)) {
                pos += needle.size();
                int64_t due = 0;
                while (pos < data.size() && data[pos] >= '0' && data[pos] <= '9') {
                    due = due * 10 + (data[pos++] - '0');
                }
                ++arrived;
                if (due >= count_from.load()) {
                    lat.push_back(static_cast<double>(now - due) / 1e6);
                }
            }
            got.store(arrived);
        }
    });

    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const char* props[][2] = {{"bootstrap.servers", o.brokers.c_str()},
                              {"acks", "1"},
                              // Explicit: librdkafka 2.0.2 delays a partly filled batch with
                              // some defaults (docs/benchmarks.md, Kafka).
                              {"linger.ms", "0"},
                              {"compression.type", "none"},
                              {"queue.buffering.max.messages", "1000000"}};
    for (auto& p : props) {
        if (rd_kafka_conf_set(conf, p[0], p[1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            std::fprintf(stderr, "ws_lat: %s\n", errstr);
            return 2;
        }
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        std::fprintf(stderr, "ws_lat: %s\n", errstr);
        return 1;
    }
    // Connect before the clock starts: a metadata request opens the connection to the broker.
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    std::vector<char> value(static_cast<std::size_t>(o.size), ' ');
    const int64_t start = now_ns() + 100000000; // 100 ms to settle
    count_from = start + static_cast<int64_t>(o.warmup * 1e9);
    int64_t sent = 0;
    for (int64_t k = 0; k < total; ++k) {
        const int64_t due = start + static_cast<int64_t>(static_cast<double>(k) * 1e9 / o.rate);
        if (now_ns() < due) {
            sleep_until_ns(due);
        }
        int n = std::snprintf(value.data(), value.size(), "%lld", static_cast<long long>(due));
        value[static_cast<std::size_t>(n)] = ' ';
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o.topic.c_str()), RD_KAFKA_V_PARTITION(0),
                                 RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END)
               == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1);
        }
        ++sent;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 30000);
    const int64_t sent_end = now_ns();
    // The receiver ends when everything arrived; a stuck one is cut by closing the socket.
    std::thread watchdog([&] {
        while (got.load() < total && now_ns() - sent_end < static_cast<int64_t>(o.drain * 1e9)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (got.load() < total) {
            beast::error_code ec;
            ws.next_layer().shutdown(tcp::socket::shutdown_both, ec);
        }
    });
    receiver.join();
    watchdog.join();
    rd_kafka_destroy(rk);

    const auto received = got.load();
    const auto counted = lat.size();
    std::sort(lat.begin(), lat.end());
    std::printf("{\"rate\": %.0f, \"seconds\": %.1f, \"warmup_seconds\": %.1f, \"sent\": %lld, \"received\": %lld, "
                "\"counted\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
                "\"closed\": \"%s\"}\n",
                o.rate, o.seconds, o.warmup, static_cast<long long>(sent), static_cast<long long>(received), counted,
                pct(lat, 0.5), pct(lat, 0.99), pct(lat, 0.999), lat.empty() ? 0.0 : lat.back(), close_reason.c_str());
    return received == total ? 0 : 1;
}
