# tests/realdrivers/lib.sh -- sourced by run-testpmd, run-linux and run-linux-proxy: a
# scratch directory and one `viosim serve` at a time on $work/sock (--vhost-user, or the
# option in $serve_transport), and the Linux guest. The sourcing script sets viosim and
# work (and, for linux_guest, src and cache).
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start_server() { # out_dir, then --set arguments; the log goes to out_dir.log
  local out=$1; shift
  rm -f "$work/sock"
  "$viosim" serve "${serve_transport:---vhost-user}" "$work/sock" --out "$out" "$@" >"$out.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do [ -S "$work/sock" ] && return 0; sleep 0.1; done
  cat "$out.log" >&2
  fail "viosim serve did not create its socket"
}
stop_server() { # SIGINT: viosim writes stats.json and must exit 0
  kill -INT "$server_pid"
  wait "$server_pid" || fail "viosim serve exited with status $? on SIGINT"
  server_pid=""
}

# The Linux guest: Debian's cloud kernel image (virtio drivers as modules; the current
# linux-image-cloud-amd64, fetched with apt-get download and unpacked in $cache) and
# $work/initrd.gz, a busybox initramfs with the virtio-net modules and the init script
# given. Sets vmlinuz.
linux_guest() { # init script [function run with the initramfs root, to add files]
  local init=$1 add=${2:-}
  kernel_package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
      awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
  }
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    "$src/scripts/install-debs" --update # under its lock: never beside another apt-get
    pkg=$(kernel_package)
  fi
  [ -n "$pkg" ] || fail "apt-cache knows no linux-image-cloud-amd64"
  kdir="$cache/$pkg"
  if [ ! -f "$kdir/ready" ]; then
    rm -rf "$kdir" && mkdir -p "$kdir"
    "$src/scripts/install-debs" --download "$kdir" "$pkg" || fail "apt-get download $pkg failed"
    dpkg-deb -x "$kdir"/*.deb "$kdir/tree"
    rm -f "$kdir"/*.deb
    touch "$kdir/ready"
  fi
  vmlinuz=$(ls "$kdir"/tree/boot/vmlinuz-*)
  moddir=$(ls -d "$kdir"/tree/lib/modules/*/kernel)

  # The initramfs: static busybox, the virtio modules, the init script.
  root="$work/initramfs"
  mkdir -p "$root/bin" "$root/mod" "$root/proc" "$root/sys" "$root/dev"
  cp /bin/busybox "$root/bin/busybox"
  for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
           drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover \
           drivers/net/net_failover drivers/net/virtio_net; do
    cp "$moddir/$m.ko" "$root/mod/" || fail "$pkg has no $m.ko (the guest needs it as a module)"
  done
  cp "$init" "$root/init"
  chmod +x "$root/init"
  [ -z "$add" ] || "$add" "$root"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")
}

# Boots the guest (linux_guest's $vmlinuz and $work/initrd.gz) under QEMU with the
# function behind -device x-pci-proxy-dev, connected to serve --qemu-proxy's socket
# $work/sock. Guest RAM is a shared memfd (QEMU passes it with SYNC_SYSMEM). QEMU's fd=N
# is a socket already connected to viosim: a small launcher connects and hands its
# descriptor to QEMU across exec. The serial console goes to the log; at most 300 s, then
# SIGKILL 10 s later if QEMU ignores SIGTERM (a QEMU deadlocked in its proxy does).
# $guest_append, if set, is added to the kernel command line.
proxy_guest() { # log, RAM in MiB, then QEMU arguments (-accel, -cpu, ...; one vCPU, see bring-up.md)
  local log=$1 mib=$2; shift 2
  timeout -k 10 300 python3 - "$work/sock" qemu-system-x86_64 -nodefaults -machine pc,memory-backend=mem \
    -m "$mib" -object memory-backend-memfd,id=mem,size="${mib}M",share=on "$@" \
    -device x-pci-proxy-dev,id=d0,fd=@FD@ -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 no_timer_check irqpoll nolapic_timer ${guest_append:-}" \
    -serial stdio -display none -no-reboot >"$log" 2>&1 <<'PY' || true
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
os.set_inheritable(s.fileno(), True)
os.execvp(sys.argv[2], [a.replace("@FD@", str(s.fileno())) for a in sys.argv[2:]])
PY
}
