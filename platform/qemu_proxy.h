// qemu_proxy.h -- `viosim serve --qemu-proxy PATH`: viosim as the remote process of QEMU's
// multi-process PCI proxy (`-device x-pci-proxy-dev,fd=N`, QEMU 7.2), so that an
// unmodified guest driver probes and drives the model's own PCI function: configuration
// space, BARs, common configuration, ISR and legacy INTx, queues, DMA into the guest's
// RAM (shared by QEMU as memfd). Timed by the platform of `viosim run` (external_host.h):
// each access enters it at the current simulated time, and it runs until idle before the
// access is answered (docs/bring-up.md, "Simulated time and the guest's time").
#ifndef VIOSIM_QEMU_PROXY_H
#define VIOSIM_QEMU_PROXY_H

#include "config.h"
#include "vhost_user.h" // serve_options, SERVE_EXIT_*

namespace viosim {

// Both build the process's one platform from cfg at their first call (SystemC elaborates
// once per process) and keep it to the process's end; a later call must bring the same
// configuration, or it is refused with a log line. Each connection starts with a
// function-level reset of the device; simulated time and statistics go on.

// Listens on opt.socket_path until SIGINT/SIGTERM (or opt.duration_s), serving one QEMU
// at a time; writes opt.out_dir/stats.json (the platform's statistics as a run writes
// them, the proxy's counters, result.conformance and the negotiated features) and
// returns 0, or SERVE_EXIT_PATH / SERVE_EXIT_FAILED as vhost_user_serve does. cfg must
// have passed config_validate for the proxy (device.msix=off, 32-bit BARs).
int qemu_proxy_serve(const vs_config &cfg, const serve_options &opt);

// Serves one peer already connected on fd (taken over and closed) until it disconnects
// or is refused; no listening socket, no signals, no stats.json. For tests and the fuzz
// target tests/fuzz/fuzz_proxy.cpp.
void qemu_proxy_serve_connection(const vs_config &cfg, const serve_options &opt, int fd);

} // namespace viosim

#endif
