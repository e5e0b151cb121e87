#!/usr/bin/env python3
"""A minimal, deliberately misbehaving vhost-user front end for tests/realdrivers.

Each case opens a fresh connection to `viosim serve --vhost-user SOCKET` and sends input
the back end must refuse (the connection is then closed by viosim, which keeps
listening), or a well-formed start whose ring points outside the shared memory. The
checks of what viosim logged and counted are in run-testpmd; this script only asserts
what a front end can see: replies, and the connection being closed.

Message layout (vhost-user, "Message specification"): u32 request, u32 flags (version 1),
u32 payload size, then the payload; file descriptors as SCM_RIGHTS.
"""
import mmap
import os
import socket
import struct
import sys
import time

GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL = 8, 9, 10, 12, 13
VERSION_1 = 1 << 32


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    return s


def send(s, req, payload=b"", fds=()):
    msg = struct.pack("<III", req, 1, len(payload)) + payload
    if fds:
        socket.send_fds(s, [msg], list(fds))
    else:
        s.sendall(msg)


def closed_by_peer(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def case_unknown_request(path):
    s = connect(path)
    send(s, 999, b"\0" * 8)
    assert closed_by_peer(s), "unknown request: connection not closed"


def case_short_payload(path):
    s = connect(path)
    s.sendall(struct.pack("<III", SET_FEATURES, 1, 8) + b"\0\0\0")  # 3 of 8 bytes
    s.shutdown(socket.SHUT_WR)
    assert closed_by_peer(s), "short payload: connection not closed"


def case_mem_table_without_fd(path):
    s = connect(path)
    send(s, GET_FEATURES)
    hdr = s.recv(12 + 8)
    req, flags, size = struct.unpack("<III", hdr[:12])
    assert req == GET_FEATURES and flags & 4 and size == 8, (req, flags, size)
    feats = struct.unpack("<Q", hdr[12:])[0]
    assert feats & VERSION_1, hex(feats)
    send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 4096, 0, 0))
    assert closed_by_peer(s), "memory table without its fd: connection not closed"


def case_region_beyond_file(path):
    """A memory region larger than the file passed for it would fault (SIGBUS) when
    touched: refused at SET_MEM_TABLE."""
    mem = Memory(4096)
    s = connect(path)
    send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, 0, 0),
         [mem.fileno()])
    assert closed_by_peer(s), "region beyond its file: connection not closed"


def start_split_ring(path, mem, desc_ua, features=VERSION_1, base=0):
    """A ring (size 4; split unless features say RING_PACKED) with the driver's
    structures in mem, the descriptor table at front-end address desc_ua, resuming at
    SET_VRING_BASE `base`; returns (socket, kick eventfd)."""
    s = connect(path)
    send(s, SET_OWNER)
    send(s, SET_FEATURES, struct.pack("<Q", features))
    gpa, ua, size = 0x100000, 0x7000_0000_0000, len(mem)
    send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", gpa, size, ua, 0),
         [mem.fileno()])
    send(s, SET_VRING_NUM, struct.pack("<II", 1, 4))
    send(s, SET_VRING_BASE, struct.pack("<II", 1, base))
    # desc, used, avail, log (front-end addresses)
    send(s, SET_VRING_ADDR, struct.pack("<IIQQQQ", 1, 0, desc_ua, ua + 0x2000, ua + 0x1000, 0))
    kick = os.eventfd(0)
    send(s, SET_VRING_KICK, struct.pack("<Q", 1), [kick])
    return s, kick, ua


class Memory:
    def __init__(self, size=64 * 1024):
        self.fd = os.memfd_create("vhost-client")
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.size = size

    def fileno(self):
        return self.fd

    def __len__(self):
        return self.size


def case_ring_outside_memory(path):
    mem = Memory()
    s, _, _ = start_split_ring(path, mem, 0x10)  # far below the region
    assert closed_by_peer(s), "ring outside memory: connection not closed"


def case_base_outside_ring(path):
    """SET_VRING_BASE for a packed ring of 4 entries naming offset 5 (wrap counter 0):
    not a place in the ring, so starting it closes the connection."""
    RING_PACKED = 1 << 34
    mem = Memory()
    s, _, _ = start_split_ring(path, mem, 0x7000_0000_0000, VERSION_1 | RING_PACKED, base=5)
    assert closed_by_peer(s), "base outside the ring: connection not closed"


def case_buffer_outside_memory(path):
    mem = Memory()
    ua = 0x7000_0000_0000
    s, kick, _ = start_split_ring(path, mem, ua)
    # descriptor 0: 76 device-readable bytes at a guest address no region backs
    mem.map[0:16] = struct.pack("<QIHH", 0xdead_0000, 76, 0, 0)
    mem.map[0x1000 + 4:0x1000 + 6] = struct.pack("<H", 0)  # avail ring[0] = 0
    mem.map[0x1000 + 2:0x1000 + 4] = struct.pack("<H", 1)  # avail idx = 1
    os.eventfd_write(kick, 1)
    time.sleep(0.5)
    # The ring stops (DMA error); the used ring stays untouched and the connection stays.
    used_idx = struct.unpack("<H", mem.map[0x2002:0x2004])[0]
    assert used_idx == 0, used_idx
    s.close()


def case_loopback_payload(path):
    """A well-behaved split-ring front end with EVENT_IDX and REPLY_ACK: three frames
    with a known pattern go out on transmitq1 and must come back intact on receiveq1
    (loopback backend), each with a 12-byte header whose num_buffers is 1. EVENT_IDX
    ("Used Buffer Notification Suppression"): receiveq1's used_event 0 asks for a
    notification at the first used buffer, transmitq1's used_event 100 asks for none
    yet, so only the receive call eventfd fires."""
    EVENT_IDX, PROTOCOL_FEATURES = 1 << 29, 1 << 30
    mem = Memory()
    m = mem.map
    gpa, ua = 0x100000, 0x7000_0000_0000
    s = connect(path)
    send(s, SET_OWNER)
    send(s, GET_FEATURES)
    feats = struct.unpack("<Q", s.recv(20)[12:])[0]
    assert feats & EVENT_IDX and feats & PROTOCOL_FEATURES, hex(feats)
    send(s, SET_FEATURES, struct.pack("<Q", VERSION_1 | EVENT_IDX | PROTOCOL_FEATURES))
    send(s, 15)  # GET_PROTOCOL_FEATURES
    proto = struct.unpack("<Q", s.recv(20)[12:])[0]
    assert proto & (1 << 3), hex(proto)  # REPLY_ACK
    send(s, 16, struct.pack("<Q", 1 << 3))  # SET_PROTOCOL_FEATURES
    # SET_MEM_TABLE with the need-reply flag: REPLY_ACK answers 0 (success)
    table = struct.pack("<II", 1, 0) + struct.pack("<QQQQ", gpa, len(mem), ua, 0)
    socket.send_fds(s, [struct.pack("<III", SET_MEM_TABLE, 1 | 8, len(table)) + table], [mem.fileno()])
    ackmsg = s.recv(20)
    assert struct.unpack("<IIIQ", ackmsg) == (SET_MEM_TABLE, 1 | 4, 8, 0), ackmsg
    calls, kicks = [], []
    for q, base in ((0, 0x0000), (1, 0x3000)):
        send(s, SET_VRING_NUM, struct.pack("<II", q, 4))
        send(s, SET_VRING_BASE, struct.pack("<II", q, 0))
        send(s, SET_VRING_ADDR, struct.pack("<IIQQQQ", q, 0, ua + base, ua + base + 0x2000,
                                            ua + base + 0x1000, 0))
        call = os.eventfd(0, os.EFD_NONBLOCK)
        send(s, SET_VRING_CALL, struct.pack("<Q", q), [call])
        kick = os.eventfd(0)
        send(s, SET_VRING_KICK, struct.pack("<Q", q), [kick])
        send(s, 18, struct.pack("<II", q, 1))  # SET_VRING_ENABLE
        calls.append(call)
        kicks.append(kick)
    # receive buffers: 4 x 2 KiB, device-writable (VIRTQ_DESC_F_WRITE)
    for i in range(4):
        m[16 * i:16 * i + 16] = struct.pack("<QIHH", gpa + 0x8000 + 0x800 * i, 0x800, 2, 0)
        m[0x1004 + 2 * i:0x1006 + 2 * i] = struct.pack("<H", i)
    m[0x1004 + 8:0x1006 + 8] = struct.pack("<H", 0)      # used_event
    m[0x1002:0x1004] = struct.pack("<H", 4)              # avail idx
    os.eventfd_write(kicks[0], 1)
    frames = [bytes((7 * k + j) & 0xFF for j in range(60 + 20 * k)) for k in range(3)]
    for k, f in enumerate(frames):
        buf = 0xC000 + 0x100 * k
        m[buf:buf + 12 + len(f)] = bytes(12) + f
        m[0x3000 + 16 * k:0x3010 + 16 * k] = struct.pack("<QIHH", gpa + buf, 12 + len(f), 0, 0)
        m[0x4004 + 2 * k:0x4006 + 2 * k] = struct.pack("<H", k)
    m[0x4004 + 8:0x4006 + 8] = struct.pack("<H", 100)    # used_event far ahead
    m[0x4002:0x4004] = struct.pack("<H", 3)
    os.eventfd_write(kicks[1], 1)
    for _ in range(100):
        if struct.unpack("<H", m[0x2002:0x2004])[0] == 3:
            break
        time.sleep(0.02)
    assert struct.unpack("<H", m[0x5002:0x5004])[0] == 3, "transmit used idx"
    assert struct.unpack("<H", m[0x2002:0x2004])[0] == 3, "receive used idx"
    for k, f in enumerate(frames):
        uid, ulen = struct.unpack("<II", m[0x2004 + 8 * k:0x200C + 8 * k])
        assert uid == k and ulen == 12 + len(f), (k, uid, ulen)
        buf = 0x8000 + 0x800 * k
        hdr = bytes(m[buf:buf + 12])
        assert hdr == bytes(10) + struct.pack("<H", 1), hdr
        assert bytes(m[buf + 12:buf + 12 + len(f)]) == f, f"frame {k} corrupted"
    assert os.eventfd_read(calls[0]) >= 1, "no receive notification"
    try:
        os.eventfd_read(calls[1])
        raise AssertionError("transmit notification despite used_event 100")
    except BlockingIOError:
        pass
    s.close()


def setup_pair(path, features, mem, pairs=1):
    """Both split rings (size 4) of each queue pair in mem: receiveq1 at 0x0000 (avail
    +0x1000, used +0x2000), transmitq1 at 0x3000; pair p's at 0x10000 p further on.
    Returns socket, call and kick fds (ring 2p is receiveq(p+1), 2p+1 transmitq(p+1))."""
    gpa, ua = 0x100000, 0x7000_0000_0000
    s = connect(path)
    send(s, SET_OWNER)
    send(s, SET_FEATURES, struct.pack("<Q", features))
    send(s, SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", gpa, len(mem), ua, 0),
         [mem.fileno()])
    calls, kicks = [], []
    for q in range(2 * pairs):
        base = 0x10000 * (q // 2) + 0x3000 * (q % 2)
        send(s, SET_VRING_NUM, struct.pack("<II", q, 4))
        send(s, SET_VRING_BASE, struct.pack("<II", q, 0))
        send(s, SET_VRING_ADDR, struct.pack("<IIQQQQ", q, 0, ua + base, ua + base + 0x2000,
                                            ua + base + 0x1000, 0))
        calls.append(os.eventfd(0, os.EFD_NONBLOCK))
        send(s, SET_VRING_CALL, struct.pack("<Q", q), [calls[-1]])
        kicks.append(os.eventfd(0))
        send(s, SET_VRING_KICK, struct.pack("<Q", q), [kicks[-1]])
    return s, calls, kicks


def wait_u16(m, off, want):
    for _ in range(100):
        if struct.unpack("<H", m[off:off + 2])[0] == want:
            return True
        time.sleep(0.02)
    return False


def start_merged_frame(path, frame):
    """MRG_RXBUF: four 64-byte receive buffers described, only the first two posted;
    `frame` (200 bytes: it needs all four) sent on transmitq1. Returns when the device
    has used the transmit buffer and, lacking buffers, used none on receive."""
    MRG_RXBUF = 1 << 15
    mem = Memory()
    m = mem.map
    gpa = 0x100000
    s, calls, kicks = setup_pair(path, VERSION_1 | MRG_RXBUF, mem)
    for i in range(4):
        m[16 * i:16 * i + 16] = struct.pack("<QIHH", gpa + 0x8000 + 0x100 * i, 64, 2, 0)
        m[0x1004 + 2 * i:0x1006 + 2 * i] = struct.pack("<H", i)
    m[0x1002:0x1004] = struct.pack("<H", 2)   # only two receive buffers for now
    os.eventfd_write(kicks[0], 1)
    m[0xC000:0xC000 + 12 + len(frame)] = bytes(12) + frame
    m[0x3000:0x3010] = struct.pack("<QIHH", gpa + 0xC000, 12 + len(frame), 0, 0)
    m[0x4004:0x4006] = struct.pack("<H", 0)
    m[0x4002:0x4004] = struct.pack("<H", 1)
    os.eventfd_write(kicks[1], 1)
    assert wait_u16(m, 0x5002, 1), "transmit used idx"
    time.sleep(0.2)
    assert struct.unpack("<H", m[0x2002:0x2004])[0] == 0, "used before the frame was complete"
    return s, mem, kicks


def merged_frame_data(m, used):
    """The bytes of receive buffers (id, length) in order, from buffer i at 0x8000 + 0x100 i."""
    return b"".join(bytes(m[0x8000 + 0x100 * i:0x8000 + 0x100 * i + n]) for i, n in used)


def case_merge_rx(path):
    """VIRTIO_NET_F_MRG_RXBUF ("Receiving Packets"): a 200-byte frame into 64-byte receive
    buffers takes 4 of them (64 + 64 + 64 + 20 bytes with the 12-byte header), the
    header in the first with num_buffers 4. With only 2 buffers posted the device
    waits (nothing used) and goes on when 2 more come."""
    frame = bytes((3 * j + 1) & 0xFF for j in range(200))
    s, mem, kicks = start_merged_frame(path, frame)
    m = mem.map
    m[0x1002:0x1004] = struct.pack("<H", 4)
    os.eventfd_write(kicks[0], 1)
    assert wait_u16(m, 0x2002, 4), "receive used idx"
    used = [struct.unpack("<II", m[0x2004 + 8 * k:0x200C + 8 * k]) for k in range(4)]
    assert used == [(0, 64), (1, 64), (2, 64), (3, 20)], used
    data = merged_frame_data(m, used)
    assert data[:12] == bytes(10) + struct.pack("<H", 4), data[:12]
    assert data[12:] == frame, "merged frame corrupted"
    s.close()


def case_merge_stopped(path):
    """GET_VRING_BASE on receiveq1 in the middle of a merged frame (MRG_RXBUF): a
    200-byte frame needs four 64-byte buffers and only two are posted. Stopping the ring
    returns those two unused (length 0), so every buffer before the position it reports
    (2) is used. After SET_VRING_BASE 2 and a new kick fd the frame arrives whole in the
    next four buffers, num_buffers 4: nothing lost, nothing left taken."""
    frame = bytes((11 * j + 5) & 0xFF for j in range(200))
    s, mem, kicks = start_merged_frame(path, frame)
    m = mem.map
    send(s, 11, struct.pack("<II", 0, 0))  # GET_VRING_BASE
    req, _, size, index, base = struct.unpack("<IIIII", s.recv(20))
    assert (req, size, index, base) == (11, 8, 0, 2), (req, size, index, base)
    assert struct.unpack("<H", m[0x2002:0x2004])[0] == 2, "the taken buffers were not returned"
    lens = [struct.unpack("<II", m[0x2004 + 8 * k:0x200C + 8 * k]) for k in range(2)]
    assert lens == [(0, 0), (1, 0)], lens
    send(s, SET_VRING_BASE, struct.pack("<II", 0, 2))
    kick = os.eventfd(0)
    send(s, SET_VRING_KICK, struct.pack("<Q", 0), [kick])
    m[0x1002:0x1004] = struct.pack("<H", 6)  # entries 2, 3, then 0 and 1 again
    os.eventfd_write(kick, 1)
    assert wait_u16(m, 0x2002, 6), "receive used idx after the restart"
    used = [struct.unpack("<II", m[0x2004 + 8 * (k % 4):0x200C + 8 * (k % 4)]) for k in range(2, 6)]
    assert used == [(2, 64), (3, 64), (0, 64), (1, 20)], used
    data = merged_frame_data(m, used)
    assert data[:12] == bytes(10) + struct.pack("<H", 4), data[:12]
    assert data[12:] == frame, "frame corrupted after the restart"
    s.close()


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    total = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def case_responder(path):
    """device.backend responder (peer 02:00:00:00:00:02, 10.0.0.2, the defaults): an ARP
    request for 10.0.0.2 gets the peer's ARP reply (RFC 826), an ICMP echo request gets an
    echo reply with the same identifier, sequence and data and valid checksums (RFC 792,
    RFC 791), and an IPv6 frame gets nothing."""
    peer_mac, peer_ip = bytes.fromhex("020000000002"), bytes([10, 0, 0, 2])
    my_mac, my_ip = bytes.fromhex("525400123456"), bytes([10, 0, 0, 1])
    mem = Memory()
    m = mem.map
    gpa = 0x100000
    s, calls, kicks = setup_pair(path, VERSION_1, mem)
    for i in range(4):
        m[16 * i:16 * i + 16] = struct.pack("<QIHH", gpa + 0x8000 + 0x800 * i, 0x800, 2, 0)
        m[0x1004 + 2 * i:0x1006 + 2 * i] = struct.pack("<H", i)
    m[0x1002:0x1004] = struct.pack("<H", 4)
    os.eventfd_write(kicks[0], 1)
    arp = (b"\xff" * 6 + my_mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) +
           my_mac + my_ip + bytes(6) + peer_ip).ljust(60, b"\0")
    data = bytes((5 * j + 3) & 0xFF for j in range(56))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 7) + data
    icmp = icmp[:2] + struct.pack("!H", inet_checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0x4000, 64, 1, 0, my_ip, peer_ip)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    echo = peer_mac + my_mac + b"\x08\x00" + ip + icmp
    ipv6 = peer_mac + my_mac + b"\x86\xdd" + bytes(46)
    for k, f in enumerate((arp, echo, ipv6)):
        buf = 0xC000 + 0x100 * k
        m[buf:buf + 12 + len(f)] = bytes(12) + f
        m[0x3000 + 16 * k:0x3010 + 16 * k] = struct.pack("<QIHH", gpa + buf, 12 + len(f), 0, 0)
        m[0x4004 + 2 * k:0x4006 + 2 * k] = struct.pack("<H", k)
    m[0x4002:0x4004] = struct.pack("<H", 3)
    os.eventfd_write(kicks[1], 1)
    assert wait_u16(m, 0x5002, 3), "transmit used idx"
    assert wait_u16(m, 0x2002, 2), "receive used idx (two answers)"
    time.sleep(0.1)
    assert struct.unpack("<H", m[0x2002:0x2004])[0] == 2, "the IPv6 frame was answered"
    (i0, n0), (i1, n1) = (struct.unpack("<II", m[0x2004 + 8 * k:0x200C + 8 * k]) for k in range(2))
    assert (i0, n0) == (0, 12 + 60), (i0, n0)
    r = bytes(m[0x8000 + 12:0x8000 + 12 + 60])
    assert r[:6] == my_mac and r[6:12] == peer_mac and r[12:14] == b"\x08\x06", r[:14].hex()
    assert struct.unpack("!H", r[20:22])[0] == 2 and r[22:28] == peer_mac and r[28:32] == peer_ip, r.hex()
    assert r[32:38] == my_mac and r[38:42] == my_ip, r.hex()
    assert (i1, n1) == (1, 12 + len(echo)), (i1, n1)
    r = bytes(m[0x8800 + 12:0x8800 + 12 + len(echo)])
    assert r[:6] == my_mac and r[6:12] == peer_mac, r[:14].hex()
    rip, ricmp = r[14:34], r[34:]
    assert rip[12:16] == peer_ip and rip[16:20] == my_ip and inet_checksum(rip) == 0, rip.hex()
    assert ricmp[0] == 0 and inet_checksum(ricmp) == 0, ricmp[:8].hex()
    assert ricmp[4:] == icmp[4:], "identifier, sequence or data changed"
    s.close()


def case_mq(path):
    """device.queue_pairs_count 4 (a server of its own): the MQ protocol feature,
    GET_QUEUE_NUM 4 and VIRTIO_NET_F_MQ are offered; the front end uses two of the four
    pairs (the pairs it starts and enables are the pairs in use); a frame sent on each
    pair's transmit ring comes back
    through the loopback on the same pair's receive ring ("Network Device / Virtqueues":
    receiveqN is ring 2(N-1), transmitqN ring 2(N-1)+1). With MRG_RXBUF, pair 1's
    200-byte frame waits for receive buffers (two of the four 64-byte buffers it needs
    posted) while pair 2 receives its own frame; then it arrives whole: one pair's frame
    in progress is not another's."""
    MQ, MRG_RXBUF = 1 << 22, 1 << 15
    s = connect(path)
    send(s, GET_FEATURES)
    feats = struct.unpack("<Q", s.recv(20)[12:])[0]
    assert feats & MQ, hex(feats)
    send(s, 15)  # GET_PROTOCOL_FEATURES
    proto = struct.unpack("<Q", s.recv(20)[12:])[0]
    assert proto & 1, hex(proto)  # MQ
    send(s, 17)  # GET_QUEUE_NUM
    assert struct.unpack("<Q", s.recv(20)[12:])[0] == 4
    s.close()
    mem = Memory(0x20000)
    m = mem.map
    gpa = 0x100000
    s, calls, kicks = setup_pair(path, VERSION_1 | MQ | MRG_RXBUF, mem, pairs=2)
    frames = [bytes((13 * j + 17 * p) & 0xFF for j in range(200 + 100 * p)) for p in range(2)]
    bufsize = (64, 0x800)
    for p, f in enumerate(frames):
        o = 0x10000 * p
        for i in range(4):
            m[o + 16 * i:o + 16 * i + 16] = struct.pack("<QIHH", gpa + o + 0x8000 + 0x800 * i, bufsize[p], 2, 0)
            m[o + 0x1004 + 2 * i:o + 0x1006 + 2 * i] = struct.pack("<H", i)
        m[o + 0x1002:o + 0x1004] = struct.pack("<H", 2 if p == 0 else 4)
        os.eventfd_write(kicks[2 * p], 1)
        m[o + 0xC000:o + 0xC000 + 12 + len(f)] = bytes(12) + f
        m[o + 0x3000:o + 0x3010] = struct.pack("<QIHH", gpa + o + 0xC000, 12 + len(f), 0, 0)
        m[o + 0x4004:o + 0x4006] = struct.pack("<H", 0)
        m[o + 0x4002:o + 0x4004] = struct.pack("<H", 1)
        os.eventfd_write(kicks[2 * p + 1], 1)
        assert wait_u16(m, o + 0x5002, 1), f"transmitq{p + 1} used idx"
    o = 0x10000
    assert wait_u16(m, o + 0x2002, 1), "receiveq2 used idx"
    assert struct.unpack("<II", m[o + 0x2004:o + 0x200C]) == (0, 12 + len(frames[1]))
    assert bytes(m[o + 0x8000:o + 0x8000 + 12]) == bytes(10) + struct.pack("<H", 1)
    assert bytes(m[o + 0x8000 + 12:o + 0x8000 + 12 + len(frames[1])]) == frames[1], "pair 2: wrong frame"
    assert struct.unpack("<H", m[0x2002:0x2004])[0] == 0, "receiveq1 used before its frame was complete"
    m[0x1002:0x1004] = struct.pack("<H", 4)
    os.eventfd_write(kicks[0], 1)
    assert wait_u16(m, 0x2002, 4), "receiveq1 used idx"
    used = [struct.unpack("<II", m[0x2004 + 8 * k:0x200C + 8 * k]) for k in range(4)]
    assert used == [(0, 64), (1, 64), (2, 64), (3, 20)], used
    data = b"".join(bytes(m[0x8000 + 0x800 * i:0x8000 + 0x800 * i + n]) for i, n in used)
    assert data[:12] == bytes(10) + struct.pack("<H", 4), data[:12]
    assert data[12:] == frames[0], "pair 1: merged frame corrupted"
    s.close()


CASES = [case_unknown_request, case_short_payload, case_mem_table_without_fd, case_region_beyond_file,
         case_ring_outside_memory, case_base_outside_ring, case_buffer_outside_memory, case_loopback_payload,
         case_merge_rx]

if __name__ == "__main__":
    path = sys.argv[1]
    # `vhost_client.py SOCKET responder` (a server with device.backend=responder),
    # `... merge-stopped` or `... mq` (device.queue_pairs_count=4): that case alone, on a server
    # of its own; otherwise CASES.
    only = {"responder": case_responder, "merge-stopped": case_merge_stopped, "mq": case_mq}
    for case in [only[sys.argv[2]]] if sys.argv[2:] else CASES:
        case(path)
        print("ok", case.__name__)
        time.sleep(0.2)
