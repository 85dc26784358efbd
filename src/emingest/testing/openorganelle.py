"""A loopback replica of OpenOrganelle's S3 bucket ``janelia-cosem-datasets`` (archives.md §4, 7.4).

moto's S3 server runs in a child process, so its process-wide state (the bucket names moto keeps
global, the botocore hooks it installs on import) never touches the caller, and two replicas can
run side by side. A thin WSGI layer in front of moto applies the replicas' :class:`Faults`
(latency, 429/503 ``SlowDown`` with ``Retry-After``, stall, reset, truncate, listings that omit
names) and keeps a request log; both are driven from this process through the replica object.

The bucket holds a COSEM-style Zarr v2 store: an int16 EM pyramid written as the real one is
(§4.2 ``.zattrs`` including its floats, ``<i2``, 64³ chunks, zstd level 1, edge chunks padded),
a label group, a thumbnail and, optionally, consolidated ``.zmetadata``::

    with OpenOrganelleReplica() as oo:
        fs = s3fs.S3FileSystem(anon=True, client_kwargs={"endpoint_url": oo.endpoint_url})
        fs.ls(f"{oo.bucket}/{oo.dataset}")
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import requests

from emingest.testing.http import Faults

BUCKET = "janelia-cosem-datasets"
DATASET = "jrc_mus-nacc-2"
REGION = "us-east-1"
CONTROL = "/_emingest"  # bucket names cannot start with "_", so this never shadows a bucket

# z scale and translation per level exactly as the live store writes them (§4.2); y/x are exact.
_COSEM_Z_SCALE = (
    2.96,
    5.92,
    11.840000000000002,
    23.68,
    47.36,
    94.72,
    189.44,
    378.8799999999999,
    757.7599999999999,
)
_COSEM_Z_TRANSLATION = (0.0, 1.48, 4.4399999999999995, 10.36, 22.2, 45.88, 93.24, 187.96, 377.4)
_S3_ERROR_CODES = {429: "TooManyRequests", 500: "InternalError", 503: "SlowDown"}


# -- the S3 server ---------------------------------------------------------------------------------


class RemoteFaults(Faults):
    """:class:`Faults` whose changes reach the server process as they are made.

    Assign fields (``faults.omit_from_listing = {"s1"}``); mutating a set in place is not seen.
    The request counters live in the server; :meth:`reset_counters` resets them there.
    """

    def __init__(self, push: Callable[[dict[str, Any]], None]) -> None:
        object.__setattr__(self, "_push", None)
        super().__init__()
        object.__setattr__(self, "_push", push)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        push = self.__dict__.get("_push")
        if push is not None and not name.startswith("_"):
            push({name: sorted(value) if isinstance(value, set) else value})

    def reset_counters(self) -> None:
        super().reset_counters()
        push = self.__dict__.get("_push")
        if push is not None:
            push({"_reset_counters": True})


class S3Replica:
    """moto's S3 server on 127.0.0.1 (child process), anonymous, region us-east-1, with faults.

    Path-style URLs: ``{endpoint_url}/{bucket}/{key}``. ``faults`` apply to GET and HEAD only, so
    filling buckets never trips them; ``request_log`` lists (method, raw path, Range header).
    """

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.faults: Faults = RemoteFaults(self._push_faults)
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._session: requests.Session | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("replica not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Replica:
        src_root = str(Path(__file__).resolve().parents[2])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src_root, env.get("PYTHONPATH")]))
        code = "from emingest.testing.openorganelle import _serve; _serve()"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()
        proc = self._proc
        threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
        threading.Thread(
            target=_pump, args=(proc.stderr, self._stderr_tail.append), daemon=True
        ).start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            line = ""
        if not line.startswith("PORT "):
            self.stop()
            tail = "".join(self._stderr_tail)
            raise RuntimeError(f"the S3 replica's server did not start:\n{line}{tail}")
        self._port = int(line.split()[1])
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies or netrc from the environment
        fields = [f for f in Faults.__dataclass_fields__ if not f.startswith("_")]
        state = {f: getattr(self.faults, f) for f in fields}  # what was set before start()
        self._push_faults({k: sorted(v) if isinstance(v, set) else v for k, v in state.items()})
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # the server exits when its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._session is not None:
            self._session.close()
            self._session = None
        self._port = None

    def __enter__(self) -> S3Replica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _http(self) -> requests.Session:
        if self._session is None:
            raise RuntimeError("replica not started")
        return self._session

    def _url(self, bucket: str, key: str = "") -> str:
        return f"{self.endpoint_url}/{bucket}/{urllib.parse.quote(key)}"

    def create_bucket(self, bucket: str, *, public: bool = True) -> None:
        """Create ``bucket``; ``public`` adds the AWS Open Data read policy (anonymous GET/list)."""
        self._http.put(self._url(bucket), timeout=30).raise_for_status()
        if public:
            policy: dict[str, Any] = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    }
                ],
            }
            r = self._http.put(f"{self._url(bucket)}?policy", json=policy, timeout=30)
            r.raise_for_status()

    def put_objects(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """PUT every object (anonymous, parallel); keys are relative to the bucket."""

        def put(item: tuple[str, bytes]) -> None:
            key, body = item
            # public-read as well as the bucket policy: moto checks HEAD as "s3:HeadObject"
            headers = {"x-amz-acl": "public-read"}
            if key.endswith(".jpg"):
                headers["Content-Type"] = "image/jpeg"
            r = self._http.put(self._url(bucket, key), data=body, headers=headers, timeout=60)
            r.raise_for_status()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, objects.items()))

    @property
    def request_log(self) -> list[tuple[str, str, str | None]]:
        """Requests seen so far (oldest first), PUTs included."""
        r = self._http.get(f"{self.endpoint_url}{CONTROL}/log", timeout=30)
        r.raise_for_status()
        return [(m, p, rng) for m, p, rng in r.json()]

    def clear_request_log(self) -> None:
        self._http.post(f"{self.endpoint_url}{CONTROL}/log/clear", timeout=30).raise_for_status()

    def _push_faults(self, changes: dict[str, Any]) -> None:
        if self._session is None:
            return  # not running yet: start() sends the whole state
        r = self._session.post(f"{self.endpoint_url}{CONTROL}/faults", json=changes, timeout=30)
        r.raise_for_status()


def _pump(stream: Any, sink: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        sink(raw.decode(errors="replace"))


class _FaultLayer:
    """WSGI middleware (server side): log, then apply :class:`Faults` to GET/HEAD answers."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.faults = Faults()
        self.log: collections.deque[tuple[str, str, str | None]] = collections.deque(maxlen=100_000)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL + "/"):
            return self._control(environ, start_response)
        method = environ["REQUEST_METHOD"]
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or path
        self.log.append((method, raw, environ.get("HTTP_RANGE")))
        f = self.faults
        if method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        n = f.next_request()
        f.hold(n)
        if f.latency_s:
            time.sleep(f.latency_s)
        if n <= f.fail_first or Faults._hit(f.status_every, n):
            return _s3_error(start_response, f.status_code, path, method, f.retry_after_s)
        if not f.range_support:
            environ.pop("HTTP_RANGE", None)
        stall, reset, truncate = (
            Faults._hit(every, n) for every in (f.stall_every, f.reset_every, f.truncate_every)
        )
        reset = reset or n <= f.reset_first
        truncate = truncate or n <= f.truncate_first
        if not (stall or reset or truncate or f.omit_from_listing):
            return self.app(environ, start_response)
        written: list[bytes] = []
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return written.append

        result = self.app(environ, capture)
        try:
            body = b"".join([*written, *result])
        finally:
            getattr(result, "close", lambda: None)()
        headers = answer["headers"]
        if f.omit_from_listing and b"<ListBucketResult" in body:
            body = _omit_from_listing(body, f.omit_from_listing)
            headers = [
                (k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers
            ]
        start_response(answer["status"], headers)
        if method == "HEAD" or not (stall or reset or truncate) or not body:
            return [body]
        return self._broken_body(environ, body, stall, reset)

    def _broken_body(
        self, environ: dict[str, Any], body: bytes, stall: bool, reset: bool
    ) -> Iterator[bytes]:
        cut = max(1, len(body) // 2)
        yield body[:cut]
        if stall:
            time.sleep(self.faults.stall_s)
            yield body[cut:]
            return
        sock = environ.get("werkzeug.socket")
        if reset and sock is not None:
            # SO_LINGER 0 makes close() send RST. Close the descriptor now, before werkzeug's
            # own shutdown sends a FIN; detach() first so werkzeug never touches the number.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(sock.detach())
        # Otherwise werkzeug always answers "Connection: close": ending here is a short body.

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        what = environ["PATH_INFO"][len(CONTROL) + 1 :]
        reply: Any = {"ok": True}
        if what == "faults":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            for name, value in json.loads(environ["wsgi.input"].read(size) or b"{}").items():
                if name == "_reset_counters":
                    self.faults.reset_counters()
                elif name in Faults.__dataclass_fields__ and not name.startswith("_"):
                    setattr(self.faults, name, set(value) if name == "omit_from_listing" else value)
        elif what == "log":
            reply = list(self.log)
        elif what == "log/clear":
            self.log.clear()
        body = json.dumps(reply).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def _s3_error(
    start_response: Callable[..., Any], status: int, path: str, method: str, retry_after: float
) -> list[bytes]:
    code = _S3_ERROR_CODES.get(status, "ServiceUnavailable")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
        f"{code}</Code><Message>Please reduce your request rate.</Message>"
        f"<Resource>{path}</Resource><RequestId>EMINGESTFAULT</RequestId></Error>"
    ).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/xml"),
            ("Retry-After", f"{retry_after:g}"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", "EMINGESTFAULT"),
        ],
    )
    return [] if method == "HEAD" else [body]


def _omit_from_listing(body: bytes, names: set[str]) -> bytes:
    """Drop ``Contents``/``CommonPrefixes`` whose last path segment is in ``names``."""
    text = body.decode()
    removed = 0

    def drop(m: re.Match[str]) -> str:
        nonlocal removed
        key = re.search(r"<(?:Key|Prefix)>([^<]*)</", m.group(0))
        name = urllib.parse.unquote(key.group(1)).rstrip("/").rsplit("/", 1)[-1] if key else ""
        if name in names:
            removed += 1
            return ""
        return m.group(0)

    text = re.sub(r"<(Contents|CommonPrefixes)>.*?</\1>", drop, text, flags=re.S)
    text = re.sub(
        r"<KeyCount>(\d+)</KeyCount>",
        lambda m: f"<KeyCount>{int(m.group(1)) - removed}</KeyCount>",
        text,
    )
    return text.encode()


def _serve() -> None:
    """Child process entry: moto behind :class:`_FaultLayer`; prints ``PORT n``; exits on EOF."""
    import logging

    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    # S3 alone, not moto's DomainDispatcherApplication: that guesses the service of an unsigned
    # request from the first path segment, and "jrc_mus-nacc-2/…" (virtual-host style) reads
    # as service "jrc" in region "mus-nacc-2".
    app = _FaultLayer(create_backend_app("s3"))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)

    def exit_on_eof() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_on_eof, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


# -- the COSEM-style store -------------------------------------------------------------------------


def cosem_multiscales(levels: int) -> dict[str, Any]:
    """The OME-NGFF 0.4 ``multiscales`` entry of a COSEM EM group, as §4.2 shows it.

    Level n has scale ``s0 * 2**n`` (s0 = 2.96 × 4 × 4 nm) and translation
    ``t_n = t_{n-1} + s_{n-1} / 2``; the first nine z values are the live store's own floats.
    """
    z_scale, z_trans = list(_COSEM_Z_SCALE), list(_COSEM_Z_TRANSLATION)
    while len(z_scale) < levels:
        z_trans.append(z_trans[-1] + z_scale[-1] / 2)
        z_scale.append(z_scale[-1] * 2)
    datasets = []
    for n in range(levels):
        yx_scale, yx_trans = 4.0 * 2**n, 2.0 * (2**n - 1)
        datasets.append(
            {
                "path": f"s{n}",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [z_scale[n], yx_scale, yx_scale]},
                    {"type": "translation", "translation": [z_trans[n], yx_trans, yx_trans]},
                ],
            }
        )
    return {
        "version": "0.4",
        "name": "",
        "type": None,
        "metadata": None,
        "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}],
        "datasets": datasets,
    }


def downsample_mean(a: np.ndarray) -> np.ndarray:
    """2× mean over 2×2×2 blocks, rounded half to even; odd trailing voxels are dropped (s1 of
    564 × 2520 × 2596 is 282 × 1260 × 1298, s3 of 141 is 70), as the live pyramid shows."""
    z, y, x = (s // 2 for s in a.shape)
    if min(z, y, x) < 1:
        raise ValueError(f"cannot halve a volume of shape {a.shape}")
    blocks = a[: 2 * z, : 2 * y, : 2 * x].reshape(z, 2, y, 2, x, 2)
    return np.rint(blocks.sum(axis=(1, 3, 5), dtype=np.int64) / 8.0).astype(a.dtype)


def _json(obj: Any) -> bytes:
    """JSON as zarr-python 2 writes its metadata documents (sorted keys, indent 4)."""
    return json.dumps(
        obj, indent=4, sort_keys=True, ensure_ascii=True, separators=(",", ": ")
    ).encode()


def zarr_v2_array(
    data: np.ndarray,
    chunks: tuple[int, int, int],
    *,
    zstd_level: int,
    dimension_separator: str,
    skip_empty: bool = False,
) -> dict[str, bytes]:
    """``.zarray`` and chunk objects of a Zarr v2 array (keys relative to the array).

    Edge chunks are stored whole, padded with the fill value 0; ``skip_empty`` leaves out chunks
    that are all fill, as zarr-python does by default (readers must treat them as fill).
    """
    from numcodecs import Zstd

    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    meta = {
        "zarr_format": 2,
        "shape": list(data.shape),
        "chunks": list(chunks),
        "dtype": data.dtype.str,
        "compressor": {"id": "zstd", "level": zstd_level},
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": dimension_separator,
    }
    codec = Zstd(level=zstd_level)
    grid = [range(-(-s // c)) for s, c in zip(data.shape, chunks, strict=True)]

    def encode(idx: tuple[int, int, int]) -> tuple[str, bytes] | None:
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks, strict=True))
        part = data[region]
        if skip_empty and not part.any():
            return None
        block = np.zeros(chunks, dtype=data.dtype)
        block[tuple(slice(0, s) for s in part.shape)] = part
        return dimension_separator.join(map(str, idx)), bytes(codec.encode(block))

    indices = [(z, y, x) for z in grid[0] for y in grid[1] for x in grid[2]]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        encoded = [e for e in pool.map(encode, indices) if e is not None]
    return {".zarray": _json(meta), **dict(encoded)}


class OpenOrganelleReplica(S3Replica):
    """``s3://janelia-cosem-datasets/jrc_mus-nacc-2/…`` on loopback, filled with synthetic EM.

    s0 is ``SyntheticEM(shape, "int16", seed)``; each further level is :func:`downsample_mean`
    of the one before, advertised by :func:`cosem_multiscales`. ``recon-2/labels/mito_seg`` is a
    uint64 label pyramid of one level over a crop of s0 from the origin, at most
    :attr:`TEST_SHAPE` (an id per organelle grid cell; all-zero chunks are left out).
    ``extra_datasets`` adds siblings laid out like ``jrc_cos7-1a`` (``recon-1/em/fibsem-uint8``,
    uint8, chunks 64 × 128 × 128, zstd level 6). ``root``, if given, also receives every object
    as a file ``root/<bucket>/<key>``.
    """

    TEST_SHAPE = (70, 150, 160)
    """Default s0: 2 × 3 × 3 chunks with ragged edges in every axis; a few MB in all."""
    BENCHMARK_SHAPE = (256, 1024, 1024)
    """A benchmark-sized s0 (512 MiB int16, 1,024 chunks)."""

    bucket = BUCKET
    dataset = DATASET
    em_array_path = f"{DATASET}.zarr/recon-2/em/fibsem-int16"
    label_array_path = f"{DATASET}.zarr/recon-2/labels/mito_seg"

    def __init__(
        self,
        root: Path | None = None,
        *,
        shape: tuple[int, int, int] = TEST_SHAPE,
        levels: int = 3,
        dimension_separator: str = "/",
        consolidated: bool = True,
        seed: int = 0,
        extra_datasets: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if dimension_separator not in ("/", "."):
            raise ValueError(f'dimension_separator must be "/" or ".", got {dimension_separator!r}')
        if levels < 1 or min(shape) >> (levels - 1) < 1:
            raise ValueError(f"{levels} levels do not fit a volume of shape {shape}")
        self.root = Path(root) if root is not None else None
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.levels = levels
        self.dimension_separator = dimension_separator
        self.consolidated = consolidated
        self.seed = seed
        self.em_array_paths = {DATASET: self.em_array_path}
        for name in extra_datasets:
            self.em_array_paths[name] = f"{name}.zarr/recon-1/em/fibsem-uint8"
        self.multiscales = cosem_multiscales(levels)
        """The ``multiscales`` entry written to every EM group's ``.zattrs``."""
        self.zattrs = {"multiscales": [self.multiscales]}
        """The EM group's ``.zattrs`` document."""
        self._pyramids: dict[str, list[np.ndarray]] = {}
        self._labels: np.ndarray | None = None
        self._objects: dict[str, bytes] | None = None

    # -- what the bucket holds ---------------------------------------------------------------

    def expected_level(self, level: int, dataset: str = DATASET) -> np.ndarray:
        """The voxels of EM array ``s{level}`` of ``dataset`` (z, y, x)."""
        self._build()
        return self._pyramids[dataset][level]

    def expected_labels(self) -> np.ndarray:
        """The voxels of ``recon-2/labels/mito_seg/s0``."""
        self._build()
        assert self._labels is not None
        return self._labels

    @property
    def objects(self) -> dict[str, bytes]:
        """Every object of the bucket, key → bytes."""
        return self._build()

    @property
    def level_shapes(self) -> list[tuple[int, ...]]:
        return [self.expected_level(n).shape for n in range(self.levels)]

    def s3_url(self, path: str = "") -> str:
        """``s3://janelia-cosem-datasets/jrc_mus-nacc-2/<path>``."""
        return f"s3://{self.bucket}/{self.dataset}/{path}".rstrip("/")

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for anonymous access to this endpoint."""
        return {
            "anon": True,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }

    def tensorstore_kvstore(self, path: str = "") -> dict[str, Any]:
        """A tensorstore ``s3`` kvstore spec for ``jrc_mus-nacc-2/<path>``, anonymous."""
        return {
            "driver": "s3",
            "bucket": self.bucket,
            "path": f"{self.dataset}/{path}",
            "endpoint": self.endpoint_url,
            "aws_region": REGION,
            "aws_credentials": {"type": "anonymous"},
        }

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> OpenOrganelleReplica:
        objects = self._build()
        super().start()
        try:
            self.create_bucket(self.bucket)
            self.put_objects(self.bucket, objects)
            self.clear_request_log()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> OpenOrganelleReplica:
        return self.start()

    def _build(self) -> dict[str, bytes]:
        if self._objects is not None:
            return self._objects
        from emingest.testing.synthetic import SyntheticEM

        objects: dict[str, bytes] = {}
        for i, (name, em_path) in enumerate(self.em_array_paths.items()):
            main = name == DATASET
            s0 = SyntheticEM(self.shape, "int16" if main else "uint8", self.seed + i).array()
            pyramid = [s0]
            for _ in range(1, self.levels):
                pyramid.append(downsample_mean(pyramid[-1]))
            self._pyramids[name] = pyramid
            tree: dict[str, bytes] = {}
            zarr_root = f"{name}.zarr"
            recon = em_path.split("/")[1]
            for group in ("", f"/{recon}", f"/{recon}/em", em_path[len(zarr_root) :]):
                tree[f"{zarr_root}{group}/.zgroup"] = _json({"zarr_format": 2})
            tree[f"{em_path}/.zattrs"] = _json(self.zattrs)
            chunks, level = ((64, 64, 64), 1) if main else ((64, 128, 128), 6)
            for n, data in enumerate(pyramid):
                array = zarr_v2_array(
                    data, chunks, zstd_level=level, dimension_separator=self.dimension_separator
                )
                tree.update({f"{em_path}/s{n}/{k}": v for k, v in array.items()})
            if main:
                tree.update(self._label_tree(zarr_root, recon))
            if self.consolidated:
                tree[f"{zarr_root}/.zmetadata"] = _consolidate(tree, zarr_root)
            objects[f"{name}/thumbnail.jpg"] = _thumbnail(s0)
            objects.update({f"{name}/{k}": v for k, v in tree.items()})
        if self.root is not None:
            for key, body in objects.items():
                target = self.root / self.bucket / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
        self._objects = objects
        return objects

    def _label_tree(self, zarr_root: str, recon: str) -> dict[str, bytes]:
        from emingest.testing.synthetic import CLASS_ORGANELLE, SyntheticEM

        em = SyntheticEM(self.shape, "int16", self.seed)
        crop = [min(s, t) for s, t in zip(self.shape, self.TEST_SHAPE, strict=True)]
        classes = em.classes((slice(0, crop[0]), slice(0, crop[1]), slice(0, crop[2])))
        cell = np.indices(crop, dtype=np.uint64) // np.uint64(32)
        n_cells = [-(-s // 32) for s in crop]
        ids = (cell[0] * n_cells[1] + cell[1]) * n_cells[2] + cell[2] + np.uint64(1)
        self._labels = np.where(classes == CLASS_ORGANELLE, ids, np.uint64(0))
        group = self.label_array_path[len(zarr_root) :]
        tree = {
            f"{zarr_root}/{recon}/labels/.zgroup": _json({"zarr_format": 2}),
            f"{zarr_root}{group}/.zgroup": _json({"zarr_format": 2}),
            f"{zarr_root}{group}/.zattrs": _json({"multiscales": [cosem_multiscales(1)]}),
        }
        array = zarr_v2_array(
            self._labels,
            (64, 64, 64),
            zstd_level=1,
            skip_empty=True,
            dimension_separator=self.dimension_separator,
        )
        tree.update({f"{zarr_root}{group}/s0/{k}": v for k, v in array.items()})
        return tree


def _consolidate(tree: Mapping[str, bytes], zarr_root: str) -> bytes:
    """``.zmetadata`` as ``zarr.consolidate_metadata`` (v2) writes it at the hierarchy root."""
    docs = {}
    for key, body in tree.items():
        rel = key[len(zarr_root) + 1 :]
        if rel.rsplit("/", 1)[-1] in (".zgroup", ".zattrs", ".zarray"):
            docs[rel] = json.loads(body)
    return _json({"metadata": docs, "zarr_consolidated_format": 1})


def _thumbnail(volume: np.ndarray) -> bytes:
    """A JPEG of the middle slice, at most 256 px wide, contrast-stretched to 8 bits."""
    import imagecodecs

    plane = volume[volume.shape[0] // 2].astype(np.float64)
    step = max(1, -(-max(plane.shape) // 256))
    plane = plane[::step, ::step]
    lo, hi = float(plane.min()), float(plane.max())
    grey = np.clip((plane - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
    return bytes(imagecodecs.jpeg8_encode(grey, level=85))
