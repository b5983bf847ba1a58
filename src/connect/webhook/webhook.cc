#include "connect/webhook/webhook.h"

#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "base/logging.h"
#include "base/metrics.h"
#include "connect/format/row_format.h"
#include "engine/state_io.h"

namespace runnel::connect {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

spdlog::logger& lg() { return logging::get("connect"); }

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || n < 0) return std::nullopt;
    std::string_view unit(p, size_t(s.data() + s.size() - p));
    if (unit == "ms") return std::chrono::milliseconds(n);
    if (unit == "s") return std::chrono::milliseconds(n * 1000);
    if (unit == "min") return std::chrono::milliseconds(n * 60000);
    return std::nullopt;
}

struct metrics_t {
    metrics::family<metrics::counter>& requests = metrics::default_registry().counters(
      "runnel_webhook_requests_total", "Webhook requests by sink and outcome (delivered, retried, refused)", {"sink", "outcome"});
    metrics::family<metrics::counter>& dead = metrics::default_registry().counters(
      "runnel_webhook_dead_letters_total", "Rows a webhook sink gave up on (sent to its dead-letter topic)", {"sink"});
    metrics::family<metrics::gauge>& queued = metrics::default_registry().gauges(
      "runnel_webhook_queue_rows", "Rows waiting in a webhook sink's queue", {"sink"});
};

metrics_t& m() {
    static metrics_t x;
    return x;
}

} // namespace

result<webhook_options> webhook_options::parse(const std::map<std::string, std::string>& opts, std::string& why) {
    auto bad = [&](std::string w) -> result<webhook_options> {
        why = std::move(w);
        return std::error_code(EINVAL, std::generic_category());
    };
    webhook_options o;
    auto url_it = opts.find("url");
    if (url_it == opts.end() || url_it->second.empty()) return bad("'url' is required");
    o.url = url_it->second;
    std::string_view u = o.url;
    if (u.starts_with("https://")) return bad(fmt::format("'{}': https is not supported yet; use http://", o.url));
    if (!u.starts_with("http://")) return bad(fmt::format("'{}' is not an http:// URL", o.url));
    u.remove_prefix(7);
    auto slash = u.find('/');
    std::string_view hostport = u.substr(0, slash);
    o.target = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
    auto colon = hostport.rfind(':');
    o.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
        auto ps = hostport.substr(colon + 1);
        int port = 0;
        auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
        if (ec != std::errc() || p != ps.data() + ps.size() || port < 1 || port > 65535) {
            return bad(fmt::format("'{}': the port must be a number from 1 to 65535", o.url));
        }
        o.port = uint16_t(port);
    }
    if (o.host.empty()) return bad(fmt::format("'{}' names no host", o.url));
    for (const auto& [k, v] : opts) {
        if (k == "url") continue;
        if (k.starts_with("webhook.header.") && k.size() > 15) {
            o.headers[k.substr(15)] = v;
        } else if (k == "webhook.timeout" || k == "webhook.backoff.initial" || k == "webhook.backoff.max") {
            auto d = parse_duration(v);
            if (!d || d->count() == 0) return bad(fmt::format("'{}' must be a duration such as 100ms or 5s, not '{}'", k, v));
            (k == "webhook.timeout" ? o.timeout : k == "webhook.backoff.initial" ? o.backoff_initial : o.backoff_max) = *d;
        } else if (k == "webhook.max-attempts") {
            int n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || p != v.data() + v.size() || n < 0) {
                return bad(fmt::format("'webhook.max-attempts' must be a whole number (0: for ever), not '{}'", v));
            }
            o.max_attempts = n;
        } else {
            return bad(fmt::format("unknown webhook option '{}'", k));
        }
    }
    if (o.backoff_initial > o.backoff_max) return bad("'webhook.backoff.initial' is above 'webhook.backoff.max'");
    return o;
}

struct webhook_sink::impl : std::enable_shared_from_this<impl> {
    struct item {
        uint64_t seq;
        std::string row;
    };
    struct outcome {
        bool ok = false, permanent = false;
        std::string reason;
    };

    impl(std::string n, webhook_options o, executor& h, std::function<void()> w, dead_letter_fn d)
      : name(std::move(n))
      , opts(std::move(o))
      , home(h)
      , wake(std::move(w))
      , dead_letter(std::move(d)) {}

    std::string name;
    webhook_options opts;
    executor& home;
    std::function<void()> wake;
    dead_letter_fn dead_letter;

    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<item> queue;
    std::size_t queued_bytes = 0;
    uint64_t written = 0;  ///< sequence of the last row written (job thread, under mu)
    uint64_t finished = 0; ///< sequence of the last row delivered or dead-lettered
    std::vector<std::pair<uint64_t, done_fn>> waiting;
    bool stopping = false;
    bool draining = false;
    stats counts;
    std::thread worker;

    asio::io_context ioc;
    std::optional<beast::tcp_stream> conn;

    /// Runs the async operation `start` to completion on this thread's io_context.
    template <typename Start>
    boost::system::error_code run(Start start) {
        boost::system::error_code result = asio::error::would_block;
        start([&](boost::system::error_code ec, auto&&...) { result = ec; });
        ioc.restart();
        ioc.run();
        return result;
    }

    outcome post(const item& it) {
        if (!conn) {
            asio::ip::tcp::resolver resolver(ioc);
            boost::system::error_code ec;
            auto eps = resolver.resolve(opts.host, std::to_string(opts.port), ec);
            if (ec) return {false, false, fmt::format("cannot resolve {}: {}", opts.host, ec.message())};
            conn.emplace(ioc);
            conn->expires_after(opts.timeout);
            ec = run([&](auto h) { conn->async_connect(eps, [h](boost::system::error_code e, const auto&) mutable { h(e); }); });
            if (ec) {
                conn.reset();
                return {false, false, fmt::format("cannot connect to {}:{}: {}", opts.host, opts.port, ec.message())};
            }
        }
        http::request<http::string_body> req{http::verb::post, opts.target, 11};
        req.set(http::field::host, fmt::format("{}:{}", opts.host, opts.port));
        req.set(http::field::content_type, "application/json");
        req.set(http::field::user_agent, "runnel-webhook");
        req.set("Idempotency-Key", fmt::format("{}-{}", name, it.seq));
        for (const auto& [k, v] : opts.headers) req.set(k, v);
        req.keep_alive(true);
        req.body() = it.row;
        req.prepare_payload();
        conn->expires_after(opts.timeout);
        auto ec = run([&](auto h) { http::async_write(*conn, req, h); });
        beast::flat_buffer buf;
        http::response<http::string_body> res;
        if (!ec) ec = run([&](auto h) { http::async_read(*conn, buf, res, h); });
        if (ec) {
            conn.reset();
            return {false, false, fmt::format("request to {} failed: {}", opts.url, ec.message())};
        }
        if (!res.keep_alive()) conn.reset();
        const unsigned status = res.result_int();
        if (status >= 200 && status < 300) return {true, false, {}};
        std::string reason = fmt::format("HTTP {} from {}", status, opts.url);
        if (!res.body().empty()) reason += ": " + res.body().substr(0, 200);
        const bool retry = status == 408 || status == 429 || status >= 500;
        return {false, !retry, reason};
    }

    void loop() {
        std::mt19937_64 rng(std::random_device{}());
        for (;;) {
            item it;
            {
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return stopping || !queue.empty(); });
                if (stopping) return;
                it = queue.front();
            }
            auto backoff = opts.backoff_initial;
            int attempts = 0;
            bool dead = false;
            std::string reason;
            for (;;) {
                ++attempts;
                auto r = post(it);
                if (r.ok) {
                    m().requests.with({name, "delivered"}).inc();
                    break;
                }
                reason = r.reason;
                if (r.permanent || (opts.max_attempts > 0 && attempts >= opts.max_attempts)) {
                    m().requests.with({name, "refused"}).inc();
                    dead = true;
                    break;
                }
                m().requests.with({name, "retried"}).inc();
                if (attempts == 1 || attempts % 20 == 0) lg().warn("webhook {}: {}; retrying", name, reason);
                auto jitter = std::chrono::milliseconds(int64_t(rng() % uint64_t(backoff.count() / 4 + 1)));
                std::unique_lock lock(mu);
                ++counts.retries;
                if (cv.wait_for(lock, backoff + jitter, [&] { return stopping; })) return;
                backoff = std::min(backoff * 2, opts.backoff_max);
            }
            if (dead) {
                m().dead.with({name}).inc();
                home.post([self = shared_from_this(), row = it.row, reason, attempts] {
                    if (self->dead_letter) self->dead_letter(row, reason, attempts);
                });
            }
            std::vector<done_fn> ready;
            {
                std::lock_guard lock(mu);
                queue.pop_front();
                queued_bytes -= it.row.size();
                m().queued.with({name}).set(double(queue.size()));
                finished = it.seq;
                (dead ? counts.dead : counts.delivered) += 1;
                for (auto w = waiting.begin(); w != waiting.end();) {
                    if (w->first <= finished) {
                        ready.push_back(std::move(w->second));
                        w = waiting.erase(w);
                    } else {
                        ++w;
                    }
                }
            }
            for (auto& d : ready) home.post([d = std::move(d)] { d(ok()); });
            home.post([self = shared_from_this()] { self->wake(); });
        }
    }
};

webhook_sink::webhook_sink(std::string name, webhook_options opts, executor& home, std::function<void()> wake,
                           dead_letter_fn dead_letter)
  : _name(name)
  , _impl(std::make_shared<impl>(std::move(name), std::move(opts), home, std::move(wake), std::move(dead_letter))) {}

webhook_sink::~webhook_sink() { stop(); }

void webhook_sink::start(int32_t, done_fn done) {
    if (!_impl->worker.joinable()) _impl->worker = std::thread([im = _impl] { im->loop(); });
    done(ok());
}

void webhook_sink::write(const engine::batch& b) {
    std::lock_guard lock(_impl->mu);
    for (std::size_t r = 0; r < b.num_rows(); ++r) {
        auto row = row_to_json(b, r);
        _impl->queued_bytes += row.size();
        _impl->queue.push_back({++_impl->written, std::move(row)});
    }
    m().queued.with({_impl->name}).set(double(_impl->queue.size()));
    _impl->cv.notify_all();
}

bool webhook_sink::ready() const {
    std::lock_guard lock(_impl->mu);
    return _impl->draining || _impl->queued_bytes < _impl->opts.max_queued_bytes;
}

void webhook_sink::set_draining(bool d) {
    std::lock_guard lock(_impl->mu);
    _impl->draining = d;
}

std::string webhook_sink::seal() {
    std::lock_guard lock(_impl->mu);
    engine::state_writer w;
    w.u64(_impl->written);
    return std::move(w.bytes());
}

void webhook_sink::release(done_fn done) {
    std::lock_guard lock(_impl->mu);
    if (_impl->finished >= _impl->written) {
        _impl->home.post([done = std::move(done)] { done(ok()); });
        return;
    }
    _impl->waiting.emplace_back(_impl->written, std::move(done));
}

void webhook_sink::recover(std::string_view sealed, done_fn done) {
    if (!sealed.empty()) {
        engine::state_reader r(sealed);
        auto seq = r.u64();
        if (!r.ok()) return done(std::error_code(EINVAL, std::generic_category()));
        std::lock_guard lock(_impl->mu);
        _impl->written = _impl->finished = seq; // rows replayed from here get the keys they had
    }
    done(ok());
}

std::size_t webhook_sink::pending_bytes() const {
    std::lock_guard lock(_impl->mu);
    return _impl->queued_bytes;
}

webhook_sink::stats webhook_sink::counts() const {
    std::lock_guard lock(_impl->mu);
    return _impl->counts;
}

void webhook_sink::stop() {
    {
        std::lock_guard lock(_impl->mu);
        _impl->stopping = true;
    }
    _impl->cv.notify_all();
    if (_impl->worker.joinable()) {
        if (_impl->worker.get_id() == std::this_thread::get_id()) _impl->worker.detach();
        else _impl->worker.join();
    }
}

} // namespace runnel::connect
