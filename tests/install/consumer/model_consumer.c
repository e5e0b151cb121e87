/* A user's C program on the installed kernels: a flow frame from the reference
 * driver's traffic, its RSS hash under the key of the RSS verification suite, and the
 * frame checked back. Prints the hash; exit 0 when all agree. */
#include <stdio.h>
#include <viosim/rss.h>
#include <viosim/traffic.h>

int main(void)
{
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    static const uint8_t key[40] = {
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
        0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
        0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
    uint8_t frame[128];
    struct traffic_flow flow;
    struct traffic_info info;
    struct rss_packet p;

    traffic_flow_of(7, &flow);
    traffic_build_flow(frame, sizeof(frame), mac, 1, 42, 0, &flow);
    if (traffic_check(frame, sizeof(frame), 1, mac, 1, &info) != TRAFFIC_GOOD || info.seq != 42)
        return 1;
    rss_parse(frame, sizeof(frame), &p);
    if (p.l3 != RSS_L3_IPV4 || p.l4 != RSS_L4_UDP)
        return 1;
    printf("model_consumer: flow 7 hash %08x\n", rss_toeplitz(key, sizeof(key), p.tuple, 12));
    return 0;
}
