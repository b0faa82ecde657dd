"""TLS and mutual TLS with a throwaway CA (trustme): a TLS server refuses plaintext and unknown CAs,
an mTLS server refuses clients without a certificate its CA signed; start-up checks the files and
warns when a non-loopback address serves plaintext."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import trustme

from conftest import API_KEY
from simsearch import AdminClient, Client, Unavailable
from simsearch.router import EmbeddedServer, ServeConfig
from simsearch.router.app import StartupError, _is_loopback, _tls

pytestmark = pytest.mark.integration  # real gRPC servers


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, client_ca, stranger = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(str(d / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(d / "server.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client_ca.cert_pem.write_to_path(str(d / "client-ca.pem"))
    client = client_ca.issue_cert("tenant-app@example.com")
    rogue = stranger.issue_cert("rogue@example.com")
    return {"dir": d, "ca": ca.cert_pem.bytes(), "stranger_ca": stranger.cert_pem.bytes(),
            "client_cert": client.cert_chain_pems[0].bytes(), "client_key": client.private_key_pem.bytes(),
            "rogue_cert": rogue.cert_chain_pems[0].bytes(), "rogue_key": rogue.private_key_pem.bytes()}


def _config(tmp_path, pki, **kw) -> ServeConfig:
    d = pki["dir"]
    return ServeConfig(port=0, data_dir=tmp_path / "data", bootstrap_key=API_KEY, tls_cert=d / "server.pem",
                       tls_key=d / "server.key", **kw)


def test_tls_serves_verified_clients_and_refuses_plaintext(tmp_path, pki):
    with EmbeddedServer(_config(tmp_path, pki)) as s:
        with Client(s.address, api_key=API_KEY, tls=True, root_certificates=pki["ca"], timeout=10) as c:
            c.create_collection("t", 4)
            c.upsert("t", ["a"], np.ones((1, 4), np.float32))
            assert c.search("t", np.ones(4, np.float32), 1).ids[0, 0] == "a"
        with AdminClient(s.address, api_key=API_KEY, root_certificates=str(pki["dir"] / "ca.pem"), timeout=10) as a:
            assert [t["name"] for t in a.list_tenants()] == ["default"]
        with pytest.raises(Unavailable), Client(s.address, api_key=API_KEY, timeout=5) as c:  # plaintext
            c.list_collections()
        with pytest.raises(Unavailable), Client(s.address, api_key=API_KEY, root_certificates=pki["stranger_ca"],
                                                timeout=5) as c:  # a CA that did not sign the server
            c.list_collections()


def test_mutual_tls_needs_a_client_certificate_the_client_ca_signed(tmp_path, pki):
    with EmbeddedServer(_config(tmp_path, pki, tls_client_ca=pki["dir"] / "client-ca.pem")) as s:
        with Client(s.address, api_key=API_KEY, root_certificates=pki["ca"], client_cert=pki["client_cert"],
                    client_key=pki["client_key"], timeout=10) as c:
            assert c.list_collections() == []
        for cert, key in ((None, None), (pki["rogue_cert"], pki["rogue_key"])):
            with pytest.raises(Unavailable), Client(s.address, api_key=API_KEY, root_certificates=pki["ca"],
                                                    client_cert=cert, client_key=key, timeout=5) as c:
                c.list_collections()


def test_tls_files_are_checked_at_start_and_plaintext_off_loopback_is_warned_about(tmp_path, pki, caplog):
    d = pki["dir"]
    with pytest.raises(StartupError, match=r"TLS needs both --tls-cert and --tls-key"):
        _tls(ServeConfig(tls_cert=d / "server.pem"))
    with pytest.raises(StartupError, match=r"cannot read .*missing.pem"):
        _tls(ServeConfig(tls_cert=d / "missing.pem", tls_key=d / "server.key"))
    with pytest.raises(StartupError, match=r"--tls-client-ca needs --tls-cert"):
        _tls(ServeConfig(tls_client_ca=d / "client-ca.pem"))
    assert _is_loopback("127.0.0.1") and _is_loopback("localhost") and not _is_loopback("192.0.2.7")
    with caplog.at_level(logging.WARNING, logger="simsearch.router.app"):
        assert _tls(ServeConfig(host="192.0.2.7")) is None
        assert _tls(ServeConfig(host="127.0.0.1")) is None
    warnings = [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]
    assert len(warnings) == 1 and "192.0.2.7" in warnings[0] and "--tls-cert" in warnings[0]


def test_the_readme_multi_tenant_quick_start_runs_over_tls(tmp_path, pki, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- quickstart: multi-tenant -->\n```python\n", 1)[1].split("```", 1)[0]
    with EmbeddedServer(_config(tmp_path, pki)) as s:
        exec(compile(block, "README.md quick start", "exec"),  # noqa: S102 (the README's own example)
             {"ADDRESS": s.address, "ADMIN_KEY": API_KEY, "CA": str(pki["dir"] / "ca.pem")})
        out = capsys.readouterr().out
        assert "'a'" in out and "'b'" in out
        with AdminClient(s.address, api_key=API_KEY, root_certificates=pki["ca"]) as admin:
            acme = admin.describe_tenant("acme")
        assert acme["usage"] == {"collections": 1, "points": 2, "keys": 1, "payload_bytes": 0} and acme["quotas"]["max_qps"] == 200
