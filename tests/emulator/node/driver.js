// Drives the official Node client (@google-cloud/tasks) for the conformance matrix.
//
//   node driver.js grpc|rest PORT
//
// Reads one JSON command per line on stdin ({"op": "createQueue", ...}) and answers one JSON
// line per command on stdout: {"ok": RESULT} or {"error": {"code": N, "message": "..."}},
// where N is the google.rpc.Code the client reported. The emulator is reached at 127.0.0.1:PORT
// with no credentials: an insecure gRPC channel, or the REST fallback over plain HTTP.
'use strict';

const readline = require('node:readline');
const {CloudTasksClient} = require('@google-cloud/tasks');
const {PassThroughClient} = require('google-auth-library');
const gax = require('google-gax');

function makeClient(transport, port) {
  if (transport === 'grpc') {
    return new CloudTasksClient({apiEndpoint: '127.0.0.1', port, sslCreds: gax.grpc.credentials.createInsecure()});
  }
  if (transport === 'rest') {
    return new CloudTasksClient({apiEndpoint: '127.0.0.1', port, fallback: true, protocol: 'http',
                                 authClient: new PassThroughClient()});
  }
  throw new Error(`transport must be grpc or rest, got ${transport}`);
}

// gRPC errors carry the server's message in `details` (a string); REST fallback errors in
// `message`, with `details` an array of google.rpc.Status details.
function errorText(err) {
  return typeof err.details === 'string' && err.details ? err.details : String(err.message || '');
}

function seconds(epoch) {
  return {seconds: Math.floor(epoch), nanos: 0};
}

const OPS = {
  async createQueue(client, cmd) {
    const [queue] = await client.createQueue({parent: cmd.parent, queue: {name: cmd.name}});
    return {name: queue.name, state: String(queue.state)};
  },
  async createTask(client, cmd) {
    const task = {
      name: cmd.name,
      scheduleTime: seconds(cmd.scheduleTime),
      httpRequest: {
        url: cmd.url, httpMethod: 'POST', headers: cmd.headers || {}, body: Buffer.from(cmd.body || ''),
        oidcToken: cmd.account ? {serviceAccountEmail: cmd.account, audience: cmd.audience} : undefined,
      },
    };
    const [created] = await client.createTask({parent: cmd.parent, task});
    return {name: created.name, scheduleTime: Number(created.scheduleTime.seconds)};
  },
  async listTasks(client, cmd) {
    const [tasks] = await client.listTasks({parent: cmd.parent});
    return tasks.map((t) => t.name);
  },
  async runTask(client, cmd) {
    const [task] = await client.runTask({name: cmd.name});
    return {name: task.name};
  },
  async getTask(client, cmd) {
    const [task] = await client.getTask({name: cmd.name});
    return {name: task.name};
  },
  async deleteTask(client, cmd) {
    await client.deleteTask({name: cmd.name});
    return {};
  },
};

async function main() {
  const [transport, port] = [process.argv[2], Number(process.argv[3])];
  const client = makeClient(transport, port);
  const lines = readline.createInterface({input: process.stdin});
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    let answer;
    try {
      const op = OPS[cmd.op];
      if (!op) throw new Error(`unknown op ${cmd.op}`);
      answer = {ok: await op(client, cmd)};
    } catch (err) {
      answer = {error: {code: typeof err.code === "number" ? err.code : -1, message: errorText(err)}};
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  }
  await client.close();
}

main().catch((err) => {
  process.stderr.write(`driver failed: ${err.stack || err}\n`);
  process.exit(1);
});
