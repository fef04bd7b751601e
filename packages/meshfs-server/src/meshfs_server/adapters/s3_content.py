"""Chunk content in any S3-compatible bucket (aioboto3): the production content port.

Layout: one object per chunk at ``<tenant_id>/<hash[:2]>/<hash>`` (content-addressed, so an
object is written once and never changes). A chunk is at most 4 MiB (``CHUNK_SIZE``), so every
chunk is one ``PutObject``: multipart exists for objects above 5 GiB per PUT and would only add
round trips and orphaned-part clean-up here. Each PUT carries ``x-amz-checksum-sha256`` (the
chunk's own SHA-256): the store verifies the bytes it received against the chunk's name and
refuses a corrupted body, and a PUT is atomic, so nothing is ever half written.

Bounded failure: every call has a connect timeout, a read timeout and a bounded number of
attempts (botocore's ``standard`` retry mode, jittered backoff), and the whole call - retries
included - runs under one overall deadline (``MESHFS_OBJECT_STORE_TIMEOUT_SECONDS``, 8 s by
default). A missing bucket, wrong credentials or an unreachable endpoint never stop the server
from starting: :meth:`S3ContentStore.check` (``/readyz``) names the problem and every request
that needs the store fails with ``UnavailableError`` (503) within that deadline.

Direct transfers: presigned PUT URLs (signed together with the checksum header, so the client
must send it and the store verifies it) and presigned GET URLs, so large transfers bypass the
Python process; :meth:`S3ContentStore.verify` is how a commit checks what a client put.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from meshfs_common.errors import InternalError, MeshFSError, UnavailableError
from meshfs_common.ids import is_id
from meshfs_server.domain.ports import StoredChunk

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

    from meshfs_server.settings import Settings

log = logging.getLogger("meshfs_server.s3")
READ_BLOCK = 1024 * 1024
T = TypeVar("T")

_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


def checksum_sha256(chunk_hash: str) -> str:
    """The ``x-amz-checksum-sha256`` value of a chunk: base64 of its SHA-256 digest."""
    return base64.b64encode(bytes.fromhex(chunk_hash)).decode()


class S3ContentStore:
    """Chunks as objects in one bucket; create with :meth:`create`, close with :meth:`close`."""

    def __init__(
        self,
        client: S3Client,
        presigner: S3Client,
        probe: S3Client,
        bucket: str,
        *,
        timeout: float,
        presign_ttl: int,
        endpoint: str | None,
        stack: AsyncExitStack,
    ) -> None:
        self.client = client
        self.presigner = presigner
        self.probe = probe
        self.bucket = bucket
        self.timeout = timeout
        self.presign_ttl = presign_ttl
        self.endpoint = endpoint or "the default S3 endpoint"
        self._stack = stack

    @classmethod
    async def create(cls, settings: Settings) -> S3ContentStore:
        """Create the clients; makes no network call, so a broken store cannot stop start-up."""
        assert settings.object_store_bucket, "Settings validates this"
        config = Config(
            connect_timeout=settings.object_store_connect_timeout_seconds,
            read_timeout=settings.object_store_timeout_seconds,
            retries={"max_attempts": settings.object_store_max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if settings.object_store_force_path_style else "auto"},
            signature_version="s3v4",
            # We send SHA-256 checksums ourselves; botocore's default CRC32 trailers are not
            # understood by every S3-compatible store.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=64,
        )
        session = aioboto3.Session()
        common: dict[str, Any] = {
            "region_name": settings.object_store_region,
            "aws_access_key_id": settings.object_store_access_key_id,
            "aws_secret_access_key": settings.object_store_secret_access_key,
            "config": config,
        }
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                session.client("s3", endpoint_url=settings.object_store_endpoint, **common)
            )
            # URLs handed to clients are signed for the address *they* use (in a compose stack
            # the server reaches the store by a service name clients cannot resolve).
            public = settings.object_store_public_endpoint or settings.object_store_endpoint
            # Readiness asks once: a retry's jittered backoff would only delay naming the problem.
            probe = await stack.enter_async_context(
                session.client(
                    "s3", endpoint_url=settings.object_store_endpoint,
                    **{**common, "config": config.merge(Config(retries={"max_attempts": 1}))},
                )
            )  # fmt: skip
            presigner = client
            if public != settings.object_store_endpoint:
                presigner = await stack.enter_async_context(
                    session.client("s3", endpoint_url=public, **common)
                )
        except BaseException:
            await stack.aclose()
            raise
        return cls(
            client, presigner, probe, settings.object_store_bucket,
            timeout=settings.object_store_timeout_seconds,
            presign_ttl=settings.object_store_presign_ttl_seconds,
            endpoint=settings.object_store_endpoint, stack=stack,
        )  # fmt: skip

    def key(self, tenant_id: str, chunk_hash: str) -> str:
        if not is_id(tenant_id) or len(chunk_hash) != 64 or not chunk_hash.isalnum():
            raise InternalError("refusing a malformed content key")
        return f"{tenant_id}/{chunk_hash[:2]}/{chunk_hash}"

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """One store call under the overall deadline, its failures as MeshFS errors."""
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except MeshFSError:
            raise
        except TimeoutError:
            raise UnavailableError(
                f"object store at {self.endpoint} did not answer within {self.timeout:g}s ({what})"
            ) from None
        except ClientError as exc:
            raise self._client_error(exc, what) from exc
        except (BotoCoreError, OSError) as exc:
            raise UnavailableError(
                f"object store at {self.endpoint} is unreachable ({what}): {exc}"
            ) from exc

    def _client_error(self, exc: ClientError, what: str) -> MeshFSError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NO_BUCKET or (what == "check" and code in _MISSING):  # HEAD has no body
            return UnavailableError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
        if code in _DENIED:
            return UnavailableError(
                f"object store refused access to bucket {self.bucket!r} ({code}): check"
                " MESHFS_OBJECT_STORE_ACCESS_KEY_ID / _SECRET_ACCESS_KEY"
            )
        return UnavailableError(f"object store error during {what}: {code or exc}")

    async def put_bytes(self, tenant_id: str, chunk_hash: str, data: bytes) -> None:
        key = self.key(tenant_id, chunk_hash)
        await self._call(
            "put",
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data,
                ChecksumSHA256=checksum_sha256(chunk_hash),
                ContentType="application/octet-stream",
            ),
        )  # fmt: skip

    async def open(
        self, tenant_id: str, chunk_hash: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        key = self.key(tenant_id, chunk_hash)
        if end is not None and end <= start:
            return
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self._call(
                "get", self.client.get_object(Bucket=self.bucket, Key=key, Range=wanted)
            )
        except UnavailableError as exc:
            if isinstance(exc.__cause__, ClientError) and _code(exc.__cause__) in _MISSING:
                raise UnavailableError(
                    f"content {chunk_hash[:12]} is missing from the store"
                ) from None
            raise
        body = answer["Body"]
        try:
            while True:
                # Each read is bounded too: a store that stalls mid-body fails the download.
                block = await self._call("read", body.read(READ_BLOCK))
                if not block:
                    break
                yield block
        finally:
            body.close()

    async def delete(self, tenant_id: str, chunk_hash: str) -> None:
        key = self.key(tenant_id, chunk_hash)
        await self._call("delete", self.client.delete_object(Bucket=self.bucket, Key=key))

    async def list_chunks(self) -> AsyncIterator[StoredChunk]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "MaxKeys": 1000}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call("list", self.client.list_objects_v2(**kwargs))
            for item in page.get("Contents", []):
                tenant_id, _, rest = item["Key"].partition("/")
                chunk_hash = rest.rpartition("/")[2]
                if is_id(tenant_id) and len(chunk_hash) == 64:
                    yield StoredChunk(tenant_id, chunk_hash, item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    async def check(self) -> None:
        """One ``HeadBucket`` without retries (``/readyz``), its failure named."""
        await self._call("check", self.probe.head_bucket(Bucket=self.bucket))

    async def close(self) -> None:
        await self._stack.aclose()

    # --- direct transfers ------------------------------------------------------------------------

    async def presign_put(self, tenant_id: str, chunk_hash: str) -> tuple[str, dict[str, str]]:
        """A URL the client PUTs the chunk's bytes to, and the headers it must send with them."""
        checksum = checksum_sha256(chunk_hash)
        url = await self.presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.key(tenant_id, chunk_hash),
                    "ChecksumSHA256": checksum},
            ExpiresIn=self.presign_ttl,
        )  # fmt: skip
        return url, {"x-amz-checksum-sha256": checksum}

    async def presign_get(self, tenant_id: str, chunk_hash: str) -> str:
        """A URL the client GETs the chunk from (Range is honoured)."""
        url: str = await self.presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(tenant_id, chunk_hash)},
            ExpiresIn=self.presign_ttl,
        )
        return url

    async def verify(self, tenant_id: str, chunk_hash: str, size: int) -> bool:
        """True when the store holds exactly this chunk (size and SHA-256).

        Uses the checksum the store verified at PUT time; a store that did not record one has
        its bytes read back and hashed. A wrong object is deleted, so it can be uploaded again.
        """
        key = self.key(tenant_id, chunk_hash)
        try:
            head = await self._call(
                "verify",
                self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"),
            )
        except UnavailableError as exc:
            if isinstance(exc.__cause__, ClientError) and _code(exc.__cause__) in _MISSING:
                return False
            raise
        good = head.get("ContentLength") == size
        recorded = head.get("ChecksumSHA256")
        if good and recorded is not None:
            good = recorded == checksum_sha256(chunk_hash)
        elif good:
            digest = hashlib.sha256()
            async for block in self.open(tenant_id, chunk_hash):
                digest.update(block)
            good = digest.hexdigest() == chunk_hash
        if not good:
            log.warning("deleting a chunk object that does not match its name: %s", key)
            await self.delete(tenant_id, chunk_hash)
        return good


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
