"""`coordinator export`: a consensus run as a dataset, to a local folder and to S3 (moto)."""

from __future__ import annotations

import gzip
import json

import boto3
import pytest
from click.testing import CliRunner

from coordinator import db
from coordinator.audit.services import Actor
from coordinator.cli import main
from coordinator.consensus import services as consensus
from coordinator.errors import InvalidInput
from coordinator.feedback import services
from integrations.storage import S3Storage, download, open_storage
from tests.crowd import CROWD, GOLD, Seeder
from training.dataset import read_dataset


@pytest.fixture
def run_id(app, world, project_id):
    """The project with CROWD's labels and one Dawid-Skene run."""
    Seeder(app, world, project_id).add(CROWD, gold=GOLD)
    with app.app_context():
        run = consensus.run_consensus(db.session(), Actor.system(), project_id).run
        db.session().commit()
        return run.id


@pytest.fixture
def cli(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("COORDINATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("COORDINATOR_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("COORDINATOR_SECRET_KEY", "test-secret")
    monkeypatch.setenv("COORDINATOR_BROKER_URL", "")
    monkeypatch.setenv("COORDINATOR_JOBS_IN_PROCESS", "off")
    monkeypatch.setenv("COORDINATOR_LOG_LEVEL", "warning")
    return CliRunner()


def test_export_to_a_folder_reads_back_with_every_field(app, cli, project_id, run_id, tmp_path):
    result = cli.invoke(main, ["export", "--project", str(project_id), "--out",
                               str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    dataset = read_dataset(tmp_path / "ds", project_id=project_id)
    manifest = dataset.manifest
    assert result.stdout.strip() == manifest["content_hash"]
    assert manifest["consensus_run_id"] == run_id
    assert manifest["classes"] == ["positive", "negative", "neutral"]
    assert manifest["counts"]["items"] == 6 and manifest["counts"]["gold"] == 3
    assert sum(manifest["counts"]["splits"].values()) == 6
    lines = [json.loads(line) for line in
             gzip.decompress((tmp_path / "ds" / "items.jsonl.gz").read_bytes()).splitlines()]
    by_external = {line["external_id"]: line for line in lines}
    assert by_external["t1"]["text"] == "t1" and by_external["t1"]["gold"] == "positive"
    assert by_external["t6"]["gold"] is None
    assert by_external["t2"]["label"] == "negative"
    assert abs(sum(by_external["t2"]["posterior"]) - 1) < 1e-9
    # deterministic: a second export writes the same bytes
    again = cli.invoke(main, ["export", "--project", str(project_id), "--run", str(run_id),
                              "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "items.jsonl.gz").read_bytes() == \
        (tmp_path / "ds" / "items.jsonl.gz").read_bytes()


def test_export_refuses_a_project_without_runs_and_an_unknown_run(cli, project_id, tmp_path):
    result = cli.invoke(main, ["export", "--project", str(project_id), "--out",
                               str(tmp_path / "ds")])
    assert result.exit_code != 0 and "no consensus run" in result.output
    result = cli.invoke(main, ["export", "--project", str(project_id), "--run", "999",
                               "--out", str(tmp_path / "ds")])
    assert result.exit_code != 0 and "999" in result.output
    assert not (tmp_path / "ds").exists()


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 in server mode on a free local port: real HTTP, no mock of our code."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = "exports"
    if name not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=name)
    return client, name


def test_export_to_s3_over_a_real_connection(app, cli, project_id, run_id, bucket, tmp_path):
    client, name = bucket
    prefix = f"project-{project_id}/run-{run_id}"
    result = cli.invoke(main, ["export", "--project", str(project_id), "--out",
                               f"s3://{name}/{prefix}"])
    assert result.exit_code == 0, result.output
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix=prefix)
                  ["Contents"])
    assert keys == [f"{prefix}/items.jsonl.gz", f"{prefix}/manifest.json"]
    storage = open_storage(f"s3://{name}/{prefix}")
    assert isinstance(storage, S3Storage) and storage.names() == ["items.jsonl.gz",
                                                                 "manifest.json"]
    dataset = read_dataset(download(storage, tmp_path / "copy"), project_id=project_id)
    assert len(dataset) == 6 and dataset.manifest["consensus_run_id"] == run_id


def test_export_to_a_missing_bucket_is_a_clear_error(app, project_id, run_id, bucket):
    with app.app_context(), pytest.raises(InvalidInput) as caught:
        services.export_dataset(db.session(), Actor.system(), project_id,
                                "s3://no-such-bucket/x")
    assert "NoSuchBucket" in " ".join(caught.value.errors["location"])
