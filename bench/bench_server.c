/* bin/bench-server: N concurrent streaming clients against a running gptd on loopback. Each
 * client POSTs /generate with "stream": true and reads the server-sent events itself (raw
 * socket, HTTP/1.1 chunked), stamping every token as it arrives. Prints aggregate tokens/s,
 * time to first token and time between tokens (p50/p99). A thread per client; the clients
 * mostly sleep in recv, so they take little CPU from the server.
 * --probe N: once every client has its first token, one more request of N tokens is timed from
 * its start to its last token: what a short request pays for sharing the server with them. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/cli.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    int port, max_tokens, id;
    double start, first, end;
    double *gaps; /* (max_tokens) time between consecutive tokens */
    int tokens, n_gaps;
    int ok, finished; /* finished: set last, read by the probe thread */
} Client;

static void client_run(Client *c) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    c->start = now();
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return;
    }
    char body[256], req[512];
    int blen = snprintf(body, sizeof body,
                        "{\"prompt\":\"\\n\",\"max_tokens\":%d,\"seed\":%d,\"stream\":true}",
                        c->max_tokens, c->id + 1);
    int rlen = snprintf(req, sizeof req,
                        "POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                        "application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                        blen, body);
    if (write(fd, req, (size_t)rlen) != rlen) {
        close(fd);
        return;
    }
    /* The stream is scanned for event boundaries; chunk-size lines never contain "data: ". */
    char buf[8192];
    double last = 0;
    int done = 0;
    char carry[16] = "";
    ssize_t n;
    while (!done && (n = recv(fd, buf, sizeof buf - 1, 0)) > 0) {
        double t = now();
        buf[n] = '\0';
        /* count token events: "data: {\"index\"" (a marker split across reads is carried) */
        char scan[sizeof buf + sizeof carry];
        snprintf(scan, sizeof scan, "%s%s", carry, buf);
        for (char *p = scan; (p = strstr(p, "data: {\"index\"")); p += 6) {
            if (c->tokens == 0)
                c->first = t;
            else if (c->n_gaps < c->max_tokens)
                c->gaps[c->n_gaps++] = t - last;
            last = t;
            __atomic_store_n(&c->tokens, c->tokens + 1, __ATOMIC_RELAXED);
        }
        if (strstr(scan, "data: [DONE]")) done = 1;
        size_t sl = strlen(scan), keep = sl < 15 ? sl : 15;
        memcpy(carry, scan + sl - keep, keep);
        carry[keep] = '\0';
    }
    c->end = now();
    c->ok = done && c->tokens == c->max_tokens;
    close(fd);
}

static void *client_main(void *arg) {
    Client *c = arg;
    client_run(c);
    __atomic_store_n(&c->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, int n, double p) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, compare_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

/* Waits until every client has streamed a token (or given up), then runs the probe client. */
typedef struct {
    Client *clients, probe;
    int n;
} Probe;

static void *probe_main(void *arg) {
    Probe *p = arg;
    for (int i = 0; i < p->n; i++)
        while (__atomic_load_n(&p->clients[i].tokens, __ATOMIC_RELAXED) == 0 &&
               __atomic_load_n(&p->clients[i].finished, __ATOMIC_ACQUIRE) == 0)
            usleep(1000);
    return client_main(&p->probe);
}

int main(int argc, char **argv) {
    int port = 8080, clients = 8, max_tokens = 100, probe_tokens = 0;
    CliFlag flags[] = {
        {"port", CLI_INT, &port, 1, 65535, "gptd's port on 127.0.0.1", false, NULL},
        {"clients", CLI_INT, &clients, 1, 4096, "concurrent streaming clients", false, NULL},
        {"max-tokens", CLI_INT, &max_tokens, 1, 100000, "tokens per request", false, NULL},
        {"probe", CLI_INT, &probe_tokens, 0, 100000,
         "tokens of one more request, timed, sent once every client streams (0 = none)", false,
         NULL},
    };
    int rc = cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                       "usage: bench-server --port N --clients N --max-tokens N [--probe N]");
    if (rc) return rc == 1 ? 0 : 2;
    Client *cs = calloc((size_t)clients, sizeof *cs);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = now();
    for (int i = 0; i < clients; i++) {
        cs[i] = (Client){.port = port, .max_tokens = max_tokens, .id = i};
        cs[i].gaps = calloc((size_t)max_tokens, sizeof(double));
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    Probe probe = {.clients = cs, .n = clients};
    pthread_t probe_thread;
    if (probe_tokens > 0) {
        probe.probe = (Client){.port = port, .max_tokens = probe_tokens, .id = clients};
        probe.probe.gaps = calloc((size_t)probe_tokens, sizeof(double));
        pthread_create(&probe_thread, NULL, probe_main, &probe);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    if (probe_tokens > 0) pthread_join(probe_thread, NULL);
    double wall = now() - t0;
    long tokens = 0;
    int ok = 0, n_gaps = 0;
    double *ttft = calloc((size_t)clients, sizeof(double));
    double *gaps = calloc((size_t)clients * max_tokens, sizeof(double));
    for (int i = 0; i < clients; i++) {
        tokens += cs[i].tokens;
        ok += cs[i].ok;
        ttft[i] = cs[i].first > 0 ? cs[i].first - cs[i].start : wall;
        memcpy(gaps + n_gaps, cs[i].gaps, (size_t)cs[i].n_gaps * sizeof(double));
        n_gaps += cs[i].n_gaps;
    }
    printf("clients=%d ok=%d tokens=%ld wall_s=%.3f tokens_per_s=%.1f ttft_p50_ms=%.2f "
           "ttft_p99_ms=%.2f tbt_p50_ms=%.2f tbt_p99_ms=%.2f\n",
           clients, ok, tokens, wall, tokens / wall, percentile(ttft, clients, 0.5) * 1e3,
           percentile(ttft, clients, 0.99) * 1e3, percentile(gaps, n_gaps, 0.5) * 1e3,
           percentile(gaps, n_gaps, 0.99) * 1e3);
    if (probe_tokens > 0) {
        printf("probe_ok=%d probe_s=%.4f\n", probe.probe.ok, probe.probe.end - probe.probe.start);
        free(probe.probe.gaps);
        if (!probe.probe.ok) ok = -1;
    }
    for (int i = 0; i < clients; i++) free(cs[i].gaps);
    free(cs);
    free(th);
    free(ttft);
    free(gaps);
    return ok == clients ? 0 : 1;
}
