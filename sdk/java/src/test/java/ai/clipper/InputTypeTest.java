package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class InputTypeTest {
  @Test
  void parsesClipperNamesInAnyCase() {
    assertEquals(InputType.DOUBLES, InputType.parse("doubles"));
    assertEquals(InputType.FLOATS, InputType.parse("Floats"));
    assertEquals(InputType.INTS, InputType.parse("INTS"));
    assertEquals(InputType.INTS, InputType.parse("integers"));
    assertEquals(InputType.STRINGS, InputType.parse("string"));
    assertEquals(InputType.BYTES, InputType.parse(" bytes "));
  }

  @Test
  void anUnknownNameNamesTheValidOnes() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> InputType.parse("tensors"));
    assertTrue(e.getMessage().contains("bytes, ints, floats, doubles, strings"), e.getMessage());
  }

  @Test
  void eachTypeHasTheJavaTypeOfOneInput() {
    assertEquals(double[].class, InputType.DOUBLES.javaType());
    assertEquals(float[].class, InputType.FLOATS.javaType());
    assertEquals(int[].class, InputType.INTS.javaType());
    assertEquals(byte[].class, InputType.BYTES.javaType());
    assertEquals(String.class, InputType.STRINGS.javaType());
    assertEquals("doubles", InputType.DOUBLES.toString());
  }
}
