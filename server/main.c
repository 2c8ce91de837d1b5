/* bin/gptd: the daemon. Start-up order: parse the configuration table (flags and environment
 * variables), bind the port and answer /health with "loading", load the checkpoint and build
 * the engine, open the generation endpoints, then wait for SIGTERM/SIGINT and drain.
 * Start-up errors (bad flag, port in use, unreadable model) exit with code 2. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/clock.h"
#include "../common/cpu_budget.h"
#include "../common/memory_budget.h"
#include "../model/engine.h"
#include "../model/fingerprint.h"
#include "../model/kernels.h"
#include "../model/load.h"
#include "healthcheck.h"
#include "http.h"
#include "log.h"

/* A Hugging Face directory is named as its folder ("gpt2"); a checkpoint file as the shipped
 * model, whose name clients already use. */
static void default_model_name(ServerConfig *cfg) {
    struct stat st;
    cfg->model_name = "gptd-shakespeare-char";
    if (stat(cfg->model_path, &st) != 0 || !S_ISDIR(st.st_mode)) return;
    size_t n = strlen(cfg->model_path);
    while (n > 1 && cfg->model_path[n - 1] == '/') n--; /* "gpt2/" is "gpt2" */
    size_t start = n;
    while (start > 0 && cfg->model_path[start - 1] != '/') start--;
    if (n > start && n - start < sizeof cfg->model_name_buf) {
        memcpy(cfg->model_name_buf, cfg->model_path + start, n - start);
        cfg->model_name_buf[n - start] = '\0';
        cfg->model_name = cfg->model_name_buf;
    }
}

static int parse_config(ServerConfig *cfg, int argc, char **argv, const char **log_level,
                        bool *healthcheck) {
    *cfg = (ServerConfig){
        .model_path = "weights/shakespeare-char.safetensors",
        .host = "127.0.0.1",
        .api_key = NULL,
        .model_name = NULL, /* the shipped model's name, or a model directory's */
        .port = 8080,
        .threads = 0,
        .max_batch = 0,
        .max_queue = 256,
        .max_tokens = 1024,
        .default_max_tokens = 256,
        .prefill_budget = 256,
        .context_shift = "keep",
        .context_keep = 0,
        .max_connections = 4096,
        .per_ip_connections = 0,
        .connection_timeout = 60,
        .body_limit = 1 << 20,
        .body_memory_mb = 64,
        .reply_memory_mb = 128,
        .keepalive_s = 15,
        .stream_interval_ms = 3,
        .timeout_s = 300,
        .drain_timeout_s = 30,
        .receive_timeout_s = 30,
        .receive_min_rate = 500,
    };
    CliList cors = {{0}, 0};
    float timeout = (float)cfg->timeout_s, drain = (float)cfg->drain_timeout_s,
          receive = (float)cfg->receive_timeout_s, min_rate = (float)cfg->receive_min_rate;
    CliFlag flags[] = {
        {"model", CLI_STRING, &cfg->model_path, 0, 0,
         "checkpoint file, or a Hugging Face GPT-2 directory", false, "GPTD_MODEL"},
        {"host", CLI_STRING, &cfg->host, 0, 0, "address to listen on", false, "GPTD_HOST"},
        {"port", CLI_INT, &cfg->port, 1, 65535, "TCP port", false, "GPTD_PORT"},
        {"threads", CLI_INT, &cfg->threads, 0, 256,
         "engine threads (0 = the CPUs this process may use: its affinity mask, lowered to its "
         "cgroup's CPU quota)",
         false, "GPTD_THREADS"},
        {"max-batch", CLI_INT, &cfg->max_batch, 0, 1024,
         "sequences decoded together, each with a KV slot (0 = as many as half the memory the "
         "weights leave holds, at most 64)",
         false, "GPTD_MAX_BATCH"},
        {"max-queue", CLI_INT, &cfg->max_queue, 1, 1 << 20, "waiting requests before 503", false,
         "GPTD_MAX_QUEUE"},
        {"max-tokens", CLI_INT, &cfg->max_tokens, 1, 1 << 20, "cap on a request's max_tokens",
         false, "GPTD_MAX_TOKENS"},
        {"default-max-tokens", CLI_INT, &cfg->default_max_tokens, 0, 1 << 20,
         "max_tokens when a request gives none", false, "GPTD_DEFAULT_MAX_TOKENS"},
        {"prefill-budget", CLI_INT, &cfg->prefill_budget, 1, 1 << 20,
         "prompt tokens per engine step", false, "GPTD_PREFILL_BUDGET"},
        {"context-shift", CLI_STRING, &cfg->context_shift, 0, 0,
         "past the context: keep (the last --context-keep tokens) or exact (re-run the window "
         "for every token)",
         false, "GPTD_CONTEXT_SHIFT"},
        {"context-keep", CLI_INT, &cfg->context_keep, 0, 1 << 20,
         "tokens a full window keeps (0 = a quarter of the model's context)", false,
         "GPTD_CONTEXT_KEEP"},
        {"kernels", CLI_STRING, &cfg->kernels, 0, 0,
         "engine kernels: avx512, avx2, neon or portable (default: the best this CPU has)", false,
         "GPTD_KERNELS"},
        {"timeout", CLI_FLOAT, &timeout, 0, 86400, "seconds a request may take (0 = none)", false,
         "GPTD_TIMEOUT"},
        {"api-key", CLI_STRING, &cfg->api_key, 0, 0, "require Authorization: Bearer KEY", false,
         "GPTD_API_KEY"},
        {"cors-origin", CLI_LIST, &cors, 0, 0, "allowed browser origin (repeatable)", false,
         "GPTD_CORS_ORIGIN"},
        {"drain-timeout", CLI_FLOAT, &drain, 0, 86400, "seconds to finish requests on SIGTERM",
         false, "GPTD_DRAIN_TIMEOUT"},
        {"max-connections", CLI_INT, &cfg->max_connections, 1, 65536, "open connections", false,
         "GPTD_MAX_CONNECTIONS"},
        {"per-ip-connections", CLI_INT, &cfg->per_ip_connections, 0, 65536,
         "per client address (0 = no limit)", false, "GPTD_PER_IP_CONNECTIONS"},
        {"connection-timeout", CLI_INT, &cfg->connection_timeout, 1, 86400,
         "seconds an idle connection lives", false, "GPTD_CONNECTION_TIMEOUT"},
        {"receive-timeout", CLI_FLOAT, &receive, 0, 86400,
         "seconds each request has to arrive whole, from a new connection's accept or a later "
         "request's first byte (0 = no limit)",
         false, "GPTD_RECEIVE_TIMEOUT"},
        {"receive-min-rate", CLI_FLOAT, &min_rate, 0, 1e9,
         "bytes/s a request must keep up while it arrives, over 2 s windows (0 = none)", false,
         "GPTD_RECEIVE_MIN_RATE"},
        {"body-limit", CLI_INT, &cfg->body_limit, 1024, 1 << 30, "largest request body in bytes",
         false, "GPTD_BODY_LIMIT"},
        {"body-memory", CLI_INT, &cfg->body_memory_mb, 1, 1 << 20,
         "MB of request bodies being received at once, all connections together", false,
         "GPTD_BODY_MEMORY"},
        {"reply-memory", CLI_INT, &cfg->reply_memory_mb, 1, 1 << 20,
         "MB of attention replies being built or sent at once, all connections together", false,
         "GPTD_REPLY_MEMORY"},
        {"stream-interval", CLI_INT, &cfg->stream_interval_ms, 0, 20,
         "shortest milliseconds between two writes of a stream; tokens in between go out "
         "together (0 = each token at once)",
         false, "GPTD_STREAM_INTERVAL"},
        {"keepalive", CLI_INT, &cfg->keepalive_s, 1, 3600,
         "seconds of stream silence before a comment", false, "GPTD_KEEPALIVE"},
        {"model-name", CLI_STRING, &cfg->model_name, 0, 0, "name reported by /v1/models", false,
         "GPTD_MODEL_NAME"},
        {"log-level", CLI_STRING, log_level, 0, 0, "debug, info, warn or error", false,
         "GPTD_LOG_LEVEL"},
        {"serve-half-closed", CLI_BOOL, &cfg->serve_half_closed, 0, 0,
         "answer clients that half-close (shutdown(SHUT_WR)) after sending; a client that left "
         "is then noticed only when a write fails",
         false, "GPTD_SERVE_HALF_CLOSED"},
        {"healthcheck", CLI_BOOL, healthcheck, 0, 0,
         "ask the gptd at --host/--port for /health; exit 0 if ready", false, NULL},
    };
    int rc = cli_parse(flags, sizeof flags / sizeof flags[0], argc, argv,
                       "usage: gptd [--model FILE|DIR] [--host ADDR] [--port N] ...\n"
                       "Every option can also be set by the environment variable shown.");
    if (rc) return rc;
    if (cors.n > MAX_CORS_ORIGINS) { /* the flag list may hold more than the server takes */
        fprintf(stderr, "error: --cors-origin given more than %d times\n", MAX_CORS_ORIGINS);
        return 2;
    }
    for (int i = 0; i < cors.n; i++) cfg->cors_origins[i] = cors.items[i];
    cfg->n_cors_origins = cors.n;
    cfg->timeout_s = timeout;
    cfg->drain_timeout_s = drain;
    cfg->receive_timeout_s = receive;
    cfg->receive_min_rate = min_rate;
    if (cfg->default_max_tokens > cfg->max_tokens) cfg->default_max_tokens = cfg->max_tokens;
    if (!cfg->model_name) default_model_name(cfg);
    /* An empty key would turn authentication off (the table takes an empty variable for unset). */
    const char *env_key = getenv("GPTD_API_KEY");
    if ((cfg->api_key && cfg->api_key[0] == '\0') || (!cfg->api_key && env_key && !*env_key)) {
        fprintf(stderr, "error: --api-key (GPTD_API_KEY) is empty; give a key, or leave it unset "
                        "to serve without one\n");
        return 2;
    }
    if (cfg->threads == 0) {
        CpuBudget budget;
        cpu_budget_read(&budget);
        cfg->threads = budget.threads;
        snprintf(cfg->threads_source, sizeof cfg->threads_source, "%s", budget.reason);
    } else {
        snprintf(cfg->threads_source, sizeof cfg->threads_source, "--threads or GPTD_THREADS");
    }
    return 0;
}

/* Each connection holds two descriptors (its socket, and the receive watchdog's duplicate):
 * the soft limit is raised as far as the hard one allows, and --max-connections lowered to
 * what fits, with a warning, rather than failing accept() under load. */
static void fit_file_limit(ServerConfig *cfg) {
    const rlim_t spare = 256; /* listener, epoll, eventfds, the model file, logs */
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    rlim_t need = 2 * ((rlim_t)cfg->max_connections + 64) + spare;
    if (lim.rlim_cur < need) {
        lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || lim.rlim_max > need ? need : lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    if (lim.rlim_cur >= need) return;
    int fits = lim.rlim_cur > 2 * 64 + spare ? (int)((lim.rlim_cur - spare) / 2) - 64 : 1;
    log_warn("--max-connections %d needs %llu file descriptors and the limit is %llu (ulimit -n): "
             "serving at most %d connections",
             cfg->max_connections, (unsigned long long)need, (unsigned long long)lim.rlim_cur,
             fits);
    cfg->max_connections = fits;
}

static void on_stop_signal(int sig) { (void)sig; }

/* SIGINT and SIGTERM are taken by sigwait in main (every thread started after this inherits
 * the blocked mask); SIGPIPE is ignored, a write to a closed socket fails instead. */
static void setup_signals(sigset_t *stop_signals) {
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGINT);
    sigaddset(stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
    /* As PID 1 in a container, a signal whose disposition is the default is dropped: install
     * a handler (never run, the signals stay blocked) so SIGTERM reaches sigwait. */
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* What serving holds, from the checkpoint to the scheduler; main frees it. */
typedef struct {
    GPT model;
    Tokenizer tok;
    char fingerprint[FINGERPRINT_SIZE];
    ContextPolicy context;
    Engine *engine;
    Scheduler *sched;
} Serving;

/* Loads the checkpoint, builds the engine and the scheduler, and opens the generation
 * endpoints. Prints what failed and returns -1. */
static int start_serving(Serving *sv, const ServerConfig *cfg, HttpServer *http, Metrics *metrics) {
    Error err;
    const Kernels *kernels = NULL;
    if (cfg->kernels && kernels_find(&kernels, cfg->kernels, &err)) {
        fprintf(stderr, "gptd: --kernels: %s\n", err.message);
        return -1;
    }
    double t0 = clock_seconds();
    if (model_load(cfg->model_path, &sv->model, &sv->tok, &err)) {
        fprintf(stderr, "gptd: cannot load the model: %s\n", err.message);
        return -1;
    }
    sv->tok.vocab_hint = "see the vocabulary in GET /info or POST /tokenize";
    /* before the engine is built: it frees the unpacked matrices the hash reads */
    double t_hash = clock_seconds();
    fingerprint_model(&sv->model, &sv->tok, sv->fingerprint);
    log_info("system_fingerprint %s (hashed in %.0f ms)", sv->fingerprint,
             (clock_seconds() - t_hash) * 1e3);
    const GPTConfig *mc = &sv->model.config;
    if (context_policy_init(&sv->context, mc->block_size, cfg->context_shift, cfg->context_keep,
                            &err)) {
        fprintf(stderr, "gptd: --context-shift %s --context-keep %d: %s\n", cfg->context_shift,
                cfg->context_keep, err.message);
        return -1;
    }
    int max_batch = 1;
    MemoryBudget memory;
    memory_budget_read(&memory);
    if (engine_slots_for_memory(mc, sv->model.n_params, memory.bytes, cfg->max_batch, &max_batch,
                                &err)) {
        fprintf(stderr, "gptd: --max-batch: %s (the budget: %s)\n", err.message, memory.reason);
        return -1;
    }
    EngineConfig ec = {.max_slots = max_batch,
                       .max_rows = max_batch + cfg->prefill_budget,
                       .threads = cfg->threads,
                       .kernels = kernels};
    SchedulerConfig sc = {.max_batch = max_batch,
                          .max_queue = cfg->max_queue,
                          .prefill_budget = cfg->prefill_budget,
                          .vocab_size = mc->vocab_size,
                          .stream_interval_s = cfg->stream_interval_ms * 1e-3};
    /* Test hooks, not settings: one engine step fails, to test how failures reach clients;
     * every step waits, to test what a silent stream sends. */
    const char *fail_step = getenv("GPTD_TEST_FAIL_STEP");
    if (fail_step) sc.fail_step = atol(fail_step);
    const char *step_delay = getenv("GPTD_TEST_STEP_DELAY_MS");
    if (step_delay) sc.step_delay_ms = atoi(step_delay);
    /* Once packed, the matrices live in the engine: the model keeps only what it reads. */
    if (engine_create(&sv->engine, &sv->model, &ec, &err) || gpt_keep_unpacked(&sv->model, &err) ||
        scheduler_create(&sv->sched, sv->engine, &sc, metrics, &err)) {
        fprintf(stderr, "gptd: %s\n", err.message);
        return -1;
    }
    const char *kernels_name = engine_kernels_name(sv->engine);
    http_server_ready(http, &sv->model, &sv->tok, sv->sched, &sv->context, kernels_name, max_batch,
                      sv->fingerprint);
    bool half;
    size_t weight_bytes = engine_weight_bytes(sv->engine, &half);
    size_t slot = engine_slot_bytes(mc);
    log_info("ready in %.2f s: %zu parameters (%s, %zu KB packed), %s tokenizer of %d, context %d "
             "(past it: %s %d), %d KV slots of %zu KB = %zu MB (%s%s), %d thread%s (%s), %s "
             "kernels",
             clock_seconds() - t0, sv->model.n_params, half ? "float16" : "float32",
             weight_bytes >> 10, tokenizer_kind_name(&sv->tok), sv->tok.vocab_size, mc->block_size,
             context_shift_name(sv->context.shift), context_policy_kept(&sv->context), max_batch,
             slot >> 10, (size_t)max_batch * slot >> 20, cfg->max_batch ? "--max-batch; " : "",
             memory.reason, cfg->threads, cfg->threads == 1 ? "" : "s", cfg->threads_source,
             kernels_name);
    return 0;
}

/* Whether another stop signal has come (they stay blocked: sigwait took the first). */
static bool stop_signal_again(const sigset_t *stop_signals) {
    struct timespec now = {0, 0};
    return sigtimedwait(stop_signals, NULL, &now) > 0;
}

/* Waits until busy() is false, `seconds` have passed or a second stop signal comes; returns
 * false on that signal. */
static bool wait_while(bool (*busy)(HttpServer *, Scheduler *), HttpServer *http, Scheduler *sched,
                       double seconds, const sigset_t *stop_signals) {
    double deadline = clock_seconds() + seconds;
    while (busy(http, sched) && clock_seconds() < deadline) {
        if (stop_signal_again(stop_signals)) return false;
        usleep(10000);
    }
    return true;
}

static bool requests_left(HttpServer *http, Scheduler *sched) {
    return scheduler_pending(sched) > 0 || http_server_in_flight(http) > 0;
}

static bool replies_left(HttpServer *http, Scheduler *sched) {
    (void)sched;
    return http_server_in_flight(http) > 0;
}

/* After SIGTERM/SIGINT: no new requests; those accepted finish within --drain-timeout, the rest
 * end with "shutdown" so that streams still get a last event, and requests still arriving get a
 * 503. A second signal ends the drain at once. The scheduler is stopped, not freed: HTTP threads
 * may still hold it until http_server_stop has joined them. */
static void drain(HttpServer *http, Scheduler *sched, double drain_timeout_s,
                  const sigset_t *stop_signals) {
    http_server_drain(http);
    scheduler_drain(sched);
    bool patient = wait_while(requests_left, http, sched, drain_timeout_s, stop_signals);
    /* A request both queued and on its connection counts once. */
    int pending = scheduler_pending(sched), in_flight = http_server_in_flight(http);
    int left = pending > in_flight ? pending : in_flight;
    if (!patient)
        log_warn("second stop signal: %d requests cut short", left);
    else if (left > 0)
        log_warn("drain timeout: %d requests cut short", left);
    scheduler_stop(sched);
    /* Up to 2 s more to let those last events (and 503s) go out before sockets close. */
    if (patient) wait_while(replies_left, http, sched, 2.0, stop_signals);
}

int main(int argc, char **argv) {
    ServerConfig cfg;
    const char *level = "info";
    bool healthcheck = false;
    int rc = parse_config(&cfg, argc, argv, &level, &healthcheck);
    if (rc) return rc == 1 ? 0 : 2;
    if (healthcheck) return healthcheck_run(cfg.host, cfg.port, 3.0);
    LogLevel lv = strcmp(level, "debug") == 0   ? LOG_DEBUG
                  : strcmp(level, "warn") == 0  ? LOG_WARN
                  : strcmp(level, "error") == 0 ? LOG_ERROR
                                                : LOG_INFO;
    log_set_level(lv);
    /* Request bodies and prompts of up to --body-limit come and go. A fixed mmap threshold hands
     * each large buffer back to the system when it is freed; glibc's sliding one would keep them
     * in its arenas and RSS would stay at the high-water mark. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    sigset_t stop_signals;
    setup_signals(&stop_signals);
    fit_file_limit(&cfg);

    Error err;
    Metrics *metrics = metrics_create();
    HttpServer *http = NULL;
    Serving sv = {0};
    int exit_code = 2;
    if (!metrics || http_server_start(&http, &cfg, metrics, &err)) {
        fprintf(stderr, "gptd: %s\n", metrics ? err.message : "out of memory");
        goto done;
    }
    log_info("listening on %s:%d; loading %s", cfg.host, cfg.port, cfg.model_path);
    if (start_serving(&sv, &cfg, http, metrics)) goto done;

    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("%s: draining (up to %.0f s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
             cfg.drain_timeout_s);
    drain(http, sv.sched, cfg.drain_timeout_s, &stop_signals);
    exit_code = 0;
    log_info("stopped");
done:
    scheduler_stop(sv.sched); /* no step runs while the connections close */
    http_server_stop(http);   /* joins every thread that could reach the scheduler */
    scheduler_destroy(sv.sched);
    engine_destroy(sv.engine);
    tokenizer_free(&sv.tok);
    gpt_free(&sv.model);
    metrics_destroy(metrics);
    return exit_code;
}
