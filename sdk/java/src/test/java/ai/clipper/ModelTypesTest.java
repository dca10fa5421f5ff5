package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class ModelTypesTest {
  static final class Doubles implements Model<double[]> {
    @Override
    public List<String> predict(List<double[]> inputs) {
      return List.of();
    }
  }

  interface TextModel extends Model<String> {}

  static final class Text implements TextModel {
    @Override
    public List<String> predict(List<String> inputs) {
      return inputs;
    }
  }

  static class Base implements Model<byte[]> {
    @Override
    public List<String> predict(List<byte[]> inputs) {
      return List.of();
    }
  }

  static final class Derived extends Base {}

  @Test
  void findsTheDeclaredInputType() {
    assertEquals(double[].class, ModelTypes.declaredInput(Doubles.class));
    assertEquals(String.class, ModelTypes.declaredInput(Text.class));
    assertEquals(byte[].class, ModelTypes.declaredInput(Derived.class));
    Model<int[]> lambda = inputs -> List.of();
    assertNull(ModelTypes.declaredInput(lambda.getClass()));
  }

  @Test
  void refusesAModelOfAnotherInputTypeNamingBoth() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelTypes.check(Doubles.class, InputType.STRINGS));
    assertTrue(e.getMessage().contains("is a Model<double[]>, but the input type is strings, whose inputs are String"), e.getMessage());
    assertDoesNotThrow(() -> ModelTypes.check(Doubles.class, InputType.DOUBLES));
    assertDoesNotThrow(() -> ModelTypes.check(Text.class, InputType.STRINGS));
  }
}
