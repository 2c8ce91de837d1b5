/* The HTTP side: libmicrohttpd in its event-driven mode (one thread, epoll) serves every
 * connection. Reading the file top-down: the server's lifecycle, libmicrohttpd's callbacks, what
 * a request's headers decide, the plain endpoints, generation (submit, wait, reply or stream),
 * then replies, memory budgets and the listening socket. One request's life, hop by hop:
 * docs/server.md.
 *
 * Nothing here blocks the event loop on the model: a generation request is submitted to the
 * scheduler, and its connection is suspended (out of the loop, costing nothing) whenever its
 * request has nothing new to send. The scheduler resumes it when the request's channel has news
 * (server/request.h); the idle watch (server/idle_watch.h) resumes it when its client leaves or a
 * stream's keep-alive falls due. */
#define _GNU_SOURCE /* POLLRDHUP */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../api/info.h"
#include "../api/response.h"
#include "../api/tokenize.h"
#include "../common/clock.h"
#include "idle_watch.h"
#include "log.h"
#include "receive_deadline.h"
#include "sse.h"
#include "web_page.h"

/* Connections libmicrohttpd accepts past --max-connections, only to close them at once (on_accept);
 * past these it stops accepting. */
#define ACCEPT_HEADROOM 64

/* libmicrohttpd's memory for each connection: the request's headers (so at most about half of
 * this), the reply's headers and its write buffer. It zeroes all of it after every request, so
 * each idle keep-alive connection holds this much resident: 16 KB keeps a thousand of them
 * within 16 MB (at 64 KB they took 64 MB). */
#define CONNECTION_MEMORY ((size_t)16 * 1024)

#ifndef GPTD_VERSION
#define GPTD_VERSION "dev"
#endif

struct HttpServer {
    const ServerConfig *config; /* immutable */
    Metrics *metrics;
    struct MHD_Daemon *mhd;
    int listen_fd;
    atomic_int state;          /* ServerState */
    ReceiveDeadline *deadline; /* NULL: no --receive-timeout */
    IdleWatch *idle;           /* suspended connections: departures and keep-alives */
    /* set once by http_server_ready before state becomes READY, read-only afterwards */
    const GPT *model;
    const Tokenizer *tok;
    Scheduler *scheduler;
    ContextPolicy context;
    const char *kernels;     /* the engine's kernels (model/kernels.h), for /info */
    const char *fingerprint; /* the model's (model/fingerprint.h), in every reply */
    int max_batch;           /* KV slots, as chosen at start (--max-batch 0: from memory) */
    atomic_ulong next_id;
    atomic_int in_flight;       /* generation requests whose connection is still open */
    atomic_int submitting;      /* generation requests between arrival and submit (or refusal) */
    atomic_int connections;     /* open connections, counted by on_connection */
    bool loopback;              /* listening on a loopback address: Host must name loopback */
    atomic_size_t body_bytes;   /* request bodies being received, all connections together */
    atomic_size_t reply_bytes;  /* attention replies being built or sent (--reply-memory) */
    unsigned long long id_base; /* random per process, so ids differ across replicas */
};

/* Per-request state, owned by libmicrohttpd's thread (the idle watch and the scheduler only
 * resume the connection through `waiter` and `watch`). */
typedef struct {
    HttpServer *server;
    struct MHD_Connection *conn;
    Buf body;                  /* capped at --body-limit */
    bool body_too_big;         /* over --body-limit: the rest is dropped, the answer is 413 */
    bool body_no_room;         /* over --body-memory for all bodies: dropped, the answer is 503 */
    size_t charged;            /* bytes this request counts in HttpServer.body_bytes */
    size_t reply_charged;      /* bytes it counts in HttpServer.reply_bytes, until it ends */
    const struct Route *route; /* found from the headers, before the body is read */
    const char *endpoint;      /* for metrics and the log line */
    int status;
    double t_start;
    /* generation */
    Request *req;
    ApiKind kind;
    bool stream;
    bool settled; /* the final call has returned once without a reply (answer_generation) */
    bool include_usage;
    char *echo; /* the prompt, kept for "echo" */
    size_t echo_len;
    long long created;
    RequestWaiter waiter; /* suspends and resumes this connection */
    IdleWatchEntry watch; /* while suspended */
    bool parked;          /* suspended by request_wait, and not yet back */
    /* Back from a suspension: the idle watch may have woken it because its client left, which
     * client_gone confirms. Otherwise the socket is not polled (the watch sees a client that
     * leaves while the connection is parked, and libmicrohttpd one that leaves mid-write). */
    bool resumed;
    /* streaming */
    SseWriter sse;
    int *next_event; /* (n_choices) each choice's next event to send */
    int n_choices;
    bool finished;
    double last_write;
} Conn;

/* A route is answered by one of: get (a GET), post (a POST answered at once from its whole body,
 * in Conn.body), or generation through the scheduler (a POST with neither, of `kind`). */
typedef struct Route {
    const char *path, *method, *endpoint;
    bool needs_key;
    enum MHD_Result (*get)(Conn *);
    ApiKind kind; /* for generation routes */
    enum MHD_Result (*post)(Conn *);
} Route;

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code);
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls);
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);
static void mhd_log(void *cls, const char *fmt, va_list ap);
static enum MHD_Result screen(Conn *c, const char *url, const char *method, const char *version);
static enum MHD_Result submit_generation(Conn *c);
static enum MHD_Result answer_generation(Conn *c);
static enum MHD_Result handle_page(Conn *c);
static enum MHD_Result handle_health(Conn *c);
static enum MHD_Result handle_metrics(Conn *c);
static enum MHD_Result handle_models(Conn *c);
static enum MHD_Result handle_info(Conn *c);
static enum MHD_Result handle_tokenize(Conn *c);
static enum MHD_Result handle_detokenize(Conn *c);
static enum MHD_Result answer_posted(Conn *c);
static enum MHD_Result queue_response(Conn *c, int status, struct MHD_Response *r);
static enum MHD_Result reply(Conn *c, int status, const char *content_type, char *body,
                             const char *extra_header, const char *extra_value);
static enum MHD_Result reply_error(Conn *c, const ApiError *e);
static enum MHD_Result refuse(Conn *c, int status, const char *type, const char *fmt,
                              const char *arg);
static void take_body_piece(Conn *c, const char *data, size_t size);
static void body_release(Conn *c);
static const char *origin_allowed(const HttpServer *s, struct MHD_Connection *conn);
static void add_cors(const HttpServer *s, struct MHD_Connection *conn, struct MHD_Response *r);
static int open_listener(const char *host, int port, Error *err);
static bool address_is_loopback(const struct sockaddr *a);

static const Route routes[] = {
    {"/", "GET", "page", false, handle_page, 0, NULL},
    {"/index.html", "GET", "page", false, handle_page, 0, NULL},
    {"/health", "GET", "health", false, handle_health, 0, NULL},
    {"/metrics", "GET", "metrics", false, handle_metrics, 0, NULL},
    {"/v1/models", "GET", "models", true, handle_models, 0, NULL},
    {"/info", "GET", "info", true, handle_info, 0, NULL},
    {"/generate", "POST", "generate", true, NULL, API_GENERATE, NULL},
    {"/v1/completions", "POST", "completions", true, NULL, API_COMPLETIONS, NULL},
    {"/v1/chat/completions", "POST", "chat", true, NULL, API_CHAT, NULL},
    {"/tokenize", "POST", "tokenize", true, NULL, 0, handle_tokenize},
    {"/detokenize", "POST", "detokenize", true, NULL, 0, handle_detokenize},
};

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* The event loop's thread, and what every suspended connection and a stream's keep-alive need:
 * libmicrohttpd's epoll mode with suspend/resume (which brings its inter-thread channel, so a
 * resume from the scheduler wakes the loop at once). */
static struct MHD_Daemon *start_mhd(HttpServer *s) {
    const ServerConfig *config = s->config;
    return MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, on_accept,
        s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)s->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)config->max_connections + ACCEPT_HEADROOM, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)config->per_ip_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)config->connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        CONNECTION_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
}

int http_server_start(HttpServer **out, const ServerConfig *config, Metrics *metrics, Error *err) {
    HttpServer *s = calloc(1, sizeof *s);
    if (!s) return error_set(err, "out of memory");
    s->config = config;
    s->metrics = metrics;
    atomic_init(&s->state, SERVER_LOADING);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_base = (unsigned long long)ts.tv_nsec * 2654435761ull ^ (unsigned long long)getpid()
                                                                      << 32;
    s->listen_fd = open_listener(config->host, config->port, err);
    if (s->listen_fd < 0) {
        free(s);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    if (getsockname(s->listen_fd, (struct sockaddr *)&bound, &bound_len) == 0)
        s->loopback = address_is_loopback((struct sockaddr *)&bound);
    if (idle_watch_start(&s->idle, !config->serve_half_closed, err)) goto fail;
    if (config->receive_timeout_s > 0 &&
        receive_deadline_start(&s->deadline, config->receive_timeout_s, config->receive_min_rate,
                               err))
        goto fail;
    s->mhd = start_mhd(s);
    if (!s->mhd) {
        error_set(err, "cannot start the HTTP server on %s:%d", config->host, config->port);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    receive_deadline_stop(s->deadline);
    idle_watch_stop(s->idle);
    close(s->listen_fd);
    free(s);
    return -1;
}

void http_server_ready(HttpServer *s, const GPT *model, const Tokenizer *tok, Scheduler *sched,
                       const ContextPolicy *context, const char *kernels, int max_batch,
                       const char *fingerprint) {
    s->model = model;
    s->fingerprint = fingerprint;
    s->max_batch = max_batch;
    s->kernels = kernels;
    s->context = *context;
    s->tok = tok;
    s->scheduler = sched;
    atomic_store(&s->state, SERVER_READY);
}

void http_server_drain(HttpServer *s) { atomic_store(&s->state, SERVER_DRAINING); }

int http_server_in_flight(HttpServer *s) {
    return atomic_load(&s->submitting) + atomic_load(&s->in_flight);
}

int http_server_port(const HttpServer *s) {
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    if (getsockname(s->listen_fd, (struct sockaddr *)&bound, &len) != 0) return -1;
    if (bound.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (bound.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    return -1;
}

int http_server_connections(HttpServer *s) { return atomic_load(&s->connections); }

/* libmicrohttpd must not be stopped with a connection suspended: every one is resumed first
 * (the scheduler has stopped by now, so each finds its request ended and closes). */
void http_server_stop(HttpServer *s) {
    if (!s) return;
    idle_watch_wake_all(s->idle);
    MHD_stop_daemon(s->mhd); /* closes every connection, then joins its thread */
    idle_watch_stop(s->idle);
    receive_deadline_stop(s->deadline);
    close(s->listen_fd);
    free(s);
}

/* ---- libmicrohttpd's callbacks -------------------------------------------------------------- */

/* Past --max-connections a new connection is closed at once, so a client (or a load balancer)
 * learns it now and can go elsewhere; libmicrohttpd's own limit, set above ours, would leave it
 * unaccepted in the kernel's backlog instead, waiting for a place. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    HttpServer *s = cls;
    return atomic_load(&s->connections) < s->config->max_connections ? MHD_YES : MHD_NO;
}

/* Connections start and end: counted, their socket tracked by the idle watch (which sees their
 * FIN), and the first request's receive deadline runs from the accept. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    HttpServer *s = cls;
    bool started = code == MHD_CONNECTION_NOTIFY_STARTED;
    atomic_fetch_add(&s->connections, started ? 1 : -1);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info && started) idle_watch_track(s->idle, info->connect_fd);
    if (info && !started) idle_watch_untrack(s->idle, info->connect_fd);
    if (!s->deadline) return;
    if (started) {
        *socket_context = info ? receive_deadline_track(s->deadline, info->connect_fd) : NULL;
    } else if (*socket_context) {
        receive_deadline_untrack(s->deadline, *socket_context);
        *socket_context = NULL;
    }
}

static Conn *conn_create(HttpServer *s, struct MHD_Connection *conn) {
    Conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->server = s;
    c->conn = conn;
    c->endpoint = "other";
    buf_init(&c->body, (size_t)s->config->body_limit);
    c->t_start = clock_seconds();
    return c;
}

/* Called first when the headers are in (screen decides what it can from them), then for each
 * piece of the body, then once the request is whole with *upload_size 0 (the "final" call) and,
 * for a generation request, again each time its suspended connection is resumed until a reply
 * is queued. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    HttpServer *s = cls;
    Conn *c = *con_cls;
    if (!c) {
        if (!(c = conn_create(s, conn))) return MHD_NO;
        *con_cls = c;
        return screen(c, url, method, version);
    }
    if (c->status) { /* refused from its headers: the rest of the body is dropped unread */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) { /* the body arrives in pieces */
        take_body_piece(c, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->req) return answer_generation(c); /* resumed */
    if (s->deadline) {                       /* the request is here whole: no deadline now */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (info && info->socket_context) receive_deadline_met(s->deadline, info->socket_context);
    }
    if (c->route->get) return c->route->get(c);
    return c->route->post ? answer_posted(c) : submit_generation(c);
}

static void log_completed(const Conn *c, enum MHD_RequestTerminationCode toe) {
    if (c->req) {
        RequestSnapshot snap;
        request_snapshot(c->req, &snap);
        log_info("%s %s status=%d prompt_tokens=%d tokens=%d finish=%s%s ms=%.1f", c->req->id,
                 c->endpoint, c->status, snap.prompt_tokens, snap.completion_tokens,
                 snap.finish ? api_finish_name(snap.finish) : "-",
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " client_gone",
                 (clock_seconds() - c->t_start) * 1e3);
    } else if (c->status >= 400) {
        log_info("%s status=%d ms=%.1f", c->endpoint, c->status,
                 (clock_seconds() - c->t_start) * 1e3);
    }
}

/* The request's end, whether its reply was sent or its client left: a request still running is
 * cancelled (its slot is free at the next step), and nothing may resume the connection now. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    HttpServer *s = cls;
    Conn *c = *con_cls;
    if (!c) return;
    log_completed(c, toe);
    if (c->req) {
        Request *r = c->req;
        idle_watch_remove(s->idle, &c->watch);
        request_forget_waiter(r);
        RequestSnapshot snap;
        request_snapshot(r, &snap);
        if (!snap.done || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            atomic_store(&r->cancelled, true);
        request_release(r);
        atomic_fetch_sub(&s->in_flight, 1);
    }
    if (c->status) metrics_request_done(s->metrics, c->endpoint, c->status);
    if (s->deadline && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) { /* the next request's turn */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (info && info->socket_context) receive_deadline_next(s->deadline, info->socket_context);
    }
    sse_free(&c->sse);
    body_release(c);
    free(c->echo);
    free(c->next_event);
    atomic_fetch_sub(&s->reply_bytes, c->reply_charged);
    free(c);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages go through our log. A client that goes away mid-request or
 * mid-reply is routine (it reports the connection we then end as an "internal error"): those are
 * debug lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (strstr(line, "Application reported internal error") || strstr(line, "Failed to send") ||
        strstr(line, "application error generating response") ||
        strstr(line, "closed by remote side"))
        log_debug("libmicrohttpd: %s", line);
    else
        log_warn("libmicrohttpd: %s", line);
}

/* ---- what the headers decide -------------------------------------------------------------- */

static bool framing_ok(struct MHD_Connection *conn, const char *version, ApiError *e);
static bool host_ok(const HttpServer *s, struct MHD_Connection *conn);
static bool origin_ok(const HttpServer *s, struct MHD_Connection *conn);
static bool key_ok(const HttpServer *s, struct MHD_Connection *conn);
static enum MHD_Result answer_preflight(Conn *c);
static enum MHD_Result screen_body(Conn *c);
static enum MHD_Result screen_generation(Conn *c);

static const Route *route_of(const char *url) {
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (strcmp(routes[i].path, url) == 0) return &routes[i];
    return NULL;
}

static enum MHD_Result refuse_unknown_path(Conn *c, const char *url) {
    /* the path as printable ASCII: raw URL bytes would make the JSON reply invalid UTF-8 */
    char shown[128];
    size_t n = 0;
    for (const char *p = url; *p && n < sizeof shown - 1; p++)
        shown[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
    shown[n] = '\0';
    ApiError e;
    api_error(&e, 404, "not_found", "no such endpoint: %s%s", shown, url[n] ? "..." : "");
    return reply_error(c, &e);
}

/* Everything the request line and headers decide is decided before a byte of the body is read:
 * the route, the method, Host and Origin, the API key, and for generation the state, the size
 * and the queue. A refused request costs no body buffer, no parsing and no tokenizing. Returns
 * MHD_YES with c->status 0 to go on; otherwise the refusal is queued. */
static enum MHD_Result screen(Conn *c, const char *url, const char *method, const char *version) {
    HttpServer *s = c->server;
    ApiError e;
    if (!framing_ok(c->conn, version, &e))
        return reply(c, e.status, "application/json", api_error_json(&e), "Connection", "close");
    const Route *rt = route_of(url);
    c->endpoint = rt ? rt->endpoint : "other";
    c->route = rt;
    if (!host_ok(s, c->conn))
        return refuse(c, 403, "forbidden",
                      "Host \"%s\" is not a loopback name, and this server listens on loopback "
                      "only (a guard against DNS rebinding)",
                      MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Host"));
    if (!origin_ok(s, c->conn))
        return refuse(c, 403, "forbidden",
                      "requests from the page at %s are not allowed (the server allows its own "
                      "origin and those given with --cors-origin)",
                      MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Origin"));
    if (!rt) return refuse_unknown_path(c, url);
    if (strcmp(method, "OPTIONS") == 0) return answer_preflight(c); /* before the key check */
    bool head = strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
    if (strcmp(method, rt->method) != 0 && !head) {
        api_error(&e, 405, "method_not_allowed", "%s %s is not allowed; use %s", method, url,
                  rt->method);
        return reply(c, 405, "application/json", api_error_json(&e), "Allow", rt->method);
    }
    if (rt->needs_key && !key_ok(s, c->conn)) {
        api_error(&e, 401, "authentication_error",
                  "missing or wrong API key (send Authorization: Bearer <key>)");
        return reply(c, 401, "application/json", api_error_json(&e), "WWW-Authenticate", "Bearer");
    }
    if (rt->get) return MHD_YES;
    if (rt->post) return screen_body(c);
    atomic_fetch_add(&s->submitting, 1); /* the scheduler is read: see submit_generation */
    enum MHD_Result rc = screen_generation(c);
    atomic_fetch_sub(&s->submitting, 1);
    return rc;
}

/* The one refusal of a generation request while the model loads or the server drains: false with
 * the 503 queued (its result in *refusal), true when ready. */
static bool server_ready(Conn *c, enum MHD_Result *refusal) {
    int state = atomic_load(&c->server->state);
    if (state == SERVER_READY) return true;
    ApiError e;
    api_error(&e, 503, "unavailable",
              state == SERVER_LOADING ? "the model is still loading"
                                      : "the server is shutting down");
    *refusal = reply_error(c, &e);
    return false;
}

static enum MHD_Result refuse_too_big(Conn *c) {
    ApiError e;
    api_error(&e, 413, "invalid_request_error", "request body exceeds %d bytes",
              c->server->config->body_limit);
    return reply_error(c, &e);
}

static enum MHD_Result refuse_no_room(Conn *c) {
    ApiError e;
    api_error(&e, 503, "overloaded",
              "too many large requests are arriving at once (over %d MB of bodies); retry "
              "shortly",
              c->server->config->body_memory_mb);
    return reply_error(c, &e);
}

/* POST requests the headers alone can refuse: the server's state, a declared body over the limit.
 * Returns MHD_YES to go on reading the body, with c->status still 0. */
static enum MHD_Result screen_body(Conn *c) {
    enum MHD_Result refusal;
    if (!server_ready(c, &refusal)) return refusal;
    const char *length =
        MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > (unsigned long long)c->server->config->body_limit)
        return refuse_too_big(c);
    return MHD_YES;
}

/* Generation requests the headers alone can refuse: those of screen_body, and a full queue. */
static enum MHD_Result screen_generation(Conn *c) {
    enum MHD_Result rc = screen_body(c);
    if (rc != MHD_YES || c->status) return rc;
    ApiError e;
    if (!scheduler_has_room(c->server->scheduler, &e)) return reply_error(c, &e);
    return MHD_YES;
}

/* CORS preflight: answered before the key check. */
static enum MHD_Result answer_preflight(Conn *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    if (origin_allowed(c->server, c->conn)) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Content-Type, Authorization, Accept");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    return queue_response(c, 204, r);
}

/* ---- the plain endpoints ------------------------------------------------------------------- */

/* The server's state as the API names it. */
static ApiServerState api_state(const HttpServer *s) {
    int state = atomic_load(&s->state);
    return state == SERVER_READY ? API_READY : state == SERVER_LOADING ? API_LOADING : API_DRAINING;
}

static enum MHD_Result handle_health(Conn *c) {
    ApiServerState state = api_state(c->server);
    return reply(c, state == API_READY ? 200 : 503, "application/json", api_health_json(state),
                 NULL, NULL);
}

static enum MHD_Result handle_metrics(Conn *c) {
    return reply(c, 200, "text/plain; version=0.0.4", metrics_render(c->server->metrics), NULL,
                 NULL);
}

static enum MHD_Result handle_models(Conn *c) {
    return reply(c, 200, "application/json", api_models_json(c->server->config->model_name), NULL,
                 NULL);
}

static enum MHD_Result handle_info(Conn *c) {
    const HttpServer *s = c->server;
    const ServerConfig *cfg = s->config;
    ApiInfo info = {.model_name = cfg->model_name,
                    .state = api_state(s),
                    .max_batch = api_state(s) != API_LOADING ? s->max_batch : cfg->max_batch,
                    .max_queue = cfg->max_queue,
                    .max_tokens = cfg->max_tokens,
                    .body_limit = cfg->body_limit,
                    .body_memory_bytes = (double)cfg->body_memory_mb * (1 << 20),
                    .timeout_s = cfg->timeout_s,
                    .prefill_budget = cfg->prefill_budget,
                    .threads = cfg->threads,
                    .threads_source = cfg->threads_source,
                    .version = GPTD_VERSION,
                    .compiled = __DATE__ " " __TIME__};
    if (info.state != API_LOADING && s->model) {
        info.config = &s->model->config;
        info.n_params = s->model->n_params;
        info.tokenizer = tokenizer_kind_name(s->tok);
        info.tokenizer_size = s->tok->vocab_size;
        info.context_shift = context_shift_name(s->context.shift);
        info.context_keep = context_policy_kept(&s->context);
        info.kernels = s->kernels;
        info.system_fingerprint = s->fingerprint;
        info.vocabulary = s->tok;
    }
    return reply(c, 200, "application/json", api_info_json(&info), NULL, NULL);
}

/* ---- the endpoints answered from the body at once: /tokenize, /detokenize ----------------- */

static bool budget_take(atomic_size_t *used, size_t budget, size_t more);

/* The body is here whole: its refusals (too big, no room), then the route's handler. */
static enum MHD_Result answer_posted(Conn *c) {
    enum MHD_Result refusal;
    if (!server_ready(c, &refusal)) return refusal;
    if (c->body_too_big) return refuse_too_big(c);
    if (c->body_no_room) return refuse_no_room(c);
    return c->route->post(c);
}

/* Sends a handler's reply (json, or NULL with *e). A body's million characters make a reply of
 * many megabytes: while it is sent it counts against --reply-memory, as attention replies do. */
static enum MHD_Result reply_posted(Conn *c, char *json, const ApiError *e) {
    HttpServer *s = c->server;
    body_release(c);
    if (!json) return reply_error(c, e);
    size_t cost = strlen(json);
    if (!budget_take(&s->reply_bytes, (size_t)s->config->reply_memory_mb << 20, cost)) {
        free(json);
        ApiError busy;
        api_error(&busy, 503, "overloaded",
                  "too many large replies are being sent at once (over %d MB); retry shortly",
                  s->config->reply_memory_mb);
        return reply_error(c, &busy);
    }
    c->reply_charged = cost;
    return reply(c, 200, "application/json", json, NULL, NULL);
}

static enum MHD_Result handle_tokenize(Conn *c) {
    ApiError e;
    char *json =
        api_tokenize_reply(c->server->tok, c->body.data ? c->body.data : "", c->body.len, &e);
    return reply_posted(c, json, &e);
}

static enum MHD_Result handle_detokenize(Conn *c) {
    ApiError e;
    char *json =
        api_detokenize_reply(c->server->tok, c->body.data ? c->body.data : "", c->body.len, &e);
    return reply_posted(c, json, &e);
}

static enum MHD_Result handle_page(Conn *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        web_index_html_len, (void *)web_index_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return queue_response(c, 200, r);
}

/* ---- generation ---------------------------------------------------------------------------- */

static size_t reply_cost(const ApiRequest *api, bool stream);
static bool budget_take(atomic_size_t *used, size_t budget, size_t more);
static bool charge_body_memory(Conn *c, size_t more);
static enum MHD_Result start_stream(Conn *c);
static bool client_gone(Conn *c);
static void park(Conn *c, double keepalive_s);
static void unpark(Conn *c);
static ApiResult result_of(const Conn *c, int i, const RequestSnapshot *snap);
static void results_of(const Conn *c, ApiResult *res);
static enum MHD_Result reply_whole(Conn *c);

/* A request's id, and the seed it gets when it names none. */
static void new_identity(HttpServer *s, ApiKind kind, char id[40], uint64_t *random_seed) {
    unsigned long n = atomic_fetch_add(&s->next_id, 1);
    const char *prefix = kind == API_GENERATE ? "gen" : kind == API_CHAT ? "chatcmpl" : "cmpl";
    snprintf(id, 40, "%s-%08llx%06lx", prefix, s->id_base & 0xffffffffull, n & 0xffffff);
    *random_seed = (s->id_base * 6364136223846793005ull) ^ (n * 0x9E3779B97F4A7C15ull) ^
                   (uint64_t)(clock_seconds() * 1e9);
    *random_seed &= 0x1FFFFFFFFFFFFFull; /* exact in a JSON number */
}

/* Parses the body into *api and names the request (id); refuses (the reply queued, false returned)
 * a bad body, or an attention reply that would pass --reply-memory. */
static bool parse_generation(Conn *c, ApiRequest *api, char id[40], enum MHD_Result *refusal) {
    HttpServer *s = c->server;
    const GPTConfig *mc = &s->model->config;
    ApiLimits limits = {s->config->max_tokens, s->config->default_max_tokens,
                        mc->n_layer,           mc->n_head,
                        mc->block_size,        s->tok};
    uint64_t random_seed;
    new_identity(s, c->route->kind, id, &random_seed);
    ApiError e;
    int parsed = api_parse_request(c->route->kind, c->body.data ? c->body.data : "", c->body.len,
                                   &limits, random_seed, api, &e);
    buf_free(&c->body); /* the prompt was taken out of it */
    if (parsed) {
        *refusal = reply_error(c, &e);
        return false;
    }
    const char *accept = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Accept");
    c->stream = api->stream ||
                (c->route->kind == API_GENERATE && accept && strstr(accept, "text/event-stream"));
    /* Attention replies are many times their request's size: what all of them hold at once is
     * bounded (--reply-memory), and released when the reply ends, or at the latest when a client
     * that does not read is dropped by --connection-timeout. */
    size_t cost = reply_cost(api, c->stream);
    if (cost && !budget_take(&s->reply_bytes, (size_t)s->config->reply_memory_mb << 20, cost)) {
        api_request_free(api);
        api_error(&e, 503, "overloaded",
                  "too many large replies (attention weights, logprobs) are being sent at once "
                  "(attention replies and the rest over %d MB); retry shortly, or ask for fewer "
                  "tokens, weights or alternatives",
                  s->config->reply_memory_mb);
        *refusal = reply_error(c, &e);
        return false;
    }
    c->reply_charged = cost;
    return true;
}

static enum MHD_Result submit_counted(Conn *c);

/* The request is here whole: parse it, tokenize its prompt and queue it for the scheduler, then
 * wait for its answer. It is counted as submitting from before the server's state is read until
 * it is in flight or refused: a drain that sees nothing in flight may free the scheduler, so it
 * must not miss a request that already passed the state check and is still being parsed. */
static enum MHD_Result submit_generation(Conn *c) {
    atomic_fetch_add(&c->server->submitting, 1);
    enum MHD_Result rc = submit_counted(c);
    atomic_fetch_sub(&c->server->submitting, 1);
    return rc;
}

static enum MHD_Result submit_counted(Conn *c) {
    HttpServer *s = c->server;
    enum MHD_Result refusal;
    if (!server_ready(c, &refusal)) return refusal;
    if (c->body_too_big) return refuse_too_big(c);
    if (!c->body_no_room) charge_body_memory(c, c->body.len); /* the parsed prompt */
    if (c->body_no_room) return refuse_no_room(c);
    ApiError e;
    ApiRequest api;
    char id[40];
    if (!parse_generation(c, &api, id, &refusal)) return refusal;
    if (api.n > s->max_batch) { /* its choices decode side by side, a slot each */
        api_error(&e, 400, "invalid_request_error",
                  "\"n\" must be at most %d here (the server's slots, --max-batch), got %d",
                  s->max_batch, api.n);
        api_request_free(&api);
        return reply_error(c, &e);
    }
    Request *r = request_create(id, &api, s->tok, s->context, s->config->timeout_s, &e);
    if (r && api.echo) { /* the reply starts with the prompt */
        c->echo = api.prompt;
        c->echo_len = api.prompt_len;
        api.prompt = NULL;
    }
    api_request_free(&api);
    body_release(c); /* the prompt is tokens now, at most a window of them */
    if (!r) return reply_error(c, &e);
    r->wake_each_event = c->stream;
    c->n_choices = r->n_choices;
    c->next_event = calloc((size_t)r->n_choices, sizeof *c->next_event);
    if (!c->next_event) api_error(&e, 500, "server_error", "out of memory");
    if (!c->next_event || scheduler_submit(s->scheduler, r, &e)) {
        request_release(r);
        return reply_error(c, &e);
    }
    c->req = r;
    atomic_fetch_add(&s->in_flight, 1);
    c->kind = c->route->kind;
    c->include_usage = r->api.include_usage;
    c->created = (long long)time(NULL);
    return answer_generation(c);
}

/* The answer, once there is one: the whole reply, or for a stream the first token (until then
 * nothing is sent, so an error there is a plain HTTP error). Until then the connection is
 * parked; it comes back here each time it is resumed. */
static enum MHD_Result answer_generation(Conn *c) {
    unpark(c);
    Request *r = c->req;
    RequestSnapshot snap;
    for (;;) {
        request_snapshot(r, &snap);
        if (snap.group_done || (c->stream && (snap.group_events > 0 || snap.completion_tokens > 0)))
            break;
        if (c->resumed && client_gone(c)) {
            atomic_store(&r->cancelled, true);
            c->status = 499; /* client closed request */
            return MHD_NO;
        }
        /* libmicrohttpd 0.9.75 keeps a connection's read/write interest as it was when it was
         * suspended, and the final call comes while it still reads: resumed, it would read
         * first, and a client that half-closed after sending would be closed on that read's
         * FIN before this handler could answer. Returning once without a reply and without
         * suspending lets it settle on "blocked" and call again at once; parked from that
         * second call, it resumes straight into this handler. */
        if (!c->settled) {
            c->settled = true;
            return MHD_YES;
        }
        if (!request_wait(r, c->stream ? 0 : INT_MAX, c->stream ? 0 : INT_MAX, &c->waiter)) {
            park(c, 0);
            return MHD_YES;
        }
    }
    ApiError e;
    if (snap.failed && snap.n_events == 0) return reply_error(c, &snap.error);
    if (snap.done && snap.finish == API_FINISH_SHUTDOWN && snap.n_events == 0) {
        api_error(&e, 503, "unavailable", "the server shut down before this request ran");
        return reply_error(c, &e);
    }
    if (snap.done && snap.finish == API_FINISH_TIMEOUT && snap.n_events == 0) {
        api_error(&e, 503, "timeout", "the request timed out after %.0f s before generating",
                  c->server->config->timeout_s);
        return reply_error(c, &e);
    }
    if (c->stream) return start_stream(c);
    return reply_whole(c);
}

/* The JSON reply: every choice, each as its channel holds it now (all have ended). */
static enum MHD_Result reply_whole(Conn *c) {
    ApiResult res[API_MAX_CHOICES];
    results_of(c, res);
    char *body = c->kind == API_GENERATE      ? api_generate_reply(&res[0])
                 : c->kind == API_COMPLETIONS ? api_completion_reply(res, c->n_choices)
                                              : api_chat_reply(res, c->n_choices);
    return reply(c, 200, "application/json", body, "X-Request-Id", c->req->id);
}

/* Every choice's reply as its channel holds it now (res: n_choices entries). */
static void results_of(const Conn *c, ApiResult *res) {
    for (int i = 0; i < c->n_choices; i++) {
        RequestSnapshot snap;
        request_snapshot(request_choice(c->req, i), &snap);
        res[i] = result_of(c, i, &snap);
    }
}

/* Choice i's reply from its channel's snapshot. */
static ApiResult result_of(const Conn *c, int i, const RequestSnapshot *snap) {
    const Request *r = request_choice(c->req, i);
    double decode_s = snap->t_done > snap->t_first_token && snap->t_first_token > 0
                          ? snap->t_done - snap->t_first_token
                          : 0;
    ApiFinish finish = snap->finish ? snap->finish : API_FINISH_LENGTH;
    bool attention = r->api.params.attention.form != ATTENTION_NONE;
    return (ApiResult){
        .index = i,
        .id = r->id,
        .model = c->server->config->model_name,
        .created = c->created,
        .text = r->text,
        .text_len = (size_t)snap->text_len,
        .echo = c->echo,
        .echo_len = c->echo_len,
        .finish_reason =
            c->kind == API_GENERATE ? api_finish_name(finish) : api_finish_name_openai(finish),
        .system_fingerprint = c->server->fingerprint,
        .seed = r->api.params.seed,
        .prompt_tokens = snap->prompt_tokens,
        .completion_tokens = snap->completion_tokens,
        .prompt_dropped = snap->prompt_dropped,
        .queue_ms = snap->t_admit > 0 ? (snap->t_admit - snap->t_arrival) * 1e3 : 0,
        .prefill_ms = snap->t_first_token > 0 ? (snap->t_first_token - snap->t_admit) * 1e3 : 0,
        .decode_ms = decode_s * 1e3,
        .tokens_per_second = decode_s > 0 ? (snap->completion_tokens - 1) / decode_s : 0,
        .tok = c->server->tok,
        .view = attention ? &r->api.params.attention : NULL,
        .logprobs = r->api.params.logprobs,
        .chat = c->kind == API_CHAT,
        .tokens = r->tokens,
        .n_prompt_scored = r->n_scored,
        .n_tokens = r->n_scored + snap->event_tokens,
    };
}

/* ---- streaming ---------------------------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max);

static enum MHD_Result start_stream(Conn *c) {
    sse_init(&c->sse);
    c->last_write = clock_seconds();
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, c, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");  /* nginx: do not buffer */
    MHD_add_response_header(resp, "X-Request-Id", c->req->id); /* from the first byte on */
    return queue_response(c, 200, resp);
}

/* Appends to c->sse what the snapshot holds beyond what was sent, a chunk at a time: a slow reader
 * leaves the rest in the channel (bounded by max_tokens), so the SSE buffer never fills. Events
 * below the snapshot's counts are final, so they are read without the lock. */
/* One event of choice i as its SSE payload. */
static char *event_json(Conn *c, const ApiResult *res, const Request *r, const TokenEvent *ev,
                        bool first) {
    const char *text = r->text + ev->offset;
    const ApiToken *tok = r->tokens ? &r->tokens[r->n_scored + ev->index] : NULL;
    switch (c->kind) {
        case API_GENERATE:
            return api_generate_token_event(res, ev->index, text, (size_t)ev->len, ev->logprob,
                                            tok);
        case API_COMPLETIONS:
            return api_completion_chunk(res, text, (size_t)ev->len, tok, NULL);
        default:
            return api_chat_chunk(res, first, text, (size_t)ev->len, tok, NULL);
    }
}

/* Appends choice i's events past what was sent, up to the chunk's room. Returns whether all of
 * them are out. */
static bool collect_choice(Conn *c, int i) {
    Request *r = request_choice(c->req, i);
    RequestSnapshot snap;
    request_snapshot(r, &snap);
    ApiResult res = result_of(c, i, &snap);
    for (; c->next_event[i] < snap.n_events && sse_pending(&c->sse) < SSE_COLLECT_CHUNK;
         c->next_event[i]++) {
        bool first = c->next_event[i] == 0; /* chat: the role goes in each choice's first */
        char *json = event_json(c, &res, r, &r->events[c->next_event[i]], first);
        sse_write_data(&c->sse, json);
        free(json);
    }
    return c->next_event[i] == snap.n_events;
}

/* Each choice's end: /generate's final event, or an OpenAI chunk with its finish_reason. */
static void write_endings(Conn *c) {
    for (int i = 0; i < c->n_choices; i++) {
        RequestSnapshot snap;
        request_snapshot(request_choice(c->req, i), &snap);
        ApiResult res = result_of(c, i, &snap);
        char *json = c->kind == API_GENERATE ? api_generate_final_event(&res)
                     : c->kind == API_COMPLETIONS
                         ? api_completion_chunk(&res, "", 0, NULL, res.finish_reason)
                         : api_chat_chunk(&res, snap.n_events == 0, "", 0, NULL, res.finish_reason);
        sse_write_data(&c->sse, json);
        free(json);
    }
}

/* Appends to c->sse what the choices hold beyond what was sent, a chunk at a time: a slow reader
 * leaves the rest in the channels (bounded by max_tokens), so the SSE buffer never fills. Events
 * below a snapshot's counts are final, so they are read without the lock. */
static void stream_collect(Conn *c, const RequestSnapshot *snap) {
    bool all_out = true;
    for (int i = 0; i < c->n_choices; i++) all_out &= collect_choice(c, i);
    if (!snap->group_done || !all_out) return;
    if (snap->failed) {
        char *json = api_error_json(&snap->error);
        sse_write_data(&c->sse, json);
        free(json);
    } else {
        write_endings(c);
    }
    if (!snap->failed && c->kind != API_GENERATE && c->include_usage) {
        ApiResult res[API_MAX_CHOICES];
        results_of(c, res);
        char *json = api_openai_usage_chunk(res, c->n_choices);
        sse_write_data(&c->sse, json);
        free(json);
    }
    sse_write_data(&c->sse, "[DONE]");
    c->finished = true;
}

/* Events sent so far, over all choices. */
static int events_sent(const Conn *c) {
    int n = 0;
    for (int i = 0; i < c->n_choices; i++) n += c->next_event[i];
    return n;
}

/* libmicrohttpd asks for the next bytes of a stream. With nothing to send, the connection is
 * parked and 0 returned; it is asked again once resumed. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Conn *c = cls;
    Request *r = c->req;
    unpark(c);
    for (;;) {
        if (sse_pending(&c->sse) > 0) {
            c->last_write = clock_seconds();
            return (ssize_t)sse_take(&c->sse, buf, max);
        }
        if (c->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (sse_failed(&c->sse)) return MHD_CONTENT_READER_END_WITH_ERROR;
        RequestSnapshot snap;
        request_snapshot(r, &snap);
        if (snap.group_done || snap.group_events > events_sent(c)) {
            stream_collect(c, &snap);
            continue;
        }
        if (c->resumed && client_gone(c)) {
            atomic_store(&r->cancelled, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        double keepalive_s = c->server->config->keepalive_s;
        double silent_s = clock_seconds() - c->last_write;
        if (silent_s >= keepalive_s) {
            sse_write_comment(&c->sse, "keep-alive"); /* proxies close silent streams */
            continue;
        }
        if (!request_wait(r, events_sent(c), INT_MAX, &c->waiter)) {
            park(c, keepalive_s - silent_s);
            return 0;
        }
    }
}

/* ---- parking: a suspended connection, and who resumes it ---------------------------------- */

static void suspend_connection(void *ctx) { MHD_suspend_connection(((Conn *)ctx)->conn); }
static void resume_connection(void *ctx) { MHD_resume_connection(((Conn *)ctx)->conn); }
static void wake_request(void *ctx) { request_wake(((Conn *)ctx)->req); }

/* The connection was just suspended by request_wait: the idle watch resumes it if its client
 * leaves first, or (keepalive_s > 0) when a keep-alive comment falls due. Not under the request's
 * lock (the watch takes it to wake). */
static void park(Conn *c, double keepalive_s) {
    c->parked = true;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    idle_watch_add(c->server->idle, &c->watch, info ? info->connect_fd : -1, keepalive_s,
                   wake_request, c);
}

/* Resumed (or never parked): out of the idle watch, and ready to park again. */
static void unpark(Conn *c) {
    c->resumed = c->parked;
    c->parked = false;
    idle_watch_remove(c->server->idle, &c->watch);
    c->waiter = (RequestWaiter){suspend_connection, resume_connection, c};
}

/* True when the client has gone. On the wire, a client that closed and one that only
 * half-closed its sending side look the same (a FIN) until something is written back. By
 * default a FIN counts as leaving, as nginx takes it: abandoned requests free their places at
 * once. With --serve-half-closed only a reset or a failed socket counts (a write to a closed
 * client draws a reset), so clients that half-close after sending get their answer. */
static bool client_gone(Conn *c) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return false;
    struct pollfd p = {.fd = info->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
    if (c->server->config->serve_half_closed) return false;
    if (p.revents & POLLRDHUP) return true;
    char byte;
    return recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* ---- replies ------------------------------------------------------------------------------ */

/* The one place a response is queued: CORS headers for an allowed origin, the status kept for
 * the log and the metrics. Takes r. */
static enum MHD_Result queue_response(Conn *c, int status, struct MHD_Response *r) {
    add_cors(c->server, c->conn, r);
    enum MHD_Result ok = MHD_queue_response(c->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    c->status = status;
    return ok;
}

/* Queues a body we own (malloc'd; freed by libmicrohttpd); NULL means out of memory. */
static enum MHD_Result reply(Conn *c, int status, const char *content_type, char *body,
                             const char *extra_header, const char *extra_value) {
    if (!body) {
        status = 500;
        body = strdup("{\"error\":{\"type\":\"server_error\",\"message\":\"out of memory\"}}");
        content_type = "application/json";
        extra_header = NULL;
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type);
    if (extra_header) MHD_add_response_header(r, extra_header, extra_value);
    return queue_response(c, status, r);
}

static enum MHD_Result reply_error(Conn *c, const ApiError *e) {
    const char *retry = e->status == 503 || e->status == 429 ? "Retry-After" : NULL;
    return reply(c, e->status, "application/json", api_error_json(e), retry, "1");
}

static enum MHD_Result refuse(Conn *c, int status, const char *type, const char *fmt,
                              const char *arg) {
    ApiError e;
    api_error(&e, status, type, fmt, arg);
    return reply_error(c, &e);
}

/* ---- memory budgets ----------------------------------------------------------------------- */

/* Takes `more` bytes from a budget shared by all connections; false (and nothing taken) when
 * that would pass it. */
static bool budget_take(atomic_size_t *used, size_t budget, size_t more) {
    if (atomic_fetch_add(used, more) + more > budget) {
        atomic_fetch_sub(used, more);
        return false;
    }
    return true;
}

/* Bodies are buffered until parsed, and a parsed prompt lives until it is tokenized. What all
 * connections hold so is bounded (--body-memory): many large requests at once get 503s rather
 * than the daemon's memory. Counts `more` bytes; false (and nothing counted) when over. */
static bool charge_body_memory(Conn *c, size_t more) {
    HttpServer *s = c->server;
    if (!budget_take(&s->body_bytes, (size_t)s->config->body_memory_mb << 20, more)) {
        c->body_no_room = true;
        return false;
    }
    c->charged += more;
    return true;
}

/* What an attention reply holds at its peak: the weights as floats, and unless streamed (each
 * event is written and freed on its own) the JSON reply, built as strings in a cJSON tree and
 * printed from it, so held twice. A weight is printed as "%.6g," (at most 13 bytes). */
static size_t reply_cost(const ApiRequest *api, bool stream) {
    const GenerationParams *p = &api->params;
    const AttentionView *v = &p->attention;
    size_t cost = 0;
    if (v->form != ATTENTION_NONE) {
        size_t values = (size_t)p->max_tokens * (size_t)attention_view_max_values(v);
        cost += values * (sizeof(float) + (stream ? 0 : 2 * 13));
    }
    if (p->logprobs) { /* a record a token (the prompt's too with echo); a whole reply's JSON:
                        * ~60 bytes a token and ~40 an alternative */
        size_t tokens = (size_t)p->max_tokens + (p->score_prompt ? api->prompt_len : 0);
        size_t top = (size_t)p->top_logprobs;
        size_t per_token = sizeof(ApiToken) + top * (sizeof(int) + sizeof(float));
        cost += tokens * (per_token + (stream ? 0 : 60 + top * 40));
    }
    if (api->echo) cost += api->prompt_len;
    return cost;
}

static void take_body_piece(Conn *c, const char *data, size_t size) {
    if (c->body_too_big || c->body_no_room) return;
    if (size > c->body.max - c->body.len) {
        c->body_too_big = true;
        return;
    }
    size_t cap = buf_cap_for(&c->body, size);
    if (cap > c->body.cap && !charge_body_memory(c, cap - c->body.cap)) return;
    if (buf_append(&c->body, data, size)) c->body_no_room = true; /* out of memory */
}

/* The body and everything counted for it are gone. */
static void body_release(Conn *c) {
    buf_free(&c->body);
    atomic_fetch_sub(&c->server->body_bytes, c->charged);
    c->charged = 0;
}

/* ---- who may ask: Host, Origin, the API key ------------------------------------------------ */

static const char *origin_allowed(const HttpServer *s, struct MHD_Connection *conn) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin) return NULL;
    for (int i = 0; i < s->config->n_cors_origins; i++)
        if (strcmp(s->config->cors_origins[i], origin) == 0 ||
            strcmp(s->config->cors_origins[i], "*") == 0)
            return origin;
    return NULL;
}

static void add_cors(const HttpServer *s, struct MHD_Connection *conn, struct MHD_Response *r) {
    const char *origin = origin_allowed(s, conn);
    if (!origin) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Vary", "Origin");
}

/* The daemon's own origin: an Origin whose host[:port] is the request's Host (same-origin
 * requests from the web page it serves). */
static bool origin_is_own(struct MHD_Connection *conn, const char *origin) {
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    const char *authority = strstr(origin, "://");
    return host && authority && strcasecmp(authority + 3, host) == 0 &&
           (strncmp(origin, "http://", 7) == 0 || strncmp(origin, "https://", 8) == 0);
}

/* A browser names the page that sent a request in Origin; curl and other clients send none.
 * A cross-site page may send "simple" POSTs without a preflight, so an Origin that is neither
 * ours nor allowed by --cors-origin is refused before any work. */
static bool origin_ok(const HttpServer *s, struct MHD_Connection *conn) {
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    return !origin || origin_is_own(conn, origin) || origin_allowed(s, conn);
}

/* On a loopback listener only loopback names may be in Host: a page on a public name that
 * rebinds to 127.0.0.1 (DNS rebinding) is refused, as development servers do. */
static bool host_is_loopback(const char *host) {
    char name[256];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof name) return false;
    memcpy(name, host, n + 1);
    char *end = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
    if (name[0] == '[') { /* [v6]:port */
        if (!end || (end[1] && end[1] != ':')) return false;
        end[1] = '\0';
    } else if (end) {
        *end = '\0';
    }
    if (strcasecmp(name, "localhost") == 0 || strcasecmp(name, "[::1]") == 0) return true;
    size_t len = strlen(name);
    if (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0) return true;
    struct in_addr a4;
    return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static bool host_ok(const HttpServer *s, struct MHD_Connection *conn) {
    if (!s->loopback) return true;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    return !host || host_is_loopback(host); /* HTTP/1.0 may send none; browsers always do */
}

static bool key_ok(const HttpServer *s, struct MHD_Connection *conn) {
    if (!s->config->api_key || !*s->config->api_key) return true;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) return false;
    /* compare without an early exit, so timing does not reveal the key */
    const char *given = auth + 7, *key = s->config->api_key;
    size_t n = strlen(key), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned)(key[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

/* ---- framing ------------------------------------------------------------------------------ */

typedef struct {
    int content_length, transfer_encoding, host;
} HeaderCounts;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    (void)value;
    HeaderCounts *n = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) n->content_length++;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) n->transfer_encoding++;
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) n->host++;
    return MHD_YES;
}

/* Where a request's body ends must be beyond doubt, or what follows it on the connection could
 * run as a second, smuggled request (RFC 9112, 6.3). A proxy in front would refuse these; gptd is
 * often reached without one, so it refuses them itself. libmicrohttpd 0.9.75 takes the first of
 * two Content-Lengths and waits for the close on an unknown transfer coding. Returns false with
 * *e filled (the reply must close the connection). */
static bool framing_ok(struct MHD_Connection *conn, const char *version, ApiError *e) {
    HeaderCounts n = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &n);
    if (n.content_length > 1) {
        api_error(e, 400, "invalid_request_error", "more than one Content-Length header");
        return false;
    }
    if (n.transfer_encoding > 0) {
        const char *te =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (n.content_length > 0) {
            api_error(e, 400, "invalid_request_error",
                      "both Content-Length and Transfer-Encoding headers");
            return false;
        }
        if (n.transfer_encoding > 1 || !te || strcasecmp(te, "chunked") != 0) {
            api_error(e, 501, "not_implemented",
                      "Transfer-Encoding \"%s\": only \"chunked\" is supported", te ? te : "");
            return false;
        }
    }
    if (n.host > 1 || (n.host == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
        api_error(e, 400, "invalid_request_error",
                  n.host ? "more than one Host header" : "an HTTP/1.1 request needs a Host header");
        return false;
    }
    return true;
}

/* ---- the listening socket ----------------------------------------------------------------- */

/* Our own listening socket: a port in use or a bad address gets a clear message. */
static int open_listener(const char *host, int port, Error *err) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) return error_set(err, "cannot resolve host '%s': %s", host, gai_strerror(rc));
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        /* A deep accept queue: a burst beyond it makes the kernel drop SYNs, and each dropped
         * client (a health probe among them) waits a full 1 s retransmission. */
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return error_set(err, "cannot listen on %s:%d: %s%s", host, port, strerror(saved),
                         saved == EADDRINUSE ? " (is another server running on this port?)" : "");
    return fd;
}

static bool address_is_loopback(const struct sockaddr *a) {
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}
