"""The real servers the fleet's tests run on (tests/fleet_servers.py): a restarted broker and PostgreSQL."""
from __future__ import annotations

import pytest
from fleet_servers import broker, pki, postgres, postgres_server  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_killed_broker_starts_again_on_its_port(broker):
    port = broker.port
    client = broker.connect("pi-001")
    broker.kill()
    assert client.disconnected.wait(10)
    broker.start()
    assert broker.port == port and not broker.connect("pi-001").disconnected.is_set()


def test_postgres_gives_each_test_a_fresh_database(postgres, postgres_server):
    import psycopg

    assert postgres.startswith(f"postgresql://raman@127.0.0.1:{postgres_server.port}/")
    with psycopg.connect(postgres) as connection:
        assert connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        connection.execute("CREATE TABLE t (x int)")
    assert postgres_server.new_database() != postgres
