package ai.clipper;

import java.time.Duration;
import java.util.Map;
import java.util.Objects;

/**
 * How a {@link ModelServer} serves a model. Build one with {@link #builder()}, or read what the
 * container-manager gives a replica with {@link #fromEnv()}. Defaults are filled in here only.
 */
public final class ServeOptions {
  /** The largest request or response message, as the Python and TypeScript runtimes allow. */
  public static final int DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
  /** Batches received and not yet answered on one PredictStream; beyond it the server stops reading. */
  public static final int DEFAULT_MAX_OPEN_BATCHES = 1024;
  /** Batches waiting for the model across the whole server; beyond it a batch fails RESOURCE_EXHAUSTED. */
  public static final int DEFAULT_MAX_QUEUED_BATCHES = 4096;
  public static final Duration DEFAULT_GRACE = Duration.ofSeconds(5);

  private final String name;
  private final String version;
  private final InputType inputType;
  private final String host;
  private final int port;
  private final int concurrency;
  private final int maxBatchSize;
  private final int maxOpenBatches;
  private final int maxQueuedBatches;
  private final int maxMessageBytes;
  private final int metricsPort;
  private final Duration grace;

  private ServeOptions(Builder b) {
    this.name = b.name;
    this.version = b.version;
    this.inputType = b.inputType;
    this.host = b.host;
    this.port = b.port;
    this.concurrency = b.concurrency;
    this.maxBatchSize = b.maxBatchSize;
    this.maxOpenBatches = b.maxOpenBatches;
    this.maxQueuedBatches = b.maxQueuedBatches;
    this.maxMessageBytes = b.maxMessageBytes;
    this.metricsPort = b.metricsPort;
    this.grace = b.grace;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding these options, to change some of them. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.name = name;
    b.version = version;
    b.inputType = inputType;
    b.host = host;
    b.port = port;
    b.concurrency = concurrency;
    b.maxBatchSize = maxBatchSize;
    b.maxOpenBatches = maxOpenBatches;
    b.maxQueuedBatches = maxQueuedBatches;
    b.maxMessageBytes = maxMessageBytes;
    b.metricsPort = metricsPort;
    b.grace = grace;
    return b;
  }

  /** The options the container-manager gives a replica, from this process's environment. */
  public static ServeOptions fromEnv() {
    return fromEnv(System.getenv());
  }

  /**
   * Reads CLIPPER_MODEL_PORT (required), CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION,
   * CLIPPER_INPUT_TYPE (required), CLIPPER_MODEL_HOST (127.0.0.1), CLIPPER_METRICS_PORT (none) and
   * CLIPPER_MODEL_CONCURRENCY (1).
   *
   * @throws IllegalArgumentException naming the variable that is missing or wrong
   */
  public static ServeOptions fromEnv(Map<String, String> env) {
    Builder b = builder();
    b.port(portVariable(env, "CLIPPER_MODEL_PORT", true));
    String inputType = env.getOrDefault("CLIPPER_INPUT_TYPE", "");
    if (inputType.isBlank()) throw new IllegalArgumentException("CLIPPER_INPUT_TYPE is not set");
    try {
      b.inputType(InputType.parse(inputType));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("CLIPPER_INPUT_TYPE: " + e.getMessage(), e);
    }
    String name = env.getOrDefault("CLIPPER_MODEL_NAME", "");
    if (!name.isBlank()) b.name(name);
    String version = env.getOrDefault("CLIPPER_MODEL_VERSION", "");
    if (!version.isBlank()) b.version(version);
    String host = env.getOrDefault("CLIPPER_MODEL_HOST", "");
    if (!host.isBlank()) b.host(host);
    int metricsPort = portVariable(env, "CLIPPER_METRICS_PORT", false);
    if (metricsPort >= 0) b.metricsPort(metricsPort);
    String concurrency = env.getOrDefault("CLIPPER_MODEL_CONCURRENCY", "");
    if (!concurrency.isBlank()) {
      try {
        b.concurrency(Integer.parseInt(concurrency.trim()));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            "CLIPPER_MODEL_CONCURRENCY must be a positive integer, got \"" + concurrency + "\"", e);
      }
    }
    return b.build();
  }

  /** The port in a variable; -1 when it is unset and not required. */
  private static int portVariable(Map<String, String> env, String key, boolean required) {
    String raw = env.getOrDefault(key, "").trim();
    if (raw.isEmpty()) {
      if (required) throw new IllegalArgumentException(key + " is not set");
      return -1;
    }
    try {
      int port = Integer.parseInt(raw);
      if (port < 0 || port > 65535) throw new NumberFormatException();
      return port;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " must be a port number (0..65535), got \"" + raw + "\"", e);
    }
  }

  public String name() {
    return name;
  }

  public String version() {
    return version;
  }

  public InputType inputType() {
    return inputType;
  }

  public String host() {
    return host;
  }

  /** The port asked for; 0 picks a free one ({@link ModelServer#port()} is the bound port). */
  public int port() {
    return port;
  }

  public int concurrency() {
    return concurrency;
  }

  public int maxBatchSize() {
    return maxBatchSize;
  }

  public int maxOpenBatches() {
    return maxOpenBatches;
  }

  public int maxQueuedBatches() {
    return maxQueuedBatches;
  }

  public int maxMessageBytes() {
    return maxMessageBytes;
  }

  /** Where Prometheus metrics are served; -1 (the default) serves none, 0 picks a free port. */
  public int metricsPort() {
    return metricsPort;
  }

  /** How long a stopping server lets batches in flight finish before cutting them. */
  public Duration grace() {
    return grace;
  }

  @Override
  public String toString() {
    return "ServeOptions{name=" + name + ", version=" + version + ", inputType=" + inputType + ", host=" + host
        + ", port=" + port + ", concurrency=" + concurrency + ", maxBatchSize=" + maxBatchSize + "}";
  }

  /** Every setter checks its value; {@link #build()} needs an input type. */
  public static final class Builder {
    private String name = "model";
    private String version = "1";
    private InputType inputType;
    private String host = "127.0.0.1";
    private int port = 0;
    private int concurrency = 1;
    private int maxBatchSize = 0;
    private int maxOpenBatches = DEFAULT_MAX_OPEN_BATCHES;
    private int maxQueuedBatches = DEFAULT_MAX_QUEUED_BATCHES;
    private int maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
    private int metricsPort = -1;
    private Duration grace = DEFAULT_GRACE;

    private Builder() {}

    public Builder name(String name) {
      this.name = nonBlank(name, "name");
      return this;
    }

    public Builder version(String version) {
      this.version = nonBlank(version, "version");
      return this;
    }

    public Builder inputType(InputType inputType) {
      this.inputType = Objects.requireNonNull(inputType, "inputType");
      return this;
    }

    public Builder host(String host) {
      this.host = nonBlank(host, "host");
      return this;
    }

    public Builder port(int port) {
      this.port = inRange(port, 0, 65535, "port");
      return this;
    }

    public Builder concurrency(int concurrency) {
      this.concurrency = inRange(concurrency, 1, 1024, "concurrency");
      return this;
    }

    public Builder maxBatchSize(int maxBatchSize) {
      this.maxBatchSize = inRange(maxBatchSize, 0, Integer.MAX_VALUE, "maxBatchSize");
      return this;
    }

    public Builder maxOpenBatches(int maxOpenBatches) {
      this.maxOpenBatches = inRange(maxOpenBatches, 1, 1 << 20, "maxOpenBatches");
      return this;
    }

    public Builder maxQueuedBatches(int maxQueuedBatches) {
      this.maxQueuedBatches = inRange(maxQueuedBatches, 1, 1 << 24, "maxQueuedBatches");
      return this;
    }

    public Builder maxMessageBytes(int maxMessageBytes) {
      this.maxMessageBytes = inRange(maxMessageBytes, 1024, Integer.MAX_VALUE, "maxMessageBytes");
      return this;
    }

    public Builder metricsPort(int metricsPort) {
      this.metricsPort = inRange(metricsPort, -1, 65535, "metricsPort");
      return this;
    }

    public Builder grace(Duration grace) {
      if (grace.isNegative()) throw new IllegalArgumentException("grace must not be negative, got " + grace);
      this.grace = grace;
      return this;
    }

    public ServeOptions build() {
      if (inputType == null) throw new IllegalStateException("inputType is not set");
      return new ServeOptions(this);
    }

    private static String nonBlank(String value, String field) {
      if (value == null || value.isBlank()) throw new IllegalArgumentException(field + " must not be blank");
      return value;
    }

    private static int inRange(int value, int min, int max, String field) {
      if (value < min || value > max) {
        throw new IllegalArgumentException(field + " must be in " + min + ".." + max + ", got " + value);
      }
      return value;
    }
  }
}
