/*
 * host_io.h - tiny file helpers for the host test programs (not for the MCU:
 * the host drivers may allocate; the library sources in src/ never do).
 */
#ifndef TC_HOST_IO_H
#define TC_HOST_IO_H

#include <stdio.h>
#include <stdlib.h>

/* Read a whole file; *size receives its length in bytes. Exits on error. */
static inline void *host_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long len;
    void *data;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(2);
    }
    data = malloc((size_t)len + 1);
    if (data == NULL || fread(data, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "%s: short read\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)len;
    return data;
}

/* Write n bytes to a file. Exits on error. */
static inline void host_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write\n", path);
        exit(2);
    }
}

#endif /* TC_HOST_IO_H */
