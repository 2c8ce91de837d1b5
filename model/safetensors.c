#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (64u << 20) /* a header beyond 64 MiB is not a model we made */

/* Names and element sizes, in StDtype's order. Loaders read the float types; the others are
 * known so that a file holding them (a mask, a step counter) still opens. */
static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {{"F32", 4}, {"I32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8},
              {"I64", 8}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

static const char *dtype_name(StDtype d) { return DTYPES[d].name; }

size_t safetensors_dtype_size(StDtype d) { return DTYPES[d].size; }

static int dtype_parse(const char *s, StDtype *d) {
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *d = (StDtype)i;
            return 0;
        }
    return -1;
}

static int compare_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int parse_tensor(StTensor *t, const cJSON *item, size_t data_size, Error *err) {
    const char *name = item->string;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsObject(item) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) ||
        !cJSON_IsArray(offsets))
        return error_set(err, "tensor '%s': needs \"dtype\", \"shape\" and \"data_offsets\"", name);
    if (dtype_parse(dtype->valuestring, &t->dtype))
        return error_set(err,
                         "tensor '%s': unsupported dtype '%s' (gptd reads F32, F16, BF16, F64, "
                         "I64, I32, I16, I8, U8 and BOOL)",
                         name, dtype->valuestring);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > ST_MAX_DIMS)
        return error_set(err, "tensor '%s': %d dimensions, at most %d", name, t->ndim, ST_MAX_DIMS);
    t->numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return error_set(err, "tensor '%s': shape entries must be non-negative integers", name);
        size_t dim = (size_t)d->valuedouble;
        t->shape[i++] = (int64_t)dim;
        /* Check before multiplying: a product could wrap around to a small number. */
        if (dim && t->numel > ((size_t)1 << 40) / dim)
            return error_set(err, "tensor '%s': shape is too large", name);
        t->numel *= dim;
    }
    if (cJSON_GetArraySize(offsets) != 2)
        return error_set(err, "tensor '%s': data_offsets must be [begin, end]", name);
    const cJSON *b = cJSON_GetArrayItem(offsets, 0), *e = cJSON_GetArrayItem(offsets, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || !(b->valuedouble >= 0) ||
        !(e->valuedouble >= 0))
        return error_set(err, "tensor '%s': data_offsets must be non-negative integers", name);
    if (b->valuedouble > e->valuedouble)
        return error_set(err, "tensor '%s': data_offsets begin %.0f is after end %.0f", name,
                         b->valuedouble, e->valuedouble);
    if (e->valuedouble > (double)data_size)
        return error_set(err,
                         "tensor '%s': data_offsets end %.0f is past the end of the data (%zu "
                         "bytes; file truncated?)",
                         name, e->valuedouble, data_size);
    /* Only now, with both in range, is the conversion to an integer defined. */
    if (b->valuedouble != (double)(size_t)b->valuedouble ||
        e->valuedouble != (double)(size_t)e->valuedouble)
        return error_set(err, "tensor '%s': data_offsets must be non-negative integers", name);
    t->begin = (size_t)b->valuedouble;
    t->end = (size_t)e->valuedouble;
    if (t->end - t->begin != t->numel * safetensors_dtype_size(t->dtype))
        return error_set(err, "tensor '%s': %zu bytes of data for %zu %s elements", name,
                         t->end - t->begin, t->numel, dtype_name(t->dtype));
    t->name = strdup(name);
    if (!t->name) return error_set(err, "out of memory");
    return 0;
}

static int parse_header(SafeTensors *st, const char *json, size_t len, size_t data_size,
                        Error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return error_set(err, "header is not valid JSON");
    for (; end && end < json + len; end++) /* only padding may follow the object */
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(root);
            return error_set(err, "header is not valid JSON: data after the object");
        }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        error_set(err, "header is not a JSON object");
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)n + 1, sizeof *st->tensors);
    st->meta = NULL;
    if (!st->tensors) {
        error_set(err, "out of memory");
        goto done;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (st->meta) {
                error_set(err, "__metadata__ appears more than once");
                goto done;
            }
            if (!cJSON_IsObject(item)) {
                error_set(err, "__metadata__ must be an object of strings");
                goto done;
            }
            int nm = cJSON_GetArraySize(item);
            st->meta = calloc((size_t)nm + 1, sizeof *st->meta);
            if (!st->meta) {
                error_set(err, "out of memory");
                goto done;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, item) {
                if (!cJSON_IsString(kv)) {
                    error_set(err, "__metadata__ value '%s' is not a string", kv->string);
                    goto done;
                }
                StMeta *m = &st->meta[st->n_meta++];
                m->key = strdup(kv->string);
                m->value = strdup(kv->valuestring);
                if (!m->key || !m->value) {
                    error_set(err, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        if (parse_tensor(&st->tensors[st->n_tensors], item, data_size, err)) goto done;
        st->n_tensors++;
    }
    /* Overlapping tensors would alias each other's data: refuse them. */
    const StTensor **order = malloc(((size_t)st->n_tensors + 1) * sizeof *order);
    if (!order) {
        error_set(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n_tensors, sizeof *order, compare_begin);
    /* In begin order, each non-empty tensor must start at or after the furthest end so far. */
    const StTensor *reach = NULL;
    for (int i = 0; i < st->n_tensors; i++) {
        const StTensor *t = order[i];
        if (t->begin == t->end) continue;
        if (reach && t->begin < reach->end) {
            error_set(err, "tensors '%s' and '%s' overlap in the data section", reach->name,
                      t->name);
            free(order);
            goto done;
        }
        if (!reach || t->end > reach->end) reach = t;
    }
    free(order);
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int safetensors_open(SafeTensors *st, const char *path, Error *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return error_set(err, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return error_set(err, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return error_set(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return error_set(err, "%s: truncated: %zu bytes, a safetensors file has at least 8", path,
                         size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return error_set(err, "%s: mmap: %s", path, strerror(errno));
    st->map = map;
    st->map_size = size;
    const unsigned char *bytes = map;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | bytes[i];
    if (header_len > size - 8 || header_len > ST_MAX_HEADER) {
        error_set(err, "%s: header length %llu runs past the end of the %zu-byte file", path,
                  (unsigned long long)header_len, size);
        goto fail;
    }
    size_t data_start = 8 + (size_t)header_len, data_size = size - data_start;
    if (parse_header(st, (const char *)bytes + 8, (size_t)header_len, data_size, err)) {
        error_wrap(err, "%s", path);
        goto fail;
    }
    const unsigned char *data = bytes + data_start;
    if (data_start % 4 != 0) {
        /* Our writer pads the header; other writers may not. Elements need alignment. */
        st->aligned_copy = malloc(data_size ? data_size : 1);
        if (!st->aligned_copy) {
            error_set(err, "%s: out of memory", path);
            goto fail;
        }
        memcpy(st->aligned_copy, data, data_size);
        data = st->aligned_copy;
    }
    for (int i = 0; i < st->n_tensors; i++) {
        StTensor *t = &st->tensors[i];
        /* Only the types loaders read must be aligned; the others are never touched. */
        if (t->dtype <= ST_BF16 && t->begin % safetensors_dtype_size(t->dtype) != 0) {
            error_set(err, "%s: tensor '%s' data is not %zu-byte aligned", path, t->name,
                      safetensors_dtype_size(t->dtype));
            goto fail;
        }
        t->data = data + t->begin;
    }
    return 0;
fail:
    safetensors_close(st);
    return -1;
}

void safetensors_close(SafeTensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->tensors);
    free(st->meta);
    free(st->aligned_copy);
    if (st->map) munmap(st->map, st->map_size);
    memset(st, 0, sizeof *st);
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

static size_t numel_of(const StWriteTensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static char *build_header(const StWriteTensor *tensors, int n_tensors, const StMeta *meta,
                          int n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < n_meta; i++)
            cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
    }
    size_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const StWriteTensor *t = &tensors[i];
        cJSON *item = cJSON_AddObjectToObject(root, t->name);
        if (!item) break;
        cJSON_AddStringToObject(item, "dtype", dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(item, "shape");
        for (int d = 0; shape && d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        size_t bytes = numel_of(t) * safetensors_dtype_size(t->dtype);
        cJSON *offs = cJSON_AddArrayToObject(item, "data_offsets");
        if (offs) {
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + bytes)));
        }
        offset += bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int safetensors_write(const char *path, const StWriteTensor *tensors, int n_tensors,
                      const StMeta *meta, int n_meta, Error *err) {
    char *json = build_header(tensors, n_tensors, meta, n_meta);
    if (!json) return error_set(err, "%s: out of memory building the header", path);
    size_t json_len = strlen(json);
    size_t padded = (json_len + 7) / 8 * 8; /* data starts 8-aligned */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) {
        free(json);
        return error_set(err, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(json);
        return error_set(err, "%s: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(padded >> (8 * i));
    int rc = write_all(fd, len8, 8) || write_all(fd, json, json_len);
    for (size_t i = json_len; rc == 0 && i < padded; i++) rc = write_all(fd, " ", 1);
    free(json);
    for (int i = 0; rc == 0 && i < n_tensors; i++)
        rc = write_all(fd, tensors[i].data,
                       numel_of(&tensors[i]) * safetensors_dtype_size(tensors[i].dtype));
    if (rc == 0) rc = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return error_set(err, "%s: write failed: %s", path, strerror(saved));
    }
    return 0;
}
