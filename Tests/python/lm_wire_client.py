"""An lm:// client written from the protocol description alone (struct + socket), as a Python LMCache client would
speak it. Usage: lm_wire_client.py PORT. Exits non-zero with a message on any mismatch."""
import socket
import struct
import sys

PUT, GET, EXIST, HEALTH = 1, 2, 3, 5


def request(cmd, key, length=0, fmt=1, dtype=2, shape=(0, 0, 0, 0)):
    return struct.pack("<iiiiiiii", cmd, length, fmt, dtype, *shape) + key.encode("ascii").ljust(150, b" ")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise SystemExit(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def main():
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)  # a silent server fails the check, never hangs it
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = "vllm@HuggingFaceTB/SmolLM2-135M-Instruct@1@0@" + "86cec0ce6ef740dacace6e1509a4d141e8737fc5e8f6fe9136eabc052b305e12"
    payload = bytes(range(256)) * 48  # 12,288 bytes, a realistic small bf16 chunk size
    shape = (2, 30, 32, 192)

    sock.sendall(request(EXIST, key))
    miss = sock.recv(32)  # LMCache reads the reply header with one recv(32)
    assert miss == bytes.fromhex("9001000000000000010000000200000000000000000000000000000000000000"), miss.hex()

    sock.sendall(request(PUT, key, len(payload), 1, 3, shape) + payload)
    sock.sendall(request(EXIST, key))
    assert struct.unpack("<8i", recv_exact(sock, 32))[0] == 200

    sock.sendall(request(GET, key))
    header = struct.unpack("<8i", recv_exact(sock, 32))
    assert header == (200, len(payload), 1, 3) + shape, header
    assert recv_exact(sock, header[1]) == payload

    sock.sendall(request(GET, key[:-1] + "0"))
    assert recv_exact(sock, 32) == struct.pack("<8i", 400, 0, 1, 2, 0, 0, 0, 0)

    sock.sendall(request(HEALTH, ""))
    assert struct.unpack("<8i", recv_exact(sock, 32)) == (200, 0, 1, 2, 0, 0, 0, 0)
    sock.close()
    print("lm_wire_client: ok")


if __name__ == "__main__":
    main()
