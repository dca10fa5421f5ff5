// The edge limit: a minimal Node HTTP/1.1 server doing the gateway's JSON work
// and nothing else (parse the body, answer a prediction as JSON).
//   node --import tsx bench/baselines/json-server.ts [--port N]
import http from "node:http";
import type { AddressInfo } from "node:net";

const MAX_BODY_BYTES = 1 << 20;
const portFlag = process.argv.indexOf("--port");
const port = portFlag >= 0 ? Number(process.argv[portFlag + 1]) : 0;
let queryId = 0;

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on("end", () => {
    let status = 200;
    let answer: unknown;
    try {
      if (size > MAX_BODY_BYTES) throw new Error("body too large");
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { input?: unknown };
      if (!Array.isArray(body.input)) throw new Error("input is missing");
      answer = { query_id: ++queryId, output: 0, default: false };
    } catch (err) {
      status = 400;
      answer = { error: "invalid request", cause: (err as Error).message };
    }
    const text = JSON.stringify(answer);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  });
});
server.on("connection", (socket) => socket.setNoDelay(true));
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ msg: "listening", port: (server.address() as AddressInfo).port })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
