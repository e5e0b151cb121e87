/* traffic.c -- test frames the receiver can verify on its own (layout in traffic.h). */
#include "traffic.h"

#include <string.h>

#include "virtio_wire.h"

#define OFF_DST    0u
#define OFF_SRC    6u
#define OFF_TYPE   12u
#define OFF_SEQ    14u
#define OFF_LEN    22u
#define OFF_TIME   26u
#define OFF_CHECK  34u

_Static_assert(OFF_CHECK + 4u == TRAFFIC_HDR_BYTES, "test header layout");

/* SplitMix64: a small, well-mixed 64-bit generator; one step per 8 pattern bytes. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

static uint64_t stream_start(uint64_t seed, uint64_t seq)
{
    return mix64(seed ^ mix64(seq + GOLDEN_GAMMA));
}

static uint32_t check_word(uint64_t seed, uint64_t seq, uint32_t len, uint64_t t)
{
    uint64_t h = mix64(seed ^ 0x5f1e5f1eull);
    h = mix64(h ^ seq);
    h = mix64(h ^ len);
    h = mix64(h ^ t);
    return (uint32_t)(h ^ (h >> 32));
}

/* Pattern bytes [OFF_CHECK+4, len): produce or compare. Returns 0 on a mismatch. */
static int pattern(uint8_t *out, const uint8_t *in, uint32_t len, uint64_t seed, uint64_t seq)
{
    uint64_t state = stream_start(seed, seq);
    uint32_t off = TRAFFIC_HDR_BYTES;

    while (off < len) {
        uint8_t word[8];
        uint32_t n = len - off < 8u ? len - off : 8u;
        state += GOLDEN_GAMMA;
        vs_put_le64(word, mix64(state));
        if (out != NULL)
            memcpy(out + off, word, n);
        else if (memcmp(in + off, word, n) != 0)
            return 0;
        off += n;
    }
    return 1;
}

uint32_t traffic_frame_len(uint32_t requested)
{
    if (requested < TRAFFIC_HDR_BYTES)
        return TRAFFIC_HDR_BYTES;
    if (requested > TRAFFIC_MAX_FRAME_BYTES)
        return TRAFFIC_MAX_FRAME_BYTES;
    return requested;
}

void traffic_build(uint8_t *frame, uint32_t len, const uint8_t mac[6], uint64_t seed,
                   uint64_t seq, uint64_t tx_time_ps)
{
    if (len < TRAFFIC_HDR_BYTES)
        return;
    memcpy(frame + OFF_DST, mac, 6);
    memcpy(frame + OFF_SRC, mac, 6);
    frame[OFF_TYPE] = (uint8_t)(TRAFFIC_ETHERTYPE >> 8);
    frame[OFF_TYPE + 1] = (uint8_t)(TRAFFIC_ETHERTYPE & 0xffu);
    vs_put_le64(frame + OFF_SEQ, seq);
    vs_put_le32(frame + OFF_LEN, len);
    vs_put_le64(frame + OFF_TIME, tx_time_ps);
    vs_put_le32(frame + OFF_CHECK, check_word(seed, seq, len, tx_time_ps));
    pattern(frame, NULL, len, seed, seq);
}

enum traffic_verdict traffic_check(const uint8_t *frame, uint32_t len, int exact_len,
                                   const uint8_t mac[6], uint64_t seed, struct traffic_info *info)
{
    if (len < TRAFFIC_HDR_BYTES)
        return TRAFFIC_TOO_SHORT;
    info->seq = vs_le64(frame + OFF_SEQ);
    info->len = vs_le32(frame + OFF_LEN);
    info->tx_time_ps = vs_le64(frame + OFF_TIME);

    if (memcmp(frame + OFF_DST, mac, 6) != 0 || memcmp(frame + OFF_SRC, mac, 6) != 0 ||
        frame[OFF_TYPE] != (uint8_t)(TRAFFIC_ETHERTYPE >> 8) ||
        frame[OFF_TYPE + 1] != (uint8_t)(TRAFFIC_ETHERTYPE & 0xffu))
        return TRAFFIC_BAD_ETHERNET;
    if (vs_le32(frame + OFF_CHECK) != check_word(seed, info->seq, info->len, info->tx_time_ps))
        return TRAFFIC_BAD_HEADER;
    if (exact_len ? info->len != len : (info->len > len || info->len < TRAFFIC_HDR_BYTES))
        return TRAFFIC_BAD_LENGTH;
    if (!pattern(NULL, frame, info->len, seed, info->seq))
        return TRAFFIC_BAD_PAYLOAD;
    return TRAFFIC_GOOD;
}
