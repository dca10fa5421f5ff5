package ai.clipper.bench;

import clipper.v1.PredictionServiceGrpc;
import clipper.v1.PredictionServiceOuterClass.DoubleVector;
import clipper.v1.PredictionServiceOuterClass.Input;
import clipper.v1.PredictionServiceOuterClass.PredictRequest;
import clipper.v1.PredictionServiceOuterClass.PredictResponse;
import com.google.protobuf.util.JsonFormat;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A Java client of the gateway's clipper.v1.PredictionService for bench/grpc-edge.ts: grpc-java's async stub,
 * a few channels (one per worker; callers spread over them), a closed loop of concurrent callers for a fixed
 * time. Prints one JSON line: requests, errors, rps, p50_ms, p99_ms, cpu_s (while timed). With --check: one call, its prediction as JSON.
 */
public final class GrpcEdgeClient {
  /** A call that takes longer than this counts as an error (the gateway's SLO answers far sooner). */
  private static final long CALL_TIMEOUT_MS = 10_000;

  private GrpcEdgeClient() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parse(argv);
    String target = required(args, "--target");
    PredictRequest request =
        PredictRequest.newBuilder()
            .setApplication(required(args, "--application"))
            .setInput(Input.newBuilder().setDoubles(DoubleVector.newBuilder().addAllValues(List.of(1.1, 2.2, 3.3))))
            .build();
    if (args.containsKey("--check")) {
      ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
      PredictResponse res =
          PredictionServiceGrpc.newBlockingStub(channel).withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).predict(request);
      System.out.println(JsonFormat.printer().omittingInsignificantWhitespace().print(res.getPrediction()));
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      return;
    }
    int concurrency = bounded(args, "--concurrency", 64, 4096);
    int channels = bounded(args, "--channels", Math.min(4, concurrency), concurrency);
    double durationS = Double.parseDouble(args.getOrDefault("--duration", "10"));
    if (!(durationS > 0 && durationS <= 600)) throw new IllegalArgumentException("--duration must be in (0, 600] seconds");

    List<ManagedChannel> pool = new ArrayList<>();
    for (int i = 0; i < channels; i++) pool.add(ManagedChannelBuilder.forTarget(target).usePlaintext().build());
    // Connected (and the JIT warmed a little) before the clock starts.
    for (ManagedChannel channel : pool) {
      for (int i = 0; i < 200; i++) PredictionServiceGrpc.newBlockingStub(channel).withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).predict(request);
    }

    double cpuAtStart = cpuSeconds();
    long endAt = System.nanoTime() + (long) (durationS * 1e9);
    long[][] latencies = new long[concurrency][];
    int[] counts = new int[concurrency];
    AtomicLong errors = new AtomicLong();
    CountDownLatch done = new CountDownLatch(concurrency);
    for (int c = 0; c < concurrency; c++) {
      latencies[c] = new long[1024];
      PredictionServiceGrpc.PredictionServiceStub stub = PredictionServiceGrpc.newStub(pool.get(c % channels));
      new Caller(stub, request, endAt, c, latencies, counts, errors, done).next();
    }
    done.await();
    double cpuS = cpuSeconds() - cpuAtStart;
    for (ManagedChannel channel : pool) channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);

    int total = 0;
    for (int n : counts) total += n;
    long[] all = new long[total];
    int at = 0;
    for (int c = 0; c < concurrency; c++) {
      System.arraycopy(latencies[c], 0, all, at, counts[c]);
      at += counts[c];
    }
    Arrays.sort(all);
    System.out.printf(
        "{\"requests\": %d, \"errors\": %d, \"rps\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"cpu_s\": %.3f}%n",
        total, errors.get(), total / durationS, percentile(all, 0.50), percentile(all, 0.99),
        cpuS);
  }

  /** One closed-loop caller: the next call leaves when the previous one is answered, until the end time. */
  private static final class Caller implements StreamObserver<PredictResponse> {
    private final PredictionServiceGrpc.PredictionServiceStub stub;
    private final PredictRequest request;
    private final long endAt;
    private final int id;
    private final long[][] latencies;
    private final int[] counts;
    private final AtomicLong errors;
    private final CountDownLatch done;
    private long sentAt;

    Caller(PredictionServiceGrpc.PredictionServiceStub stub, PredictRequest request, long endAt, int id, long[][] latencies, int[] counts, AtomicLong errors, CountDownLatch done) {
      this.stub = stub;
      this.request = request;
      this.endAt = endAt;
      this.id = id;
      this.latencies = latencies;
      this.counts = counts;
      this.errors = errors;
      this.done = done;
    }

    void next() {
      sentAt = System.nanoTime();
      if (sentAt >= endAt) {
        done.countDown();
        return;
      }
      stub.withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS).predict(request, this);
    }

    @Override
    public void onNext(PredictResponse value) {
      long[] mine = latencies[id];
      if (counts[id] == mine.length) latencies[id] = mine = Arrays.copyOf(mine, mine.length * 2);
      mine[counts[id]++] = System.nanoTime() - sentAt;
    }

    @Override
    public void onError(Throwable t) {
      errors.incrementAndGet();
      next();
    }

    @Override
    public void onCompleted() {
      next();
    }
  }

  /** The whole JVM's CPU time (JIT and GC threads too): what the client costs, for the bench's CPU per request. */
  private static double cpuSeconds() {
    return ProcessHandle.current().info().totalCpuDuration().map(d -> d.toNanos() / 1e9).orElse(Double.NaN);
  }

  private static double percentile(long[] sorted, double p) {
    if (sorted.length == 0) return Double.NaN;
    return sorted[Math.min(sorted.length - 1, (int) (p * sorted.length))] / 1e6;
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      if (argv[i].equals("--check")) args.put("--check", "");
      else if (argv[i].startsWith("--") && i + 1 < argv.length) args.put(argv[i], argv[++i]);
      else throw new IllegalArgumentException("unexpected argument " + argv[i]);
    }
    return args;
  }

  private static String required(Map<String, String> args, String name) {
    String value = args.get(name);
    if (value == null) throw new IllegalArgumentException(name + " is required");
    return value;
  }

  private static int bounded(Map<String, String> args, String name, int fallback, int max) {
    int value = args.containsKey(name) ? Integer.parseInt(args.get(name)) : fallback;
    if (value < 1 || value > max) throw new IllegalArgumentException(name + " must be in [1, " + max + "]");
    return value;
  }
}
