"""Kubernetes exec probe: ask the router's gRPC health service (grpc.health.v1) over TLS; exit 0 when SERVING.

Why not the kubelet's native `grpc:` probe: it dials plaintext (TLS only with KEP-4939's `grpc.mode: TLS`, new
in Kubernetes 1.37 and not on by default), and the router in a pod serves TLS only. This script verifies the
server against the CA of the TLS Secret, sends no API key (health checking needs none) and with --cert/--key
also works against a router that requires client certificates (--tls-client-ca).

    python /opt/simsearch/grpc_health_check.py --ca /etc/simsearch/tls/ca.crt --server-name simsearch-router
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default="127.0.0.1:50051", help="host:port of the router (default: %(default)s)")
    p.add_argument("--ca", required=True, help="PEM CA that signed the router's certificate")
    p.add_argument("--server-name", default="",
                   help="a DNS name in the router's certificate (the probe dials 127.0.0.1, which it may not name)")
    p.add_argument("--cert", help="PEM client certificate, for a router that requires one")
    p.add_argument("--key", help="PEM key of --cert")
    p.add_argument("--service", default="", help="health service to ask about; '' = the whole server")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default: %(default)s)")
    a = p.parse_args(argv)
    if bool(a.cert) != bool(a.key):
        p.error("--cert and --key go together")
    try:
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(a.ca).read_bytes(),
            private_key=Path(a.key).read_bytes() if a.key else None,
            certificate_chain=Path(a.cert).read_bytes() if a.cert else None)
    except OSError as e:
        print(f"cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    options = [("grpc.ssl_target_name_override", a.server_name)] if a.server_name else []
    with grpc.secure_channel(a.address, creds, options=options) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=a.service),
                                                              timeout=a.timeout)
        except grpc.RpcError as e:
            print(f"{a.address}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{a.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
