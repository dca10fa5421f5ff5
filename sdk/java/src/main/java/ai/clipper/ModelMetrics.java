package ai.clipper;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;

/**
 * The runtime's Prometheus series, named as the Python and TypeScript runtimes' (docs/metrics.md):
 * batches by outcome, inputs by outcome, batch sizes and time per batch, plus the JVM's heap and
 * threads. Written in Prometheus' text format by {@link #write(StringBuilder)}; counting is lock-free.
 */
final class ModelMetrics {
  static final double[] BATCH_BUCKETS = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  static final double[] LATENCY_BUCKETS = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  private final String labels;
  private final LongAdder requestsOk = new LongAdder();
  private final LongAdder requestsModelError = new LongAdder();
  private final LongAdder requestsInvalidInput = new LongAdder();
  private final LongAdder inputsOk = new LongAdder();
  private final LongAdder inputsError = new LongAdder();
  private final Histogram batchSize = new Histogram(BATCH_BUCKETS);
  private final Histogram predictSeconds = new Histogram(LATENCY_BUCKETS);

  ModelMetrics(String model, String version) {
    this.labels = "model=\"" + escape(model) + "\",version=\"" + escape(version) + "\"";
  }

  /** A batch the model ran: its size, how many of its outputs are errors, whether predict raised. */
  void batch(int size, int errors, boolean raised, long nanos) {
    (raised ? requestsModelError : requestsOk).increment();
    inputsOk.add(size - errors);
    inputsError.add(errors);
    batchSize.observe(size);
    predictSeconds.observe(nanos / 1e9);
  }

  void invalidInput(long nanos) {
    requestsInvalidInput.increment();
    predictSeconds.observe(nanos / 1e9);
  }

  /** Prometheus text exposition format, version 0.0.4. */
  void write(StringBuilder out) {
    header(out, "clipper_model_requests_total", "counter",
        "Batches (Predict calls and PredictStream messages), by outcome (ok, model_error, invalid_input).");
    sample(out, "clipper_model_requests_total", ",outcome=\"ok\"", requestsOk.sum());
    sample(out, "clipper_model_requests_total", ",outcome=\"model_error\"", requestsModelError.sum());
    sample(out, "clipper_model_requests_total", ",outcome=\"invalid_input\"", requestsInvalidInput.sum());
    header(out, "clipper_model_inputs_total", "counter", "Inputs predicted, by outcome of their output (ok, error).");
    sample(out, "clipper_model_inputs_total", ",outcome=\"ok\"", inputsOk.sum());
    sample(out, "clipper_model_inputs_total", ",outcome=\"error\"", inputsError.sum());
    header(out, "clipper_model_batch_size", "histogram", "Inputs per batch.");
    batchSize.write(out, "clipper_model_batch_size", labels);
    header(out, "clipper_model_predict_duration_seconds", "histogram",
        "Time to answer one batch (unpacking, the model's predict, packing).");
    predictSeconds.write(out, "clipper_model_predict_duration_seconds", labels);
    MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
    header(out, "clipper_jvm_memory_used_bytes", "gauge", "JVM memory in use, by area (heap, nonheap).");
    out.append("clipper_jvm_memory_used_bytes{area=\"heap\"} ").append(memory.getHeapMemoryUsage().getUsed()).append('\n');
    out.append("clipper_jvm_memory_used_bytes{area=\"nonheap\"} ").append(memory.getNonHeapMemoryUsage().getUsed()).append('\n');
    header(out, "clipper_jvm_threads", "gauge", "Live JVM threads.");
    out.append("clipper_jvm_threads ").append(ManagementFactory.getThreadMXBean().getThreadCount()).append('\n');
  }

  private static void header(StringBuilder out, String name, String type, String help) {
    out.append("# HELP ").append(name).append(' ').append(help).append('\n');
    out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
  }

  private void sample(StringBuilder out, String name, String extraLabels, long value) {
    out.append(name).append('{').append(labels).append(extraLabels).append("} ").append(value).append('\n');
  }

  static String escape(String value) {
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
  }

  static String number(double value) {
    if (value == Math.rint(value) && !Double.isInfinite(value) && Math.abs(value) < 1e15) return Long.toString((long) value);
    return Double.toString(value);
  }

  /** Cumulative buckets as Prometheus expects them, each bucket a LongAdder. */
  static final class Histogram {
    private final double[] bounds;
    private final LongAdder[] counts;
    private final LongAdder count = new LongAdder();
    private final DoubleAdder sum = new DoubleAdder();

    Histogram(double[] bounds) {
      this.bounds = bounds;
      this.counts = new LongAdder[bounds.length];
      for (int i = 0; i < bounds.length; i++) counts[i] = new LongAdder();
    }

    void observe(double value) {
      for (int i = 0; i < bounds.length; i++) {
        if (value <= bounds[i]) {
          counts[i].increment();
          break;
        }
      }
      count.increment();
      sum.add(value);
    }

    void write(StringBuilder out, String name, String labels) {
      long cumulative = 0;
      for (int i = 0; i < bounds.length; i++) {
        cumulative += counts[i].sum();
        out.append(name).append("_bucket{").append(labels).append(",le=\"").append(number(bounds[i])).append("\"} ")
            .append(cumulative).append('\n');
      }
      long total = count.sum();
      out.append(name).append("_bucket{").append(labels).append(",le=\"+Inf\"} ").append(total).append('\n');
      out.append(name).append("_sum{").append(labels).append("} ").append(sum.sum()).append('\n');
      out.append(name).append("_count{").append(labels).append("} ").append(total).append('\n');
    }
  }
}
