package ai.clipper.conformance;

import ai.clipper.Model;
import ai.clipper.ModelSettings;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The conformance kit's model for the Java runtime (the contract: test/conformance/README.md).
 *
 * <p>Each input is answered with a JSON object: numeric inputs {@code {"n":count,"sum":sum}}, strings
 * {@code {"n":utf8Bytes,"echo":text}}, bytes {@code {"n":count,"sum":sumOfUnsignedBytes}}. Directives
 * (a string or bytes {@code "!fail"}, {@code "!wrong-count"}, {@code "!wrong-type"}, {@code "!sleep:MS"};
 * a numeric input {@code [-999, code, ms]} with code 1, 2, 3, 4) make the batch raise, answer one output
 * too few, answer a non-string for that input, or sleep. CLIPPER_CONFORMANCE_LOAD_MS makes loading slow.
 *
 * <pre>
 * java -cp clipper-model-sdk-0.1.0-all.jar:clipper-model-sdk-0.1.0-conformance-model.jar \
 *   ai.clipper.ModelMain ai.clipper.conformance.ConformanceModel
 * </pre>
 */
@ModelSettings(concurrency = 4)
public final class ConformanceModel implements Model<Object> {
  static final double MAGIC = -999;

  public ConformanceModel() throws InterruptedException {
    String raw = System.getenv("CLIPPER_CONFORMANCE_LOAD_MS");
    long loadMs = raw == null || raw.isBlank() ? 0 : Long.parseLong(raw.trim());
    System.err.println("conformance-model: loading " + loadMs + " ms");
    Thread.sleep(loadMs);
    System.err.println("conformance-model: loaded");
  }

  @Override
  public List<String> predict(List<Object> inputs) throws Exception {
    long sleepMs = 0;
    boolean fail = false;
    boolean wrongCount = false;
    List<String> outputs = new ArrayList<>(inputs.size());
    for (Object input : inputs) {
      String[] directive = directive(input);
      if (directive == null) {
        outputs.add(answer(input));
        continue;
      }
      switch (directive[0]) {
        case "fail":
          fail = true;
          outputs.add("{}");
          break;
        case "wrong-count":
          wrongCount = true;
          outputs.add("{}");
          break;
        case "wrong-type":
          // Model<Object> can only say List<String>; a null element is this runtime's "not a string".
          outputs.add(null);
          break;
        case "sleep":
          long ms = Long.parseLong(directive[1]);
          sleepMs = Math.max(sleepMs, ms);
          outputs.add("{\"slept\":" + ms + "}");
          break;
        default:
          outputs.add(answer(input));
      }
    }
    if (sleepMs > 0) Thread.sleep(sleepMs);
    if (fail) throw new IllegalStateException("conformance model: asked to fail");
    if (wrongCount) outputs.remove(outputs.size() - 1);
    return outputs;
  }

  /** {"fail"}, {"sleep", "250"}, ...; or null when the input is data. */
  static String[] directive(Object input) {
    if (input instanceof String || input instanceof byte[]) {
      String text = input instanceof String ? (String) input : new String((byte[]) input, StandardCharsets.UTF_8);
      if (!text.startsWith("!")) return null;
      if (text.startsWith("!sleep:")) return new String[] {"sleep", text.substring(7)};
      return new String[] {text.substring(1)};
    }
    double[] values = asDoubles(input);
    if (values.length < 2 || values[0] != MAGIC) return null;
    switch ((int) values[1]) {
      case 1:
        return new String[] {"fail"};
      case 2:
        return new String[] {"wrong-count"};
      case 3:
        return new String[] {"wrong-type"};
      case 4:
        return new String[] {"sleep", Long.toString(values.length > 2 ? (long) values[2] : 0)};
      default:
        return null;
    }
  }

  static String answer(Object input) {
    if (input instanceof String) {
      String s = (String) input;
      return "{\"n\":" + s.getBytes(StandardCharsets.UTF_8).length + ",\"echo\":" + quote(s) + "}";
    }
    if (input instanceof byte[]) {
      byte[] b = (byte[]) input;
      long sum = 0;
      for (byte x : b) sum += x & 0xff;
      return "{\"n\":" + b.length + ",\"sum\":" + sum + "}";
    }
    if (input instanceof int[]) {
      int[] v = (int[]) input;
      long sum = 0;
      for (int x : v) sum += x;
      return "{\"n\":" + v.length + ",\"sum\":" + sum + "}";
    }
    double[] v = asDoubles(input);
    double sum = 0;
    for (double x : v) sum += x;
    return "{\"n\":" + v.length + ",\"sum\":" + sum + "}";
  }

  private static double[] asDoubles(Object input) {
    if (input instanceof double[]) return (double[]) input;
    if (input instanceof float[]) {
      float[] f = (float[]) input;
      double[] d = new double[f.length];
      for (int i = 0; i < f.length; i++) d[i] = f[i];
      return d;
    }
    if (input instanceof int[]) {
      int[] n = (int[]) input;
      double[] d = new double[n.length];
      for (int i = 0; i < n.length; i++) d[i] = n[i];
      return d;
    }
    throw new IllegalArgumentException("unexpected input " + input.getClass().getName());
  }

  static String quote(String s) {
    StringBuilder out = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    return out.append('"').toString();
  }
}
