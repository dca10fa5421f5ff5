package ai.clipper;

import clipper.common.v1.Data;
import io.grpc.Status;
import io.grpc.StatusException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Unpacking a packed {@code clipper.common.v1.Inputs} batch into the inputs a model receives. */
final class Batches {
  private Batches() {}

  /** The number of inputs in a packed batch of the given type. */
  static int count(Data.Inputs inputs, InputType type) {
    switch (type) {
      case BYTES:
        return inputs.getBytesCount();
      case STRINGS:
        return inputs.getStringsCount();
      default:
        return inputs.getLengthsCount();
    }
  }

  /**
   * One element per input, of {@code type.javaType()}. A batch of another type, with lengths that do
   * not account for every value, with a packed field of another type set, or larger than
   * {@code maxBatch} (0: no limit) is INVALID_ARGUMENT, naming the field.
   */
  static List<Object> unpack(Data.Inputs inputs, InputType type, int maxBatch) throws StatusException {
    if (inputs.getType() != type.proto()) {
      throw invalid("inputs.type is " + InputType.nameOf(inputs.getType()) + ", this model takes " + type);
    }
    checkOtherFieldsEmpty(inputs, type);
    int count = count(inputs, type);
    if (maxBatch > 0 && count > maxBatch) {
      throw invalid("inputs has " + count + " inputs, more than the limit of " + maxBatch);
    }
    if (count == 0) return Collections.emptyList();
    switch (type) {
      case BYTES: {
        List<Object> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) out.add(inputs.getBytes(i).toByteArray());
        return out;
      }
      case STRINGS:
        return new ArrayList<>(inputs.getStringsList());
      case DOUBLES: {
        checkLengths(inputs, inputs.getDoublesCount(), "doubles");
        List<Object> out = new ArrayList<>(count);
        int at = 0;
        for (int i = 0; i < count; i++) {
          double[] values = new double[inputs.getLengths(i)];
          for (int j = 0; j < values.length; j++) values[j] = inputs.getDoubles(at++);
          out.add(values);
        }
        return out;
      }
      case FLOATS: {
        checkLengths(inputs, inputs.getFloatsCount(), "floats");
        List<Object> out = new ArrayList<>(count);
        int at = 0;
        for (int i = 0; i < count; i++) {
          float[] values = new float[inputs.getLengths(i)];
          for (int j = 0; j < values.length; j++) values[j] = inputs.getFloats(at++);
          out.add(values);
        }
        return out;
      }
      case INTS: {
        checkLengths(inputs, inputs.getIntsCount(), "ints");
        List<Object> out = new ArrayList<>(count);
        int at = 0;
        for (int i = 0; i < count; i++) {
          int[] values = new int[inputs.getLengths(i)];
          for (int j = 0; j < values.length; j++) values[j] = inputs.getInts(at++);
          out.add(values);
        }
        return out;
      }
      default:
        throw invalid("unsupported input type " + type);
    }
  }

  private static void checkLengths(Data.Inputs inputs, int values, String field) throws StatusException {
    long total = 0;
    for (int i = 0; i < inputs.getLengthsCount(); i++) {
      // uint32 on the wire: a Java int reads the large ones as negative.
      total += Integer.toUnsignedLong(inputs.getLengths(i));
    }
    if (total != values) {
      throw invalid("inputs.lengths add up to " + total + " but inputs." + field + " holds " + values + " values");
    }
  }

  private static void checkOtherFieldsEmpty(Data.Inputs inputs, InputType type) throws StatusException {
    String set = null;
    if (type != InputType.BYTES && inputs.getBytesCount() > 0) set = "bytes";
    else if (type != InputType.STRINGS && inputs.getStringsCount() > 0) set = "strings";
    else if (type != InputType.DOUBLES && inputs.getDoublesCount() > 0) set = "doubles";
    else if (type != InputType.FLOATS && inputs.getFloatsCount() > 0) set = "floats";
    else if (type != InputType.INTS && inputs.getIntsCount() > 0) set = "ints";
    else if ((type == InputType.BYTES || type == InputType.STRINGS) && inputs.getLengthsCount() > 0) set = "lengths";
    if (set != null) throw invalid("inputs." + set + " is set but the input type is " + type);
  }

  static StatusException invalid(String message) {
    return Status.INVALID_ARGUMENT.withDescription(message).asException();
  }
}
