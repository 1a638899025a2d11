"""The fleet's certificate authority, its broker configuration and ``raman-fleet`` (fleet/pki.py, broker.py, cli.py)."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet import broker, pki
from fleet.cli import main


@pytest.mark.parametrize("name", ["", "pi/001", "pi+", "#", "a b", "x" * 65, "ca", "broker", "all", "crl", "pï"])
def test_only_identities_get_certificates(name, tmp_path):
    pki.init(tmp_path)
    with pytest.raises(pki.PKIError):
        pki.issue_client(tmp_path, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker.key", "broker.pem", "ca.key", "ca.pem", "crl.pem"]


def test_a_client_certificate_names_its_identity_and_only_the_owner_reads_keys(tmp_path):
    pki.init(tmp_path, hosts=("mqtt.example.org", "10.0.0.5"))
    cert = x509.load_pem_x509_certificate(pki.issue_client(tmp_path, "pi-001").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pi-001"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = x509.load_pem_x509_certificate((tmp_path / "broker.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.example.org"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    for key in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_nothing_is_replaced_without_force(tmp_path):
    pki.init(tmp_path)
    first = pki.issue_client(tmp_path, "pi-001").read_bytes()
    ca = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(pki.PKIError, match="--force"):
        pki.issue_client(tmp_path, "pi-001")
    with pytest.raises(pki.PKIError, match="--force"):
        pki.init(tmp_path)
    assert (tmp_path / "pi-001.pem").read_bytes() == first and (tmp_path / "ca.key").read_bytes() == ca
    assert pki.issue_client(tmp_path, "pi-001", force=True).read_bytes() != first  # control


def test_revoking_lists_the_serial_in_the_crl(tmp_path):
    pki.init(tmp_path)
    serial = x509.load_pem_x509_certificate(pki.issue_client(tmp_path, "pi-001").read_bytes()).serial_number
    pki.issue_client(tmp_path, "pi-002")
    assert pki.revoke(tmp_path, "pi-001") == serial
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    assert [r.serial_number for r in crl] == [serial] and (tmp_path / "pi-002.pem").exists()


def test_the_configuration_holds_the_access_list_of_the_design(tmp_path):
    pki.init(tmp_path / "pki")
    conf = broker.write_config(tmp_path / "pki", tmp_path / "b", port=9883, bind="127.0.0.1").read_text()
    for line in ("listener 9883 127.0.0.1", "require_certificate true", "use_identity_as_username true",
                 "use_username_as_clientid true", "allow_anonymous false", "tls_version tlsv1.2", "persistence true",
                 "max_queued_messages 0", f"acl_file {tmp_path / 'b' / 'acl'}"):
        assert line in conf.splitlines(), line
    acl = (tmp_path / "b" / "acl").read_text().splitlines()
    assert {"pattern write raman-edge/v1/devices/%u/#", "pattern read raman-edge/v1/rollout/%u/#",
            "pattern read raman-edge/v1/rollout/all/#", "topic read raman-edge/v1/devices/#",
            "topic write raman-edge/v1/rollout/#"} <= set(acl)
    assert not any(line.startswith(("topic readwrite", "pattern readwrite")) or line.endswith(" #") for line in acl)
    with pytest.raises(broker.BrokerConfigError, match="--force"):
        broker.write_config(tmp_path / "pki", tmp_path / "b")


def test_the_configuration_refuses_a_missing_pki_and_paths_with_spaces(tmp_path):
    with pytest.raises(broker.BrokerConfigError, match="pki init"):
        broker.write_config(tmp_path / "none", tmp_path / "b")
    pki.init(tmp_path / "p")
    with pytest.raises(broker.BrokerConfigError, match="whitespace"):
        broker.write_config(tmp_path / "p", tmp_path / "b c")


def test_the_command_line_makes_a_pki_and_a_configuration(tmp_path, capsys):
    assert main(["pki", "init", str(tmp_path / "p"), "--host", "broker.lan"]) == 0
    assert main(["pki", "issue", str(tmp_path / "p"), "collector", "fleet-admin", "pi-001"]) == 0
    assert main(["broker-config", "--pki", str(tmp_path / "p"), "--port", "8884", "--out", str(tmp_path / "b")]) == 0
    assert "listener 8884" in (tmp_path / "b" / "mosquitto.conf").read_text().splitlines()
    capsys.readouterr()
    assert main(["pki", "issue", str(tmp_path / "p"), "pi-002", "pi/3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: 'pi/3' is not an identity")
    assert not (tmp_path / "p" / "pi-002.pem").exists()  # every name is checked before any certificate is made
    assert main(["pki", "issue", str(tmp_path / "p"), "pi-001"]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["broker-config", "--pki", "p", "--out", "b", "--port", "70000"])


def test_the_documented_broker_configuration_is_the_one_written():
    """docs/fleet.md shows mosquitto.conf and the access list as broker-config writes them for its paths."""
    from fleet.broker import BrokerFiles, acl_text, config_text

    docs = (Path(__file__).resolve().parents[1] / "docs" / "fleet.md").read_text()
    files = BrokerFiles(pki=Path("/etc/raman-fleet/pki"), acl=Path("/var/lib/raman-fleet/broker/acl"),
                        persistence=Path("/var/lib/raman-fleet/broker/data"))
    assert "```text\n" + config_text(files) + "```" in docs
    assert "```text\n" + acl_text() + "```" in docs
    assert "```text\n" + config_text(files, port=1883) + "```" not in docs  # the check can fail
