#!/usr/bin/env node
// The whole evonas flow from Node.js: upload a training and a holdout set,
// search, watch, read the Pareto front and download the most accurate model.
//   EVONAS_TOKEN=... node clients/node/example.js --controller localhost:50051 \
//       --tls-ca certs/cert.pem \
//       --train data/hartmann3/train.csv --holdout data/hartmann3/holdout.csv
'use strict';

const os = require('os');
const path = require('path');
const {parseArgs} = require('util');
const {Client} = require('./evonas_client');

async function main() {
  const {values: args} = parseArgs({options: {
    'controller': {type: 'string',
                   default: process.env.EVONAS_CONTROLLER || 'localhost:50051'},
    // PEM certificate to trust (default $EVONAS_TLS_CA, else the system's
    // roots). The token comes from $EVONAS_TOKEN: a flag would show in `ps`.
    'tls-ca': {type: 'string'},
    'plaintext': {type: 'boolean', default: false},
    'train': {type: 'string'},
    'holdout': {type: 'string'},
    'inputs': {type: 'string', default: 'x1,x2,x3'},
    'outputs': {type: 'string', default: 'y'},
    'budget-candidates': {type: 'string', default: '6'},
    'max-abs-error': {type: 'string', default: '1e-2'},
    'max-adam-steps': {type: 'string', default: '0'},
    'max-width': {type: 'string', default: '0'},
    'output': {type: 'string', default: path.join(os.tmpdir(), 'evonas-best.pt')},
  }});
  if (!args.train || !args.holdout) throw new Error('--train and --holdout are required');

  const client = new Client(args.controller, {
    tlsCa: args['tls-ca'] || process.env.EVONAS_TLS_CA,
    plaintext: args.plaintext,
  });
  const train = await client.uploadDataset(args.train);
  const holdout = await client.uploadDataset(args.holdout);
  console.log(`uploaded ${train.name}: ${train.row_count} rows, id ${train.id.slice(0, 12)}`);

  const spec = {
    name: 'node-example',
    dataset_id: train.id,
    test_dataset_id: holdout.id,
    input_columns: args.inputs.split(','),
    output_columns: args.outputs.split(','),
    requirements: {max_abs_error: Number(args['max-abs-error'])},
    budget: {max_candidates: Number(args['budget-candidates'])},
    seed: 1,
    search_space: {},
  };
  const maxSteps = Number(args['max-adam-steps']);
  if (maxSteps) {
    Object.assign(spec.search_space, {min_adam_steps: Math.min(100, maxSteps),
                                      max_adam_steps: maxSteps, lbfgs_steps: 20});
  }
  const maxWidth = Number(args['max-width']);
  if (maxWidth) {
    Object.assign(spec.search_space, {min_width: Math.min(8, maxWidth),
                                      max_width: maxWidth});
  }
  let experiment = await client.createExperiment(spec);
  console.log(`experiment ${experiment.id} created`);
  experiment = await client.wait(experiment.id, {
    pollSeconds: 1, timeoutSeconds: 900,
    onProgress: (e) => console.log(`  ${e.state}: ${e.counts.succeeded} succeeded, ` +
                                   `${e.counts.running} running, ${e.counts.failed} failed`),
  });
  const front = await client.paretoFront(experiment.id);
  console.log(`Pareto front (${front.candidates.length} candidates, feasible: ${front.has_feasible}):`);
  for (const c of front.candidates) {
    console.log(`  ${c.id}  val max err ${c.metrics.validation.max_abs_error.toExponential(3)}  ` +
                `params ${c.metrics.parameter_count}`);
  }
  if (front.candidates.length === 0) throw new Error('no candidate succeeded');
  const bytes = await client.downloadModel(front.candidates[0].id, args.output);
  console.log(`downloaded ${bytes} bytes to ${args.output}`);
  client.close();
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
