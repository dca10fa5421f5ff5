package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Map;
import org.junit.jupiter.api.Test;

class ServeOptionsTest {
  @Test
  void readsTheReplicasEnvironment() {
    ServeOptions o = ServeOptions.fromEnv(Map.of(
        "CLIPPER_MODEL_PORT", "7001",
        "CLIPPER_MODEL_NAME", "sum",
        "CLIPPER_MODEL_VERSION", "3",
        "CLIPPER_INPUT_TYPE", "doubles",
        "CLIPPER_METRICS_PORT", "9100",
        "CLIPPER_MODEL_CONCURRENCY", "4"));
    assertEquals(7001, o.port());
    assertEquals("sum", o.name());
    assertEquals("3", o.version());
    assertEquals(InputType.DOUBLES, o.inputType());
    assertEquals(9100, o.metricsPort());
    assertEquals(4, o.concurrency());
    assertEquals("127.0.0.1", o.host());
    assertEquals(ServeOptions.DEFAULT_MAX_MESSAGE_BYTES, o.maxMessageBytes());
  }

  @Test
  void defaultsServeNoMetricsAndOneBatchAtATime() {
    ServeOptions o = ServeOptions.fromEnv(Map.of("CLIPPER_MODEL_PORT", "0", "CLIPPER_INPUT_TYPE", "strings"));
    assertEquals(-1, o.metricsPort());
    assertEquals(1, o.concurrency());
    assertEquals("model", o.name());
  }

  @Test
  void namesTheVariableThatIsMissingOrWrong() {
    assertEquals("CLIPPER_MODEL_PORT is not set",
        assertThrows(IllegalArgumentException.class, () -> ServeOptions.fromEnv(Map.of("CLIPPER_INPUT_TYPE", "ints"))).getMessage());
    assertEquals("CLIPPER_INPUT_TYPE is not set",
        assertThrows(IllegalArgumentException.class, () -> ServeOptions.fromEnv(Map.of("CLIPPER_MODEL_PORT", "1"))).getMessage());
    assertEquals("CLIPPER_MODEL_PORT must be a port number (0..65535), got \"70000\"",
        assertThrows(IllegalArgumentException.class,
            () -> ServeOptions.fromEnv(Map.of("CLIPPER_MODEL_PORT", "70000", "CLIPPER_INPUT_TYPE", "ints"))).getMessage());
    String message = assertThrows(IllegalArgumentException.class,
        () -> ServeOptions.fromEnv(Map.of("CLIPPER_MODEL_PORT", "1", "CLIPPER_INPUT_TYPE", "tensor"))).getMessage();
    assertEquals("CLIPPER_INPUT_TYPE: unknown input type \"tensor\": expected one of bytes, ints, floats, doubles, strings", message);
  }

  @Test
  void theBuilderChecksEachValue() {
    assertThrows(IllegalStateException.class, () -> ServeOptions.builder().build());
    assertThrows(IllegalArgumentException.class, () -> ServeOptions.builder().concurrency(0));
    assertThrows(IllegalArgumentException.class, () -> ServeOptions.builder().port(-1));
    assertEquals(8, ServeOptions.builder().inputType(InputType.INTS).concurrency(8).build().toBuilder().build().concurrency());
  }
}
