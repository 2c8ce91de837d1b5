/* safetensors files: an 8-byte little-endian header length N, N bytes of JSON header
 * ({"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets"}}), then the raw
 * little-endian tensor data. Reading mmaps the file and validates the whole header against the
 * file size before any tensor is touched; writing is atomic (temp file, fsync, rename). */
#ifndef GPTD_SAFETENSORS_H
#define GPTD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define ST_MAX_DIMS 8

typedef enum {
    ST_F32 = 0,
    ST_I32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL
} StDtype;

size_t safetensors_dtype_size(StDtype d);

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data; /* points into the mapping; aligned to its element size or copied */
    size_t begin, end;
} StTensor;

typedef struct {
    char *key, *value;
} StMeta;

typedef struct {
    void *map;
    size_t map_size;
    StTensor *tensors;
    int n_tensors;
    StMeta *meta;
    int n_meta;
    void *aligned_copy; /* data section copied when the file puts it off a 4-byte boundary */
} SafeTensors;

int safetensors_open(SafeTensors *st, const char *path, Error *err);
void safetensors_close(SafeTensors *st);
const StTensor *safetensors_find(const SafeTensors *st, const char *name);
const char *safetensors_meta(const SafeTensors *st, const char *key); /* NULL when absent */

/* Tensors to write; data is dtype-sized elements, numel = product of shape. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

int safetensors_write(const char *path, const StWriteTensor *tensors, int n_tensors,
                      const StMeta *meta, int n_meta, Error *err);

#endif
