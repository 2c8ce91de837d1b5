#define _GNU_SOURCE /* sched_getaffinity */
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "clock.h"

/* A run's tasks are claimed from one 64-bit word: the run's number above, the next unclaimed
 * task below. A claim is a compare-and-swap that names the run, so it fails once the run has
 * been replaced, whatever its task counter says. */
#define TASK_BITS 24
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)

/* How long past the time its claimed tasks should take the caller polls for a worker before it
 * sleeps: longer means the worker is not running (the kernel gave its core to another process). */
#define STALL_US 50

/* A sleep this long for a worker means the kernel gave the worker's CPU to someone else (time
 * slices are milliseconds). */
#define LATE_US 250

/* After a run in which the caller had to wait for a worker that was not running, when handing
 * work out has stopped paying, the caller runs alone for this long before it hands work out
 * again; each such back-off soon after the last doubles it, up to SOLO_MAX_S. On a shared CPU a
 * worker that the kernel deschedules while it holds tasks would otherwise cost the caller a time
 * slice (milliseconds) at every run. A time, not a count of runs: a run may be a short product or
 * a whole decode step. */
#define SOLO_MIN_S 0.008
#define SOLO_MAX_S 1.0

/* Whether handing work out pays is judged from the recent runs, not the last one: each shared
 * run gains the time the caller alone would have taken (its own time per task, times the tasks)
 * less the run's wall time, and the gains of the last GAIN_MEMORY_S or so are summed (older ones
 * fade). A neighbour that keeps the worker's CPU busy makes every run lose, and the sum soon
 * turns negative; a moment's wait while the process's own other threads (the daemon's event loop)
 * take a core is outweighed by the runs around it, which a back-off of SOLO_MIN_S at every such
 * wait would throw away (the daemon at 64 streams then ran alone for up to a second at a time). */
#define GAIN_MEMORY_S 0.05

/* A hint to the core while polling: lets a sibling hyperthread run, saves power. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* What a run does. Two of them alternate: the caller writes the one of run r + 1 only after run
 * r is finished, so a worker that read run r's description before being descheduled can only
 * hold one that its claims (naming run r) will refuse. Atomic because such a worker may read it
 * while the caller rewrites it. */
typedef struct {
    _Atomic(PoolTask) fn;
    _Atomic(void *) ctx;
    atomic_int n_tasks;
} RunDescription;

typedef struct {
    pthread_t thread;
    struct ThreadPool *pool;
    atomic_int cpu; /* the CPU it last ran on, as it last looked */
} Worker;

struct ThreadPool {
    /* Immutable after create (the hook: before the first run). */
    int n_threads;
    double spin_s;   /* how long a worker polls for the next run before sleeping */
    double stall_s;  /* how long past the expected end the caller polls before sleeping */
    Worker *workers; /* (n_threads - 1) */
    void (*hook)(void *);
    void *hook_arg;
    bool always_share; /* never run alone (thread_pool_always_share) */
    /* Only the caller of thread_pool_run touches these. */
    uint64_t run_number;
    double solo_until; /* runs before this time (clock_seconds) run alone, after a late worker */
    bool probe;        /* the run after solo ones hands work out whatever the workers' CPUs */
    double solo_s;     /* how long the next late worker makes the caller run alone */
    double last_late;  /* when the caller last backed off */
    double gain_s;     /* the recent shared runs' summed gains (may be negative), as of gain_at */
    double gain_at;
    RunDescription runs[2]; /* runs[r & 1] describes run r */
    _Atomic uint64_t claim; /* (run << TASK_BITS) | next unclaimed task of that run */
    atomic_int done;        /* tasks of the current run finished */
    atomic_int sleepers;    /* workers asleep (or about to be) on work_ready */
    atomic_int caller_asleep;
    atomic_int caller_cpu; /* the CPU the caller last started a run on */
    atomic_int stop;
    /* lock guards only the sleeps: work_ready (workers wait for a run or stop) and work_done (the
     * caller waits for claimed tasks). Everything else is atomic; sleepers and caller_asleep pair
     * with claim and done so that a wake-up is never lost (each side writes its own, then reads
     * the other's: one of them sees the other). */
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
};

static uint64_t current_run(ThreadPool *p) { return atomic_load(&p->claim) >> TASK_BITS; }

/* Claims and runs tasks of run `run` until none is left or the run is over; returns how many it
 * ran. Claims shrink as the run nears its end (a share of what is left), so that threads finish
 * together. */
static int run_tasks(ThreadPool *p, uint64_t run, PoolTask fn, void *ctx, int n_tasks) {
    uint64_t c = atomic_load(&p->claim);
    for (int ran = 0;;) {
        if (c >> TASK_BITS != run) return ran;
        int t = (int)(c & TASK_MASK);
        if (t >= n_tasks) return ran;
        int take = (n_tasks - t) / (4 * p->n_threads);
        if (take < 1) take = 1;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + (uint64_t)take)) continue;
        for (int i = t; i < t + take; i++) fn(ctx, i);
        ran += take;
        if (atomic_fetch_add(&p->done, take) + take == n_tasks && atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->work_done);
            pthread_mutex_unlock(&p->lock);
        }
        c = atomic_load(&p->claim);
    }
}

/* Whether worker w runs on the caller's CPU (the kernel may put a process's threads on one CPU
 * when another process keeps the other busy): then it would only take time from the caller. */
static bool on_callers_cpu(Worker *w) {
    int cpu = sched_getcpu();
    atomic_store(&w->cpu, cpu);
    return cpu == atomic_load(&w->pool->caller_cpu);
}

/* Waits for a run other than `seen` (or stop): polls for spin_s, then sleeps. Sleeping and being
 * woken costs tens of microseconds on a virtual machine (a cross-CPU interrupt each way), longer
 * than many whole products at batch 1, so a worker that expects work soon looks for it first,
 * unless it shares the caller's CPU. */
static uint64_t wait_for_run(Worker *w, uint64_t seen) {
    ThreadPool *p = w->pool;
    double deadline = 0;
    for (int i = 0;; i++) {
        if (current_run(p) != seen || atomic_load(&p->stop)) return current_run(p);
        if ((i & 63) == 0) {
            double t = clock_seconds();
            if (i == 0) deadline = t + p->spin_s;
            if (t >= deadline || on_callers_cpu(w)) break;
        }
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    while (!atomic_load(&p->stop) && current_run(p) == seen)
        pthread_cond_wait(&p->work_ready, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->lock);
    return current_run(p);
}

static void *worker_main(void *arg) {
    pthread_setname_np(pthread_self(), "gptd-pool"); /* for top -H and bench-server */
    Worker *w = arg;
    ThreadPool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_run(w, seen);
        if (atomic_load(&p->stop)) return NULL;
        RunDescription *d = &p->runs[seen & 1];
        PoolTask fn = atomic_load(&d->fn);
        void *ctx = atomic_load(&d->ctx);
        int n = atomic_load(&d->n_tasks);
        if (p->hook) p->hook(p->hook_arg);
        run_tasks(p, seen, fn, ctx, n);
    }
}

/* Waits until all n_tasks are done. The tasks left are claimed by workers; they should take
 * about as long as the caller's own took per task (task_s). Polls twice that long and stall_s
 * more, then sleeps: a worker that takes longer is probably not running. Returns whether the
 * wait outlasted the time the caller would have taken to run those tasks itself by LATE_US: the
 * run went slower than the caller alone would have, which a worker that lost its CPU for a time
 * slice makes it do, or one that shares a CPU with another process (a whole decode step of a
 * group at half speed); an interrupt or a page fault on the worker's side delays it far less. */
static bool wait_done(ThreadPool *p, int n_tasks, double task_s) {
    int left = n_tasks - atomic_load(&p->done);
    if (left == 0) return false;
    double start = clock_seconds(), until = start + 2 * left * task_s + p->stall_s;
    for (int i = 1;; i++) {
        if (atomic_load(&p->done) == n_tasks) break;
        if ((i & 15) == 0 && clock_seconds() >= until) {
            pthread_mutex_lock(&p->lock);
            atomic_store(&p->caller_asleep, 1);
            while (atomic_load(&p->done) != n_tasks) pthread_cond_wait(&p->work_done, &p->lock);
            atomic_store(&p->caller_asleep, 0);
            pthread_mutex_unlock(&p->lock);
            break;
        }
        cpu_relax();
    }
    return clock_seconds() - start >= left * task_s + LATE_US * 1e-6;
}

int thread_pool_create(ThreadPool **out, int n_threads, int spin_us, Error *err) {
    if (n_threads < 1) return error_set(err, "thread pool needs at least 1 thread");
    if (spin_us < 0) return error_set(err, "thread pool spin time must be >= 0");
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory");
    p->n_threads = n_threads;
    p->spin_s = spin_us * 1e-6;
    /* With more threads than CPUs to run on, a polling thread takes the CPU from the very thread
     * it waits for (4 threads on 2 CPUs ran 3x slower): then sleep at once. */
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && n_threads > CPU_COUNT(&cpus))
        p->spin_s = 0;
    p->stall_s = p->spin_s < STALL_US * 1e-6 ? p->spin_s : STALL_US * 1e-6;
    p->solo_s = SOLO_MIN_S;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return error_set(err, "out of memory");
    }
    atomic_store(&p->caller_cpu, -1);
    for (int i = 0; i < n_threads - 1; i++) {
        Worker *w = &p->workers[i];
        w->pool = p;
        atomic_store(&w->cpu, -1);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->n_threads = i + 1; /* destroy joins only the ones started */
            thread_pool_destroy(p);
            return error_set(err, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return 0;
}

void thread_pool_destroy(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1); /* ends any polling */
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    free(p->workers);
    free(p);
}

int thread_pool_size(const ThreadPool *p) { return p->n_threads; }

void thread_pool_always_share(ThreadPool *p) { p->always_share = true; }

void thread_pool_set_worker_hook(ThreadPool *p, void (*hook)(void *arg), void *arg) {
    p->hook = hook;
    p->hook_arg = arg;
}

/* After a run that waited for a late worker when sharing had stopped paying, or found every worker
 * on its own CPU: run alone for a while, longer if it happens again soon after the last time (the
 * CPU is still shared), SOLO_MIN_S if not. */
static void back_off(ThreadPool *p, double now) {
    p->gain_s = 0; /* the runs after the solo ones are judged afresh */
    bool again = now - p->last_late <= p->solo_s + SOLO_MIN_S;
    if (!again)
        p->solo_s = SOLO_MIN_S;
    else if (p->solo_s < SOLO_MAX_S)
        p->solo_s *= 2;
    p->solo_until = now + p->solo_s;
    p->last_late = now;
    p->probe = true;
}

/* Adds a shared run's gain to the recent ones, each shrunk by M / (M + the time since the last
 * run), M = GAIN_MEMORY_S: over many close runs about an exponential fade of time constant M,
 * after a long pause a gentler one (a seventh is left after 300 ms); no libm needed. */
static void add_gain(ThreadPool *p, double now, double gain) {
    double age = now - p->gain_at;
    p->gain_s = p->gain_s * GAIN_MEMORY_S / (GAIN_MEMORY_S + (age > 0 ? age : 0)) + gain;
    p->gain_at = now;
}

void thread_pool_run(ThreadPool *p, PoolTask fn, void *ctx, int n_tasks) {
    if (p->n_threads == 1 || n_tasks <= 1 || (uint64_t)n_tasks > TASK_MASK ||
        (p->solo_until > 0 && clock_seconds() < p->solo_until)) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    p->solo_until = 0;
    int cpu = sched_getcpu();
    atomic_store(&p->caller_cpu, cpu);
    bool alone = cpu >= 0 && !p->probe && !p->always_share && p->gain_s <= 0;
    p->probe = false;
    for (int i = 0; i < p->n_threads - 1 && alone; i++)
        alone = atomic_load(&p->workers[i].cpu) == cpu;
    if (alone) {
        back_off(p, clock_seconds());
        for (int t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    uint64_t run = ++p->run_number;
    RunDescription *d = &p->runs[run & 1];
    atomic_store(&d->fn, fn);
    atomic_store(&d->ctx, ctx);
    atomic_store(&d->n_tasks, n_tasks);
    atomic_store(&p->done, 0);
    atomic_store(&p->claim, run << TASK_BITS); /* publishes the run */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->work_ready);
        pthread_mutex_unlock(&p->lock);
    }
    double start = clock_seconds();
    int own = run_tasks(p, run, fn, ctx, n_tasks);
    double task_s = own > 0 ? (clock_seconds() - start) / own : 0;
    bool late = wait_done(p, n_tasks, task_s);
    double now = clock_seconds();
    /* The caller's time per task, times the tasks, is what it alone would have taken; but if the
     * kernel paused the caller in its own few tasks, that overstates it, so the gain is at most
     * what the workers could have saved: their number times the run's time. */
    double wall = now - start, gain = n_tasks * task_s - wall, most = (p->n_threads - 1) * wall;
    if (own > 0) add_gain(p, now, gain < most ? gain : most);
    if (late && p->gain_s < 0 && !p->always_share) back_off(p, now);
}

typedef struct {
    RangeTask fn;
    void *ctx;
    size_t n, range;
} RangeJob;

static void range_task(void *ctx, int task) {
    const RangeJob *j = ctx;
    size_t begin = (size_t)task * j->range;
    j->fn(j->ctx, begin, j->n - begin < j->range ? j->n : begin + j->range);
}

void thread_pool_run_ranges(ThreadPool *p, RangeTask fn, void *ctx, size_t n, int per_thread,
                            size_t min_range) {
    size_t ranges =
        p && p->n_threads > 1 && n > min_range ? (size_t)p->n_threads * (size_t)per_thread : 1;
    size_t range = (n + ranges - 1) / ranges;
    if (range < min_range) range = min_range;
    if (ranges == 1 || range >= n) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    RangeJob j = {fn, ctx, n, range};
    thread_pool_run(p, range_task, &j, (int)((n + range - 1) / range));
}
