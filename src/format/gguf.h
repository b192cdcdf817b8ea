/* gguf.h - reader and writer for GGUF model files (versions 2 and 3).
 *
 * The reader maps the file and validates all of it before anything is used:
 * every count, length and offset is checked against the file size with
 * overflow-safe arithmetic, so later code may index the mapping freely.
 * Strings point into the mapping and are NOT NUL-terminated.
 *
 * The writer streams tensor data through a callback so that multi-gigabyte
 * files can be written without holding them in memory; it writes to a
 * temporary file and renames it into place, so a failed write never leaves a
 * partial file at the destination. */
#ifndef SMOE_GGUF_H
#define SMOE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4,
    GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8,
    GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11, GGUF_F64 = 12,
    GGUF_VTYPE_COUNT = 13,
};

/* Limits on what a file may declare; all far above any real model. */
#define GGUF_MAX_KV        65536
#define GGUF_MAX_TENSORS   (1 << 20)
#define GGUF_MAX_KEY_LEN   65535
#define GGUF_MAX_STR_LEN   (1u << 24)
#define GGUF_MAX_ARRAY_LEN (1u << 28)
#define GGUF_MAX_NAME_LEN  256
#define GGUF_MAX_DIMS      4
#define GGUF_MAX_ARRAY_DEPTH 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str {
    const char *p;
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;            /* enum gguf_vtype */
    const uint8_t *val;       /* the value's bytes in the file */
    uint64_t val_len;
    /* arrays */
    uint32_t arr_type;
    uint64_t arr_count;
    const uint8_t *arr_data;  /* first element */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;             /* enum smoe_type */
    uint64_t offset;           /* relative to the data section */
    uint64_t nbytes;
    int64_t nelem;
    const void *data;
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *data;   /* whole file */
    size_t size;
    bool mapped;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint32_t *kv_sorted;      /* indices sorted by key, for lookup */
    uint32_t *tensor_sorted;  /* indices sorted by name */
    uint64_t alignment;
    uint64_t data_offset;
} gguf_file;

/* Map and validate a file.  Errors name the file and the problem. */
gguf_file *gguf_open(const char *path, char *err);
/* Validate a buffer that stays owned by the caller (fuzzing, tests). */
gguf_file *gguf_parse(const uint8_t *data, size_t size, char *err);
void gguf_close(gguf_file *f);

const char *gguf_vtype_name(uint32_t t);

/* Lookup; NULL when absent. */
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
bool gguf_str_eq(gguf_str s, const char *c);

/* Typed metadata reads.  Return 1 when found, 0 when absent, -1 (with err)
 * when present but of the wrong type or out of range.  Integers accept any
 * integer type whose value fits. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t min, int64_t max,
                 int64_t *out, char *err);
int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, char *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err);
/* An array whose elements must be of elem_type. */
int gguf_get_array(const gguf_file *f, const char *key, uint32_t elem_type,
                   const gguf_kv **out, char *err);

/* Walk the strings of a validated string array: *cursor starts at
 * kv->arr_data and advances one element per call. */
gguf_str gguf_next_str(const uint8_t **cursor);

/* Read a scalar element of a numeric array (already validated). */
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i);

/* ---------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------- */

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* Metadata; return -1 only when out of memory. */
int gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_w_f32(gguf_writer *w, const char *key, float v);
int gguf_w_bool(gguf_writer *w, const char *key, bool v);
int gguf_w_str(gguf_writer *w, const char *key, const char *v);
int gguf_w_arr_str(gguf_writer *w, const char *key, const char *const *v,
                   const uint32_t *lens, uint64_t n);
int gguf_w_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_w_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Copy a key/value pair from a file being read. */
int gguf_w_copy_kv(gguf_writer *w, const gguf_kv *kv);

int gguf_w_tensor(gguf_writer *w, const char *name, uint32_t type,
                  uint32_t n_dims, const int64_t *ne);

/* Fill dst (nbytes) with the data of tensor number idx, in the order added. */
typedef int (*gguf_fill_fn)(void *user, uint64_t idx, void *dst, size_t nbytes,
                            char *err);

/* Write the file.  A regular file (or a new name) is written to a
 * temporary file beside path ("PATH.tmpXXXXXX"), flushed, fsync'ed and
 * renamed over path, then the directory is fsync'ed: a full disk, an I/O
 * error or a failing fill leaves path as it was and removes the temporary
 * file.  Killed midway (SIGKILL, power loss), the process leaves path as
 * it was too, but the temporary file stays behind.  A path that exists and
 * is not a regular file (/dev/null, /dev/full, a FIFO) is written directly,
 * since there is no file to replace; its write errors are reported. */
int gguf_w_write(gguf_writer *w, const char *path, gguf_fill_fn fill,
                 void *user, char *err);

#endif
