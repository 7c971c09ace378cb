"""A thin Python client for the evonas controller.

It wraps the generated stubs of proto/evonas/v1 (make them with
generate_stubs.sh and put the output directory on sys.path) with the things
every script needs: deadlines on every call, chunked uploads and downloads,
and waiting for an experiment. Every other RPC is available through
`client.stub` with the messages from `evonas.v1`.
"""

import hashlib
import os
import time

import grpc

from evonas.v1 import evonas_service_pb2 as service_pb2
from evonas.v1 import evonas_service_pb2_grpc as service_grpc
from evonas.v1 import types_pb2

CHUNK_BYTES = 1 << 20
FINAL_STATES = (types_pb2.EXPERIMENT_STATE_COMPLETED,
                types_pb2.EXPERIMENT_STATE_CANCELLED)


class Client:
    """One channel and stub to an evonas controller."""

    def __init__(self, address, timeout=30.0):
        self.channel = grpc.insecure_channel(address)
        self.stub = service_grpc.EvonasServiceStub(self.channel)
        self.timeout = timeout

    def close(self):
        self.channel.close()

    def upload_dataset(self, path, name=None):
        """Uploads a CSV file in 1 MiB chunks; returns the evonas.v1.Dataset."""
        size = os.path.getsize(path)

        def requests():
            yield service_pb2.UploadDatasetRequest(
                metadata=service_pb2.UploadDatasetRequest.Metadata(
                    name=name or os.path.basename(path), size_bytes=size))
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
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
