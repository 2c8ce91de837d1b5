/* libFuzzer harness: raw HTTP request bytes against the real server, over loopback. The server
 * (server/http.c and the scheduler, on libmicrohttpd, with a tiny random model) is started once
 * and kept for the process, as server/main.c starts it. Each input opens a connection to it.
 *
 * Input: byte 0 picks how the rest is written: 1 + byte0 % 3 writes ('0' one, '1' two, '2'
 * three), cut at points byte0 / 3 chooses, with a short pause between them so the server reads
 * the request in pieces. The rest is the request bytes, sent as they are. Then the harness
 * shuts down its sending side (the server runs with --serve-half-closed, so a half-closed
 * client still gets its answer) and reads until the server closes.
 *
 * Checks, whatever came in:
 *  - no crash, no ASan/UBSan report, nothing leaked (the server's threads included);
 *  - the server closes the connection within a few seconds;
 *  - the reply is a sequence of well-formed HTTP/1.1 responses: one status line each, CRLF
 *    header lines, and a body framed as announced (Content-Length bytes, whole chunks ending in
 *    a last chunk, or to the close); no response follows one that says Connection: close;
 *  - a JSON body is valid UTF-8 JSON, and an error's (4xx, 5xx) has error.message; an SSE body is
 *    valid UTF-8, and each event's data is JSON or [DONE];
 *  - the first request, if its framing is ambiguous by the oracle below (two Content-Length, a
 *    Content-Length with a Transfer-Encoding, two Host, HTTP/1.1 without Host, a Transfer-
 *    Encoding other than chunked), never gets a 2xx. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/rng.h"
#include "../../common/utf8.h"
#include "../../model/engine.h"
#include "../../server/http.h"
#include "../../server/log.h"

/* ---- the server, started once -------------------------------------------------------------- */

#define REPLY_MAX (4u << 20) /* far above what 4 KB of requests can draw (the page is 17 KB) */

static ServerConfig config;
static GPT model;
static Tokenizer tok;
static ContextPolicy context;
static Engine *engine;
static Scheduler *sched;
static Metrics *metrics;
static HttpServer *http;
static int port;
static char *reply; /* (REPLY_MAX) what one connection got back; kept, as a fresh 4 MB buffer
                       for every input costs more than the exchange itself */

/* A model of a few thousand parameters: a generation of 4 tokens takes well under a millisecond,
 * and the limits are small so every input ends in milliseconds. */
static void start_server(void) {
    Error err;
    /* tiny Shakespeare's 65 symbols plus two multi-byte ones */
    const char *text = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzé✓";
    if (tokenizer_build(&tok, text, strlen(text), &err)) goto fail;
    GPTConfig c = {.vocab_size = tok.vocab_size,
                   .n_layer = 1,
                   .n_head = 2,
                   .n_embd = 16,
                   .block_size = 16,
                   .activation = ACT_GELU,
                   .qkv_bias = true};
    if (gpt_init(&model, &c, &err)) goto fail;
    Rng rng;
    rng_seed(&rng, 22);
    for (size_t i = 0; i < model.n_params; i++) model.param_memory[i] = 0.1f * rng_normal(&rng);
    if (context_policy_init(&context, c.block_size, "keep", 0, &err)) goto fail;
    config = (ServerConfig){.host = "127.0.0.1",
                            .port = 0, /* the system picks one: http_server_port */
                            .model_name = "fuzz",
                            .context_shift = "keep",
                            .threads = 1,
                            .max_batch = 2,
                            .max_queue = 4,
                            .max_tokens = 4,
                            .default_max_tokens = 2,
                            .prefill_budget = 16,
                            .max_connections = 8,
                            .connection_timeout = 1,
                            .body_limit = 4096,
                            .body_memory_mb = 1,
                            .reply_memory_mb = 1,
                            .keepalive_s = 1,
                            .stream_interval_ms = 0,
                            .serve_half_closed = true,
                            .timeout_s = 2,
                            .receive_timeout_s = 2};
    EngineConfig ec = {.max_slots = config.max_batch,
                       .max_rows = config.max_batch + config.prefill_budget,
                       .threads = config.threads};
    SchedulerConfig sc = {.max_batch = config.max_batch,
                          .max_queue = config.max_queue,
                          .prefill_budget = config.prefill_budget,
                          .vocab_size = c.vocab_size};
    metrics = metrics_create();
    if (!metrics) goto fail;
    if (http_server_start(&http, &config, metrics, &err) ||
        engine_create(&engine, &model, &ec, &err) || gpt_keep_unpacked(&model, &err) ||
        scheduler_create(&sched, engine, &sc, metrics, &err))
        goto fail;
    http_server_ready(http, &model, &tok, sched, &context, engine_kernels_name(engine),
                      config.max_batch, "fp_0000000000000000");
    port = http_server_port(http);
    if (port <= 0) goto fail;
    return;
fail:
    fprintf(stderr, "fuzz_http: cannot start the server: %s\n", err.message);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN); /* a write to a connection the server closed fails instead */
    log_set_level(LOG_ERROR); /* one line per request would drown libFuzzer's own */
    reply = malloc(REPLY_MAX);
    if (!reply) abort();
    start_server();
    return 0;
}

/* ---- one exchange -------------------------------------------------------------------------- */

#define CLOSE_WITHIN_S 5.0 /* --connection-timeout is 1 s, --timeout 2 s */

static void fail(const char *what, const char *got, size_t n) {
    fprintf(stderr, "fuzz_http: %s\n--- reply (%zu bytes) ---\n", what, n);
    fwrite(got, 1, n < 2048 ? n : 2048, stderr);
    fprintf(stderr, "\n---\n");
    abort();
}

/* Writes the request in up to three pieces (see the top), half-closes, and reads everything
 * until the server closes into `reply`; returns its length. */
/* A connected socket. libFuzzer's own timers interrupt system calls (EINTR): an interrupted
 * connect goes on in the background, so it is simply tried again on a fresh socket. */
static int connect_to_server(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
        int saved = errno;
        if (fd >= 0) close(fd);
        if (fd < 0 || saved != EINTR) {
            fprintf(stderr, "fuzz_http: cannot connect: %s\n", strerror(saved));
            abort();
        }
    }
    fprintf(stderr, "fuzz_http: cannot connect: interrupted 100 times\n");
    abort();
}

static size_t exchange(uint8_t how, const uint8_t *req, size_t size) {
    int fd = connect_to_server();
    size_t cuts[3] = {size, size, size};
    int writes = 1 + how % 3;
    if (writes >= 2) cuts[0] = size * (1 + (how / 3) % 7) / 8;
    if (writes == 3) cuts[1] = cuts[0] + (size - cuts[0]) * (1 + (how / 21) % 7) / 8;
    size_t from = 0;
    for (int i = 0; i < writes; i++) {
        for (size_t at = from; at < cuts[i];) {
            ssize_t w = send(fd, req + at, cuts[i] - at, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break; /* the server closed early: what it sent is still read below */
            at += (size_t)w;
        }
        from = cuts[i];
        if (i + 1 < writes) usleep(200);
    }
    shutdown(fd, SHUT_WR);
    size_t len = 0;
    double deadline = clock_seconds() + CLOSE_WITHIN_S;
    for (;;) {
        int wait_ms = (int)((deadline - clock_seconds()) * 1e3);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = wait_ms > 0 ? poll(&p, 1, wait_ms) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) fail("the server kept the connection open", reply, len);
        ssize_t r = recv(fd, reply + len, REPLY_MAX - len, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) break;
        if (r < 0 && errno != EINTR) fail(strerror(errno), reply, len);
        if (r > 0) len += (size_t)r;
        if (len >= REPLY_MAX) fail("a reply of more than 4 MB", reply, len);
    }
    close(fd);
    return len;
}

/* The server has closed its side too and forgotten the connection (its thread joined, its
 * state freed), so what the server allocated for this input is freed before the next one:
 * libFuzzer's leak check counts mallocs and frees per input. */
static void wait_for_server(void) {
    double deadline = clock_seconds() + CLOSE_WITHIN_S;
    while (http_server_connections(http) > 0) {
        if (clock_seconds() > deadline) {
            fprintf(stderr, "fuzz_http: the server never let go of a connection\n");
            abort();
        }
        usleep(50);
    }
}

/* ---- the framing oracle -------------------------------------------------------------------- */

/* What the first request's header block says, read independently of libmicrohttpd and kept
 * simple: lines end at LF (a CR before it is dropped); leading empty lines are skipped; the
 * request line must be METHOD SP TARGET SP HTTP/1.x; a header line is NAME ":" value, and only
 * names without a space or a tab are counted. The oracle speaks only when it is sure, and makes
 * no claim on a block with a NUL or a lone CR, a request line of another shape, no end, or either
 * of two malformed lines that libmicrohttpd 0.9.75 reads differently from RFC 9112, so that gptd
 * never sees what a proxy in front would see:
 *  - an obs-fold line (starting with SP or HT): libmicrohttpd appends it to the NAME of the
 *    header before ("Host: a\r\n x" becomes a header "Hostx"), so that header is gone;
 *  - a line starting with ':' (an empty name): its header parser takes it for the blank line,
 *    so the header block ends there and the lines after it are read as what follows.
 * Both let a request whose block has, say, two Host headers through framing_ok (found by this
 * harness); RFC 9112 wants a 400 for both, which needs a libmicrohttpd that reads them right. */
typedef struct {
    bool known;
    bool http11;
    int content_length, transfer_encoding, host;
    bool te_not_chunked; /* a Transfer-Encoding whose value is not "chunked" alone */
} Framing;

static bool name_is(const char *line, size_t name_len, const char *name) {
    return name_len == strlen(name) && strncasecmp(line, name, name_len) == 0;
}

static Framing framing_of(const char *in, size_t size) {
    Framing f = {0};
    size_t at = 0;
    while (at < size && (in[at] == '\n' || (in[at] == '\r' && at + 1 < size && in[at + 1] == '\n')))
        at += in[at] == '\r' ? 2 : 1;
    bool request_line = true;
    for (;;) {
        const char *lf = memchr(in + at, '\n', size - at);
        if (!lf) return (Framing){0}; /* the block never ends */
        const char *line = in + at;
        size_t len = (size_t)(lf - line);
        at += len + 1;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (memchr(line, '\0', len) || memchr(line, '\r', len)) return (Framing){0};
        if (request_line) {
            const char *sp1 = memchr(line, ' ', len);
            const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
            if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1) return (Framing){0};
            size_t vlen = len - (size_t)(sp2 + 1 - line);
            if (vlen != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) return (Framing){0};
            if (sp2[8] != '0' && sp2[8] != '1') return (Framing){0};
            f.http11 = sp2[8] == '1';
            request_line = false;
            continue;
        }
        if (len == 0) break; /* the end of the block */
        if (line[0] == ' ' || line[0] == '\t' || line[0] == ':') return (Framing){0};
        const char *colon = memchr(line, ':', len);
        if (!colon) continue;
        size_t name_len = (size_t)(colon - line);
        if (memchr(line, ' ', name_len) || memchr(line, '\t', name_len)) continue;
        if (name_is(line, name_len, "Content-Length")) f.content_length++;
        if (name_is(line, name_len, "Host")) f.host++;
        if (name_is(line, name_len, "Transfer-Encoding")) {
            f.transfer_encoding++;
            const char *v = colon + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
            if (end - v != 7 || strncasecmp(v, "chunked", 7) != 0) f.te_not_chunked = true;
        }
    }
    f.known = true;
    return f;
}

/* Why the first request must not get a 2xx, or NULL. */
static const char *framing_refusal(const Framing *f) {
    if (!f->known) return NULL;
    if (f->content_length > 1) return "two Content-Length headers";
    if (f->content_length > 0 && f->transfer_encoding > 0)
        return "Content-Length with Transfer-Encoding";
    if (f->transfer_encoding > 1 || (f->transfer_encoding > 0 && f->te_not_chunked))
        return "a Transfer-Encoding other than chunked";
    if (f->host > 1) return "two Host headers";
    if (f->host == 0 && f->http11) return "HTTP/1.1 without Host";
    return NULL;
}

/* ---- the reply ----------------------------------------------------------------------------- */

typedef struct {
    int status;
    const char *head; /* from the status line to the blank line after the headers */
    size_t head_len;
    long long content_length; /* -1: none */
    int n_content_length;
    bool chunked, close;
    char content_type[64];
    char *body; /* malloc'd, de-chunked, NUL-terminated */
    size_t body_len;
    bool bodyless; /* taken for a HEAD's reply */
} Response;

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_decode(s + i, n - i, &cp);
        if (k == 0) return false;
        i += (size_t)k;
    }
    return true;
}

/* The value of a header line "Name: value" (lower-cased name given), or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen) {
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
    const char *v = line + n + 1;
    while (v < line + len && *v == ' ') v++;
    *vlen = (size_t)(line + len - v);
    return v;
}

/* Parses the status line and headers at r[*at..n); returns an error text or NULL. */
static const char *parse_head(const char *r, size_t n, size_t *at, Response *x) {
    const char *start = r + *at, *end = r + n;
    if ((size_t)(end - start) < 14 || memcmp(start, "HTTP/1.1 ", 9) != 0)
        return "a response that does not start with \"HTTP/1.1 \"";
    if (start[9] < '1' || start[9] > '5' || start[10] < '0' || start[10] > '9' || start[11] < '0' ||
        start[11] > '9' || start[12] != ' ')
        return "a status line without a three-digit status";
    x->status = (start[9] - '0') * 100 + (start[10] - '0') * 10 + (start[11] - '0');
    x->content_length = -1;
    const char *p = start;
    for (bool status_line = true;; status_line = false) {
        const char *crlf = NULL;
        for (const char *q = p; q + 1 < end; q++)
            if (*q == '\r' && q[1] == '\n') {
                crlf = q;
                break;
            }
        if (!crlf) return "a head that does not end";
        size_t len = (size_t)(crlf - p);
        const char *line = p;
        p = crlf + 2;
        if (memchr(line, '\n', len) || memchr(line, '\0', len))
            return "a bare LF or a NUL in a head line";
        if (status_line) continue;
        if (len == 0) break;
        const char *colon = memchr(line, ':', len);
        if (!colon || colon == line || memchr(line, ' ', (size_t)(colon - line)))
            return "a header line that is not NAME: value";
        size_t vlen;
        const char *v;
        if ((v = header_value(line, len, "content-length", &vlen))) {
            x->n_content_length++;
            char digits[24];
            if (vlen == 0 || vlen >= sizeof digits || strspn(v, "0123456789") < vlen)
                return "a Content-Length that is not a number";
            memcpy(digits, v, vlen);
            digits[vlen] = '\0';
            x->content_length = strtoll(digits, NULL, 10);
        } else if ((v = header_value(line, len, "transfer-encoding", &vlen))) {
            if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
                return "a Transfer-Encoding other than chunked";
            x->chunked = true;
        } else if ((v = header_value(line, len, "connection", &vlen))) {
            x->close = vlen == 5 && strncasecmp(v, "close", 5) == 0;
        } else if ((v = header_value(line, len, "content-type", &vlen))) {
            snprintf(x->content_type, sizeof x->content_type, "%.*s", (int)vlen, v);
        }
    }
    x->head = start;
    x->head_len = (size_t)(p - start);
    *at = (size_t)(p - r);
    if (x->n_content_length > 1) return "two Content-Length headers in a response";
    if (x->chunked && x->n_content_length) return "a response both chunked and of a length";
    return NULL;
}

/* Reads a chunked body at r[*at..n) into x->body. */
static const char *parse_chunks(const char *r, size_t n, size_t *at, Response *x) {
    size_t p = *at;
    for (;;) {
        size_t size = 0, digits = 0;
        for (; p < n && strchr("0123456789abcdefABCDEF", r[p]) && r[p]; p++, digits++) {
            if (digits > 8) return "a chunk size of more than 8 hex digits";
            size = size * 16 + (size_t)(r[p] <= '9' ? r[p] - '0' : (r[p] | 0x20) - 'a' + 10);
        }
        if (digits == 0) return "a chunk without a size";
        while (p < n && r[p] != '\r') p++; /* chunk extensions */
        if (n - p < 2 || r[p + 1] != '\n') return "a chunk size line that does not end";
        p += 2;
        if (size == 0) break;
        if (n - p < size + 2) return "a chunk cut short";
        if (r[p + size] != '\r' || r[p + size + 1] != '\n') return "a chunk without its CRLF";
        memcpy(x->body + x->body_len, r + p, size);
        x->body_len += size;
        p += size + 2;
    }
    for (;;) { /* trailers, then the blank line */
        const char *crlf = NULL;
        for (size_t q = p; q + 1 < n; q++)
            if (r[q] == '\r' && r[q + 1] == '\n') {
                crlf = r + q;
                break;
            }
        if (!crlf) return "a chunked body without its last CRLF";
        size_t len = (size_t)(crlf - (r + p));
        p += len + 2;
        if (len == 0) break;
    }
    *at = p;
    return NULL;
}

/* An SSE body: events of "data: ..." lines (or ":" comments), each data JSON or [DONE]. */
static const char *check_sse(const Response *x) {
    if (!valid_utf8(x->body, x->body_len)) return "an SSE body that is not valid UTF-8";
    if (x->body_len >= 2 && strcmp(x->body + x->body_len - 2, "\n\n") != 0)
        return "an SSE body that does not end with a blank line";
    const char *p = x->body;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) return "an SSE line without its LF";
        size_t len = (size_t)(nl - p);
        if (len > 0 && p[0] != ':') {
            if (len < 6 || strncmp(p, "data: ", 6) != 0) return "an SSE line that is not data";
            char *data = strndup(p + 6, len - 6);
            cJSON *j = strcmp(data, "[DONE]") == 0 ? NULL : cJSON_Parse(data);
            bool ok = strcmp(data, "[DONE]") == 0 || j;
            cJSON_Delete(j);
            free(data);
            if (!ok) return "an SSE event whose data is not JSON";
        }
        p = nl + 1;
    }
    return NULL;
}

static const char *check_body(const Response *x) {
    if (strncasecmp(x->content_type, "text/event-stream", 17) == 0) return check_sse(x);
    bool json = strncasecmp(x->content_type, "application/json", 16) == 0;
    if (!json) {
        /* libmicrohttpd answers what it refuses itself (a malformed request line, headers too
         * large) with a short HTML page and no Content-Type; gptd's own errors are JSON */
        if (x->status >= 400 && x->content_type[0]) return "an error that is not JSON";
        return NULL;
    }
    if (!valid_utf8(x->body, x->body_len)) return "a JSON body that is not valid UTF-8";
    cJSON *j = cJSON_ParseWithLength(x->body, x->body_len);
    if (!j) return "a JSON body that does not parse";
    const char *why = NULL;
    if (x->status >= 400) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (!cJSON_IsString(m) || !m->valuestring[0]) why = "an error without error.message";
    }
    cJSON_Delete(j);
    return why;
}

/* Whether the input may hold a HEAD request (its reply has a length but no body): "HEAD "
 * anywhere, as a pipelined request may start right after a body. */
static bool any_head(const char *in, size_t size) {
    return size >= 5 && memmem(in, size, "HEAD ", 5) != NULL;
}

/* libmicrohttpd 0.9.75 (Debian 12's) answers a Content-Length it cannot read (abc, +25, -1, or
 * 99999999999999999999: "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n
 * \r\n") with its own 400 or 413 before gptd sees the request, and writes the status line and
 * headers twice: its error path (transmit_error_response) queues the reply, then the state
 * machine carries on as if the headers were fine and builds them again (connection.c,
 * MHD_CONNECTION_HEADERS_RECEIVED; fixed upstream in 1.0.0, commit f1bfbe71). No option or
 * callback of 0.9.75 runs before it, so gptd cannot refuse first; the connection is closed
 * after it, so nothing can follow on it. This is that reply exactly: the same head twice, then
 * libmicrohttpd's page about Content-Length, the last bytes of the connection; or, when the
 * request was a HEAD (head: the input holds one), the two heads alone. */
static bool mhd_0975_doubled_length_error(const Response *x, const char *after, size_t n,
                                          bool head) {
    static const char page[] = "<html><head><title>Request ";
    static const char tail[] = "<b>Content-Length</b> header.</body></html>";
    if ((x->status != 400 && x->status != 413) || x->content_type[0] || !x->close) return false;
    if (head && n == x->head_len) return true;
    if (x->content_length < 0 || n != x->head_len + (size_t)x->content_length) return false;
    const char *body = after + x->head_len;
    size_t len = (size_t)x->content_length;
    return len > sizeof page + sizeof tail && memcmp(body, page, sizeof page - 1) == 0 &&
           memcmp(body + len - (sizeof tail - 1), tail, sizeof tail - 1) == 0;
}

/* Reads the body of x at r[*at..n) into x->body, as its head frames it. head: the input may
 * hold a HEAD request. */
static const char *read_body(const char *r, size_t n, size_t *at, Response *x, bool head) {
    x->body = malloc(n - *at + 1);
    x->body_len = 0;
    x->body[0] = '\0';
    if (x->status < 200 || x->status == 204 || x->status == 304) return NULL; /* none */
    if (x->chunked) {
        const char *why = parse_chunks(r, n, at, x);
        x->body[x->body_len] = '\0';
        return why;
    }
    size_t left = n - *at;
    if (x->content_length < 0) { /* to the close */
        memcpy(x->body, r + *at, left);
        x->body_len = left;
        x->body[left] = '\0';
        *at = n;
        return NULL;
    }
    /* a HEAD's reply announces a length and has no body: the connection's end or the next
     * status line follows at once */
    if (head && (left == 0 || (left >= 9 && memcmp(r + *at, "HTTP/1.1 ", 9) == 0))) {
        x->bodyless = true;
        return NULL;
    }
    if ((unsigned long long)x->content_length > left)
        return "a body shorter than its Content-Length";
    x->body_len = (size_t)x->content_length;
    memcpy(x->body, r + *at, x->body_len);
    x->body[x->body_len] = '\0';
    *at += x->body_len;
    return NULL;
}

/* Every check on the reply; returns an error text or NULL. */
static const char *check_reply(const char *r, size_t n, const char *in, size_t size) {
    Framing f = framing_of(in, size);
    const char *refusal = framing_refusal(&f);
    bool first = true, head = any_head(in, size);
    for (size_t at = 0; at < n;) {
        Response x = {0};
        const char *why = parse_head(r, n, &at, &x);
        if (why) return why;
        /* the head again at once: a HEAD's bodyless reply may be followed by the same reply to
         * a second HEAD; otherwise it is sent twice */
        bool again = n - at >= x.head_len && memcmp(r + at, x.head, x.head_len) == 0;
        if (again && mhd_0975_doubled_length_error(&x, r + at, n - at, head))
            at += x.head_len; /* the known libmicrohttpd 0.9.75 case: skip the copy */
        else if (again && !head && (x.content_length > 0 || x.chunked))
            return "the status line and headers sent twice";
        why = read_body(r, n, &at, &x, head);
        if (!why && !x.bodyless) why = check_body(&x);
        free(x.body);
        if (why) return why;
        if (x.close && at < n) return "a response after one that said Connection: close";
        if (x.status >= 200 && first) {
            first = false;
            if (refusal && x.status < 300) {
                static char text[128];
                snprintf(text, sizeof text, "a %d to a request with %s", x.status, refusal);
                return text;
            }
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = exchange(data[0], data + 1, size - 1);
    wait_for_server();
    const char *why = check_reply(reply, n, (const char *)data + 1, size - 1);
    if (why) fail(why, reply, n);
    return 0;
}
