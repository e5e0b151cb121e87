/* rss_vectors.h -- the known answers of the Toeplitz hash (header-only), shared by the
 * RSS kernel's tests (test_rss.c) and the device's steering tests (test_mq.c).
 *
 * The RSS verification suite Microsoft publishes, "Verifying the RSS Hash Calculation"
 * (https://learn.microsoft.com/windows-hardware/drivers/network/verifying-the-rss-hash-calculation),
 * also in Intel's 82599 datasheet (7.1.2.8.3, "RSS Verification Suite"): the 40-byte key
 * those pages use, and per row the destination and source address and port with the
 * hash over the addresses ("IPv4" / "IPv6") and over addresses and ports ("with TCP").
 * The hash input is laid out as "RSS Hashing Functions" says: source address,
 * destination address, source port, destination port, as in the packet.
 */
#ifndef VIOSIM_TESTS_RSS_VECTORS_H
#define VIOSIM_TESTS_RSS_VECTORS_H

#include <stdint.h>

static const uint8_t ms_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/* The suite's IPv4 rows: destination and source address:port, hash over the addresses
 * ("IPv4") and over addresses and ports ("IPv4 with TCP"). */
static const struct {
    uint8_t dst[4], src[4];
    uint16_t dport, sport;
    uint32_t ip, tcp;
} ms_v4[] = {
    {{161, 142, 100, 80}, {66, 9, 149, 187}, 1766, 2794, 0x323e8fc2, 0x51ccc178},
    {{65, 69, 140, 83}, {199, 92, 111, 2}, 4739, 14230, 0xd718262a, 0xc626b0ea},
    {{12, 22, 207, 184}, {24, 19, 198, 95}, 38024, 12898, 0xd2d0a5de, 0x5c2b394a},
    {{209, 142, 163, 6}, {38, 27, 205, 30}, 2217, 48228, 0x82989176, 0xafc7327f},
    {{202, 188, 127, 2}, {153, 39, 163, 191}, 1303, 44251, 0x5d1809c5, 0x10e828a2},
};

/* The suite's IPv6 rows. */
static const struct {
    uint8_t dst[16], src[16];
    uint16_t dport, sport;
    uint32_t ip, tcp;
} ms_v6[] = {
    {/* 3ffe:2501:200:3::1 */ {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1},
     /* 3ffe:2501:200:1fff::7 */ {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7},
     1766, 2794, 0x2cc18cd5, 0x40207d3d},
    {/* ff02::1 */ {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
     /* 3ffe:501:8::260:97ff:fe40:efab */
     {0x3f, 0xfe, 0x05, 0x01, 0x00, 0x08, 0, 0, 0x02, 0x60, 0x97, 0xff, 0xfe, 0x40, 0xef, 0xab},
     4739, 14230, 0x0f0c461c, 0xdde51bbf},
    {/* fe80::200:f8ff:fe21:67cf */
     {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf},
     /* 3ffe:1900:4545:3:200:f8ff:fe21:67cf */
     {0x3f, 0xfe, 0x19, 0x00, 0x45, 0x45, 0x00, 0x03, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf},
     38024, 44251, 0x4b61e985, 0x02d1feef},
};

#endif
