// test_refdrv_mrg.cpp -- the reference driver with merged receive buffers
// (driver.mrg_rxbuf, VIRTIO_NET_F_MRG_RXBUF; "Device Operation / Processing of Incoming
// Packets": num_buffers) through the timed platform, and what the timed run refuses of
// several pairs in use while the device model keeps one receive FIFO for all pairs.
#include "common/viosim_run.hpp"

// 256-byte buffers, frames of 64, 1514 and 300 bytes: 1, 6 and 2 buffers each (with the
// 12-byte header); every frame back intact, the device and the driver agreeing.
Test(refdrv_mrg_timed, frames_over_several_buffers)
{
    run_out r;
    run(r, {"--set", "device.mrg_rxbuf=on", "--set", "driver.mrg_rxbuf=on", "--set",
            "driver.rx_buffer_bytes=256", "--set", "driver.frame_sizes_bytes=64,1514,300",
            "--set", "driver.frames_count=600"});
    expect_clean_loopback(r, 600);
    cr_expect_eq(r.stat("driver.mrg_rxbuf_negotiated"), 1);
    cr_expect_eq(r.stat("driver.rx.merged_frames"), 400);
    cr_expect_eq(r.stat("driver.rx.buffers"), 200 * (1 + 6 + 2));
}

// Without driver.mrg_rxbuf a frame larger than a buffer is refused by the configuration,
// with it accepted.
Test(refdrv_mrg_timed, configuration_checks)
{
    run_out big;
    run(big, {"--set", "driver.rx_buffer_bytes=256", "--set", "driver.frame_sizes_bytes=1514",
              "--set", "driver.frames_count=10"});
    cr_expect_neq(big.status, 0);
    cr_expect(big.err.find("driver.rx_buffer_bytes") != std::string::npos, "%s", big.err.c_str());

}
