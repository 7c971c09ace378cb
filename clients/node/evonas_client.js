// A thin Node.js client for the evonas controller: loads proto/evonas/v1 at
// run time with @grpc/proto-loader and wraps what every script needs —
// deadlines on every call, chunked uploads and downloads, waiting for an
// experiment. Every other RPC is on `client.stub`.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
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

// The file's bytes, gunzipped when it starts with gzip's magic number. The
// controller takes data sets uncompressed (DatasetFormat); the output is
// bounded like the CLI's, so a small malicious .gz cannot fill the memory.
const MAX_DECOMPRESSED_BYTES = 1 << 30;
function readMaybeGzip(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  return zlib.gunzipSync(bytes, {maxOutputLength: MAX_DECOMPRESSED_BYTES});
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

  // Uploads a data set in 1 MiB chunks; resolves to the Dataset. `file` is a
  // CSV file, or with {format: 'idx', labels: FILE} the images file of an
  // IDX pair (MNIST, Fashion-MNIST) and `labels` its labels file; either may
  // be gzip-compressed (.gz as shipped). The second argument may also be
  // just the name.
  uploadDataset(file, options = {}) {
    const {name, format = 'csv', labels} =
        typeof options === 'string' ? {name: options} : options;
    if (format !== 'csv' && format !== 'idx') {
      throw new Error(`format must be 'csv' or 'idx', not '${format}'`);
    }
    if ((format === 'idx') !== (labels !== undefined)) {
      throw new Error("labels is required with format 'idx' and only then");
    }
    const bytes = format === 'csv'
        ? readMaybeGzip(file)
        : Buffer.concat([readMaybeGzip(file), readMaybeGzip(labels)]);
    return new Promise((resolve, reject) => {
      const call = this.stub.UploadDataset(
          {deadline: this.deadline(bytes.length / CHUNK_BYTES)},
          (err, dataset) => err ? reject(err) : resolve(dataset));
      call.write({metadata: {name: name || path.basename(file),
                             size_bytes: bytes.length,
                             format: format === 'idx' ? 'DATASET_FORMAT_IDX'
                                                      : 'DATASET_FORMAT_CSV'}});
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
