// Dapr's JavaScript SDK, unchanged, against the embedded platform's sidecar: start-up probe
// (GetMetadata over gRPC, GET /v1.0/metadata over HTTP), publish and bulk publish over both.
// Prints one JSON line per protocol with what each call returned.
//
// Environment: DAPR_HOST, DAPR_HTTP_PORT, DAPR_GRPC_PORT, TOPIC (events go to TOPIC).
"use strict";

const { DaprClient, CommunicationProtocolEnum, LogLevel } = require("@dapr/dapr");

async function run(protocol, port) {
  const client = new DaprClient({
    daprHost: process.env.DAPR_HOST || "127.0.0.1",
    daprPort: port,
    communicationProtocol: protocol,
    logger: { level: LogLevel.Error },
  });
  const name = protocol === CommunicationProtocolEnum.GRPC ? "grpc" : "http";
  await client.start(); // waits until the sidecar's metadata answers
  const metadata = await client.metadata.get();
  const published = await client.pubsub.publish("pubsub", process.env.TOPIC, { via: name, kind: "single" });
  const bulk = await client.pubsub.publishBulk("pubsub", process.env.TOPIC, [
    { via: name, kind: "bulk", n: 1 },
    { via: name, kind: "bulk", n: 2 },
  ]);
  await client.stop();
  return { protocol: name, appId: metadata.id, published, failed: bulk.failedMessages.length };
}

(async () => {
  const results = [];
  results.push(await run(CommunicationProtocolEnum.GRPC, process.env.DAPR_GRPC_PORT));
  results.push(await run(CommunicationProtocolEnum.HTTP, process.env.DAPR_HTTP_PORT));
  process.stdout.write(JSON.stringify(results) + "\n");
  process.exit(0);
})().catch((error) => {
  process.stderr.write(`dapr client failed: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
