// Loaded with `node --require` before one of Google's Node samples (node/, unchanged): makes
// `new CloudTasksClient()`, as the samples call it with no options, reach the emulator.
//
// @google-cloud/tasks reads no endpoint from the environment; without options it asks for
// Application Default Credentials and dials cloudtasks.googleapis.com:443 over TLS. This puts a
// subclass in the module's `CloudTasksClient` (what every sample takes; `v2.CloudTasksClient`
// is a getter and stays Google's) whose defaults are the options docs/emulator.md prints for
// Node; options a caller passes still win. The samples require the same module instance (one
// path in require's cache), so they construct the subclass. Nothing else is touched.
//
// The emulator is named the way our own wiring reads it: CLOUD_TASKS_EMULATOR_HOST (host:port),
// over gRPC unless ORDERTASKS_TASKS_TRANSPORT=rest.
'use strict';

const tasks = require('@google-cloud/tasks');
const {grpc} = require('google-gax');
const {GoogleAuth, PassThroughClient} = require('google-auth-library');

function emulatorOptions(host, transport) {
  const at = host.lastIndexOf(':');
  const apiEndpoint = host.slice(0, at);
  const port = Number(host.slice(at + 1));
  if (transport === 'grpc') {
    return {apiEndpoint, port, sslCreds: grpc.credentials.createInsecure()};
  }
  if (transport === 'rest') {
    return {apiEndpoint, port, fallback: true, protocol: 'http',
            auth: new GoogleAuth({authClient: new PassThroughClient()})};
  }
  throw new Error(`ORDERTASKS_TASKS_TRANSPORT must be grpc or rest, not ${transport}`);
}

const host = process.env.CLOUD_TASKS_EMULATOR_HOST;
if (!host) {
  throw new Error("set CLOUD_TASKS_EMULATOR_HOST=host:port to run Google's samples on the emulator");
}
const defaults = emulatorOptions(host, process.env.ORDERTASKS_TASKS_TRANSPORT || 'grpc');

class EmulatorCloudTasksClient extends tasks.CloudTasksClient {
  constructor(options = {}) {
    super({...defaults, ...options});
  }
}

tasks.CloudTasksClient = EmulatorCloudTasksClient;
