/* nats_pub: a JetStream publisher for kafka_bench, on Debian's libnats (cnats).
 *
 * Creates a file-backed stream (if it does not exist) and publishes fixed-size messages with
 * asynchronous publish acks (js_PublishAsync, at most --max-pending unacknowledged), for
 * --seconds, then waits for every ack (js_PublishAsyncComplete). Two modes:
 *
 *   throughput (no --rate): publish as fast as the pending window allows; the rate is
 *     acknowledged messages over the time from the first publish to the last ack.
 *   latency (--rate R): publish R messages per second on a fixed schedule (absolute-time
 *     sleeps, no busy wait); each message carries the time it was due and the ack handler
 *     records due-to-ack latency (so time spent stalled on a full pending window counts: no
 *     coordinated omission). Messages due in the first --warmup seconds are not counted.
 *
 * Prints one JSON object on stdout. Exit status 0 when every message was acknowledged.
 *
 *   nats_pub --url nats://127.0.0.1:4222 --stream S --subject s.x --size 100 --seconds 4
 *            [--max-pending 4096] [--rate R --warmup 1]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_nanosleep, getopt_long */
#endif
#include <nats/nats.h>

#include <getopt.h>
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

/* What the ack handler (which runs on a cnats thread) updates. */
struct counters {
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t failed;
    atomic_int_fast64_t last_ack_ns;
    int64_t warmup_end_ns; /* latency mode: messages sent before this are not sampled */
    int64_t *samples;      /* latency mode: send-to-ack nanoseconds */
    size_t capacity;
    atomic_size_t n_samples;
    atomic_int first_error;
};

static struct counters counters;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    (void)js;
    (void)closure;
    const int64_t now = now_ns();
    if (pa != NULL && pae == NULL) {
        atomic_fetch_add(&counters.acked, 1);
        atomic_store(&counters.last_ack_ns, now);
        if (counters.samples != NULL && natsMsg_GetDataLength(msg) >= (int)sizeof(int64_t)) {
            int64_t sent;
            memcpy(&sent, natsMsg_GetData(msg), sizeof sent);
            if (sent >= counters.warmup_end_ns) {
                size_t i = atomic_fetch_add(&counters.n_samples, 1);
                if (i < counters.capacity) {
                    counters.samples[i] = now - sent;
                }
            }
        }
    } else {
        atomic_fetch_add(&counters.failed, 1);
        int expected = 0;
        atomic_compare_exchange_strong(&counters.first_error, &expected,
                                       pae != NULL ? (int)pae->ErrCode : -1);
    }
    natsMsg_Destroy(msg);
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
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)sorted[rank - 1] / 1000.0;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --url URL --stream NAME --subject SUBJ --size BYTES --seconds S\n"
            "          [--max-pending N] [--rate MSGS_PER_S [--warmup S]]\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *url = NULL, *stream = NULL, *subject = NULL;
    long size = 0;
    double seconds = 0, rate = 0, warmup = 1.0;
    long max_pending = 4096;
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},     {"stream", required_argument, NULL, 's'},
        {"subject", required_argument, NULL, 'j'}, {"size", required_argument, NULL, 'z'},
        {"seconds", required_argument, NULL, 't'}, {"rate", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},  {"max-pending", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
        switch (c) {
        case 'u': url = optarg; break;
        case 's': stream = optarg; break;
        case 'j': subject = optarg; break;
        case 'z': size = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'r': rate = strtod(optarg, NULL); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 'p': max_pending = strtol(optarg, NULL, 10); break;
        default: usage(argv[0]); return 2;
        }
    }
    if (!url || !stream || !subject || size < (long)sizeof(int64_t) || size > (1 << 20) ||
        seconds <= 0 || seconds > 600 || rate < 0 || max_pending < 1 || warmup < 0 ||
        (rate > 0 && warmup >= seconds)) {
        usage(argv[0]);
        return 2;
    }

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_pub: connect %s: %s\n", url, natsStatus_GetText(s));
        return 1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = max_pending;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.StallWait = 10000;
    jo.Wait = 30000;
    s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) {
        fprintf(stderr, "nats_pub: JetStream context: %s\n", natsStatus_GetText(s));
        return 1;
    }

    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {subject};
    sc.Name = stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsErrCode jerr = 0;
    s = js_AddStream(NULL, js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        fprintf(stderr, "nats_pub: add stream %s: %s (JetStream error %d)\n", stream,
                natsStatus_GetText(s), (int)jerr);
        return 1;
    }

    char *payload = malloc((size_t)size);
    for (long i = 0; i < size; ++i) {
        payload[i] = (char)('a' + (i * 7 + 3) % 26);
    }
    if (rate > 0) {
        counters.capacity = (size_t)(rate * seconds * 1.1) + 1024;
        counters.samples = calloc(counters.capacity, sizeof(int64_t));
    }

    uint64_t sent = 0, publish_errors = 0;
    natsStatus first_publish_error = NATS_OK;
    const int64_t start = now_ns();
    const int64_t deadline = start + (int64_t)(seconds * 1e9);
    counters.warmup_end_ns = rate > 0 ? start + (int64_t)(warmup * 1e9) : 0;
    const double interval_ns = rate > 0 ? 1e9 / rate : 0;
    for (int64_t now = start; now < deadline; now = now_ns()) {
        if (rate > 0) {
            /* Message k is due at start + k * interval; sleep until then (absolute time). */
            const int64_t due = start + (int64_t)((double)sent * interval_ns);
            if (due >= deadline) {
                break;
            }
            if (due > now) {
                struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
            memcpy(payload, &due, sizeof due);
        }
        s = js_PublishAsync(js, subject, payload, (int)size, NULL);
        if (s == NATS_OK) {
            ++sent;
        } else if (s != NATS_TIMEOUT) { /* NATS_TIMEOUT: stalled on the pending window */
            ++publish_errors;
            if (first_publish_error == NATS_OK) {
                first_publish_error = s;
            }
            if (publish_errors > 1000) {
                break;
            }
        }
    }
    const int64_t send_end = now_ns();
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    natsStatus complete = js_PublishAsyncComplete(js, &po);
    const uint64_t acked = atomic_load(&counters.acked);
    const uint64_t failed = atomic_load(&counters.failed);
    int64_t end = atomic_load(&counters.last_ack_ns);
    if (end < start) {
        end = now_ns();
    }
    const double elapsed = (double)(end - start) / 1e9;

    printf("{\"stream\": \"%s\", \"size\": %ld, \"sent\": %llu, \"acked\": %llu, \"failed\": %llu, "
           "\"publish_errors\": %llu, \"seconds\": %.3f, \"send_seconds\": %.3f, "
           "\"msgs_per_s\": %.1f, \"mb_per_s\": %.3f, \"max_pending\": %ld",
           stream, size, (unsigned long long)sent, (unsigned long long)acked,
           (unsigned long long)failed, (unsigned long long)publish_errors, elapsed,
           (double)(send_end - start) / 1e9, elapsed > 0 ? (double)acked / elapsed : 0.0,
           elapsed > 0 ? (double)acked * (double)size / elapsed / 1e6 : 0.0, max_pending);
    if (rate > 0) {
        size_t n = atomic_load(&counters.n_samples);
        if (n > counters.capacity) {
            n = counters.capacity;
        }
        qsort(counters.samples, n, sizeof(int64_t), cmp_i64);
        printf(", \"rate\": %.1f, \"warmup_seconds\": %.3f, \"latency_samples\": %zu, "
               "\"latency_us\": {\"p50\": %.1f, \"p99\": %.1f, \"p999\": %.1f, \"max\": %.1f}",
               rate, warmup, n, percentile_us(counters.samples, n, 0.50),
               percentile_us(counters.samples, n, 0.99), percentile_us(counters.samples, n, 0.999),
               n ? (double)counters.samples[n - 1] / 1000.0 : 0.0);
    }
    if (complete != NATS_OK || first_publish_error != NATS_OK || failed > 0) {
        printf(", \"error\": \"%s%s%s (first ack error code %d)\"",
               complete != NATS_OK ? "publish-async-complete: " : "publish: ",
               natsStatus_GetText(complete != NATS_OK ? complete : first_publish_error),
               failed > 0 ? ", some acks failed" : "", atomic_load(&counters.first_error));
    }
    printf("}\n");
    fflush(stdout);

    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    free(payload);
    free(counters.samples);
    return complete == NATS_OK && first_publish_error == NATS_OK && failed == 0 && acked == sent
               ? 0
               : 1;
}
