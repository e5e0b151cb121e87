// find_vcap.hpp -- walks a function's capability list (PCI Local Bus 3.0 6.7) through any
// configuration-space reader, for the C++ tests that reach the device by messages or TLM
// transactions (pt_rig.h has the same walk for the transport kernel alone).
#ifndef VIOSIM_TEST_FIND_VCAP_HPP
#define VIOSIM_TEST_FIND_VCAP_HPP

#include <cstdint>

#include "pci_cfg.h"
#include "virtio_wire.h"

// Configuration-space offset of the virtio vendor capability of cfg_type, or 0;
// cfg_rd(offset, bytes) reads configuration space. At most 48 capabilities (a loop ends).
template <class Reader>
uint8_t find_vcap(Reader cfg_rd, uint8_t cfg_type)
{
    uint8_t off = uint8_t(cfg_rd(PCI_CAPABILITY_LIST, 1));
    for (int n = 0; off && n < 48; n++) {
        if (cfg_rd(off, 1) == PCI_CAP_ID_VNDR && cfg_rd(off + 3u, 1) == cfg_type)
            return off;
        off = uint8_t(cfg_rd(off + 1u, 1));
    }
    return 0;
}

#endif
