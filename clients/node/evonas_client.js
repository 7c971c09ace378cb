// A thin Node.js client for the evonas controller: loads proto/evonas/v1 at
// run time with @grpc/proto-loader and wraps what every script needs —
// deadlines on every call, chunked uploads and downloads, waiting for an
// experiment. Every other RPC is on `client.stub`.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const CHUNK_BYTES = 1 << 20;

function loadApi() {
  const definition = protoLoader.loadSync(
      ['evonas/v1/evonas_service.proto'], {
        includeDirs: [PROTO_ROOT],
        keepCase: true,     // field names as in the .proto
        longs: Number,      // int64 as JS numbers (counts and sizes fit)
        enums: String,      // enum values by name
        defaults: true,
        oneofs: true,
      });
  return grpc.loadPackageDefinition(definition).evonas.v1;
}

// Adds "authorization: Bearer TOKEN" to every call.
function bearerInterceptor(token) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.add('authorization', `Bearer ${token}`);
      next(metadata, listener);
    },
  });
}

class Client {
  // TLS by default: `tlsCa` is the PEM file to trust (e.g. the controller's
  // dev-cert), else the system's roots; `plaintext` only for a controller
  // started with --plaintext. `token` is a client token, by default
  // $EVONAS_TOKEN.
  constructor(address, {timeoutSeconds = 30, token = process.env.EVONAS_TOKEN,
                        tlsCa = undefined, plaintext = false} = {}) {
    this.api = loadApi();
    const credentials = plaintext
        ? grpc.credentials.createInsecure()
        : grpc.credentials.createSsl(tlsCa ? fs.readFileSync(tlsCa) : null);
    this.stub = new this.api.EvonasService(
        address, credentials,
        {interceptors: token ? [bearerInterceptor(token)] : []});
    this.timeoutSeconds = timeoutSeconds;
  }

  deadline(extraSeconds = 0) {
    return new Date(Date.now() + (this.timeoutSeconds + extraSeconds) * 1000);
  }

  unary(method, request) {
    return new Promise((resolve, reject) => {
      this.stub[method](request, {deadline: this.deadline()},
                        (err, response) => err ? reject(err) : resolve(response));
    });
  }

  // Uploads a CSV file in 1 MiB chunks; resolves to the Dataset.
  uploadDataset(file, name) {
    const bytes = fs.readFileSync(file);
    return new Promise((resolve, reject) => {
      const call = this.stub.UploadDataset(
          {deadline: this.deadline(bytes.length / CHUNK_BYTES)},
          (err, dataset) => err ? reject(err) : resolve(dataset));
      call.write({metadata: {name: name || path.basename(file),
                             size_bytes: bytes.length}});
      for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
        call.write({chunk: bytes.subarray(offset, offset + CHUNK_BYTES)});
      }
      call.end();
    });
  }

  createExperiment(spec) { return this.unary('CreateExperiment', {spec}); }
  getExperiment(id) { return this.unary('GetExperiment', {experiment_id: id}); }
  paretoFront(id) { return this.unary('GetParetoFront', {experiment_id: id}); }

  // Polls until the experiment is COMPLETED or CANCELLED.
  async wait(id, {pollSeconds = 2, timeoutSeconds = 3600, onProgress} = {}) {
    const until = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const experiment = await this.getExperiment(id);
      if (onProgress) onProgress(experiment);
      if (experiment.state === 'EXPERIMENT_STATE_COMPLETED' ||
          experiment.state === 'EXPERIMENT_STATE_CANCELLED') {
        return experiment;
      }
      if (Date.now() > until) {
        throw new Error(`experiment ${id} still running after ${timeoutSeconds} s`);
      }
      await new Promise((r) => setTimeout(r, pollSeconds * 1000));
    }
  }

  // Writes the candidate's TorchScript model to `file` after checking its
  // SHA-256; resolves to the number of bytes.
  downloadModel(candidateId, file) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let expected = '';
      const call = this.stub.DownloadModel({candidate_id: candidateId},
                                           {deadline: this.deadline(120)});
      call.on('data', (response) => {
        if (response.sha256) expected = response.sha256;
        chunks.push(response.chunk);
      });
      call.on('error', reject);
      call.on('end', () => {
        const bytes = Buffer.concat(chunks);
        const actual = crypto.createHash('sha256').update(bytes).digest('hex');
        if (actual !== expected) {
          reject(new Error(`model ${candidateId} arrived corrupted`));
          return;
        }
        const tmp = file + '.tmp';
        fs.writeFileSync(tmp, bytes);
        fs.renameSync(tmp, file);
        resolve(bytes.length);
      });
    });
  }

  close() { this.stub.close(); }
}

module.exports = {Client};
