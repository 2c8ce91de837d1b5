/* bin/bench-server: N concurrent streaming clients against a running gptd on loopback. Each
 * client POSTs /generate with "stream": true and reads the server-sent events itself (raw
 * socket, HTTP/1.1 chunked), stamping every token as it arrives. Prints aggregate tokens/s,
 * time to first token and time between tokens (p50/p99). A thread per client; the clients
 * mostly sleep in recv, so they take little CPU from the server.
 * --probe N: once every client has its first token, one more request of N tokens is timed from
 * its start to its last token: what a short request pays for sharing the server with them.
 * --arrivals N: once every client streams, N one-token requests one after another: their time to
 * first token (p50/p99), what a request arriving at a busy server waits.
 * --idle N, --slow N: before the clients start, N keep-alive connections that have had one
 * GET /health answered and then stay silent, and N connections that send a request's headers one
 * byte a second (slowloris); both are held open for the whole run. --health: a GET /health on a
 * fresh connection every 10 ms while the clients stream (p50/p99 of its latency).
 * --pid P (gptd's): its RSS and thread count before the held connections and at the end of the
 * streams, and the CPU its own threads (all but gptd-scheduler and gptd-pool, the engine's) took
 * per streamed token. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
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

static int connect_local(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends a GET /health on fd and reads its whole reply (Content-Length framed); false on error. */
static bool health_exchange(int fd, bool keep_alive) {
    char req[128];
    int n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: localhost\r\n%s\r\n",
                     keep_alive ? "" : "Connection: close\r\n");
    if (write(fd, req, (size_t)n) != n) return false;
    char buf[1024];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0) return false;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "Content-Length:");
        if (end && cl && got >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 15)) return true;
        if (got >= sizeof buf - 1) return false;
    }
}

/* Held connections: idle keep-alives, and slow headers dripped a byte a second. */
typedef struct {
    int port, n_idle, n_slow;
    int *fds; /* (n_idle + n_slow) */
    int opened_idle, opened_slow;
    volatile int stop;
} Held;

static void *drip_main(void *arg) {
    Held *h = arg;
    static const char head[] = "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    for (int k = 0; !h->stop; k++) {
        for (int i = h->n_idle; i < h->n_idle + h->n_slow; i++) {
            if (h->fds[i] < 0) continue;
            char byte = k < (int)sizeof head - 1 ? head[k] : 'a';
            if (send(h->fds[i], &byte, 1, MSG_NOSIGNAL) != 1) {
                close(h->fds[i]);
                h->fds[i] = -1;
            }
        }
        for (int t = 0; t < 10 && !h->stop; t++) usleep(100 * 1000);
    }
    return NULL;
}

static void held_open(Held *h) {
    h->fds = malloc(sizeof(int) * (size_t)(h->n_idle + h->n_slow + 1));
    for (int i = 0; i < h->n_idle + h->n_slow; i++) {
        int fd = connect_local(h->port);
        if (fd >= 0 && i < h->n_idle && !health_exchange(fd, true)) {
            close(fd);
            fd = -1;
        }
        h->fds[i] = fd;
        if (fd >= 0 && i < h->n_idle) h->opened_idle++;
        if (fd >= 0 && i >= h->n_idle) h->opened_slow++;
    }
}

/* /health latencies every 10 ms until stopped. */
typedef struct {
    int port;
    double *ms;
    int n, cap;
    volatile int stop;
} Health;

static void *health_main(void *arg) {
    Health *h = arg;
    while (!h->stop && h->n < h->cap) {
        double t = now();
        int fd = connect_local(h->port);
        bool ok = fd >= 0 && health_exchange(fd, false);
        if (fd >= 0) close(fd);
        h->ms[h->n++] = ok ? (now() - t) * 1e3 : 1e9;
        usleep(10 * 1000);
    }
    return NULL;
}

/* From /proc/PID/status: VmRSS in MB and the thread count. */
static void process_status(int pid, double *rss_mb, int *threads) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    *rss_mb = 0;
    *threads = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *rss_mb = atof(line + 6) / 1024;
        if (strncmp(line, "Threads:", 8) == 0) *threads = atoi(line + 8);
    }
    fclose(f);
}

/* CPU seconds of the process's threads that are not the engine's (by thread name). */
static double daemon_cpu_s(int pid) {
    char path[300];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return 0;
    double total = 0, tick = (double)sysconf(_SC_CLK_TCK);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char stat[512];
        snprintf(path, sizeof path, "/proc/%d/task/%s/stat", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        char *open = strchr(stat, '('), *close_paren = strrchr(stat, ')');
        if (!open || !close_paren) continue;
        if (strncmp(open + 1, "gptd-scheduler", 14) == 0 || strncmp(open + 1, "gptd-pool", 9) == 0)
            continue;
        unsigned long utime = 0, stime = 0;
        /* fields after the name: state(3) ... utime(14) stime(15) */
        sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
               &stime);
        total += (double)(utime + stime) / tick;
    }
    closedir(d);
    return total;
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

/* The --arrivals client: n_ttft one-token requests and the times to their first tokens. */
typedef struct {
    Client *clients;
    int n, port, n_ttft, n_ok;
    double *ttft;
} Arrivals;

static void wait_first_tokens(Client *clients, int n) {
    for (int i = 0; i < n; i++)
        while (__atomic_load_n(&clients[i].tokens, __ATOMIC_RELAXED) == 0 &&
               __atomic_load_n(&clients[i].finished, __ATOMIC_ACQUIRE) == 0)
            usleep(1000);
}

/* Waits until every client has streamed a token, then sends the one-token requests one after
 * another, each 1-8 ms after the last ended (a fixed pattern, so arrivals fall at every point of
 * an engine step), and keeps each one's time to its first token. */
static void *arrivals_main(void *arg) {
    Arrivals *a = arg;
    wait_first_tokens(a->clients, a->n);
    for (int i = 0; i < a->n_ttft; i++) {
        usleep((useconds_t)(1000 + (i * 2654435761u) % 7000));
        Client c = {.port = a->port, .max_tokens = 1, .id = a->n + 1 + i};
        c.gaps = calloc(1, sizeof(double));
        client_run(&c);
        if (c.ok) a->ttft[a->n_ok++] = c.first - c.start;
        free(c.gaps);
    }
    return NULL;
}

static void *probe_main(void *arg) {
    Probe *p = arg;
    wait_first_tokens(p->clients, p->n);
    return client_main(&p->probe);
}

int main(int argc, char **argv) {
    int port = 8080, clients = 8, max_tokens = 100, probe_tokens = 0, n_ttft = 0, n_idle = 0,
        n_slow = 0, pid = 0;
    bool health = false;
    CliFlag flags[] = {
        {"idle", CLI_INT, &n_idle, 0, 100000, "idle keep-alive connections held open", false, NULL},
        {"slow", CLI_INT, &n_slow, 0, 100000, "slow-header connections held open", false, NULL},
        {"health", CLI_BOOL, &health, 0, 0, "time GET /health every 10 ms during the run", false,
         NULL},
        {"pid", CLI_INT, &pid, 0, 1 << 30, "gptd's pid: RSS, threads and its own CPU", false, NULL},
        {"port", CLI_INT, &port, 1, 65535, "gptd's port on 127.0.0.1", false, NULL},
        {"clients", CLI_INT, &clients, 1, 4096, "concurrent streaming clients", false, NULL},
        {"max-tokens", CLI_INT, &max_tokens, 1, 100000, "tokens per request", false, NULL},
        {"arrivals", CLI_INT, &n_ttft, 0, 10000,
         "one-token requests sent one by one once every client streams: their time to first token",
         false, NULL},
        {"probe", CLI_INT, &probe_tokens, 0, 100000,
         "tokens of one more request, timed, sent once every client streams (0 = none)", false,
         NULL},
    };
    int rc =
        cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                  "usage: bench-server --port N --clients N --max-tokens N [--probe N] [--idle N] "
                  "[--slow N] [--health] [--pid P] [--arrivals N]");
    if (rc) return rc == 1 ? 0 : 2;
    double rss_before = 0, rss_during = 0;
    int threads_before = 0, threads_during = 0;
    if (pid) process_status(pid, &rss_before, &threads_before);
    Held held = {.port = port, .n_idle = n_idle, .n_slow = n_slow};
    pthread_t drip_thread;
    held_open(&held);
    pthread_create(&drip_thread, NULL, drip_main, &held);
    Health hp = {.port = port, .cap = 100000};
    pthread_t health_thread;
    if (health) {
        hp.ms = calloc((size_t)hp.cap, sizeof(double));
        pthread_create(&health_thread, NULL, health_main, &hp);
    }
    double cpu0 = pid ? daemon_cpu_s(pid) : 0;
    Client *cs = calloc((size_t)clients, sizeof *cs);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = now();
    for (int i = 0; i < clients; i++) {
        cs[i] = (Client){.port = port, .max_tokens = max_tokens, .id = i};
        cs[i].gaps = calloc((size_t)max_tokens, sizeof(double));
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    Probe probe = {.clients = cs, .n = clients};
    pthread_t probe_thread, arrivals_thread;
    Arrivals arrivals = {.clients = cs, .n = clients, .port = port, .n_ttft = n_ttft};
    if (n_ttft > 0) {
        arrivals.ttft = calloc((size_t)n_ttft, sizeof(double));
        pthread_create(&arrivals_thread, NULL, arrivals_main, &arrivals);
    }
    if (probe_tokens > 0) {
        probe.probe = (Client){.port = port, .max_tokens = probe_tokens, .id = clients};
        probe.probe.gaps = calloc((size_t)probe_tokens, sizeof(double));
        pthread_create(&probe_thread, NULL, probe_main, &probe);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    if (probe_tokens > 0) pthread_join(probe_thread, NULL);
    if (n_ttft > 0) pthread_join(arrivals_thread, NULL);
    double wall = now() - t0;
    double daemon_s = pid ? daemon_cpu_s(pid) - cpu0 : 0;
    if (pid) process_status(pid, &rss_during, &threads_during);
    hp.stop = 1;
    if (health) pthread_join(health_thread, NULL);
    held.stop = 1;
    pthread_join(drip_thread, NULL);
    for (int i = 0; i < n_idle + n_slow; i++)
        if (held.fds[i] >= 0) close(held.fds[i]);
    free(held.fds);
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
    if (n_idle || n_slow) printf("held_idle=%d held_slow=%d\n", held.opened_idle, held.opened_slow);
    if (health) {
        printf("health_n=%d health_p50_ms=%.2f health_p99_ms=%.2f\n", hp.n,
               percentile(hp.ms, hp.n, 0.5), percentile(hp.ms, hp.n, 0.99));
        free(hp.ms);
    }
    if (pid)
        printf("rss_before_mb=%.1f rss_during_mb=%.1f threads_before=%d threads_during=%d "
               "daemon_us_per_token=%.1f\n",
               rss_before, rss_during, threads_before, threads_during,
               tokens > 0 ? daemon_s * 1e6 / (double)tokens : 0);
    if (n_ttft > 0) {
        printf("arrivals=%d arrivals_ok=%d arrival_ttft_p50_ms=%.2f arrival_ttft_p99_ms=%.2f\n",
               n_ttft, arrivals.n_ok, percentile(arrivals.ttft, arrivals.n_ok, 0.5) * 1e3,
               percentile(arrivals.ttft, arrivals.n_ok, 0.99) * 1e3);
        if (arrivals.n_ok < n_ttft) ok = -1;
        free(arrivals.ttft);
    }
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
