package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import clipper.common.v1.Data;
import clipper.model.v1.ModelServiceGrpc;
import clipper.model.v1.ModelServiceOuterClass.CheckReadinessRequest;
import clipper.model.v1.ModelServiceOuterClass.GetMetadataRequest;
import clipper.model.v1.ModelServiceOuterClass.GetMetadataResponse;
import clipper.model.v1.ModelServiceOuterClass.PredictRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictResponse;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamResponse;
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ModelServerTest {
  private final List<AutoCloseable> cleanup = new ArrayList<>();

  @AfterEach
  void tearDown() throws Exception {
    Collections.reverse(cleanup);
    for (AutoCloseable c : cleanup) c.close();
  }

  private ModelServer start(Model<?> model, ServeOptions.Builder options) throws Exception {
    ModelServer server = ModelServer.start(model, options.build());
    cleanup.add(() -> server.close(Duration.ofSeconds(1)));
    return server;
  }

  private ManagedChannel channel(ModelServer server) {
    ManagedChannel channel = ManagedChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
        .maxInboundMessageSize(128 << 20).build();
    cleanup.add(() -> channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
    return channel;
  }

  private static ServeOptions.Builder options(InputType type) {
    return ServeOptions.builder().name("test").version("2").inputType(type);
  }

  private static Data.Inputs strings(String... values) {
    return Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_STRINGS).addAllStrings(List.of(values)).build();
  }

  private static List<String> values(List<Data.Output> outputs) {
    return outputs.stream().map(o -> o.hasError() ? "error: " + o.getError() : o.getValue()).toList();
  }

  /** Echoes each string; "sleep:MS" sleeps first. Counts batches running at once. */
  static final class Echo implements Model<String> {
    final AtomicInteger running = new AtomicInteger();
    final AtomicInteger mostRunning = new AtomicInteger();

    @Override
    public List<String> predict(List<String> inputs) throws InterruptedException {
      int now = running.incrementAndGet();
      mostRunning.accumulateAndGet(now, Math::max);
      try {
        for (String s : inputs) if (s.startsWith("sleep:")) Thread.sleep(Long.parseLong(s.substring(6)));
        return inputs;
      } finally {
        running.decrementAndGet();
      }
    }
  }

  @Test
  void predictsABatchOfEachInputType() throws Exception {
    Model<double[]> sum = inputs -> inputs.stream().map(xs -> String.valueOf(java.util.Arrays.stream(xs).sum())).toList();
    ModelServer server = start(sum, options(InputType.DOUBLES));
    PredictResponse r = ModelServiceGrpc.newBlockingStub(channel(server))
        .predict(PredictRequest.newBuilder().setInputs(BatchesTest.doubles(new double[] {1, 2}, new double[] {0.5})).build());
    assertEquals(List.of("3.0", "0.5"), values(r.getOutputsList()));

    Model<byte[]> length = inputs -> inputs.stream().map(b -> String.valueOf(b.length)).toList();
    ModelServer bytes = start(length, options(InputType.BYTES));
    Data.Inputs two = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_BYTES)
        .addBytes(ByteString.copyFrom(new byte[3])).addBytes(ByteString.EMPTY).build();
    assertEquals(List.of("3", "0"),
        values(ModelServiceGrpc.newBlockingStub(channel(bytes)).predict(PredictRequest.newBuilder().setInputs(two).build()).getOutputsList()));
  }

  @Test
  void inputsOfAnotherTypeAreInvalidArgumentAndTheServerGoesOn() throws Exception {
    ModelServer server = start(new Echo(), options(InputType.STRINGS));
    ModelServiceGrpc.ModelServiceBlockingStub stub = ModelServiceGrpc.newBlockingStub(channel(server));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> stub.predict(PredictRequest.newBuilder().setInputs(BatchesTest.doubles(new double[] {1})).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals(List.of("a"), values(stub.predict(PredictRequest.newBuilder().setInputs(strings("a")).build()).getOutputsList()));
  }

  @Test
  void describesTheModel() throws Exception {
    ModelServer server = start(new Echo(), options(InputType.STRINGS).maxBatchSize(32));
    ManagedChannel channel = channel(server);
    GetMetadataResponse m = ModelServiceGrpc.newBlockingStub(channel).getMetadata(GetMetadataRequest.getDefaultInstance());
    assertEquals("test", m.getModelName());
    assertEquals("2", m.getModelVersion());
    assertEquals(Data.InputType.INPUT_TYPE_STRINGS, m.getInputType());
    assertTrue(m.getRuntime().startsWith("java "), m.getRuntime());
    assertEquals(32, m.getMaxBatchSize());
    assertTrue(ModelServiceGrpc.newBlockingStub(channel).checkReadiness(CheckReadinessRequest.getDefaultInstance()).getReady());
  }

  @Test
  void notServingUntilTheModelIsLoaded() throws Exception {
    ModelServer server = ModelServer.startLoading(options(InputType.STRINGS).build());
    cleanup.add(server);
    ManagedChannel channel = channel(server);
    HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel);
    assertEquals(ServingStatus.NOT_SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
    assertFalse(ModelServiceGrpc.newBlockingStub(channel).checkReadiness(CheckReadinessRequest.getDefaultInstance()).getReady());
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> ModelServiceGrpc.newBlockingStub(channel).predict(PredictRequest.newBuilder().setInputs(strings("a")).build()));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    Iterator<HealthCheckResponse> watch = HealthGrpc.newBlockingStub(channel).watch(HealthCheckRequest.getDefaultInstance());
    assertEquals(ServingStatus.NOT_SERVING, watch.next().getStatus());

    server.ready(new Echo());
    assertEquals(ServingStatus.SERVING, watch.next().getStatus());
    assertEquals(ServingStatus.SERVING,
        health.check(HealthCheckRequest.newBuilder().setService("clipper.model.v1.ModelService").build()).getStatus());
    StatusRuntimeException unknown = assertThrows(StatusRuntimeException.class,
        () -> health.check(HealthCheckRequest.newBuilder().setService("no.such.Service").build()));
    assertEquals(Status.Code.NOT_FOUND, unknown.getStatus().getCode());

    server.close(Duration.ofSeconds(1));
    assertEquals(ServingStatus.NOT_SERVING, watch.next().getStatus());
    assertFalse(watch.hasNext(), "the Watch call ends when the server stops");
  }

  /** Collects a PredictStream's answers. */
  static final class Answers implements StreamObserver<PredictStreamResponse> {
    final BlockingQueue<PredictStreamResponse> received = new LinkedBlockingQueue<>();
    final CountDownLatch done = new CountDownLatch(1);
    volatile Throwable error;

    @Override
    public void onNext(PredictStreamResponse value) {
      received.add(value);
    }

    @Override
    public void onError(Throwable t) {
      error = t;
      done.countDown();
    }

    @Override
    public void onCompleted() {
      done.countDown();
    }

    PredictStreamResponse next() throws InterruptedException {
      PredictStreamResponse r = received.poll(10, TimeUnit.SECONDS);
      if (r == null) throw new AssertionError("no answer within 10 s");
      return r;
    }
  }

  private static PredictStreamRequest batch(long id, String... values) {
    return PredictStreamRequest.newBuilder().setBatchId(id).setInputs(strings(values)).build();
  }

  @Test
  void answersManyStreamedBatchesAsTheyComplete() throws Exception {
    ModelServer server = start(new Echo(), options(InputType.STRINGS).concurrency(4));
    Answers answers = new Answers();
    StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel(server)).predictStream(answers);
    requests.onNext(batch(0, "sleep:300", "first"));
    for (long id = 1; id < 64; id++) requests.onNext(batch(id, "b" + id));
    requests.onNext(PredictStreamRequest.newBuilder().setBatchId(64).setInputs(BatchesTest.doubles(new double[] {1})).build());
    Map<Long, PredictStreamResponse> byId = new ConcurrentHashMap<>();
    List<Long> order = new ArrayList<>();
    for (int i = 0; i <= 64; i++) {
      PredictStreamResponse r = answers.next();
      order.add(r.getBatchId());
      assertEquals(null, byId.put(r.getBatchId(), r), "batch " + r.getBatchId() + " answered twice");
    }
    requests.onCompleted();
    assertTrue(answers.done.await(5, TimeUnit.SECONDS));
    assertEquals(null, answers.error);
    assertNotEquals(0L, order.get(0), "the slow first batch is answered after faster ones");
    assertEquals(List.of("sleep:300", "first"), values(byId.get(0L).getOutputsList()));
    assertEquals(List.of("b17"), values(byId.get(17L).getOutputsList()));
    assertEquals(Status.Code.INVALID_ARGUMENT.value(), byId.get(64L).getErrorCode(), "a bad batch fails alone");
  }

  @Test
  void aStreamHoldsAtMostMaxOpenBatches() throws Exception {
    Echo echo = new Echo();
    ModelServer server = start(echo, options(InputType.STRINGS).concurrency(8).maxOpenBatches(2));
    Answers answers = new Answers();
    StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel(server)).predictStream(answers);
    for (long id = 0; id < 10; id++) requests.onNext(batch(id, "sleep:50"));
    for (int i = 0; i < 10; i++) assertEquals(0, answers.next().getErrorCode());
    requests.onCompleted();
    assertTrue(answers.done.await(5, TimeUnit.SECONDS));
    assertEquals(2, echo.mostRunning.get(), "never more than maxOpenBatches batches of one stream at once");
  }

  @Test
  void oneBatchAtATimeByDefault() throws Exception {
    Echo echo = new Echo();
    ModelServer server = start(echo, options(InputType.STRINGS));
    Answers answers = new Answers();
    StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel(server)).predictStream(answers);
    for (long id = 0; id < 5; id++) requests.onNext(batch(id, "sleep:20"));
    List<Long> order = new ArrayList<>();
    for (int i = 0; i < 5; i++) order.add(answers.next().getBatchId());
    requests.onCompleted();
    assertEquals(List.of(0L, 1L, 2L, 3L, 4L), order);
    assertEquals(1, echo.mostRunning.get());
  }

  /** Concurrency 1 runs a stream's batches in its own thread, above 1 on the model's pool: both drain alike. */
  @ParameterizedTest
  @ValueSource(ints = {1, 2})
  void closingLetsBatchesInFlightFinishAndEndsTheStream(int concurrency) throws Exception {
    ModelServer server = ModelServer.start(new Echo(), options(InputType.STRINGS).concurrency(concurrency).build());
    ManagedChannel channel = channel(server);
    Answers answers = new Answers();
    StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel).predictStream(answers);
    requests.onNext(batch(1, "sleep:400", "in flight"));
    Thread.sleep(100);
    Thread closer = new Thread(() -> server.close(Duration.ofSeconds(5)));
    closer.start();
    PredictStreamResponse r = answers.next();
    assertEquals(1, r.getBatchId());
    assertEquals(List.of("sleep:400", "in flight"), values(r.getOutputsList()));
    assertTrue(answers.done.await(5, TimeUnit.SECONDS), "the stream ends once its batches are answered");
    assertEquals(null, answers.error);
    closer.join(5000);
    assertFalse(closer.isAlive());
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> ModelServiceGrpc.newBlockingStub(channel).predict(PredictRequest.newBuilder().setInputs(strings("late")).build()));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
  }

  @Test
  void atConcurrencyOneStreamsAndUnaryCallsShareTheModel() throws Exception {
    Echo echo = new Echo();
    ModelServer server = start(echo, options(InputType.STRINGS));
    ManagedChannel channel = channel(server);
    List<Answers> streams = new ArrayList<>();
    for (int s = 0; s < 3; s++) {
      Answers answers = new Answers();
      StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel).predictStream(answers);
      for (long id = 0; id < 4; id++) requests.onNext(batch(id, "sleep:10", "s" + s));
      requests.onCompleted();
      streams.add(answers);
    }
    assertEquals(List.of("u"), values(ModelServiceGrpc.newBlockingStub(channel).predict(PredictRequest.newBuilder().setInputs(strings("u")).build()).getOutputsList()));
    assertEquals(ServingStatus.SERVING, HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.getDefaultInstance()).getStatus());
    for (Answers answers : streams) {
      for (int i = 0; i < 4; i++) assertEquals(0, answers.next().getErrorCode());
      assertTrue(answers.done.await(5, TimeUnit.SECONDS));
    }
    assertEquals(1, echo.mostRunning.get(), "one batch at a time across streams and unary calls");
  }

  @Test
  void closingSoonAfterAnOversizedMessage() throws Exception {
    ModelServer server = ModelServer.start(new Echo(), options(InputType.STRINGS).maxMessageBytes(1 << 20).build());
    ModelServiceGrpc.ModelServiceBlockingStub stub = ModelServiceGrpc.newBlockingStub(channel(server));
    assertThrows(StatusRuntimeException.class,
        () -> stub.predict(PredictRequest.newBuilder().setInputs(strings("x".repeat(2 << 20))).build()));
    long started = System.nanoTime();
    assertTrue(server.close(Duration.ofSeconds(5)));
    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
    assertTrue(ms < 2000, "closed in " + ms + " ms: a refused message's half-open stream must not hold the server for its grace");
  }

  @Test
  void refusesAnOversizedMessageAndGoesOn() throws Exception {
    ModelServer server = start(new Echo(), options(InputType.STRINGS).maxMessageBytes(1 << 20));
    ModelServiceGrpc.ModelServiceBlockingStub stub = ModelServiceGrpc.newBlockingStub(channel(server));
    String big = "x".repeat((1 << 20) + 1);
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> stub.predict(PredictRequest.newBuilder().setInputs(strings(big)).build()));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
    assertEquals(List.of("small"), values(stub.predict(PredictRequest.newBuilder().setInputs(strings("small")).build()).getOutputsList()));
  }

  @Test
  void aBatchWhoseCallerHasGoneIsNotRun() throws Exception {
    Echo echo = new Echo();
    ModelServer server = start(echo, options(InputType.STRINGS));
    ModelServiceGrpc.ModelServiceBlockingStub stub = ModelServiceGrpc.newBlockingStub(channel(server));
    // The first call holds the one model thread; the second waits behind it and its deadline passes.
    Thread slow = new Thread(() -> stub.predict(PredictRequest.newBuilder().setInputs(strings("sleep:500")).build()));
    slow.start();
    Thread.sleep(100);
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> stub.withDeadlineAfter(100, TimeUnit.MILLISECONDS).predict(PredictRequest.newBuilder().setInputs(strings("never")).build()));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    slow.join();
    assertEquals(List.of("after"), values(stub.predict(PredictRequest.newBuilder().setInputs(strings("after")).build()).getOutputsList()));
  }

  @Test
  void servesPrometheusMetrics() throws Exception {
    ModelServer server = start(new Echo(), options(InputType.STRINGS).metricsPort(0));
    ModelServiceGrpc.newBlockingStub(channel(server)).predict(PredictRequest.newBuilder().setInputs(strings("a", "b")).build());
    String text;
    try (InputStream in = URI.create("http://127.0.0.1:" + server.metricsPort() + "/metrics").toURL().openStream()) {
      text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    assertTrue(text.contains("clipper_model_requests_total{model=\"test\",version=\"2\",outcome=\"ok\"} 1"), text);
    assertTrue(text.contains("clipper_model_inputs_total{model=\"test\",version=\"2\",outcome=\"ok\"} 2"), text);
    assertTrue(text.contains("clipper_jvm_memory_used_bytes{area=\"heap\"}"), text);
  }

  @Test
  void closesAModelThatIsAutoCloseable() throws Exception {
    AtomicInteger closed = new AtomicInteger();
    final class Closing implements Model<String>, AutoCloseable {
      @Override
      public List<String> predict(List<String> inputs) {
        return inputs;
      }

      @Override
      public void close() {
        closed.incrementAndGet();
      }
    }
    ModelServer server = ModelServer.start(new Closing(), options(InputType.STRINGS).build());
    assertTrue(server.close(Duration.ofSeconds(1)));
    assertEquals(1, closed.get());
  }

  @Test
  void refusesAModelOfAnotherInputType() {
    final class Doubles implements Model<double[]> {
      @Override
      public List<String> predict(List<double[]> inputs) {
        return List.of();
      }
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> start(new Doubles(), options(InputType.STRINGS)));
    assertTrue(e.getMessage().contains("input type is strings"), e.getMessage());
  }
}
