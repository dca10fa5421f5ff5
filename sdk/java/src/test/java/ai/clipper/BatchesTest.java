package ai.clipper;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import clipper.common.v1.Data;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusException;
import java.util.List;
import org.junit.jupiter.api.Test;

class BatchesTest {
  static Data.Inputs doubles(double[]... inputs) {
    Data.Inputs.Builder b = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_DOUBLES);
    for (double[] input : inputs) {
      b.addLengths(input.length);
      for (double x : input) b.addDoubles(x);
    }
    return b.build();
  }

  @Test
  void splitsPackedDoublesByLengths() throws StatusException {
    List<Object> batch = Batches.unpack(doubles(new double[] {1, 2, 3}, new double[] {4}, new double[] {}), InputType.DOUBLES, 0);
    assertEquals(3, batch.size());
    assertArrayEquals(new double[] {1, 2, 3}, (double[]) batch.get(0));
    assertArrayEquals(new double[] {4}, (double[]) batch.get(1));
    assertArrayEquals(new double[] {}, (double[]) batch.get(2));
  }

  @Test
  void unpacksFloatsIntsStringsAndBytes() throws StatusException {
    Data.Inputs floats = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_FLOATS)
        .addLengths(2).addFloats(0.5f).addFloats(-1.25f).build();
    assertArrayEquals(new float[] {0.5f, -1.25f}, (float[]) Batches.unpack(floats, InputType.FLOATS, 0).get(0));
    Data.Inputs ints = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_INTS)
        .addLengths(1).addLengths(2).addInts(-7).addInts(Integer.MAX_VALUE).addInts(Integer.MIN_VALUE).build();
    List<Object> intBatch = Batches.unpack(ints, InputType.INTS, 0);
    assertArrayEquals(new int[] {-7}, (int[]) intBatch.get(0));
    assertArrayEquals(new int[] {Integer.MAX_VALUE, Integer.MIN_VALUE}, (int[]) intBatch.get(1));
    Data.Inputs strings = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_STRINGS)
        .addStrings("héllo ✓").addStrings("").build();
    assertEquals(List.of("héllo ✓", ""), Batches.unpack(strings, InputType.STRINGS, 0));
    Data.Inputs bytes = Data.Inputs.newBuilder().setType(Data.InputType.INPUT_TYPE_BYTES)
        .addBytes(ByteString.copyFrom(new byte[] {0, (byte) 0xff})).build();
    assertArrayEquals(new byte[] {0, (byte) 0xff}, (byte[]) Batches.unpack(bytes, InputType.BYTES, 0).get(0));
  }

  @Test
  void anEmptyBatchIsEmpty() throws StatusException {
    assertEquals(List.of(), Batches.unpack(doubles(), InputType.DOUBLES, 0));
  }

  @Test
  void refusesAnotherTypeNamingBoth() {
    StatusException e = assertThrows(StatusException.class, () -> Batches.unpack(doubles(new double[] {1}), InputType.STRINGS, 0));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals("inputs.type is doubles, this model takes strings", e.getStatus().getDescription());
  }

  @Test
  void refusesLengthsThatDoNotAccountForEveryValue() {
    Data.Inputs bad = doubles(new double[] {1, 2}).toBuilder().addDoubles(3).build();
    StatusException e = assertThrows(StatusException.class, () -> Batches.unpack(bad, InputType.DOUBLES, 0));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertTrue(e.getStatus().getDescription().contains("add up to 2 but inputs.doubles holds 3"), e.getStatus().getDescription());
  }

  @Test
  void refusesAPackedFieldOfAnotherType() {
    Data.Inputs bad = doubles(new double[] {1}).toBuilder().addStrings("x").build();
    StatusException e = assertThrows(StatusException.class, () -> Batches.unpack(bad, InputType.DOUBLES, 0));
    assertEquals("inputs.strings is set but the input type is doubles", e.getStatus().getDescription());
  }

  @Test
  void refusesABatchOverTheLimit() {
    StatusException e = assertThrows(StatusException.class,
        () -> Batches.unpack(doubles(new double[] {1}, new double[] {2}, new double[] {3}), InputType.DOUBLES, 2));
    assertEquals("inputs has 3 inputs, more than the limit of 2", e.getStatus().getDescription());
  }
}
