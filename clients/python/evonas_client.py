"""A thin Python client for the evonas controller.

It wraps the generated stubs of proto/evonas/v1 (make them with
generate_stubs.sh and put the output directory on sys.path) with the things
every script needs: deadlines on every call, chunked uploads and downloads,
and waiting for an experiment. Every other RPC is available through
`client.stub` with the messages from `evonas.v1`.
"""

import gzip
import hashlib
import os
import time

import grpc

from evonas.v1 import evonas_service_pb2 as service_pb2
from evonas.v1 import evonas_service_pb2_grpc as service_grpc
from evonas.v1 import types_pb2

CHUNK_BYTES = 1 << 20
# Most bytes a data set may decompress to (a small .gz could otherwise fill
# memory): the controller's default upload limit.
MAX_DECOMPRESSED_BYTES = 1 << 30


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_decompressed(path, already=0):
    """The file's bytes, gunzipped if it is gzip, as a bytearray; ValueError
    if they would take the data set beyond MAX_DECOMPRESSED_BYTES."""
    out = bytearray()
    with (gzip.open if _is_gzip(path) else open)(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            out += chunk
            if already + len(out) > MAX_DECOMPRESSED_BYTES:
                raise ValueError(f"{path}: the data set would exceed "
                                 f"{MAX_DECOMPRESSED_BYTES} bytes")
    return out


class _HeaderInterceptor(grpc.UnaryUnaryClientInterceptor,
                         grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor,
                         grpc.StreamStreamClientInterceptor):
    """Adds the authorization header to every call of a plaintext channel."""

    def __init__(self, value):
        self._value = value

    def _with_header(self, details):
        metadata = list(details.metadata or []) + [
            ("authorization", self._value)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_header(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_header(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_header(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_header(details), requests)
FINAL_STATES = (types_pb2.EXPERIMENT_STATE_COMPLETED,
                types_pb2.EXPERIMENT_STATE_CANCELLED)


class _BearerToken(grpc.AuthMetadataPlugin):
    """Sends "authorization: Bearer TOKEN" with every call."""

    def __init__(self, token):
        self._metadata = (("authorization", "Bearer " + token),)

    def __call__(self, context, callback):
        callback(self._metadata, None)


class Client:
    """One channel and stub to an evonas controller.

    TLS by default: `tls_ca` is the PEM file to trust (e.g. the controller's
    dev-cert), else the system's roots; `plaintext=True` only for a
    controller started with --plaintext. `token` is a client token, by
    default $EVONAS_TOKEN.
    """

    def __init__(self, address, token=None, tls_ca=None, plaintext=False,
                 timeout=30.0):
        token = token if token is not None else os.environ.get("EVONAS_TOKEN")
        if plaintext:
            channel = grpc.insecure_channel(address)
            if token:
                # gRPC sends call credentials only over TLS; an interceptor
                # adds the header on plaintext channels (loopback, proxies).
                channel = grpc.intercept_channel(
                    channel, _HeaderInterceptor("Bearer " + token))
        else:
            roots = open(tls_ca, "rb").read() if tls_ca else None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            if token:
                credentials = grpc.composite_channel_credentials(
                    credentials,
                    grpc.metadata_call_credentials(_BearerToken(token)))
            channel = grpc.secure_channel(address, credentials)
        self.channel = channel
        self.stub = service_grpc.EvonasServiceStub(self.channel)
        self.timeout = timeout

    def close(self):
        self.channel.close()

    def upload_dataset(self, path, name=None, format="csv", labels=None):
        """Uploads a data set in 1 MiB chunks; returns the evonas.v1.Dataset.

        format "csv": the CSV file at `path`. format "idx": images in the IDX
        format of MNIST and Fashion-MNIST, the images file at `path` and the
        labels file at `labels` (the columns are then pixel_0 ..
        pixel_{h*w-1} and label). Gzip files (.gz as shipped) are
        decompressed first, up to MAX_DECOMPRESSED_BYTES.
        """
        formats = {"csv": types_pb2.DATASET_FORMAT_CSV,
                   "idx": types_pb2.DATASET_FORMAT_IDX}
        if format not in formats:
            raise ValueError(f"format must be csv or idx, not {format!r}")
        if (format == "idx") != (labels is not None):
            raise ValueError("labels= is required with format='idx' and "
                             "only allowed there")
        if format == "csv" and not _is_gzip(path):
            size = os.path.getsize(path)  # streamed from disk

            def chunks():
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK_BYTES):
                        yield chunk
        else:
            data = _read_decompressed(path)
            if labels is not None:
                data += _read_decompressed(labels, len(data))
            size = len(data)

            def chunks():
                for i in range(0, size, CHUNK_BYTES):
                    yield bytes(data[i:i + CHUNK_BYTES])

        def requests():
            yield service_pb2.UploadDatasetRequest(
                metadata=service_pb2.UploadDatasetRequest.Metadata(
                    name=name or os.path.basename(path), size_bytes=size,
                    format=formats[format]))
            for chunk in chunks():
                yield service_pb2.UploadDatasetRequest(chunk=chunk)

        return self.stub.UploadDataset(
            requests(), timeout=self.timeout + size / (1 << 20))

    def create_experiment(self, spec):
        """Starts a search for an evonas.v1.ExperimentSpec."""
        return self.stub.CreateExperiment(
            service_pb2.CreateExperimentRequest(spec=spec),
            timeout=self.timeout)

    def get_experiment(self, experiment_id):
        return self.stub.GetExperiment(
            service_pb2.GetExperimentRequest(experiment_id=experiment_id),
            timeout=self.timeout)

    def wait(self, experiment_id, poll_seconds=2.0, timeout=None,
             on_progress=None):
        """Polls until the experiment is completed or cancelled; returns it.

        Raises TimeoutError after `timeout` seconds. `on_progress` is called
        with each experiment state seen.
        """
        start = time.monotonic()
        while True:
            experiment = self.get_experiment(experiment_id)
            if on_progress:
                on_progress(experiment)
            if experiment.state in FINAL_STATES:
                return experiment
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"experiment {experiment_id} still running after "
                    f"{timeout} s")
            time.sleep(poll_seconds)

    def pareto_front(self, experiment_id):
        return self.stub.GetParetoFront(
            service_pb2.GetParetoFrontRequest(experiment_id=experiment_id),
            timeout=self.timeout)

    def download_model(self, candidate_id, path):
        """Writes the candidate's TorchScript model to `path` after checking
        its SHA-256; returns the number of bytes."""
        sha = hashlib.sha256()
        expected = None
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                for response in self.stub.DownloadModel(
                        service_pb2.DownloadModelRequest(
                            candidate_id=candidate_id),
                        timeout=self.timeout * 4):
                    if response.sha256:
                        expected = response.sha256
                    sha.update(response.chunk)
                    f.write(response.chunk)
            if expected != sha.hexdigest():
                raise IOError(f"model {candidate_id} arrived corrupted")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return os.path.getsize(path)
