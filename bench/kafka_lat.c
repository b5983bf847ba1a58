/* kafka_lat: produce latency at a fixed rate, for kafka_bench, on Debian's librdkafka.
 *
 * Why not rdkafka_performance -r -l: its rate limiter sleeps a whole number of microseconds
 * between messages (so above ~100k msgs/s it can only ask for 1M, 500k, 333k ... msgs/s) and
 * waits for the next message by calling rd_kafka_poll(rk, 0) in a loop, which keeps a core
 * busy on a 2-core machine; its latency is also taken from gettimeofday.
 *
 * Here message k is due at start + k / rate (CLOCK_MONOTONIC). The sending thread sleeps with
 * an absolute clock_nanosleep until a message is due (so when the sleep overshoots, the
 * messages that fell due meanwhile go out back to back), and a second thread serves delivery
 * reports with a blocking rd_kafka_poll, so a report is taken as soon as librdkafka has it.
 * Latency = from the time a message was due to its delivery report, so time the sender spent
 * behind schedule (blocked on a full local queue, or not scheduled) counts too: a stalled
 * broker cannot hide behind a producer that stopped sending (no coordinated omission).
 * Messages due in the first --warmup seconds (connection set-up, topic creation) are not
 * counted.
 *
 * Prints one JSON object on stdout; exit status 0 when every message was delivered.
 *
 *   kafka_lat --brokers 127.0.0.1:9092 --topic t --size 100 --rate 50000 --seconds 5
 *             [--warmup 1] [--drain 15] [-X prop=value ...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_nanosleep, getopt_long */
#endif
#include <librdkafka/rdkafka.h>

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Updated by the delivery-report callback, which runs on the poll thread only. */
static struct {
    atomic_uint_fast64_t delivered;
    atomic_uint_fast64_t failed;
    rd_kafka_resp_err_t first_error;
    int64_t warmup_end_ns;
    int64_t last_dr_ns;
    int64_t *samples; /* produce-to-report nanoseconds of messages sent after the warm-up */
    size_t n_samples;
    size_t capacity;
} dr;

static atomic_int polling = 1;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    const int64_t now = now_ns();
    dr.last_dr_ns = now;
    if (m->err) {
        if (atomic_fetch_add(&dr.failed, 1) == 0) {
            dr.first_error = m->err;
        }
        return;
    }
    atomic_fetch_add(&dr.delivered, 1);
    const int64_t sent = (int64_t)(intptr_t)m->_private;
    if (sent >= dr.warmup_end_ns && dr.n_samples < dr.capacity) {
        dr.samples[dr.n_samples++] = now - sent;
    }
}

static void *poll_thread(void *arg) {
    rd_kafka_t *rk = arg;
    while (atomic_load(&polling)) {
        rd_kafka_poll(rk, 100);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double percentile_us(const int64_t *sorted, size_t n, double p) {
    if (n == 0) {
        return 0;
    }
    size_t rank = (size_t)(p * (double)n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return (double)sorted[rank - 1] / 1000.0;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --brokers HOST:PORT --topic T --size BYTES --rate MSGS_PER_S --seconds S\n"
            "          [--warmup S] [--drain S] [-X prop=value ...]\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL;
    long size = 0;
    double rate = 0, seconds = 0, warmup = 1.0, drain = 15.0;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'}, {"topic", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},    {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"drain", required_argument, NULL, 'D'},   {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "X:", longopts, NULL)) != -1;) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 's': size = strtol(optarg, NULL, 10); break;
        case 'r': rate = strtod(optarg, NULL); break;
        case 'd': seconds = strtod(optarg, NULL); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 'D': drain = strtod(optarg, NULL); break;
        case 'X': {
            char *eq = strchr(optarg, '=');
            if (!eq) {
                usage(argv[0]);
                return 2;
            }
            *eq = '\0';
            if (rd_kafka_conf_set(conf, optarg, eq + 1, errstr, sizeof errstr) !=
                RD_KAFKA_CONF_OK) {
                fprintf(stderr, "kafka_lat: %s\n", errstr);
                return 2;
            }
            break;
        }
        default: usage(argv[0]); return 2;
        }
    }
    if (!brokers || !topic || size < 1 || size > (1 << 20) || rate <= 0 || seconds <= 0 ||
        seconds > 600 || warmup < 0 || warmup >= seconds || drain <= 0) {
        usage(argv[0]);
        return 2;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_lat: %s\n", errstr);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_lat: %s\n", errstr);
        return 1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    dr.capacity = (size_t)(rate * seconds * 1.05) + 1024;
    dr.samples = malloc(dr.capacity * sizeof(int64_t));
    char *payload = malloc((size_t)size);
    for (long i = 0; i < size; ++i) {
        payload[i] = (char)('a' + (i * 7 + 3) % 26);
    }
    pthread_t poller;
    pthread_create(&poller, NULL, poll_thread, rk);

    uint64_t sent = 0, queue_full = 0, produce_errors = 0;
    rd_kafka_resp_err_t first_produce_error = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t max_behind_ns = 0;
    const int64_t start = now_ns();
    const int64_t deadline = start + (int64_t)(seconds * 1e9);
    dr.warmup_end_ns = start + (int64_t)(warmup * 1e9);
    const double interval_ns = 1e9 / rate;
    for (;;) {
        const int64_t due = start + (int64_t)((double)sent * interval_ns);
        if (due >= deadline) {
            break;
        }
        int64_t now = now_ns();
        if (due > now) {
            struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            now = now_ns();
        } else if (now - due > max_behind_ns) {
            max_behind_ns = now - due;
        }
        /* No copy: every message points at the same payload, which outlives the run (as in
         * rdkafka_performance); the send time travels in the message's opaque. */
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload,
                             (size_t)size, NULL, 0, (void *)(intptr_t)due) == 0) {
            ++sent;
            continue;
        }
        const rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            ++queue_full; /* the local queue is full: the rate is not sustained */
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (produce_errors++ == 0) {
            first_produce_error = err;
        }
        break;
    }
    const int64_t send_end = now_ns();
    /* Let the poll thread take every report (only one thread may run the callback), for at
     * most --drain seconds; then stop it. Whatever is still unacknowledged is purged and
     * reported, so a server that has fallen far behind cannot stretch the run. */
    while (atomic_load(&dr.delivered) + atomic_load(&dr.failed) < sent &&
           now_ns() - send_end < (int64_t)(drain * 1e9)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&polling, 0);
    pthread_join(poller, NULL);
    const uint64_t unacknowledged = sent - atomic_load(&dr.delivered) - atomic_load(&dr.failed);
    if (unacknowledged > 0) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    const rd_kafka_resp_err_t flushed =
        unacknowledged > 0 ? RD_KAFKA_RESP_ERR__TIMED_OUT : rd_kafka_flush(rk, 10000);

    const double elapsed = (double)(send_end - start) / 1e9;
    qsort(dr.samples, dr.n_samples, sizeof(int64_t), cmp_i64);
    const size_t n = dr.n_samples;
    printf("{\"topic\": \"%s\", \"size\": %ld, \"rate\": %.1f, \"sent\": %llu, \"delivered\": %llu, "
           "\"failed\": %llu, \"unacknowledged\": %llu, \"queue_full\": %llu, \"seconds\": %.3f, \"achieved_rate\": %.1f, "
           "\"max_behind_schedule_us\": %.1f, \"warmup_seconds\": %.3f, \"latency_samples\": %zu, "
           "\"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}",
           topic, size, rate, (unsigned long long)sent, (unsigned long long)atomic_load(&dr.delivered),
           (unsigned long long)atomic_load(&dr.failed), (unsigned long long)unacknowledged,
           (unsigned long long)queue_full, elapsed,
           elapsed > 0 ? (double)sent / elapsed : 0.0, (double)max_behind_ns / 1000.0, warmup, n,
           percentile_us(dr.samples, n, 0.50), percentile_us(dr.samples, n, 0.99),
           percentile_us(dr.samples, n, 0.999), n ? (double)dr.samples[n - 1] / 1000.0 : 0.0);
    const int ok = flushed == RD_KAFKA_RESP_ERR_NO_ERROR && dr.failed == 0 && produce_errors == 0 &&
                   dr.delivered == sent;
    if (!ok) {
        printf(", \"error\": \"%s\"",
               unacknowledged > 0 ? "still unacknowledged when the drain time ran out (purged); "
                                    "the percentiles leave them out"
               : flushed != RD_KAFKA_RESP_ERR_NO_ERROR ? "flush timed out with messages in queue"
               : produce_errors ? rd_kafka_err2str(first_produce_error)
               : dr.failed      ? rd_kafka_err2str(dr.first_error)
                                : "not every message was delivered");
    }
    printf("}\n");
    fflush(stdout);

    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    free(dr.samples);
    return ok ? 0 : 1;
}
