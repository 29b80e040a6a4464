"""Where exports and training outputs live: a local folder or an S3 prefix (boto3).

Both sides of the training job speak in named files under one location, so the interface
is small: write, read, list, and fetch or publish a whole folder. ``open_storage`` takes a
path or an ``s3://bucket/prefix`` URI. S3 credentials and endpoint come from boto3's own
chain (``AWS_*`` environment variables, ``~/.aws``, an instance role; ``AWS_ENDPOINT_URL_S3``
for a non-AWS endpoint), never from our configuration.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol


class StorageError(RuntimeError):
    """Raised when a file cannot be read or written at the storage location."""


class Storage(Protocol):
    """A location holding named files."""

    uri: str

    def write_bytes(self, name: str, data: bytes) -> None: ...

    def read_bytes(self, name: str) -> bytes: ...

    def names(self) -> list[str]: ...


class LocalStorage:
    """Files in a local folder; each written beside itself first and then renamed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, part = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.root)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(part, self.root / name)
        except OSError as exc:
            raise StorageError(f"cannot write {self.root / name}: {exc.strerror or exc}") from None

    def read_bytes(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {self.root / name}: {exc.strerror or exc}") from None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_file()
                      and not p.name.startswith("."))


class S3Storage:
    """Objects under ``s3://bucket/prefix/``."""

    def __init__(self, bucket: str, prefix: str, *, client: Any = None,
                 endpoint_url: str | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def write_bytes(self, name: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot write {self.uri}/{name}: {exc}") from None

    def read_bytes(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot read {self.uri}/{name}: {exc}") from None

    def names(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = self._key("")
        found: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                found.extend(item["Key"][len(prefix):] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot list {self.uri}: {exc}") from None
        return sorted(found)


def open_storage(location: str, *, endpoint_url: str | None = None, client: Any = None
                 ) -> LocalStorage | S3Storage:
    """Return the storage for a folder path or an ``s3://bucket/prefix`` URI."""
    location = str(location).strip()
    if not location:
        raise StorageError("no storage location given: name a folder or s3://bucket/prefix")
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{location!r} names no bucket: use s3://bucket/prefix")
        return S3Storage(bucket, prefix, client=client, endpoint_url=endpoint_url)
    if "://" in location:
        raise StorageError(f"{location!r}: storage is a local folder or s3://bucket/prefix")
    return LocalStorage(location)


def join(location: str, *parts: str) -> str:
    """Return ``location`` with ``parts`` appended, for a folder or an S3 URI alike."""
    if location.startswith("s3://"):
        return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location).joinpath(*parts))


def download(storage: LocalStorage | S3Storage, folder: str | Path) -> Path:
    """Copy every file of ``storage`` into the local ``folder``; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in storage.names():
        (folder / name).write_bytes(storage.read_bytes(name))
    return folder


def upload(folder: str | Path, storage: LocalStorage | S3Storage) -> list[str]:
    """Copy every file of the local ``folder`` to ``storage``, manifest last; return the names."""
    names = sorted(p.name for p in Path(folder).iterdir() if p.is_file())
    names.sort(key=lambda name: name == "manifest.json")  # readers look for it last-written
    for name in names:
        storage.write_bytes(name, (Path(folder) / name).read_bytes())
    return names
