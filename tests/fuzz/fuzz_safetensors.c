/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser.
 * Any byte string must give either a parsed file whose every tensor lies
 * inside the buffer, or an error message: never a crash, a leak or an
 * out-of-bounds read.   make fuzz && build-fuzz/fuzz_safetensors -max_total_time=60 */
#include "nn/nn.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file_t f;
    char err[CORE_ERR_LEN];
    if (st_file_parse(&f, data, size, err)) {
        if (!memchr(err, 0, sizeof err) || !err[0]) __builtin_trap();
        return 0;
    }
    volatile float sink = 0;
    for (int i = 0; i < f.n; i++) {
        const st_tensor_t *t = &f.tensors[i];
        if (t->data < data || t->data + t->nbytes > data + size) __builtin_trap();
        if (t->nelem <= 256 && st_dtype_size(t->dtype) <= 4) {
            float tmp[256];
            if (st_tensor_to_f32(t, tmp) == 0 && t->nelem) sink += tmp[0];
        }
        if (st_tensor_find(&f, t->name) == NULL) __builtin_trap();
    }
    (void)sink;
    st_file_close(&f);
    return 0;
}
