// qemu_proxy.h -- `viosim serve --qemu-proxy PATH`: viosim as the remote process of QEMU's
// multi-process PCI proxy (`-device x-pci-proxy-dev,fd=N`, QEMU 7.2), so that an
// unmodified guest driver probes and drives the model's own PCI function: configuration
// space, BARs, common configuration, ISR and legacy INTx, queues, DMA into the guest's
// RAM (shared by QEMU as memfd). Untimed for now: the device's kernels run between two
// messages, as fast as they go; no simulated time passes (docs/bring-up.md, "Real
// drivers on the model's registers").
#ifndef VIOSIM_QEMU_PROXY_H
#define VIOSIM_QEMU_PROXY_H

#include "config.h"
#include "vhost_user.h" // serve_options, SERVE_EXIT_*

// Listens on opt.socket_path until SIGINT/SIGTERM (or opt.duration_s), serving one QEMU
// at a time (each connection gets a freshly reset device); writes opt.out_dir/stats.json
// and returns 0, or SERVE_EXIT_PATH / SERVE_EXIT_FAILED as vhost_user_serve does. cfg
// must have passed config_validate for the proxy (device.msix=off, 32-bit BARs).
int qemu_proxy_serve(const vs_config &cfg, const serve_options &opt);

// Serves one peer already connected on fd (taken over and closed) until it disconnects
// or is refused; no listening socket, no signals, no stats.json. For the fuzz target
// tests/fuzz/fuzz_proxy.cpp.
void qemu_proxy_serve_connection(const vs_config &cfg, const serve_options &opt, int fd);

#endif
