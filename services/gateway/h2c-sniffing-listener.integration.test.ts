import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSniffingListener } from "./h2c-sniffing-listener.js";

describe("createSniffingListener", () => {
  const h1 = http.createServer((req, res) => res.end(`h1 ${req.method} ${req.url}`));
  const h2 = http2.createServer((req, res) => res.end(`h2 ${req.method} ${req.url}`));
  const listener = createSniffingListener({ http1: (s) => h1.emit("connection", s), http2: (s) => h2.emit("connection", s) });
  let port = 0;

  beforeAll(async () => {
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    port = (listener.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    h1.closeAllConnections();
    await new Promise((resolve) => listener.close(resolve));
  });

  it("hands HTTP/1.1 to the HTTP/1.1 server even when the first bytes could start the preface", async () => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    socket.on("data", (d: Buffer) => (text += d.toString()));
    const closed = new Promise((resolve) => socket.on("close", resolve));
    socket.write("P");
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write("OST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    await closed;
    expect(text).toContain("200 OK");
    expect(text).toContain("h1 POST /x");
  });

  it("hands connections starting with the HTTP/2 preface to the HTTP/2 server", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": "/y" });
        let text = "";
        req.on("data", (d: Buffer) => (text += d.toString()));
        req.on("end", () => resolve(text));
        req.on("error", reject);
        req.end();
      });
      expect(body).toBe("h2 GET /y");
    } finally {
      session.close();
    }
  });
});
