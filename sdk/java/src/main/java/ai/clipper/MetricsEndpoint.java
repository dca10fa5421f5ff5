package ai.clipper;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/** Serves the metrics as Prometheus text on {@code GET /metrics} (and {@code GET /healthz}), on a port of its own. */
final class MetricsEndpoint implements AutoCloseable {
  private final HttpServer server;
  private final ExecutorService executor;

  MetricsEndpoint(ModelMetrics metrics, String host, int port) throws IOException {
    server = HttpServer.create(new InetSocketAddress(host, port), 16);
    executor = Executors.newSingleThreadExecutor(runnable -> {
      Thread t = new Thread(runnable, "clipper-metrics");
      t.setDaemon(true);
      return t;
    });
    server.setExecutor(executor);
    server.createContext("/", exchange -> {
      try (exchange) {
        String path = exchange.getRequestURI().getPath();
        if (!"GET".equals(exchange.getRequestMethod()) || !(path.equals("/metrics") || path.equals("/healthz"))) {
          respond(exchange, 404, "text/plain", "no route for " + exchange.getRequestMethod() + " " + path + "\n");
        } else if (path.equals("/healthz")) {
          respond(exchange, 200, "text/plain", "ok\n");
        } else {
          StringBuilder text = new StringBuilder(4096);
          metrics.write(text);
          respond(exchange, 200, "text/plain; version=0.0.4; charset=utf-8", text.toString());
        }
      }
    });
    server.start();
  }

  int port() {
    return server.getAddress().getPort();
  }

  private static void respond(HttpExchange exchange, int status, String type, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", type);
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  @Override
  public void close() {
    server.stop(0);
    executor.shutdownNow();
  }
}
