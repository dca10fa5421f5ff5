package ai.clipper;

import clipper.common.v1.Data;
import io.grpc.StatusException;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Runs one batch through the model: unpacks it, calls predict, and turns every way predict can go
 * wrong into per-input errors, so a faulty model never takes the server down. Counts each batch.
 */
final class BatchPredictor {
  private static final Logger log = Logger.getLogger("ai.clipper");

  private final Model<Object> model;
  private final InputType inputType;
  private final int maxBatchSize;
  private final ModelMetrics metrics;

  @SuppressWarnings("unchecked")
  BatchPredictor(Model<?> model, InputType inputType, int maxBatchSize, ModelMetrics metrics) {
    // The input type decides what each input is; ModelTypes checked the model's declared type against it.
    this.model = (Model<Object>) model;
    this.inputType = inputType;
    this.maxBatchSize = maxBatchSize;
    this.metrics = metrics;
  }

  /**
   * One output per input, in order. Inputs the model cannot take are INVALID_ARGUMENT (the whole
   * batch); anything the model does wrong is an error of the inputs it concerns.
   */
  List<Data.Output> predict(Data.Inputs inputs, long batchId) throws StatusException {
    long started = System.nanoTime();
    List<Object> batch;
    try {
      batch = Batches.unpack(inputs, inputType, maxBatchSize);
    } catch (StatusException e) {
      metrics.invalidInput(System.nanoTime() - started);
      throw e;
    }
    if (batch.isEmpty()) return List.of();
    List<String> result;
    try {
      result = model.predict(batch);
    } catch (Throwable t) {
      if (t instanceof VirtualMachineError && !(t instanceof StackOverflowError)) throw (VirtualMachineError) t;
      log.log(Level.WARNING, "predict failed for batch " + batchId + " of " + batch.size() + " inputs", t);
      List<Data.Output> errors = allErrors("model raised " + t.getClass().getName() + ": " + t.getMessage(), batch.size());
      metrics.batch(batch.size(), batch.size(), true, System.nanoTime() - started);
      return errors;
    }
    List<Data.Output> outputs = outputs(result, batch.size());
    int errors = 0;
    String firstError = null;
    for (Data.Output o : outputs) {
      if (o.hasError()) {
        errors++;
        if (firstError == null) firstError = o.getError();
      }
    }
    if (firstError != null) log.warning("batch " + batchId + ": " + firstError);
    metrics.batch(batch.size(), errors, false, System.nanoTime() - started);
    return outputs;
  }

  /** A result of the wrong size makes every input an error; a null element that input alone. */
  static List<Data.Output> outputs(List<String> result, int expected) {
    if (result == null) return allErrors("model returned null, expected a list of " + expected + " strings", expected);
    if (result.size() != expected) {
      return allErrors("model returned " + result.size() + " outputs for " + expected + " inputs", expected);
    }
    List<Data.Output> outputs = new ArrayList<>(expected);
    int index = 0;
    for (Object value : result) {
      // A raw or unchecked list may hold anything: only a String is an answer.
      if (value instanceof String) {
        outputs.add(Data.Output.newBuilder().setValue((String) value).build());
      } else {
        String what = value == null ? "null" : value.getClass().getName();
        outputs.add(Data.Output.newBuilder().setError("output " + index + " is " + what + ", expected a String").build());
      }
      index++;
    }
    return outputs;
  }

  static List<Data.Output> allErrors(String message, int count) {
    Data.Output error = Data.Output.newBuilder().setError(message).build();
    List<Data.Output> outputs = new ArrayList<>(count);
    for (int i = 0; i < count; i++) outputs.add(error);
    return outputs;
  }
}
