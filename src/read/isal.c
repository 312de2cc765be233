/* The few calls dynolake makes into ISA-L's inflate (igzip), behind a small
 * interface so the Rust side never depends on the layout of `struct
 * inflate_state`, which changes between ISA-L versions. Built by build.rs
 * when ISA-L's headers are there (Debian: libisal-dev). */
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

/* A gzip member decoder (header parsed, CRC-32 and length checked). */
struct inflate_state *dynolake_isal_new(void) {
    struct inflate_state *s = malloc(sizeof *s);
    if (s) {
        isal_inflate_init(s);
        s->crc_flag = ISAL_GZIP;
    }
    return s;
}

/* Ready for the next gzip member. */
void dynolake_isal_reset(struct inflate_state *s) {
    isal_inflate_reset(s);
    s->crc_flag = ISAL_GZIP;
}

void dynolake_isal_free(struct inflate_state *s) { free(s); }

/* Inflate from `in` into `out`; reports the bytes taken and given, and
 * whether the member ended (its trailer checked). Returns ISA-L's code:
 * negative is an error in the data. */
int dynolake_isal_inflate(struct inflate_state *s, const uint8_t *in, uint32_t in_len, uint32_t *in_used,
                          uint8_t *out, uint32_t out_len, uint32_t *out_len_used, int *finished) {
    s->next_in = (uint8_t *)in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = out_len;
    int rc = isal_inflate(s);
    *in_used = in_len - s->avail_in;
    *out_len_used = out_len - s->avail_out;
    *finished = s->block_state == ISAL_BLOCK_FINISH;
    return rc;
}
