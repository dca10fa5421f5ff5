package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** ModelMain's failures: each an exit status and one line on stderr (the serving path runs in ModelMainIT). */
class ModelMainTest {
  private static Map<String, String> env(String inputType) {
    Map<String, String> env = new HashMap<>();
    env.put("CLIPPER_MODEL_PORT", "0");
    env.put("CLIPPER_INPUT_TYPE", inputType);
    return env;
  }

  @Test
  void usageWithoutExactlyOneClass() {
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {}, env("strings")));
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {"a.B", "c.D"}, env("strings")));
  }

  @Test
  void aMissingVariableIsAUsageError() {
    Map<String, String> env = env("strings");
    env.remove("CLIPPER_MODEL_PORT");
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {ModelServerTest.Echo.class.getName()}, env));
  }

  @Test
  void aClassNotOnTheClassPath() {
    assertEquals(ModelMain.EXIT_CLASSPATH, ModelMain.run(new String[] {"com.example.Missing"}, env("strings")));
  }

  @Test
  void aClassThatIsNotAModelOrHasNoConstructor() {
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {"java.lang.String"}, env("strings")));
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {NeedsArgument.class.getName()}, env("strings")));
  }

  @Test
  void aModelOfAnotherInputType() {
    assertEquals(ModelMain.EXIT_USAGE, ModelMain.run(new String[] {ModelTypesTest.Doubles.class.getName()}, env("strings")));
  }

  @Test
  void aConstructorThatFails() {
    assertEquals(ModelMain.EXIT_FAILED, ModelMain.run(new String[] {FailsToLoad.class.getName()}, env("strings")));
  }

  public static final class NeedsArgument implements Model<String> {
    public NeedsArgument(String weights) {}

    @Override
    public java.util.List<String> predict(java.util.List<String> inputs) {
      return inputs;
    }
  }

  public static final class FailsToLoad implements Model<String> {
    public FailsToLoad() {
      throw new IllegalStateException("weights not found");
    }

    @Override
    public java.util.List<String> predict(java.util.List<String> inputs) {
      return inputs;
    }
  }
}
