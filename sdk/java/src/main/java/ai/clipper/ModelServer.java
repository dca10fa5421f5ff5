package ai.clipper;

import clipper.model.v1.ModelServiceGrpc;
import io.grpc.Server;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Serves a {@link Model} as a Clipper model container: {@code clipper.model.v1.ModelService}
 * (Predict, PredictStream, GetMetadata, CheckReadiness) and {@code grpc.health.v1} on one port.
 *
 * <pre>{@code
 * public static void main(String[] args) throws Exception {
 *   Model<double[]> sum = inputs -> inputs.stream().map(xs -> String.valueOf(Arrays.stream(xs).sum())).toList();
 *   ModelServer.serve(sum, ServeOptions.fromEnv());   // until SIGTERM or SIGINT
 * }
 * }</pre>
 *
 * <p>Health is NOT_SERVING until the model is loaded ({@link #startLoading} then {@link #ready}; a
 * server {@link #start started} with a model is ready at once), SERVING then, and NOT_SERVING again
 * once {@link #close} begins. Closing lets the batches already received finish and be answered
 * (within {@link ServeOptions#grace()}), ends each PredictStream once its batches are answered, and
 * refuses new calls.
 */
public final class ModelServer implements AutoCloseable {
  private static final Logger log = Logger.getLogger("ai.clipper");
  static final String MODEL_SERVICE = ModelServiceGrpc.SERVICE_NAME;

  private final ServeOptions options;
  private final ModelServiceImpl service;
  private final HealthService health;
  private final ModelMetrics metrics;
  private final Server server;
  private final MetricsEndpoint metricsEndpoint;
  private final CountDownLatch closed = new CountDownLatch(1);
  private final OpenCalls openCalls = new OpenCalls();
  private volatile Model<?> model;
  private boolean closing;

  private ModelServer(ServeOptions options) throws IOException {
    this.options = Objects.requireNonNull(options, "options");
    this.metrics = new ModelMetrics(options.name(), options.version());
    this.service = new ModelServiceImpl(options);
    this.health = new HealthService(List.of("", MODEL_SERVICE, HealthGrpc.SERVICE_NAME));
    this.server = NettyServerBuilder.forAddress(new InetSocketAddress(options.host(), options.port()))
        .maxInboundMessageSize(options.maxMessageBytes())
        // The router's channels ping every 30 s; under grpc-java's default (5 min) an idle stream's pings end the connection.
        .permitKeepAliveTime(10, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .addStreamTracerFactory(openCalls)
        .addService(service)
        .addService(health)
        .build();
    try {
      server.start();
    } catch (IOException e) {
      throw new IOException("cannot bind " + options.host() + ":" + options.port() + ": " + e.getMessage(), e);
    }
    MetricsEndpoint endpoint = null;
    if (options.metricsPort() >= 0) {
      try {
        endpoint = new MetricsEndpoint(metrics, options.host(), options.metricsPort());
      } catch (IOException e) {
        server.shutdownNow();
        throw new IOException("cannot serve metrics on " + options.host() + ":" + options.metricsPort() + ": " + e.getMessage(), e);
      }
    }
    this.metricsEndpoint = endpoint;
  }

  /** Serves {@code model} until SIGTERM or SIGINT, then stops gracefully and returns. */
  public static void serve(Model<?> model, ServeOptions options) throws IOException, InterruptedException {
    ModelServer server = start(model, options);
    announce(server);
    server.closeOnSignal();
    server.awaitTermination();
  }

  /** A running server for {@code model}, SERVING at once. */
  public static ModelServer start(Model<?> model, ServeOptions options) throws IOException {
    ModelServer server = new ModelServer(options);
    server.ready(model);
    return server;
  }

  /**
   * A running server with no model yet: health NOT_SERVING, batches UNAVAILABLE, until
   * {@link #ready}. For models that take long to load: the container-manager sees a live process
   * that is not ready, rather than no process.
   */
  public static ModelServer startLoading(ServeOptions options) throws IOException {
    return new ModelServer(options);
  }

  /** The model is loaded: SERVING from now on. */
  public void ready(Model<?> loaded) {
    Objects.requireNonNull(loaded, "model");
    ModelTypes.check(loaded.getClass(), options.inputType());
    synchronized (this) {
      if (closing) throw new IllegalStateException("the server is closing");
      this.model = loaded;
    }
    service.ready(new BatchPredictor(loaded, options.inputType(), options.maxBatchSize(), metrics));
    health.setServing(true);
  }

  /** The port the server listens on. */
  public int port() {
    return server.getPort();
  }

  /** The port metrics are served on, or -1. */
  public int metricsPort() {
    return metricsEndpoint == null ? -1 : metricsEndpoint.port();
  }

  public ServeOptions options() {
    return options;
  }

  /** Stops gracefully within {@link ServeOptions#grace()}. */
  @Override
  public void close() {
    close(options.grace());
  }

  /**
   * Health turns NOT_SERVING, new calls are refused, the batches already received finish and are
   * answered, each PredictStream ends once its batches are answered; whatever is still running
   * after {@code grace} is cut. Returns whether everything finished within the grace period.
   */
  public boolean close(Duration grace) {
    synchronized (this) {
      if (closing) {
        awaitTerminationUninterruptibly();
        return true;
      }
      closing = true;
    }
    long deadline = System.nanoTime() + grace.toNanos();
    boolean clean = true;
    try {
      health.stop();
      service.drain();
      server.shutdown();
      // Every call answered (or the grace over): then the connections close at once.
      clean = openCalls.awaitNone(remainingNanos(deadline));
      server.shutdownNow().awaitTermination(1, TimeUnit.SECONDS);
      service.shutdownModelThreads(Math.max(0, TimeUnit.NANOSECONDS.toMillis(remainingNanos(deadline))));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      server.shutdownNow();
      clean = false;
    } finally {
      if (metricsEndpoint != null) metricsEndpoint.close();
      Model<?> loaded = model;
      if (loaded instanceof AutoCloseable) {
        try {
          ((AutoCloseable) loaded).close();
        } catch (Exception e) {
          log.log(Level.WARNING, "closing the model failed", e);
        }
      }
      closed.countDown();
    }
    return clean;
  }

  /** Blocks until the server has been closed. */
  public void awaitTermination() throws InterruptedException {
    closed.await();
  }

  private void awaitTerminationUninterruptibly() {
    boolean interrupted = false;
    while (true) {
      try {
        closed.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) Thread.currentThread().interrupt();
  }

  /** Closes the server on SIGTERM or SIGINT; the process then exits 0. */
  void closeOnSignal() {
    Signals.onTermination(() -> {
      log.info("stopping: batches in flight finish, then the server ends");
      close();
    });
  }

  static void announce(ModelServer server) {
    ServeOptions o = server.options;
    String metricsPort = server.metricsPort() >= 0 ? ",\"metricsPort\":" + server.metricsPort() : "";
    System.out.println("{\"msg\":\"listening\",\"port\":" + server.port() + ",\"model\":\"" + json(o.name())
        + "\",\"version\":\"" + json(o.version()) + "\",\"inputType\":\"" + o.inputType() + "\",\"runtime\":\"java "
        + json(System.getProperty("java.version")) + "\"" + metricsPort + "}");
    System.out.flush();
  }

  private static long remainingNanos(long deadline) {
    return Math.max(0, deadline - System.nanoTime());
  }

  static String json(String value) {
    StringBuilder out = new StringBuilder(value.length() + 8);
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    return out.toString();
  }
}
