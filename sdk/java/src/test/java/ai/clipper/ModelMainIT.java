package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import clipper.common.v1.Data;
import clipper.model.v1.ModelServiceGrpc;
import clipper.model.v1.ModelServiceOuterClass.PredictRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamResponse;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The replica the container-manager starts, from the built jars (failsafe runs this after
 * packaging): {@code java -cp <sdk -all jar>:<model jar> ai.clipper.ModelMain <class>}.
 */
class ModelMainIT {
  private Process process;
  private ManagedChannel channel;

  @BeforeEach
  void checkJars() {
    for (String property : new String[] {"clipper.sdk.jar", "clipper.conformance.jar"}) {
      String jar = System.getProperty(property);
      assertTrue(jar != null && Files.isRegularFile(Path.of(jar)), property + " names a built jar: " + jar);
    }
  }

  @AfterEach
  void stop() throws InterruptedException {
    if (channel != null) channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    if (process != null && process.isAlive()) {
      process.destroyForcibly();
      process.waitFor();
    }
  }

  private static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private Process launch(String modelClass, int port, String inputType) throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classPath = System.getProperty("clipper.sdk.jar") + File.pathSeparator + System.getProperty("clipper.conformance.jar");
    ProcessBuilder pb = new ProcessBuilder(java, "-cp", classPath, "ai.clipper.ModelMain", modelClass);
    pb.environment().put("CLIPPER_MODEL_PORT", Integer.toString(port));
    pb.environment().put("CLIPPER_MODEL_NAME", "conformance");
    pb.environment().put("CLIPPER_MODEL_VERSION", "1");
    pb.environment().put("CLIPPER_INPUT_TYPE", inputType);
    pb.redirectErrorStream(true);
    return pb.start();
  }

  @Test
  void servesTheModelJarAndStopsGracefullyOnSigterm() throws Exception {
    int port = freePort();
    process = launch("ai.clipper.conformance.ConformanceModel", port, "strings");
    BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    String first = out.readLine();
    assertTrue(first != null && first.contains("\"msg\":\"listening\"") && first.contains("\"port\":" + port), first);
    channel = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    ServingStatus status = ServingStatus.UNKNOWN;
    while (System.nanoTime() < deadline) {
      status = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
          .check(HealthCheckRequest.getDefaultInstance()).getStatus();
      if (status == ServingStatus.SERVING) break;
      Thread.sleep(50);
    }
    assertEquals(ServingStatus.SERVING, status);
    Data.Inputs hi = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_STRINGS).addStrings("hi").build();
    assertEquals("{\"n\":2,\"echo\":\"hi\"}",
        ModelServiceGrpc.newBlockingStub(channel).predict(PredictRequest.newBuilder().setInputs(hi).build()).getOutputs(0).getValue());

    ModelServerTest.Answers answers = new ModelServerTest.Answers();
    StreamObserver<PredictStreamRequest> requests = ModelServiceGrpc.newStub(channel).predictStream(answers);
    Data.Inputs slow = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_STRINGS).addStrings("!sleep:500").addStrings("x").build();
    requests.onNext(PredictStreamRequest.newBuilder().setBatchId(9).setInputs(slow).build());
    Thread.sleep(150);
    process.destroy(); // SIGTERM
    PredictStreamResponse r = answers.next();
    assertEquals(9, r.getBatchId());
    assertEquals(List.of("{\"slept\":500}", "{\"n\":1,\"echo\":\"x\"}"), r.getOutputsList().stream().map(Data.Output::getValue).toList());
    assertTrue(answers.done.await(5, TimeUnit.SECONDS), "the stream ends after its batch");
    assertTrue(process.waitFor(10, TimeUnit.SECONDS), "the JVM exits after SIGTERM");
    assertEquals(0, process.exitValue());
  }

  @Test
  void aClassNotInTheJarsExits3NamingIt() throws Exception {
    process = launch("com.example.NotThere", freePort(), "strings");
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(process.waitFor(20, TimeUnit.SECONDS));
    assertEquals(3, process.exitValue());
    assertTrue(output.contains("class com.example.NotThere is not on the class path"), output);
  }
}
